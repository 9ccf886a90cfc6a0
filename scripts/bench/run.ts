// The whole bench, as a function: the CLI (scripts/bench.ts) and the smoke test both call it.
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { availableParallelism, cpus, release, totalmem, type } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT } from '../../lib/paths.ts';
import { ensureCorpus, ensureHistory, rowsForBytes, type CorpusSpec } from './corpus.ts';
import { measureGrowth, type GrowthSpec } from './growth.ts';
import { measureLatency, type LatencySpec } from './latency.ts';
import { measureMemory } from './memory.ts';
import { checkTargets, type BenchReport, type MachineInfo } from './report.ts';
import { measureStartup } from './startup.ts';
import { withClient, type Log } from './support.ts';
import { measureLayoutThroughput, measureThroughput, type VariantId } from './throughput.ts';

export const MEASUREMENTS = ['throughput', 'throughput-wide', 'memory', 'latency', 'startup', 'growth'] as const;
export type Measurement = (typeof MEASUREMENTS)[number];

export interface BenchOptions {
  /** A server on which the bench may create and drop databases. */
  adminUrl: string;
  postgresSource: string;
  /** Corpus cache and run directories (runs hard-link the cached files). */
  cacheDir: string;
  quick: boolean;
  only: readonly Measurement[];
  repeat: number;
  /** The first one is the baseline; the streamer is compared with it. */
  variants: VariantId[];
  /** psql binary used by the psql-copy variant; null when it is not installed. */
  psql: string | null;
  /** Added to every streamer run, e.g. ['--file-concurrency', '3']. */
  streamerArgs: string[];
  /** Write V8 CPU profiles of the throughput and start-up streamer runs into <dir>/throughput and <dir>/startup. */
  cpuProfileDir?: string;
  log: Log;
}

interface Sizes {
  corpus: CorpusSpec;
  bigFileBytes: number;
  latency: LatencySpec[];
  historyFiles: number;
  newFileRows: number;
  growth: GrowthSpec;
}

const FULL: Sizes = {
  corpus: { files: 100, rowsPerFile: 10_000, seed: 42 },
  bigFileBytes: 1e9,
  latency: [
    { filesPerSec: 10, rowsPerFile: 1000, seconds: 30 },
    { filesPerSec: 1, rowsPerFile: 1000, seconds: 30 },
  ],
  historyFiles: 100_000,
  newFileRows: 1000,
  growth: { sizes: [10_000_000, 20_000_000], viewSizes: [2_000_000, 10_000_000], run: { files: 100, rowsPerFile: 10_000 } },
};

