import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { ROOT } from '../../../lib/paths.ts';

export const SQL_DIR = join(ROOT, 'sql');

/** Any number of streamers may start at once; one of them migrates, the others wait for it. */
const MIGRATION_LOCK = 0x64726f70; // 'drop'

const INSUFFICIENT_PRIVILEGE = '42501';

async function unapplied(client: pg.ClientBase, files: string[]): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>('SELECT name FROM schema_migrations');
  const applied = new Set(rows.map((r) => r.name));
  return files.filter((f) => !applied.has(f));
}

/**
 * Applies the numbered files in sql/ that this database has not seen yet, each in its own
 * transaction, in name order. Safe to call at every start.
 */
export async function migrate(client: pg.ClientBase, dir = SQL_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_.*\.sql$/.test(f)).sort();
  // Up to date: nothing is locked or created, so a role that may not change the schema starts too
  // (docker-compose.yml's streamer; its migrate service runs them as the owner).
  const { rows: [table] } = await client.query<{ present: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
  const pending = table?.present ? await unapplied(client, files) : files;
  if (pending.length === 0) return [];
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await client
      .query('CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())')
      .catch((err: { code?: string; message: string }) => {
        if (err.code !== INSUFFICIENT_PRIVILEGE) throw err;
        // Without the SQLSTATE as its cause: a missing privilege is retried elsewhere, but this one
        // lasts until the owner acts, so the streamer stops and says who must.
        throw new Error(
          `This database role may not apply the pending migrations (${pending.join(', ')}): ${err.message}. ` +
            'Apply them as the owner of the schema: DATABASE_URL=<owner> npm run migrate (docker compose: the migrate service)',
        );
      });
    const newlyApplied: string[] = [];
    for (const file of await unapplied(client, files)) {
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
