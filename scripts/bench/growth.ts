// Growth: the streamer's rate as user_activity grows, and how fast the revenue views answer.
// One database, filled step by step: preloaded to each size with rows made by the server itself
// (random v4 event ids, as generated files have, so the primary key grows as it would), then the
// real streamer loads corpus files on top. Each run loads events of its own seed: the table keeps
// growing by what was measured, so "at 10M" means from 10M rows on. Right before each run the same
// files go into an empty database of the same server: the ratio is taken run by run against that
// pair, so that what the machine does meanwhile (its rate moved by ±20 % within minutes) cancels out.
import { ensureCorpus, type Corpus, type CorpusSpec } from './corpus.ts';
import { checkpoint, freshDatabase, startCpuMeter, stat, withClient, type CpuSeconds, type Log, type Stat } from './support.ts';
import { runStreamer } from './throughput.ts';

export interface GrowthSpec {
  /** Table sizes (rows) at which the streamer's rate is measured against an empty table's, e.g. 10M, 20M. */
  sizes: number[];
  /** Table sizes at which the views are timed against their raw aggregates. */
  viewSizes: number[];
  /** Each streamer run loads this corpus shape (seeds differ per run). */
  run: Omit<CorpusSpec, 'seed'>;
}

export interface GrowthPoint {
  tableRows: number;
  rowsPerSec: Stat;
  /** The same files loaded into an empty database right before each run. */
  emptyRowsPerSec: Stat;
  /** Each run's rate ÷ its empty pair's, median. */
  ratio: number;
  /** CPU seconds per million rows loaded, medians: on this table, and on the empty one. */
  cpuPerMillionRows?: CpuSeconds;
  emptyCpuPerMillionRows?: CpuSeconds;
  indexBytes: number;
  tableBytes: number;
}

export interface ViewTiming {
  tableRows: number;
  view: string;
  viewMs: Stat;
  rawMs: Stat;
  /** rawMs ÷ viewMs, medians. */
  speedup: number;
  rowsEqual: boolean;
}

export interface GrowthResult {
  run: Omit<CorpusSpec, 'seed'>;
  preloadRowsPerSec: number;
  points: GrowthPoint[];
  /** The largest size's ratio to the empty table. */
  ratio: number | null;
  views: ViewTiming[];
}

export interface GrowthOptions {
  adminUrl: string;
  workDir: string;
  repeat: number;
  streamerArgs: string[];
  log: Log;
}

const PRELOAD_CHUNK = 1_000_000;

// Rows shaped like the generator's: 1000 users, 500 products, 10 % purchases, 100 ms apart.
const PRELOAD = `
  INSERT INTO user_activity (event_id, user_id, event_type, product_id, price, quantity, event_time, source_file, source_line, batch_id)
  SELECT gen_random_uuid(),
         'user_' || lpad(floor(random() * 1000)::int::text, 4, '0'),
         CASE WHEN random() < 0.1 THEN 'purchase' ELSE 'view' END,
         'SKU-' || (1000 + p),
         (p * 59 % 30000) / 100.0 + 0.49,
         1 + floor(random() * 5)::int,
         timestamptz '2026-01-01 00:00:00+00' + (n * interval '100 milliseconds'),
         'preload-' || ($1::bigint / ${PRELOAD_CHUNK}) || '.csv', n, 0
    FROM (SELECT n, floor(random() * 500)::int AS p FROM generate_series($1::bigint, $2::bigint - 1) AS n) AS g`;

