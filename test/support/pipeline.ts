import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { compiled, ROOT } from '../../lib/paths.ts';

/**
 * A database as these helpers use it (a TestDatabase of ./db.ts is one). Not imported from there:
 * db.ts needs vitest, and `npm run chaos` builds and runs this module outside vitest.
 */
export interface Database {
  url: string;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

export interface DataDir {
  dir: string;
  input: string;
  remove: () => Promise<void>;
}

export async function makeDataDir(): Promise<DataDir> {
  const dir = await mkdtemp(join(tmpdir(), 'dropstream-data-'));
  await chmod(dir, 0o755);
  return { dir, input: join(dir, 'input'), remove: () => rm(dir, { recursive: true, force: true }) };
}

const running = new Set<ChildProcess>();

/** Programs a test started and left running (it failed before stopping them): killed, so that they do not load the next test's machine. */
export function killLeftovers(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/**
 * Starts one of the project's programs (its source path, e.g. 'streamer/src/main.ts') compiled, as its npm script does.
 * Without its HTTP server unless `--http-port` or DROPSTREAM_HTTP_PORT says otherwise: streamers run side by side.
 */
export function spawnProgram(script: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [compiled(script), ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_FORMAT: 'json', DROPSTREAM_HTTP_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return Object.assign(child, { output: () => output });
}

export async function finished(child: ChildProcess & { output: () => string }): Promise<Run> {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  return { code: child.exitCode, signal: child.signalCode as NodeJS.Signals | null, output: child.output() };
}

export async function generate(dataDir: string, opts: { files: number; rows: number; seed: number }): Promise<void> {
  const run = await finished(
    spawnProgram('generator/src/main.ts', ['--data-dir', dataDir, '--files', String(opts.files), '--rows', String(opts.rows), '--seed', String(opts.seed), '--interval-ms', '0']),
  );
  if (run.code !== 0) throw new Error(`generator failed:\n${run.output}`);
}

/** Runs the streamer over what is in the input directory and waits for it to exit. */
export async function streamAvailableNow(dataDir: string, db: Pick<Database, 'url'>, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return finished(startStreamer(dataDir, db, ['--available-now', ...extraArgs], env));
}

export function startStreamer(dataDir: string, db: Pick<Database, 'url'>, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return spawnProgram('streamer/src/main.ts', ['--data-dir', dataDir, '--file-stable-ms', '0', ...args], { DATABASE_URL: db.url, ...env });
}

export interface Expected {
  ids: Set<string>;
  rows: number;
  revenueCents: number;
}

/** What the generated files hold, read straight from them (generator files have no quoted fields). */
export async function expectedFromFiles(dirs: string[]): Promise<Expected> {
  const ids = new Set<string>();
  let rows = 0;
  let revenueCents = 0;
  for (const dir of dirs) {
    for (const name of (await readdir(dir)).filter((n) => n.endsWith('.csv'))) {
      const lines = (await readFile(join(dir, name), 'utf8')).trimEnd().split('\n').slice(1);
      for (const line of lines) {
        const [id, , type, , price, quantity] = line.split(',');
        rows++;
        if (ids.has(id!)) continue;
        ids.add(id!);
        if (type === 'purchase') revenueCents += Math.round(Number(price) * 100) * Number(quantity);
      }
    }
  }
  return { ids, rows, revenueCents };
}

export interface TableState {
  count: number;
  distinctIds: number;
  ids: Set<string>;
  revenueCents: number;
}

export async function tableState(db: Pick<Database, 'query'>): Promise<TableState> {
  const { rows } = await db.query<{ event_id: string }>('SELECT event_id FROM user_activity');
  const agg = await db.query<{ count: string; distinct_ids: string; revenue_cents: string | null }>(
    `SELECT count(*) AS count, count(DISTINCT event_id) AS distinct_ids,
            sum(price * quantity * 100) FILTER (WHERE event_type = 'purchase') AS revenue_cents
       FROM user_activity`,
  );
  const a = agg.rows[0]!;
  return { count: Number(a.count), distinctIds: Number(a.distinct_ids), ids: new Set(rows.map((r) => r.event_id)), revenueCents: Number(a.revenue_cents ?? 0) };
}

/** Waits until a child's output contains `text`; fails with the output so far if it exits or times out. */
export async function waitForOutput(child: ChildProcess & { output: () => string }, text: string, timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  while (!child.output().includes(text)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited before '${text}':\n${child.output()}`);
    if (Date.now() - start > timeoutMs) throw new Error(`no '${text}' after ${timeoutMs} ms:\n${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits until `check` holds, polling every 100 ms; fails naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
