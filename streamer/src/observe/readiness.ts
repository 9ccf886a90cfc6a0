import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { StreamState } from './streamState.ts';

export interface Check {
  name: 'database' | 'watcher' | 'checkpoint';
  ok: boolean;
  /** What was found: the error when it failed. */
  detail: string;
}

/** A probe that waits longer than this counts as failed: probes have timeouts of their own. */
const DATABASE_TIMEOUT_MS = 2000;

export interface ReadinessDeps {
  pool: pg.Pool;
  state: StreamState;
  inputDir: string;
  checkpointDir: string;
}

/** What /readyz checks: the database answers, the watcher runs, the checkpoint can be read and written. */
export async function readiness({ pool, state, inputDir, checkpointDir }: ReadinessDeps): Promise<Check[]> {
  return Promise.all([database(pool), watcher(state, inputDir), checkpoint(checkpointDir)]);
}

async function database(pool: pg.Pool): Promise<Check> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${DATABASE_TIMEOUT_MS} ms`)), DATABASE_TIMEOUT_MS);
  });
  try {
    await Promise.race([pool.query('SELECT 1'), timeout]);
    return { name: 'database', ok: true, detail: 'answers' };
  } catch (err) {
    return { name: 'database', ok: false, detail: (err as Error).message || String(err) };
  } finally {
    clearTimeout(timer);
  }
}

async function watcher(state: StreamState, inputDir: string): Promise<Check> {
  if (state.watching) return { name: 'watcher', ok: true, detail: state.mode === 'available-now' ? `listing ${inputDir} (available-now)` : `watching ${inputDir}` };
  return { name: 'watcher', ok: false, detail: state.state === 'starting' ? 'not started yet' : `not watching ${inputDir} (${state.state})` };
}

async function checkpoint(dir: string): Promise<Check> {
  try {
    for (const kind of ['offsets', 'commits']) await access(join(dir, kind), constants.R_OK | constants.W_OK);
    return { name: 'checkpoint', ok: true, detail: `${dir} is readable and writable` };
  } catch (err) {
    return { name: 'checkpoint', ok: false, detail: (err as Error).message };
  }
}
