import type pg from 'pg';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Folds the rollup deltas that files appended into the compacted rollups (sql/050_rollups.sql).
 * Only keeps the views quick: they are exact with or without it, so a failed or skipped fold loses nothing.
 */
export async function compactRollups(db: Queryable): Promise<void> {
  await db.query('SELECT rollups_compact()');
}

/** A key of a grain whose rollup differs from what user_activity gives; null on the side that has no row. */
export interface RollupDifference {
  grain: string;
  key: Record<string, unknown>;
  rollups: Record<string, unknown> | null;
  recomputed: Record<string, unknown> | null;
}

/** Every difference between the rollups and user_activity, both read at one moment. */
export async function rollupDifferences(client: pg.ClientBase): Promise<RollupDifference[]> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    // Instants as UTC text, whatever the session's zone.
    await client.query(`SET LOCAL TimeZone = 'UTC'`);
    const { rows } = await client.query<RollupDifference>('SELECT grain, key, rollups, recomputed FROM rollup_differences()');
    return rows;
  } finally {
    await client.query('ROLLBACK');
  }
}
