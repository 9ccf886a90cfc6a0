// `npm run bench`: how fast dropstream loads, against psql's own \copy, on this machine.
// The method is described at the top of docs/performance.md; the modules are in scripts/bench/.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../lib/embeddedPostgres.ts';
import { formatSummary, summarizeProfiles } from './bench/profile.ts';
import { renderMarkdown, writeReport } from './bench/report.ts';
import { MEASUREMENTS, runBench, type Measurement } from './bench/run.ts';
import { findPsql } from './bench/support.ts';
import type { VariantId } from './bench/throughput.ts';
import { freePort } from '../lib/freePort.ts';

const USAGE = `Usage: npm run bench -- [options]

  --quick                 tiny corpus, one run each: checks that the bench works, measures nothing
  --only LIST             some of ${MEASUREMENTS.join(',')} (default: all)
  --repeat N              runs per variant (default 3; 1 with --quick)
  --out FILE              report (default docs/performance.md; the JSON goes beside it)
  --cache-dir DIR         corpus cache and run directories (default bench-data)
  --streamer-args="…"    extra flags for every streamer run, e.g. --streamer-args="--file-concurrency 3"
  --cpu-prof DIR          V8 CPU profiles of the throughput and start-up streamer runs, summarised
  --no-psql               use COPY FROM STDIN from Node as the baseline even if psql is installed
  --pg-defaults           start the embedded PostgreSQL with PostgreSQL's own defaults, not settings sized from memory

DATABASE_URL: a PostgreSQL server on which the bench may create and drop databases;
unset, an embedded PostgreSQL is started in a temporary directory.`;

function fail(message: string): never {
  console.error(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      repeat: { type: 'string' },
      out: { type: 'string', default: 'docs/performance.md' },
      'cache-dir': { type: 'string', default: 'bench-data' },
      'streamer-args': { type: 'string', default: '' },
      'cpu-prof': { type: 'string' },
      'no-psql': { type: 'boolean', default: false },
      'pg-defaults': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const only = (values.only?.split(',').map((s) => s.trim()) ?? [...MEASUREMENTS]) as Measurement[];
for (const m of only) if (!MEASUREMENTS.includes(m)) fail(`--only: unknown measurement '${m}'`);
const repeat = values.repeat === undefined ? (values.quick ? 1 : 3) : Number(values.repeat);
if (!Number.isInteger(repeat) || repeat < 1) fail(`--repeat must be a whole number ≥ 1, got '${values.repeat}'`);

const log = (message: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
const profileDir = values['cpu-prof'] && resolve(values['cpu-prof']);
const psql = values['no-psql'] ? null : findPsql();
if (!psql) log(`psql ${values['no-psql'] ? 'not used (--no-psql)' : 'is not installed'}: the baseline is the same COPY FROM STDIN, sent from Node`);


let database: EmbeddedDatabase;
let pgParent: string | undefined;
if (process.env.DATABASE_URL) {
  database = { url: process.env.DATABASE_URL, stop: async () => undefined };
} else {
  pgParent = await mkdtemp(join(tmpdir(), 'dropstream-bench-pg-'));
  await chmod(pgParent, 0o755); // the server runs as user 'postgres' when we are root
  log('starting an embedded PostgreSQL');
  database = await startEmbeddedPostgres({ dir: join(pgParent, 'db'), port: await freePort(), database: 'postgres', throwaway: true, postgresDefaults: values['pg-defaults'] });
}

let exitCode = 0;
try {
  const report = await runBench({
    adminUrl: database.url,
    postgresSource: process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded, started by the bench',
    cacheDir: values['cache-dir'],
    quick: values.quick,
    only,
    repeat,
    variants: [psql ? 'psql-copy' : 'node-copy', 'insert', 'streamer', 'streamer-unobserved', 'streamer-no-rollups'] satisfies VariantId[],
    psql,
    streamerArgs: values['streamer-args'].split(/\s+/).filter(Boolean),
    cpuProfileDir: profileDir,
    log,
  });
  const written = await writeReport(report, values.out);
  console.log(renderMarkdown(report));
  log(`report: ${written.markdown}, ${written.json}`);
  if (profileDir) {
    for (const m of ['throughput', 'startup'] as const) {
      if (only.includes(m)) for (const s of await summarizeProfiles(join(profileDir, m))) console.error(`${m}: ${formatSummary(s)}`);
    }
  }
  if (!report.rowsOk) {
    log('a variant did not store exactly the rows of its files');
    exitCode = 1;
  }
} catch (err) {
  log(`the bench failed: ${(err as Error).stack ?? String(err)}`);
  exitCode = 1;
} finally {
  await database.stop();
  if (pgParent) await rm(pgParent, { recursive: true, force: true });
}
process.exit(exitCode);
