import pg from 'pg';
import type { Logger } from '../../../lib/log.ts';

/** One connection per file loaded at once, plus room for the ledger's own queries. */
export function createPool(url: string, fileConcurrency: number, log: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: fileConcurrency + 2,
    connectionTimeoutMillis: 10_000,
    // Notice a dead server or a cut network instead of waiting on a socket forever.
    keepAlive: true,
    application_name: 'dropstream',
  });
  // An idle connection the server closed (restart, pg_terminate_backend) must not crash the process.
  pool.on('error', (err) => log.warn({ err: err.message }, 'an idle database connection was closed'));
  return pool;
}