/** The raw aggregate each view answers, written out as the views were before rollups. */
const RAW: Record<string, string> = {
  revenue_by_day: `SELECT (event_time AT TIME ZONE 'UTC')::date AS day, count(*) AS purchases, sum(quantity) AS units,
      round(sum(price * quantity), 2) AS revenue, count(DISTINCT user_id) AS buyers
    FROM user_activity WHERE event_type = 'purchase' GROUP BY 1`,
  revenue_by_product: `SELECT product_id, count(*) FILTER (WHERE event_type = 'view') AS views,
      count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
      round(coalesce(sum(price * quantity) FILTER (WHERE event_type = 'purchase'), 0), 2) AS revenue
    FROM user_activity WHERE event_type IN ('view', 'purchase') GROUP BY product_id`,
  revenue_by_user: `SELECT user_id, count(*) FILTER (WHERE event_type = 'view') AS views,
      count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
      round(coalesce(sum(price * quantity) FILTER (WHERE event_type = 'purchase'), 0), 2) AS revenue
    FROM user_activity WHERE event_type IN ('view', 'purchase') GROUP BY user_id`,
};
/** The view's columns that the raw aggregate also has, to check they agree. */
const COMPARED: Record<string, string> = {
  revenue_by_day: 'day, purchases, units, revenue, buyers',
  revenue_by_product: 'product_id, views, purchases, revenue',
  revenue_by_user: 'user_id, views, purchases, revenue',
};
// The raw aggregates take seconds at 10M rows: fewer runs of them.
const VIEW_TIMINGS = 10;
const RAW_TIMINGS = 3;

export async function measureGrowth(spec: GrowthSpec, opts: GrowthOptions): Promise<GrowthResult> {
  const db = await freshDatabase(opts.adminUrl, 'growth');
  const points: GrowthPoint[] = [];
  const views: ViewTiming[] = [];
  let tableRows = 0;
  let preloadSeconds = 0;
  let preloaded = 0;
  let seed = 1000;
  const stops = [...new Set([...spec.sizes.map((s) => ({ s, kind: 'rate' as const })), ...spec.viewSizes.map((s) => ({ s, kind: 'views' as const }))].map((x) => `${x.s}:${x.kind}`))]
    .map((k) => ({ size: Number(k.split(':')[0]), kind: k.split(':')[1] as 'rate' | 'views' }))
    .sort((a, b) => a.size - b.size || (a.kind === 'views' ? -1 : 1));
  try {
    for (const stop of stops) {
      if (stop.size > tableRows) {
        const started = performance.now();
        await preload(db.url, tableRows, stop.size, opts.log);
        preloadSeconds += (performance.now() - started) / 1000;
        preloaded += stop.size - tableRows;
        tableRows = stop.size;
      }
      if (stop.kind === 'views') {
        await settle(db.url);
        views.push(...(await timeViews(db.url, tableRows, opts.log)));
        continue;
      }
      // Made before the checkpoint: nothing between it and the runs may write (or force) another.
      const empties = await Promise.all(Array.from({ length: opts.repeat }, () => freshDatabase(opts.adminUrl, 'growth_empty')));
      const pairs: Array<{ run: Loaded; empty: Loaded }> = [];
      try {
        await settle(db.url);
        for (const [i, empty] of empties.entries()) {
          const corpus = await ensureCorpus(opts.workDir, { ...spec.run, seed: seed++ }, opts.log);
          const pair = { empty: await load(empty.url, corpus, opts), run: await load(db.url, corpus, opts) };
          pairs.push(pair);
          tableRows += corpus.rows;
          opts.log(`  growth at ${tableRows - corpus.rows} rows, run ${i + 1}/${opts.repeat}: ${Math.round(pair.run.rowsPerSec)} rows/s, on an empty table ${Math.round(pair.empty.rowsPerSec)} rows/s`);
        }
      } finally {
        await Promise.all(empties.map((e) => e.drop()));
      }
      const sizes = await withClient(db.url, async (c) => (await c.query(`SELECT pg_table_size('user_activity') AS t, pg_indexes_size('user_activity') AS i`)).rows[0]);
      const runs = pairs.map((p) => p.run);
      const emptyRuns = pairs.map((p) => p.empty);
      const cpu = cpuPerMillion(runs);
      const emptyCpu = cpuPerMillion(emptyRuns);
      points.push({
        tableRows: stop.size,
        rowsPerSec: stat(runs.map((r) => r.rowsPerSec)),
        emptyRowsPerSec: stat(emptyRuns.map((r) => r.rowsPerSec)),
        ratio: stat(pairs.map((p) => p.run.rowsPerSec / p.empty.rowsPerSec)).median,
        ...(cpu && { cpuPerMillionRows: cpu }),
        ...(emptyCpu && { emptyCpuPerMillionRows: emptyCpu }),
        tableBytes: Number(sizes.t),
        indexBytes: Number(sizes.i),
      });
    }
  } finally {
    await db.drop();
  }
  return {
    run: spec.run,
    preloadRowsPerSec: preloadSeconds > 0 ? preloaded / preloadSeconds : 0,
    points,
    ratio: points.at(-1)?.ratio ?? null,
    views,
  };
}

