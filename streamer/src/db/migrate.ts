import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { ROOT } from '../../../lib/paths.ts';

export const SQL_DIR = join(ROOT, 'sql');

/** Any number of streamers may start at once; one of them migrates, the others wait for it. */
const MIGRATION_LOCK = 0x64726f70; // 'drop'

/**
 * Applies the numbered files in sql/ that this database has not seen yet, each in its own
 * transaction, in name order. Safe to call at every start.
 */
export async function migrate(client: pg.ClientBase, dir = SQL_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_.*\.sql$/.test(f)).sort();
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ name: string }>('SELECT name FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.name));
    const newlyApplied: string[] = [];
    for (const file of files.filter((f) => !applied.has(f))) {
      const sql = await readFile(`${dir}/${file}`, 'utf8');
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [file]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`Migration sql/${file} failed: ${(err as Error).message}`, { cause: err });
      }
      newlyApplied.push(file);
    }
    return newlyApplied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  }
}
