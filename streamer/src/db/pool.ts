import pg from 'pg';
import type { Logger } from '../../../lib/log.ts';
import { CopyStalledError } from '../sink/copyInto.ts';

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

/**
 * Runs `work` on a pooled connection. A connection that saw an error is destroyed, never reused
 * (after a failed COPY, pg-copy-streams can leave it unusable); one whose COPY stalled is also
 * terminated on the server, so that its backend does not linger waiting on a lock.
 */
export async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A dead socket also fails the query in flight; without a listener this event would crash the process.
  const onError = () => undefined;
  client.on('error', onError);
  try {
    const value = await work(client);
    client.off('error', onError);
    client.release();
    return value;
  } catch (err) {
    const pid = (client as unknown as { processID: number | null }).processID;
    if (err instanceof CopyStalledError && pid) await pool.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => undefined);
    client.release(err as Error);
    throw err;
  }
}
