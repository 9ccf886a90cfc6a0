import pRetry from 'p-retry';
import type { Logger } from '../../lib/log.ts';

const TRANSIENT_CODES = new Set(['COPY_STALLED', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
/** A full disk is waited out like an outage: space comes back. */
const DISK_FULL: Readonly<Record<string, string>> = { ENOSPC: 'no space left', EDQUOT: 'disk quota exceeded' };
// Connection exceptions, shutdowns, out of resources, lock and serialization conflicts.
const TRANSIENT_SQLSTATE = /^(08|53|57P0[1-3]|40001|40P01|55P03|55006)/;
const TRANSIENT_MESSAGE = /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Connection closed/i;

/** Operational errors: retried, with what to fix in the log line, since someone has to fix it. */
const OPERATIONAL: ReadonlyArray<[RegExp, string]> = [
  [/^57014$/, 'a statement was cancelled (statement_timeout, or pg_cancel_backend): raise statement_timeout for the role or database of DATABASE_URL, e.g. ALTER ROLE … SET statement_timeout = 0'],
  [/^42501$/, 'the role of DATABASE_URL lacks a privilege: GRANT it what the message names (dropstream needs SELECT, INSERT and UPDATE on its tables, USAGE on their sequences, CREATE on the schema)'],
  [/^28/, 'the database refused the login: check the user and password of DATABASE_URL and pg_hba.conf'],
  [/^25006$/, 'the server is read-only (a standby, or default_transaction_read_only): point DATABASE_URL at the primary'],
  [/^58/, 'the database server reports a system error (disk, file access): see its log'],
];

/** What cannot fix itself and is no file's fault: the stream stops and says what to do. */
const FATAL_HINTS: ReadonlyArray<[RegExp, string]> = [
  [/^42/, 'the schema is not the one the migrations in sql/ created (a table or column dropped, renamed or changed): restore it'],
  [/^(3D000|57P04)$/, 'the database of DATABASE_URL does not exist: create it or fix DATABASE_URL'],
];

/**
 * What an error means for the stream:
 * - transient: goes away by itself (the database is down, restarting or busy): retried;
 * - operational: a setting or privilege someone must fix (57014, 42501…): retried, saying what to fix;
 * - content: the file's rows caused it (SQLSTATE classes 22 and 23): the file is set aside;
 * - fatal: any other database error, which neither retrying nor setting files aside can fix: the stream stops;
 * - other: not from the database (a bug, a disk error): thrown at once, as fatal.
 */
export type ErrorKind = 'transient' | 'operational' | 'content' | 'fatal' | 'other';

/** The SQLSTATE of an error PostgreSQL sent (it has a severity), also when wrapped (a failed migration). */
function sqlState(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; severity?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'string' && typeof e.severity === 'string') return e.code;
  }
  return undefined;
}

export function classifyError(err: unknown): ErrorKind {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if ((typeof e?.code === 'string' && (TRANSIENT_CODES.has(e.code) || DISK_FULL[e.code])) || TRANSIENT_MESSAGE.test(String(e?.message ?? ''))) return 'transient';
  const state = sqlState(err);
  if (!state) return 'other';
  if (TRANSIENT_SQLSTATE.test(state)) return 'transient';
  if (OPERATIONAL.some(([re]) => re.test(state))) return 'operational';
  if (/^2[23]/.test(state)) return 'content';
  return 'fatal';
}

/** An error that goes away by itself: the database is down, restarting or busy, or a disk is full. */
export function isTransient(err: unknown): boolean {
  return classifyError(err) === 'transient';
}

export const DATABASE_UNAVAILABLE = 'database unavailable';

/** Why a transient error happened, for the retry log. */
function transientCause(err: unknown): string {
  const e = err as { code?: string; path?: string; dest?: string };
  if (e.code && DISK_FULL[e.code]) return `disk full (${DISK_FULL[e.code]}) at ${e.dest ?? e.path ?? 'an unknown path'}`;
  return DATABASE_UNAVAILABLE;
}

/** Runs work until it succeeds, waiting out transient and operational errors; `what` names it in the log. */
export type Retry = <T>(what: string, work: () => Promise<T>) => Promise<T>;

/** The database's message, its SQLSTATE and table, and for an operational or fatal error what to do. */
export function describeDatabaseError(err: unknown): string {
  const e = err as { message?: string; table?: string };
  const code = sqlState(err);
  const hint = [...OPERATIONAL, ...FATAL_HINTS].find(([re]) => code && re.test(code))?.[1];
  return `${e.message} (SQLSTATE ${code}${e.table ? `, table ${e.table}` : ''})${hint ? `: ${hint}` : ''}`;
}

export interface RetryOptions {
  signal: AbortSignal;
  log: Logger;
  /** What is being retried, for the log. */
  what: string;
  /** Told of every failed attempt that is retried (the stream's state counts them); `database`: the database's fault, not a full disk. */
  onRetry?: (what: string, cause: string, err: Error, database: boolean) => void;
}

const retried: ReadonlySet<ErrorKind> = new Set(['transient', 'operational']);

/**
 * Runs `work` until it succeeds, waiting out transient and operational errors with exponential
 * backoff and jitter (0.2 s doubling to 30 s); a fatal database error is thrown at once, saying
 * what to do; any other error as it is. `signal` ends the waiting, never an attempt: work under way
 * (the batch in flight) finishes, also when it began after the stop.
 */
export async function retryTransient<T>(work: () => Promise<T>, opts: RetryOptions): Promise<T> {
  let done: { value: T } | undefined;
  try {
    return await pRetry(async () => (done = { value: await work() }).value, {
      retries: Number.POSITIVE_INFINITY,
      minTimeout: 200,
      maxTimeout: 30_000,
      randomize: true,
      signal: opts.signal.aborted ? undefined : opts.signal,
      shouldRetry: ({ error }) => !opts.signal.aborted && retried.has(classifyError(error)),
      onFailedAttempt: ({ error, attemptNumber }) => {
        const kind = classifyError(error);
        if (kind === 'transient') {
          const cause = transientCause(error);
          opts.log.warn({ attempt: attemptNumber, err: error.message }, `${opts.what} failed: ${cause}, retrying`);
          opts.onRetry?.(opts.what, cause, error, cause === DATABASE_UNAVAILABLE);
        }
        if (kind === 'operational') {
          const cause = describeDatabaseError(error);
          opts.log.warn({ attempt: attemptNumber, err: error.message, sqlstate: sqlState(error) }, `${opts.what} failed: ${cause}; retrying`);
          opts.onRetry?.(opts.what, cause, error, true);
        }
      },
    });
  } catch (err) {
    if (done) return done.value; // the stop came while the work succeeded
    if (classifyError(err) === 'fatal') throw new Error(`${opts.what} failed: ${describeDatabaseError(err)}`, { cause: err });
    throw err;
  }
}
