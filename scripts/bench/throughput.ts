// Throughput: the same files into the same table definition, three ways. Every run gets a fresh
// migrated database; runs are interleaved (A B C, A B C, …) so that a machine that gets busier
// during the bench slows every variant alike.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { freePort } from '../../lib/freePort.ts';
import { corpusInfo, type Corpus, type CorpusInfo } from './corpus.ts';
import { checkpoint, countRows, freshDatabase, startCpuMeter, isBatch, makeRunDir, spawnStreamer, stat, withClient, type CpuSeconds, type Log, type Stat } from './support.ts';

export type VariantId = 'psql-copy' | 'node-copy' | 'insert' | 'streamer' | 'streamer-unobserved' | 'streamer-no-rollups';

export const VARIANT_LABELS: Record<VariantId, string> = {
  'psql-copy': 'psql \\copy, one connection, one file after another',
  'node-copy': 'COPY FROM STDIN (csv) from Node with pg-copy-streams, one connection (stands in for psql \\copy: psql not installed)',
  insert: 'multi-row INSERT from Node, 1000 rows per statement, one transaction per file (as a Spark JDBC sink)',
  streamer: 'npm run stream -- --available-now (validation, dedupe, exactly once), its HTTP server on (the default) and /metrics scraped every second',
  'streamer-unobserved': 'the same with --http-port 0: no HTTP server, no metrics (the cost of observing, by difference)',
  'streamer-no-rollups': 'the streamer, observed, into a database whose rollup trigger is dropped (the cost of the rollups behind the revenue views, by difference)',
};

/** How often the bench scrapes /metrics of a streamer whose HTTP server is on (Prometheus' default is 15 s). */
const SCRAPE_MS = 1000;

export interface RunMeasure {
  seconds: number;
  rowsLoaded: number;
  /** Streamer only: peak RSS of its process. */
  peakRssBytes?: number;
  /** Streamer only: the sum of its batches' own durations; the rest of `seconds` is start-up and exit. */
  batchSeconds?: number;
  /** Streamer with its HTTP server on: scrapes of /metrics answered during the run. */
  scrapes?: number;
  /**
   * CPU seconds of the loading client (the streamer or psql process, or the bench itself for the
   * in-process variants) and of the whole PostgreSQL server, when it runs on this Linux machine.
   * Steadier than wall time on a shared machine, and they say which side a variant's time goes to.
   */
  cpu?: CpuSeconds;
  /** Streamer only: files it set aside (quarantined in the ledger) rather than loading them. */
  setAside?: { files: number; reason: string };
}

export interface VariantResult {
  id: VariantId;
  label: string;
  runs: RunMeasure[];
  rowsPerSec: Stat;
  mbPerSec: Stat;
  peakRssBytes?: Stat;
  /** CPU seconds per million rows, medians. */
  cpuPerMillionRows?: CpuSeconds;
  /** Every run loaded exactly the corpus's rows. */
  rowsOk: boolean;
}

export interface ThroughputResult {
  corpus: CorpusInfo;
  baseline: VariantId;
  variants: VariantResult[];
  /** Median rows/s of the streamer ÷ median rows/s of the baseline (the first variant). */
  ratio: number | null;
  /** Median rows/s of the streamer ÷ that of streamer-unobserved, when both ran. */
  observedRatio: number | null;
}

/** The streamer alone on a corpus in another layout, for comparison with its rows/s on the canonical one. */
export interface LayoutThroughputResult {
  corpus: CorpusInfo;
  /** Why nothing was measured: the streamer set the files aside, as it does with a layout it cannot read. */
  skipped?: string;
  streamer?: VariantResult;
}

export interface ThroughputOptions {
  adminUrl: string;
  /** Run directories go here: on the corpus's filesystem, so that its files can be hard-linked. */
  workDir: string;
  repeat: number;
  /** The first one is the baseline. */
  variants: VariantId[];
  streamerArgs: string[];
  streamerNodeArgs?: string[];
  /** The psql binary, for the psql-copy variant. */
  psql?: string | null;
  log: Log;
}

const CSV_COLUMNS = 'event_id, user_id, event_type, product_id, price, quantity, event_time';
const ALL_COLUMNS = `${CSV_COLUMNS}, source_file, source_line, batch_id`;
const INSERT_ROWS = 1000;

export async function measureThroughput(corpus: Corpus, opts: ThroughputOptions): Promise<ThroughputResult> {
  const runs = new Map<VariantId, RunMeasure[]>(opts.variants.map((v) => [v, []]));
  for (let rep = 1; rep <= opts.repeat; rep++) {
    for (const variant of opts.variants) runs.get(variant)!.push(await loggedRun(variant, rep, corpus, opts));
  }
  const variants = opts.variants.map((id) => summarize(id, runs.get(id)!, corpus));
  const baseline = variants[0]!;
  const streamer = variants.find((v) => v.id === 'streamer');
  const unobserved = variants.find((v) => v.id === 'streamer-unobserved');
  return {
    corpus: corpusInfo(corpus),
    baseline: baseline.id,
    variants,
    ratio: streamer && streamer !== baseline ? streamer.rowsPerSec.median / baseline.rowsPerSec.median : null,
    observedRatio: streamer && unobserved ? streamer.rowsPerSec.median / unobserved.rowsPerSec.median : null,
  };
}

