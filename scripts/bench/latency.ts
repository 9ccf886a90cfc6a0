// Live latency: a streamer runs continuously (trigger interval 0) while files arrive at a fixed
// rate; per file, the time from its rename into input/ to the moment its rows are visible to
// another session, i.e. committed.
import { rename, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { fsyncDir } from '../../lib/durableFs.ts';
import { CSV_HEADER, createEventSource, formatCsvLine } from '../../generator/src/events.ts';
import { createFileNamer } from '../../generator/src/runGenerator.ts';
import { freePort } from '../../lib/freePort.ts';
import { countRows, freshDatabase, isWatching, makeRunDir, percentile, spawnStreamer, type Log } from './support.ts';

export interface LatencySpec {
  filesPerSec: number;
  rowsPerFile: number;
  seconds: number;
}

export interface LatencyResult extends LatencySpec {
  filesWritten: number;
  filesCommitted: number;
  /** Files written ÷ seconds actually taken: below the target rate if the writer fell behind. */
  achievedFilesPerSec: number;
  rowsExpected: number;
  rowsLoaded: number;
  /** Rename → visible commit, over the committed files. */
  latencyMs: { p50: number; p95: number; p99: number; max: number; mean: number };
  backlog: {
    /** Files renamed into input/ and not yet committed, sampled every 250 ms while files arrive. */
    max: number;
    /** When the last file was renamed in. */
    end: number;
    /** Least-squares growth, files per second. */
    slopePerSec: number;
    /** It grew by less than one second's worth of arrivals over the run. */
    flat: boolean;
  };
  peakRssBytes?: number;
}

export interface LatencyOptions {
  adminUrl: string;
  workDir: string;
  streamerArgs: string[];
  log: Log;
}

const POLL_MS = 10;
const SAMPLE_MS = 250;

export async function measureLatency(spec: LatencySpec, opts: LatencyOptions): Promise<LatencyResult> {
  const db = await freshDatabase(opts.adminUrl, 'latency');
  const run = await makeRunDir(opts.workDir, []);
  const temp = join(run.dir, 'temp');
  await mkdir(temp);
  const streamer = spawnStreamer({ dataDir: run.dir, databaseUrl: db.url, httpPort: await freePort(), args: ['--trigger-interval-ms', '0', '--file-stable-ms', '0', ...opts.streamerArgs] });
  const watcher = new pg.Client({ connectionString: db.url });
  const renamedAt = new Map<string, number>(); // pending: renamed, not yet seen committed
  let writing = true;
  let sampler: NodeJS.Timeout | undefined;
  try {
    await streamer.waitFor(isWatching, 120_000);
    await watcher.connect();

    const latencies: number[] = [];
    const poll = (async () => {
      // Visible to this session ⇔ committed: the ingest_files row commits with the file's rows.
      while (writing || renamedAt.size > 0) {
        if (renamedAt.size > 0) {
          const { rows } = await watcher.query<{ name: string }>(
            `SELECT name FROM ingest_files WHERE name = ANY($1::text[]) AND status IN ('loaded', 'empty', 'duplicate')`,
            [[...renamedAt.keys()]],
          );
          const now = performance.now();
          for (const { name } of rows) {
            latencies.push(now - renamedAt.get(name)!);
            renamedAt.delete(name);
          }
        }
        await sleep(POLL_MS);
      }
    })();
    poll.catch(() => undefined); // awaited below; this only keeps an early failure from being unhandled

    const samples: Array<[number, number]> = [];
    const started = performance.now();
    sampler = setInterval(() => samples.push([(performance.now() - started) / 1000, renamedAt.size]), SAMPLE_MS);
    const nextEvent = createEventSource({ seed: 11, purchaseRatio: 0.2, startTime: Date.parse('2026-01-01T00:00:00Z') });
    const nextName = createFileNamer();
    const total = Math.max(1, Math.round(spec.filesPerSec * spec.seconds));
    let firstRename = 0;
    let lastRename = 0;
    for (let i = 0; i < total; i++) {
      // Made before its due time, so that the rename happens on time (open loop: a late file is not skipped).
      let content = `${CSV_HEADER}\n`;
      for (let r = 0; r < spec.rowsPerFile; r++) content += formatCsvLine(nextEvent());
      const name = nextName();
      await writeFile(join(temp, name), content, { flush: true });
      await sleep(started + (i * 1000) / spec.filesPerSec - performance.now());
      // As the generator does: content synced, rename, directory synced.
      lastRename = performance.now();
      if (i === 0) firstRename = lastRename;
      renamedAt.set(name, lastRename);
      await rename(join(temp, name), join(run.input, name));
      await fsyncDir(run.input);
    }
    const writeSeconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const backlogEnd = renamedAt.size;

    const deadline = performance.now() + Math.max(30_000, spec.seconds * 1000);
    while (renamedAt.size > 0 && performance.now() < deadline) await sleep(50);
    writing = false;
    if (renamedAt.size > 0) opts.log(`  latency: ${renamedAt.size} files still not committed; giving up on them`);
    renamedAt.clear();
    await poll;
    await streamer.stop();

    const sorted = latencies.sort((a, b) => a - b);
    const slopePerSec = slope(samples);
    return {
      ...spec,
      filesWritten: total,
      filesCommitted: sorted.length,
      achievedFilesPerSec: total > 1 ? ((total - 1) * 1000) / (lastRename - firstRename) : spec.filesPerSec,
      rowsExpected: total * spec.rowsPerFile,
      rowsLoaded: await countRows(db.url),
      latencyMs: {
        p50: percentile(sorted, 50),
        p95: percentile(sorted, 95),
        p99: percentile(sorted, 99),
        max: sorted.at(-1) ?? Number.NaN,
        mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
      },
      backlog: {
        max: Math.max(0, ...samples.map(([, n]) => n)),
        end: backlogEnd,
        slopePerSec,
        flat: slopePerSec * writeSeconds < spec.filesPerSec,
      },
      peakRssBytes: await streamer.peakRssBytes(),
    };
  } finally {
    clearInterval(sampler);
    writing = false;
    renamedAt.clear();
    await streamer.stop();
    await watcher.end().catch(() => undefined);
    await db.drop();
    await run.remove();
  }
}

function slope(points: Array<[number, number]>): number {
  if (points.length < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / points.length;
  const my = points.reduce((s, [, y]) => s + y, 0) / points.length;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}
