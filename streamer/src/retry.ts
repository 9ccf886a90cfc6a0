import pRetry from 'p-retry';
import type { Logger } from '../../lib/log.ts';

const DATABASE_CODES = new Set(['COPY_STALLED', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
// Connection exceptions, shutdowns, out of resources, lock and serialization conflicts.
const DATABASE_SQLSTATE = /^(08|53|57P0[1-3]|40001|40P01|55P03|55006)/;
const DISK_FULL: Readonly<Record<string, string>> = { ENOSPC: 'no space left', EDQUOT: 'disk quota exceeded' };
export const DATABASE_UNAVAILABLE = 'database unavailable';

/**
 * Why an error will go away by itself, for the retry log: the database is down, restarting or
 * busy, or a disk is full (space comes back). Undefined: retrying cannot fix it.
 */
export function transientCause(err: unknown): string | undefined {
  const e = err as { code?: string; message?: string; path?: string; dest?: string };
  if (e.code && DISK_FULL[e.code]) return `disk full (${DISK_FULL[e.code]}) at ${e.dest ?? e.path ?? 'an unknown path'}`;
  if (e.code && (DATABASE_CODES.has(e.code) || DATABASE_SQLSTATE.test(e.code))) return DATABASE_UNAVAILABLE;
  if (/Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Connection closed/i.test(e.message ?? '')) return DATABASE_UNAVAILABLE;
  return undefined;
}

/** An error that goes away by itself: see transientCause. */
export function isTransient(err: unknown): boolean {
  return transientCause(err) !== undefined;
}

/** Runs work until it succeeds, waiting out transient errors; `what` names it in the log. */
export type Retry = <T>(what: string, work: () => Promise<T>) => Promise<T>;

export interface RetryOptions {
  signal: AbortSignal;
  log: Logger;
  /** What is being retried, for the log. */
  what: string;
  /** Told of every failed attempt that is retried (the stream's state counts them). */
  onRetry?: (what: string, cause: string, err: Error) => void;
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
      const cause = transientCause(error);
      if (cause) opts.log.warn({ attempt: attemptNumber, err: error.message }, `${opts.what} failed: ${cause}, retrying`);
      if (cause) opts.onRetry?.(opts.what, cause, error);
    },
  });
}