/**
 * What autovacuum would have done by then, and the dirty pages written out: no run pays for the
 * preload. Only here: right after a checkpoint, the first change of each page logs its full image,
 * which on a large random primary key is most of it. The first run at each size pays that, as a
 * stream does once per checkpoint_timeout; the median is the runs in between.
 */
async function settle(url: string): Promise<void> {
  await withClient(url, (c) => c.query('VACUUM ANALYZE'));
  await checkpoint(url);
}

interface Loaded {
  rows: number;
  rowsPerSec: number;
  cpu?: CpuSeconds;
}

async function load(url: string, corpus: Corpus, opts: GrowthOptions): Promise<Loaded> {
  const meter = await startCpuMeter(url);
  const measured = await runStreamer(url, corpus, { ...opts, variants: ['streamer'] }, true);
  const cpu = await meter();
  return { rows: corpus.rows, rowsPerSec: corpus.rows / measured.seconds!, ...(cpu && { cpu }) };
}

function cpuPerMillion(runs: Loaded[]): CpuSeconds | undefined {
  if (runs.length === 0 || runs.some((r) => !r.cpu)) return undefined;
  const side = (s: keyof CpuSeconds) => stat(runs.map((r) => (r.cpu![s] * 1e6) / r.rows)).median;
  return { client: side('client'), server: side('server') };
}

/** Chunks of rows on two connections at once: one backend alone leaves a core idle. */
async function preload(url: string, from: number, to: number, log: Log): Promise<void> {
  log(`  growth: preloading rows ${from}–${to}`);
  let next = from;
  const worker = () =>
    withClient(url, async (c) => {
      for (let at = next; at < to; at = next) {
        next = Math.min(to, at + PRELOAD_CHUNK);
        await c.query(PRELOAD, [at, next]);
      }
    });
  await Promise.all([worker(), worker()]);
  // The streamer folds the rollups' deltas after each batch; the preload does once at the end.
  await withClient(url, (c) => c.query('SELECT rollups_compact()'));
}

async function timeViews(url: string, tableRows: number, log: Log): Promise<ViewTiming[]> {
  return withClient(url, async (c) => {
    const timed = async (sql: string, times: number) => {
      const ms: number[] = [];
      for (let i = 0; i < times; i++) {
        const started = performance.now();
        await c.query(sql);
        ms.push(performance.now() - started);
      }
      return stat(ms);
    };
    const out: ViewTiming[] = [];
    for (const view of Object.keys(RAW)) {
      const viewMs = await timed(`SELECT * FROM ${view}`, VIEW_TIMINGS);
      const rawMs = await timed(RAW[view]!, RAW_TIMINGS);
      const cols = COMPARED[view]!;
      const diff = await c.query(`(SELECT ${cols} FROM ${view} EXCEPT ALL SELECT ${cols} FROM (${RAW[view]}) r) UNION ALL (SELECT ${cols} FROM (${RAW[view]}) r EXCEPT ALL SELECT ${cols} FROM ${view}) LIMIT 1`);
      const timing = { tableRows, view, viewMs, rawMs, speedup: rawMs.median / viewMs.median, rowsEqual: diff.rowCount === 0 };
      log(`  views at ${tableRows} rows: ${view} ${viewMs.median.toFixed(1)} ms, raw ${rawMs.median.toFixed(1)} ms (${timing.speedup.toFixed(1)}×)${timing.rowsEqual ? '' : ', ROWS DIFFER'}`);
      out.push(timing);
    }
    return out;
  });
}