/**
 * The streamer's runs on a corpus of another layout. When the streamer sets the files aside (the
 * ledger says so), it cannot read that layout yet: the measurement stops there and says so.
 */
export async function measureLayoutThroughput(corpus: Corpus, opts: ThroughputOptions): Promise<LayoutThroughputResult> {
  const runs: RunMeasure[] = [];
  for (let rep = 1; rep <= opts.repeat; rep++) {
    const run = await loggedRun('streamer', rep, corpus, opts);
    if (run.setAside) {
      const skipped = `the streamer set ${run.setAside.files} of ${corpus.files} files aside: ${run.setAside.reason}`;
      opts.log(`  skipped, ${skipped}`);
      return { corpus: corpusInfo(corpus), skipped };
    }
    runs.push(run);
  }
  return { corpus: corpusInfo(corpus), streamer: summarize('streamer', runs, corpus) };
}

async function loggedRun(variant: VariantId, rep: number, corpus: Corpus, opts: ThroughputOptions): Promise<RunMeasure> {
  const run = await runOnce(variant, corpus, opts);
  opts.log(`  ${variant} ${rep}/${opts.repeat}: ${run.rowsLoaded} rows in ${run.seconds.toFixed(2)} s = ${Math.round(run.rowsLoaded / run.seconds)} rows/s`);
  return run;
}

function summarize(id: VariantId, r: RunMeasure[], corpus: Corpus): VariantResult {
  const rss = r.map((m) => m.peakRssBytes).filter((b) => b !== undefined);
  const cpu = r.map((m) => m.cpu).filter((c) => c !== undefined);
  const perMillion = (side: 'client' | 'server') => stat(cpu.map((c) => (c[side] * 1e6) / corpus.rows)).median;
  return {
    id,
    label: VARIANT_LABELS[id],
    runs: r,
    rowsPerSec: stat(r.map((m) => m.rowsLoaded / m.seconds)),
    mbPerSec: stat(r.map((m) => corpus.bytes / 1e6 / m.seconds)),
    ...(rss.length > 0 && { peakRssBytes: stat(rss) }),
    ...(cpu.length > 0 && { cpuPerMillionRows: { client: perMillion('client'), server: perMillion('server') } }),
    rowsOk: r.every((m) => m.rowsLoaded === corpus.rows),
  };
}

async function runOnce(variant: VariantId, corpus: Corpus, opts: ThroughputOptions): Promise<RunMeasure> {
  const db = await freshDatabase(opts.adminUrl, variant);
  try {
    if (variant === 'psql-copy' || variant === 'node-copy') await prepareForCsvCopy(db.url, corpus);
    if (variant === 'streamer-no-rollups') await withClient(db.url, (c) => c.query('DROP TRIGGER user_activity_rollups ON user_activity'));
    await checkpoint(db.url);
    const cpuSoFar = await startCpuMeter(db.url, variant === 'insert' || variant === 'node-copy');
    const started = performance.now();
    const extra = await LOADERS[variant](db.url, corpus, opts);
    const seconds = (performance.now() - started) / 1000;
    const cpu = await cpuSoFar();
    const setAside = variant === 'streamer' ? await setAsideFiles(db.url) : undefined;
    return { seconds, ...extra, ...(cpu && { cpu }), ...(setAside && { setAside }), rowsLoaded: await countRows(db.url) };
  } finally {
    await db.drop();
  }
}

/** What the streamer's ledger says it set aside instead of loading. */
async function setAsideFiles(url: string): Promise<RunMeasure['setAside']> {
  const { rows } = await withClient(url, (c) => c.query(`SELECT count(*) AS files, min(reason) AS reason FROM ingest_files WHERE status = 'quarantined'`));
  const files = Number(rows[0].files);
  return files > 0 ? { files, reason: String(rows[0].reason) } : undefined;
}

/**
 * The CSV files hold the 7 event columns; user_activity also requires source_file, source_line
 * and batch_id. For the COPY baselines they get defaults here, in the baseline's database only:
 * a file name of the same length as the real ones, so that rows are as wide as the streamer's.
 */
