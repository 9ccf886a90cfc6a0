import type pg from 'pg';
import type { Logger } from '../../../lib/log.ts';
import type { StreamerConfig } from '../config.ts';
import { migrate } from './migrate.ts';
import { openDatabase } from './openDatabase.ts';
import { createPool, withClient } from './pool.ts';

/**
 * For a command beside the streamer (verify, replay-rejects): the configured database, which must
 * exist, migrated, on a pool of one connection; closed afterwards. A database that cannot be
 * opened is said on stderr and exits 1; `failed` words what went wrong inside `work`.
 */
export async function withCommandDatabase(cfg: StreamerConfig, log: Logger, failed: (message: string) => string, work: (pool: pg.Pool) => Promise<number>): Promise<number> {
  let database;
  try {
    database = await openDatabase(cfg, log, true);
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
  const pool = createPool(database.url, 1, log);
  try {
    await withClient(pool, migrate);
    return await work(pool);
  } catch (err) {
    console.error(failed((err as Error).message));
    return 1;
  } finally {
    await pool.end();
    await database.stop();
  }
}