/** Enough to run every code path, in seconds; its figures mean nothing. */
const QUICK: Sizes = {
  corpus: { files: 3, rowsPerFile: 200, seed: 42 },
  bigFileBytes: 100_000,
  latency: [
    { filesPerSec: 10, rowsPerFile: 100, seconds: 1 },
    { filesPerSec: 1, rowsPerFile: 100, seconds: 2 },
  ],
  historyFiles: 1000,
  newFileRows: 100,
  growth: { sizes: [3000], viewSizes: [2000], run: { files: 2, rowsPerFile: 200 } },
};

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const sizes = opts.quick ? QUICK : FULL;
  const cacheDir = resolve(opts.cacheDir);
  await mkdir(cacheDir, { recursive: true });
  const { log } = opts;
  const has = (m: Measurement) => opts.only.includes(m);
  const profile = (m: Measurement) => (opts.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', join(opts.cpuProfileDir, m)] : undefined);
  const common = { adminUrl: opts.adminUrl, workDir: cacheDir, streamerArgs: opts.streamerArgs, psql: opts.psql, log };
  const report: Omit<BenchReport, 'targets' | 'rowsOk'> = {
    generatedAt: new Date().toISOString(),
    quick: opts.quick,
    repeat: opts.repeat,
    machine: await machineInfo(opts),
    commit: commitMeasured(),
    streamerArgs: opts.streamerArgs,
  };

  const corpus = await ensureCorpus(cacheDir, sizes.corpus, log);
  if (has('throughput')) {
    log(`throughput: ${corpus.files} files, ${corpus.rows} rows, ${opts.repeat} runs per variant`);
    report.throughput = await measureThroughput(corpus, { ...common, repeat: opts.repeat, variants: opts.variants, streamerNodeArgs: profile('throughput') });
  }
  if (has('throughput-wide')) {
    // The same events as the corpus, in a spreadsheet export's 12 columns separated by ';'.
    const wide = await ensureCorpus(cacheDir, { ...sizes.corpus, layout: 'semicolon' }, log);
    log(`throughput-wide: ${wide.files} files, ${wide.rows} rows in the semicolon layout, ${opts.repeat} runs of the streamer`);
    report.throughputWide = await measureLayoutThroughput(wide, { ...common, repeat: opts.repeat, variants: ['streamer'] });
  }
  if (has('memory')) {
    const big = await ensureCorpus(cacheDir, { files: 1, rowsPerFile: rowsForBytes(corpus, sizes.bigFileBytes), seed: sizes.corpus.seed }, log);
    log(`memory: one file of ${big.bytes} bytes, ${big.rows} rows`);
    report.memory = await measureMemory(big, { ...common, repeat: opts.repeat, variants: opts.variants });
  }
  if (has('latency')) {
    report.latency = [];
    for (const spec of sizes.latency) {
      log(`latency: ${spec.filesPerSec} files/s × ${spec.rowsPerFile} rows for ${spec.seconds} s`);
      report.latency.push(await measureLatency(spec, common));
    }
  }
  if (has('startup')) {
    const history = await ensureHistory(cacheDir, sizes.historyFiles, log);
    const newFile = await ensureCorpus(cacheDir, { files: 1, rowsPerFile: sizes.newFileRows, seed: 8 }, log);
    log(`startup: ${history.files.length} files in history`);
    report.startup = await measureStartup(history, { path: newFile.paths[0]!, rows: newFile.rows }, { ...common, repeat: opts.repeat, streamerNodeArgs: profile('startup') });
  }
  if (has('growth')) {
    log(`growth: the streamer at ${sizes.growth.sizes.join(', ')} rows in the table, each run paired with one on an empty table; views at ${sizes.growth.viewSizes.join(', ')}`);
    report.growth = await measureGrowth(sizes.growth, { ...common, repeat: opts.repeat });
  }

  const rowsOk =
    (report.throughput?.variants.every((v) => v.rowsOk) ?? true) &&
    (report.throughputWide?.streamer?.rowsOk ?? true) &&
    (report.memory?.variants.every((v) => v.rowsOk) ?? true) &&
    (report.latency?.every((l) => l.rowsLoaded === l.rowsExpected && l.filesCommitted === l.filesWritten) ?? true) &&
    (report.startup?.rowsOk ?? true) &&
    (report.growth?.views.every((v) => v.rowsEqual) ?? true);
  return { ...report, targets: checkTargets(report), rowsOk };
}

/** Which streamer the figures belong to: HEAD, and whether its code has uncommitted changes. */
function commitMeasured(): string {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD');
  if (head.status !== 0) return 'an unknown commit (not a git checkout)';
  const dirty = git('status', '--porcelain', '--', 'streamer', 'lib', 'sql', 'package-lock.json').stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? ' with uncommitted changes' : ''}`;
}

async function machineInfo(opts: BenchOptions): Promise<MachineInfo> {
  // huge_pages_status: PostgreSQL 17 and later; left out by older servers.
  const names = ['shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'wal_compression', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'huge_pages_status'];
  const { version, shown } = await withClient(opts.adminUrl, async (c) => {
    const { rows } = await c.query('SELECT name, current_setting(name, true) AS value FROM unnest($1::text[]) WITH ORDINALITY AS s (name, n) ORDER BY n', [names]);
    const shown = rows.filter((r) => r.value !== null).map((r): [string, string] => [r.name, String(r.value)]);
    return { version: String((await c.query('SHOW server_version')).rows[0].server_version), shown };
  });
  const psql = opts.psql ? spawnSync(opts.psql, ['--version'], { encoding: 'utf8' }).stdout.trim().replace(/^psql \(PostgreSQL\) /, '') : null;
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    os: `${type()} ${release()}`,
    node: process.version,
    postgres: version,
    postgresSource: opts.postgresSource,
    postgresSettings: Object.fromEntries(shown),
    psql,
  };
}