async function prepareForCsvCopy(url: string, corpus: Corpus): Promise<void> {
  const name = basename(corpus.paths[0] ?? 'events.csv').replace(/'/g, "''");
  await withClient(url, (c) =>
    c.query(`ALTER TABLE user_activity ALTER COLUMN source_file SET DEFAULT '${name}', ALTER COLUMN source_line SET DEFAULT 0, ALTER COLUMN batch_id SET DEFAULT 0`),
  );
}

/** A loader may time itself (`seconds`) to leave its own set-up out. */
type Loader = (url: string, corpus: Corpus, opts: ThroughputOptions) => Promise<Partial<RunMeasure>>;

const LOADERS: Record<VariantId, Loader> = {
  /** One psql process (one connection) running one \copy per file, each in its own transaction. */
  async 'psql-copy'(url, corpus, opts) {
    const script = join(opts.workDir, `copy-${process.pid}.psql`);
    const lines = corpus.paths.map((p) => `\\copy user_activity (${CSV_COLUMNS}) FROM '${p.replace(/'/g, "''")}' WITH (FORMAT csv, HEADER)`);
    await writeFile(script, `${lines.join('\n')}\n`);
    try {
      const child = spawn(opts.psql ?? 'psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const [code] = await once(child, 'exit');
      if (code !== 0) throw new Error(`psql failed (${code}): ${stderr}`);
    } finally {
      await rm(script, { force: true });
    }
    return {};
  },

  /** The same COPY as psql's \copy, streamed from Node: what runs when psql is not installed. */
  async 'node-copy'(url, corpus) {
    await withClient(url, async (client) => {
      for (const path of corpus.paths) {
        await pipeline(createReadStream(path, { highWaterMark: 1 << 16 }), client.query(copyFrom(`COPY user_activity (${CSV_COLUMNS}) FROM STDIN WITH (FORMAT csv, HEADER)`)));
      }
    });
    return {};
  },

  /**
   * What a Spark JDBC sink sends (batched prepared INSERTs, rewritten into multi-row statements,
   * one transaction per partition = file). Lines are split on commas: generator files never quote.
   */
  async insert(url, corpus) {
    const placeholders = (rows: number) =>
      Array.from({ length: rows }, (_, r) => `(${Array.from({ length: 10 }, (_, c) => `$${r * 10 + c + 1}`).join(',')})`).join(',');
    const fullBatch = { name: 'bench_insert', text: `INSERT INTO user_activity (${ALL_COLUMNS}) VALUES ${placeholders(INSERT_ROWS)}` };
    await withClient(url, async (client: pg.Client) => {
      for (const path of corpus.paths) {
        const file = basename(path);
        await client.query('BEGIN');
        let values: unknown[] = [];
        let line = 0;
        for await (const text of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
          if (line++ === 0 || text === '') continue; // the header
          values.push(...text.split(','), file, line, 1);
          if (values.length === INSERT_ROWS * 10) {
            await client.query({ ...fullBatch, values });
            values = [];
          }
        }
        if (values.length > 0) await client.query(`INSERT INTO user_activity (${ALL_COLUMNS}) VALUES ${placeholders(values.length / 10)}`, values);
        await client.query('COMMIT');
      }
    });
    return {};
  },

  /** The real CLI in a child process; its wall time includes start-up, migration check and exit. */
  streamer: (url, corpus, opts) => runStreamer(url, corpus, opts, true),
  'streamer-unobserved': (url, corpus, opts) => runStreamer(url, corpus, opts, false),
  'streamer-no-rollups': (url, corpus, opts) => runStreamer(url, corpus, opts, true),
};

/** `observed`: its HTTP server on, as by default, and /metrics scraped every SCRAPE_MS while it runs. */
export async function runStreamer(url: string, corpus: Corpus, opts: ThroughputOptions, observed: boolean): Promise<Partial<RunMeasure>> {
  const run = await makeRunDir(opts.workDir, corpus.paths);
  const httpPort = observed ? await freePort() : 0;
  let scrapes = 0;
  const scrape = async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
      if (res.ok && (await res.text()).includes('dropstream_rows_total')) scrapes++;
    } catch {
      // not listening yet, or gone
    }
  };
  try {
    const started = performance.now();
    const streamer = spawnStreamer({
      dataDir: run.dir,
      databaseUrl: url,
      httpPort,
      args: ['--available-now', '--file-stable-ms', '0', ...opts.streamerArgs],
      nodeArgs: opts.streamerNodeArgs,
    });
    const scraper = observed ? setInterval(scrape, SCRAPE_MS) : undefined;
    const { code, signal } = await streamer.exited;
    clearInterval(scraper);
    const seconds = (performance.now() - started) / 1000;
    if (code !== 0) throw new Error(`the streamer exited with ${signal ?? code}:\n${streamer.output().slice(-3000)}`);
    const batchMs = streamer.lines().filter(isBatch).reduce((sum, l) => sum + Number(l.durationMs), 0);
    return { seconds, peakRssBytes: await streamer.peakRssBytes(), batchSeconds: batchMs / 1000, ...(observed && { scrapes }) };
  } finally {
    await run.remove();
  }
}
