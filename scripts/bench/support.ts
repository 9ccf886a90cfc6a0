// What every measurement shares: fresh databases, the streamer as a child process, statistics.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { link, copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { compiled, ROOT } from '../../lib/paths.ts';
import { migrate } from '../../streamer/src/db/migrate.ts';

export type Log = (message: string) => void;

export interface Stat {
  median: number;
  min: number;
  max: number;
}

export function stat(values: number[]): Stat {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN };
}

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * A new database on the bench server, migrated exactly as the streamer migrates its own: every
 * run loads into an empty user_activity with the same indexes, so index sizes are comparable.
 */
export async function freshDatabase(adminUrl: string, tag: string): Promise<BenchDatabase> {
  const name = `dropstream_bench_${tag.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`;
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = withDatabase(adminUrl, name);
  await withClient(url, (c) => migrate(c));
  return {
    url,
    drop: () => withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name}`)).then(() => undefined),
  };
}

/** Writes dirty pages of earlier runs out now, so that no run pays for its predecessor's checkpoint. */
export async function checkpoint(url: string): Promise<void> {
  await withClient(url, (c) => c.query('CHECKPOINT')).catch(() => undefined); // needs superuser or pg_checkpoint
}

export async function countRows(url: string, table = 'user_activity'): Promise<number> {
  return withClient(url, async (c) => Number((await c.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n));
}

const TICKS_PER_SECOND = 100; // USER_HZ of /proc/<pid>/stat on Linux

/** Own and reaped children's CPU seconds of a process, from /proc (Linux); undefined elsewhere. */
function procCpu(pid: number | 'self'): { ppid: number; own: number; reaped: number } | undefined {
  try {
    // The fields after the command name, which may itself hold spaces and parentheses.
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const n = (i: number) => Number(f[i - 3]); // i: field number as in proc(5)
    return { ppid: n(4), own: (n(14) + n(15)) / TICKS_PER_SECOND, reaped: (n(16) + n(17)) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

/**
 * The client's CPU seconds so far: the processes this one spawned and reaped (psql, the streamer),
 * plus this process's own when the client runs in it (the INSERT and Node COPY baselines). Not the
 * bench's own otherwise: its reading of the streamer's log lines and its scrapes are not the streamer's.
 */
function clientCpuSeconds(inProcess: boolean): number | undefined {
  const self = procCpu('self');
  if (!self) return undefined;
  const { user, system } = process.cpuUsage();
  return self.reaped + (inProcess ? (user + system) / 1e6 : 0);
}

/** The postmaster of the server, when it runs on this machine: then its CPU can be read. */
async function serverProcess(url: string): Promise<number | undefined> {
  // Read while the backend still lives: its parent is the postmaster.
  const parent = await withClient(url, async (c) => procCpu(Number((await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid))?.ppid);
  const cmdline = parent ? await readFile(`/proc/${parent}/cmdline`, 'utf8').catch(() => '') : '';
  return /postgres/.test(cmdline) ? parent : undefined;
}

/** CPU seconds the server has used: the postmaster, its live children and the ones it reaped. */
function serverCpuSeconds(postmaster: number | undefined): number | undefined {
  const root = postmaster === undefined ? undefined : procCpu(postmaster);
  if (!root) return undefined;
  let total = root.own + root.reaped;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const p = procCpu(Number(entry));
    if (p && p.ppid === postmaster) total += p.own;
  }
  return total;
}

export interface CpuSeconds {
  client: number;
  server: number;
}

/**
 * Starts counting CPU seconds on both sides; the function it returns reads them (undefined where
 * /proc cannot tell). It first waits for the database's connections to end: a backend's time
 * moves to the postmaster's account when it is reaped, and one reaped mid-reading would be lost.
 */
export async function startCpuMeter(url: string, clientInProcess = false): Promise<() => Promise<CpuSeconds | undefined>> {
  const postmaster = await serverProcess(url);
  const read = () => ({ client: clientCpuSeconds(clientInProcess), server: serverCpuSeconds(postmaster) });
  const before = read();
  return async () => {
    await withClient(url, async (c) => {
      const others = 'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()';
      for (let i = 0; i < 100 && Number((await c.query(others)).rows[0].n) > 0; i++) await sleep(20);
    });
    await sleep(100); // and for this connection's own backend to be reaped
    const after = read();
    if (before.client === undefined || before.server === undefined || after.client === undefined || after.server === undefined) return undefined;
    return { client: after.client - before.client, server: after.server - before.server };
  };
}

/** `psql` on the PATH, or null: the baseline then runs the same COPY from Node. */
export function findPsql(): string | null {
  const found = spawnSync('psql', ['--version'], { encoding: 'utf8' });
  return found.status === 0 ? 'psql' : null;
}

/** A run directory whose input/ holds the corpus files as hard links (no copy of a gigabyte per run). */
export async function makeRunDir(parent: string, files: string[]): Promise<{ dir: string; input: string; remove: () => Promise<void> }> {
  const dir = join(parent, `run-${randomBytes(4).toString('hex')}`);
  const input = join(dir, 'input');
  await mkdir(input, { recursive: true });
  const queue = [...files];
  const worker = async () => {
    for (let f = queue.pop(); f !== undefined; f = queue.pop()) {
      const target = join(input, basename(f));
      await link(f, target).catch(() => copyFile(f, target)); // another filesystem: copy
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return { dir, input, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface LogLine {
  msg?: string;
  [key: string]: unknown;
}

export interface Streamer {
  child: ChildProcess;
  /** The first log line, so far or to come, that matches, and when (performance.now()) it arrived. */
  waitFor(match: (line: LogLine) => boolean, timeoutMs: number): Promise<Received>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** Every JSON log line so far. */
  lines(): LogLine[];
  /** The process's peak RSS in bytes (getrusage ru_maxrss, written at exit by peakRss.ts). */
  peakRssBytes(): Promise<number | undefined>;
  output(): string;
}

export interface Received {
  line: LogLine;
  at: number;
}

export interface StreamerSpawn {
  dataDir: string;
  databaseUrl: string;
  /** Its HTTP server's port (from freePort()), or 0 for none: streamers of the machine must not share one. */
  httpPort: number;
  args: string[];
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
}

/** The real CLI, as `npm run stream` runs it, with JSON logs read line by line. */
export function spawnStreamer({ dataDir, databaseUrl, httpPort, args, nodeArgs = [] }: StreamerSpawn): Streamer {
  const rssFile = join(tmpdir(), `dropstream-bench-rss-${randomBytes(6).toString('hex')}`);
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--import', compiled('scripts/bench/peakRss.ts'), compiled('streamer/src/main.ts'), '--data-dir', dataDir, '--http-port', String(httpPort), ...args],
    { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl, LOG_FORMAT: 'json', LOG_LEVEL: 'info', BENCH_RSS_FILE: rssFile }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // 'close', not 'exit': by then every line the process wrote has been read.
  const exited = once(child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  let tail = '';
  const keep = (text: string) => (tail = (tail + text).slice(-20_000));
  child.stderr!.on('data', (d: Buffer) => keep(d.toString()));

  const received: Received[] = [];
  const lineEvents = new EventEmitter();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const at = performance.now();
    keep(`${text}\n`);
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      return; // not a log line
    }
    received.push({ line, at });
    lineEvents.emit('line', { line, at });
  });
  const output = () => tail;

  const waitFor = (match: (line: LogLine) => boolean, timeoutMs: number) =>
    new Promise<Received>((resolve, reject) => {
      const seen = received.find((r) => match(r.line));
      if (seen) return resolve(seen);
      const done = () => (clearTimeout(timer), lineEvents.off('line', onLine));
      const onLine = (r: Received) => match(r.line) && (done(), resolve(r));
      const fail = (why: string) => (done(), reject(new Error(`streamer: ${why}\n${output().slice(-3000)}`)));
      const timer = setTimeout(() => fail(`no matching log line within ${timeoutMs} ms`), timeoutMs);
      lineEvents.on('line', onLine);
      void exited.then(({ code, signal }) => fail(`exited (${signal ?? code}) before the awaited log line`));
    });

  return {
    child,
    exited,
    output,
    lines: () => received.map((r) => r.line),
    waitFor,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    async peakRssBytes() {
      const text = await readFile(rssFile, 'utf8').catch(() => undefined);
      await rm(rssFile, { force: true });
      return text ? Number(text) : undefined;
    },
  };
}

export const isWatching = (l: LogLine) => l.msg === 'watching for files';
export const isBatch = (l: LogLine) => typeof l.batch === 'number' && typeof l.rowsLoaded === 'number';
