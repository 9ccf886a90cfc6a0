// Start-up with a long history: the ledger already holds `historyFiles` loaded files, and those
// files are still in input/ (processed files stay there), plus one new file. Measured from the
// spawn of the streamer to its 'watching for files' line, and to the log line of the first batch
// (logged after the database commit and the checkpoint write).
import { basename, join } from 'node:path';
import type { History } from './corpus.ts';
import { freePort } from '../../lib/freePort.ts';
import { countRows, freshDatabase, isBatch, isWatching, makeRunDir, spawnStreamer, stat, withClient, type Log, type Stat } from './support.ts';

export interface StartupRun {
  watchingMs: number;
  firstBatchMs: number;
  rowsLoaded: number;
  peakRssBytes?: number;
}

export interface StartupResult {
  historyFiles: number;
  newFileRows: number;
  runs: StartupRun[];
  watchingMs: Stat;
  firstBatchMs: Stat;
  peakRssBytes?: Stat;
  rowsOk: boolean;
}

export interface StartupOptions {
  adminUrl: string;
  workDir: string;
  repeat: number;
  streamerArgs: string[];
  streamerNodeArgs?: string[];
  log: Log;
}

/** The ledger of a streamer that has loaded every history file, 100 files per batch. */
const SEED_LEDGER = `
INSERT INTO ingest_files (name, fingerprint, size, mtime, status, rows_read, rows_loaded, batch_id, committed_at)
SELECT f.name, encode(sha256(convert_to(f.name, 'UTF8')), 'hex'), f.size, to_timestamp(f.mtime_ms / 1000), 'loaded', 1, 1,
       (f.ord - 1) / 100 + 1, to_timestamp(f.mtime_ms / 1000)
  FROM unnest($1::text[], $2::bigint[], $3::float8[]) WITH ORDINALITY AS f(name, size, mtime_ms, ord)`;
const SEED_BATCHES = `
INSERT INTO ingest_batches (id, files, bytes, rows_read, rows_loaded, started_at, finished_at)
SELECT batch_id, count(*), sum(size), sum(rows_read), sum(rows_loaded), min(committed_at), max(committed_at)
  FROM ingest_files GROUP BY batch_id`;

export async function measureStartup(history: History, newFile: { path: string; rows: number }, opts: StartupOptions): Promise<StartupResult> {
  const runs: StartupRun[] = [];
  for (let rep = 1; rep <= opts.repeat; rep++) {
    const run = await runOnce(history, newFile, opts);
    runs.push(run);
    opts.log(`  startup ${rep}/${opts.repeat}: watching after ${Math.round(run.watchingMs)} ms, first batch after ${Math.round(run.firstBatchMs)} ms`);
  }
  const rss = runs.map((r) => r.peakRssBytes).filter((b) => b !== undefined);
  return {
    historyFiles: history.files.length,
    newFileRows: newFile.rows,
    runs,
    watchingMs: stat(runs.map((r) => r.watchingMs)),
    firstBatchMs: stat(runs.map((r) => r.firstBatchMs)),
    ...(rss.length > 0 && { peakRssBytes: stat(rss) }),
    rowsOk: runs.every((r) => r.rowsLoaded === newFile.rows),
  };
}

async function runOnce(history: History, newFile: { path: string; rows: number }, opts: StartupOptions): Promise<StartupRun> {
  const db = await freshDatabase(opts.adminUrl, 'startup');
  const dir = await makeRunDir(opts.workDir, [...history.files.map((f) => join(history.input, f.name)), newFile.path]);
  try {
    await withClient(db.url, async (c) => {
      await c.query(SEED_LEDGER, [history.files.map((f) => f.name), history.files.map((f) => f.size), history.files.map((f) => f.mtimeMs)]);
      await c.query(SEED_BATCHES);
      await c.query('VACUUM ANALYZE ingest_files'); // as autovacuum would have, over such a history
      await c.query('CHECKPOINT').catch(() => undefined);
    });
    const httpPort = await freePort();
    const started = performance.now();
    const streamer = spawnStreamer({ dataDir: dir.dir, databaseUrl: db.url, httpPort, args: ['--file-stable-ms', '0', ...opts.streamerArgs], nodeArgs: opts.streamerNodeArgs });
    try {
      const watching = await streamer.waitFor(isWatching, 120_000);
      const batch = await streamer.waitFor(isBatch, 120_000);
      if (batch.line.files !== 1) throw new Error(`the first batch held ${String(batch.line.files)} files, not just ${basename(newFile.path)}`);
      await streamer.stop();
      return { watchingMs: watching.at - started, firstBatchMs: batch.at - started, rowsLoaded: await countRows(db.url), peakRssBytes: await streamer.peakRssBytes() };
    } finally {
      await streamer.stop();
    }
  } finally {
    await db.drop();
    await dir.remove();
  }
}
