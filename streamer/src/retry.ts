import pRetry from 'p-retry';
import type { Logger } from '../../lib/log.ts';

const TRANSIENT_CODES = new Set(['COPY_STALLED', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
// Connection exceptions, shutdowns, out of resources, lock and serialization conflicts.
const TRANSIENT_SQLSTATE = /^(08|53|57P0[1-3]|40001|40P01|55P03|55006)/;

/** An error that goes away by itself: the database is down, restarting or busy. */
export function isTransient(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e.code && (TRANSIENT_CODES.has(e.code) || TRANSIENT_SQLSTATE.test(e.code))) return true;
  return /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Connection closed/i.test(e.message ?? '');
}

export interface RetryOptions {
  signal: AbortSignal;
  log: Logger;
  /** What is being retried, for the log. */
  what: string;
}

/**
 * Runs `work` until it succeeds, waiting out transient errors with exponential backoff and
 * jitter (0.2 s doubling to 30 s); any other error is thrown at once. Stops when `signal` aborts.
 */
export async function retryTransient<T>(work: () => Promise<T>, opts: RetryOptions): Promise<T> {
  return pRetry(work, {
    retries: Number.POSITIVE_INFINITY,
    minTimeout: 200,
    maxTimeout: 30_000,
    randomize: true,
    signal: opts.signal,
    shouldRetry: ({ error }) => isTransient(error),
    onFailedAttempt: ({ error, attemptNumber }) => {
      if (isTransient(error)) opts.log.warn({ attempt: attemptNumber, err: error.message }, `${opts.what} failed: database unavailable, retrying`);
    },
  });
}
