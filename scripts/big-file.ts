// One big hand-dropped file, end to end: builds a ~500 MB CSV with the generator, spoils a few rows
// at known physical lines deep inside it (streaming: the file is never held in memory), runs the
// streamer --available-now on it, samples the streamer's peak RSS, and checks that exactly those
// lines were rejected, with the right reasons, and every other row loaded.
//
//   npm run big-file -- [--mb 500] [--keep]
//
// DATABASE_URL set: a database of its own is created on that server (and dropped at the end);
// unset: a throwaway embedded PostgreSQL in a temporary directory.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../lib/embeddedPostgres.ts';
import { freePort } from '../lib/freePort.ts';
import { compiled, ROOT } from '../lib/paths.ts';

const { values: flags } = parseArgs({ options: { mb: { type: 'string', default: '500' }, keep: { type: 'boolean', default: false } } });
const targetBytes = Number(flags.mb) * 1_000_000;
if (!(targetBytes > 0)) throw new Error(`--mb must be a positive number, got ${flags.mb}`);

/** A way to spoil one row, and the reason the streamer must give for it. */
interface Spoiler {
  what: string;
  spoil(fields: string[]): Buffer;
  reason(fields: string[]): string;
}
const text = (fields: string[]) => Buffer.from(fields.join(','));
const replaced = (fields: string[], at: number, value: string) => fields.map((f, i) => (i === at ? value : f));
const SPOILERS: Spoiler[] = [
  { what: 'price abc', spoil: (f) => text(replaced(f, 4, 'abc')), reason: () => "price 'abc' is not a decimal number" },
  { what: 'negative quantity', spoil: (f) => text(replaced(f, 5, '-3')), reason: () => "quantity '-3' is negative" },
  { what: 'impossible date', spoil: (f) => text(replaced(f, 6, '2024-02-30T10:00:00Z')), reason: () => "event_time '2024-02-30T10:00:00Z' is not a valid ISO-8601 timestamp" },
  { what: 'two fields missing', spoil: (f) => text(f.slice(0, 5)), reason: () => 'expected 7 fields as in the header, got 5' },
  { what: 'NUL byte', spoil: (f) => Buffer.concat([text(f.slice(0, 1)), Buffer.from(',us\0er'), text(['', ...f.slice(2)])]), reason: () => 'line contains a NUL byte' },
  { what: 'invalid UTF-8', spoil: (f) => Buffer.concat([text(f.slice(0, 3)), Buffer.from([0x2c, 0xff, 0xfe]), text(['', ...f.slice(4)])]), reason: () => 'line is not valid UTF-8' },
];

/**
 * Passes the file through, replacing the given physical lines (1-based, ascending) by spoiled
 * versions. Only the target lines are ever copied out of the stream's chunks.
 */
class SpoilLines extends Transform {
  private line = 1;
  private next = 0;
  private collecting: Buffer[] | undefined;
  readonly reasons: Array<[number, string]> = [];

  constructor(private readonly targets: number[]) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    // `this.line` is the physical line the byte at `pos` belongs to.
    let pos = 0;
    while (pos < chunk.length) {
      if (this.collecting) {
        const nl = chunk.indexOf(0x0a, pos);
        if (nl === -1) {
          this.collecting.push(chunk.subarray(pos));
          break;
        }
        this.collecting.push(chunk.subarray(pos, nl));
        this.push(this.spoil(Buffer.concat(this.collecting)));
        this.collecting = undefined;
        pos = nl; // its line break passes through with what follows
        continue;
      }
      const target = this.targets[this.next];
      let p = pos;
      while (target !== undefined && this.line < target) {
        const nl = chunk.indexOf(0x0a, p);
        if (nl === -1) break;
        this.line++;
        p = nl + 1;
      }
      if (target === undefined || this.line < target) {
        this.push(chunk.subarray(pos));
        break;
      }
      // p is where the target line starts.
      if (p > pos) this.push(chunk.subarray(pos, p));
      this.collecting = [];
      pos = p;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.collecting) this.push(this.spoil(Buffer.concat(this.collecting)));
    done();
  }

  private spoil(original: Buffer): Buffer {
    const spoiler = SPOILERS[this.next % SPOILERS.length]!;
    const fields = original.toString('utf8').split(',');
    this.reasons.push([this.line, spoiler.reason(fields)]);
    this.next++;
    return spoiler.spoil(fields);
  }
}


function run(script: string, args: string[], env: NodeJS.ProcessEnv, onStart?: (pid: number) => void): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [compiled(script), ...args], { cwd: ROOT, env: { ...process.env, LOG_FORMAT: 'json', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
    if (child.pid) onStart?.(child.pid);
  });
}

/** kB figures from /proc/<pid>/status (VmHWM: the peak resident set, kept by the kernel). */
async function memoryOf(pid: number): Promise<{ hwm: number; rss: number } | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (!status) return undefined;
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

async function main(): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), 'dropstream-bigfile-'));
  await chmod(work, 0o755); // the embedded PostgreSQL runs as another user and must reach its directory
  const dataDir = join(work, 'data');
  let embedded: EmbeddedDatabase | undefined;
  let dropDatabase: (() => Promise<void>) | undefined;
  try {
    // 1. The generator's file: rows estimated from a small sample of the same seed.
    const sampleDir = join(work, 'sample');
    const sample = await run('generator/src/main.ts', ['--files', '1', '--rows', '20000', '--seed', '1', '--interval-ms', '0', '--data-dir', sampleDir], {});
    if (sample.code !== 0) throw new Error(`generator failed:\n${sample.output}`);
    const sampleFile = join(sampleDir, 'input', (await readdir(join(sampleDir, 'input')))[0]!);
    const rows = Math.round(((targetBytes - 66) / ((await stat(sampleFile)).size - 66)) * 20000);
    await rm(sampleDir, { recursive: true });

    const genDir = join(work, 'generated');
    let t = performance.now();
    const gen = await run('generator/src/main.ts', ['--files', '1', '--rows', String(rows), '--seed', '1', '--interval-ms', '0', '--data-dir', genDir], {});
    if (gen.code !== 0) throw new Error(`generator failed:\n${gen.output}`);
    const generated = join(genDir, 'input', (await readdir(join(genDir, 'input')))[0]!);
    console.log(`generated ${rows} rows, ${mb((await stat(generated)).size)} in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // 2. Spoil rows deep inside, at known physical lines (line 1 is the header, rows are lines 2..rows+1).
    const targets = [0.13, 0.31, 0.5, 0.67, 0.84, 0.97].map((f) => 2 + Math.floor(f * (rows - 1)));
    const spoiler = new SpoilLines(targets);
    await mkdir(join(dataDir, 'input'), { recursive: true });
    const staging = join(dataDir, 'big.csv.tmp');
    t = performance.now();
    await pipeline(createReadStream(generated, { highWaterMark: 1 << 20 }), spoiler, createWriteStream(staging));
    await rm(genDir, { recursive: true });
    const input = join(dataDir, 'input', 'big.csv');
    await rename(staging, input);
    const bytes = (await stat(input)).size;
    console.log(`spoiled lines ${targets.join(', ')} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    if (spoiler.reasons.length !== targets.length) throw new Error(`spoiled ${spoiler.reasons.length} lines, meant ${targets.length}`);

    // 3. A database.
    let url: string;
    if (process.env.DATABASE_URL) {
      const name = `dropstream_bigfile_${randomBytes(4).toString('hex')}`;
      const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      await admin.end();
      const u = new URL(process.env.DATABASE_URL);
      u.pathname = `/${name}`;
      url = u.toString();
      dropDatabase = async () => {
        const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      };
    } else {
      embedded = await startEmbeddedPostgres({ dir: join(work, 'pg', 'db'), port: await freePort(), database: 'dropstream', throwaway: true });
      url = embedded.url;
    }

    // 4. The streamer, its peak RSS sampled from /proc as it runs.
    let peakKb = 0;
    let sampler: NodeJS.Timeout | undefined;
    t = performance.now();
    const streamed = await run('streamer/src/main.ts', ['--data-dir', dataDir, '--available-now', '--file-stable-ms', '0', '--http-port', String(await freePort())], { DATABASE_URL: url }, (pid) => {
      sampler = setInterval(() => {
        void memoryOf(pid).then((m) => {
          if (m) peakKb = Math.max(peakKb, m.hwm, m.rss);
        });
      }, 100);
    });
    clearInterval(sampler);
    const seconds = (performance.now() - t) / 1000;
    if (streamed.code !== 0) throw new Error(`the streamer exited with ${streamed.code}:\n${streamed.output}`);
    const batchLine = streamed.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; durationMs?: number })
      .find((l) => typeof l.durationMs === 'number' && l.msg?.startsWith('batch '));

    // 5. Checks.
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    const problems: string[] = [];
    try {
      const loaded = Number((await db.query('SELECT count(*) AS n FROM user_activity')).rows[0].n);
      if (loaded !== rows - targets.length) problems.push(`user_activity holds ${loaded} rows, expected ${rows} − ${targets.length} = ${rows - targets.length}`);
      const rejects = (await db.query<{ line: string; reason: string; source_file: string }>('SELECT source_file, source_line AS line, reason FROM user_activity_rejects ORDER BY source_line')).rows;
      const got = JSON.stringify(rejects.map((r) => [r.source_file, Number(r.line), r.reason]));
      const want = JSON.stringify(spoiler.reasons.map(([line, reason]) => ['big.csv', line, reason]));
      if (got !== want) problems.push(`user_activity_rejects holds\n    ${got}\n  expected\n    ${want}`);
      const ledger = (await db.query('SELECT status, rows_read::int, rows_loaded::int, rows_rejected::int, rows_duplicate::int FROM ingest_files')).rows;
      const wantLedger = [{ status: 'loaded', rows_read: rows, rows_loaded: rows - targets.length, rows_rejected: targets.length, rows_duplicate: 0 }];
      if (JSON.stringify(ledger) !== JSON.stringify(wantLedger)) problems.push(`ingest_files holds ${JSON.stringify(ledger)}, expected ${JSON.stringify(wantLedger)}`);
    } finally {
      await db.end();
    }

    const batchSeconds = (batchLine?.durationMs ?? NaN) / 1000;
    console.log(
      [
        '',
        `file            big.csv: ${rows} rows (${targets.length} spoiled), ${bytes} bytes (${mb(bytes)})`,
        `streamer run    ${seconds.toFixed(1)} s from start to exit (start-up and schema included)`,
        `batch           ${batchSeconds.toFixed(1)} s: ${Math.round(rows / batchSeconds)} rows/s, ${mb(bytes / batchSeconds)}/s`,
        `overall         ${Math.round(rows / seconds)} rows/s`,
        `peak RSS        ${(peakKb / 1024).toFixed(0)} MiB (VmHWM of the streamer process)`,
        `rejects         ${problems.length === 0 ? 'exactly the spoiled lines, with their reasons' : 'WRONG'}`,
      ].join('\n'),
    );
    for (const p of problems) console.error(`FAIL: ${p}`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    await embedded?.stop();
    await dropDatabase?.();
    if (flags.keep) console.log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

process.exitCode = await main();
