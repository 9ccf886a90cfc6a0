import { existsSync } from 'node:fs';
import type PQueue from 'p-queue';
import type pg from 'pg';
import type { Logger } from '../../lib/log.ts';
import type { Checkpoint } from './checkpoint/checkpoint.ts';
import type { StreamerConfig } from './config.ts';
import { crashPoint } from './crashPoint.ts';
import type { InFlight } from './inFlight.ts';
import type { ProgressReporter } from './observe/progressReporter.ts';
import type { PlannedBatch } from './planner.ts';
import type { SourceFile } from './reader/fileReader.ts';
import type { Retry } from './retry.ts';
import { beginBatch, committedFilesOfBatch, finishBatch, type FileResult } from './sink/ledger.ts';
import { loadFile, type SinkContext } from './sink/loadFile.ts';
import { quarantine } from './sink/quarantine.ts';
import { compactRollups } from './sink/rollups.ts';
import type { FileSource } from './source/fileSource.ts';
import { isUnchanged } from './source/fileVersion.ts';
import { retireFile } from './source/retireFile.ts';

export interface BatchContext {
  cfg: StreamerConfig;
  pool: pg.Pool;
  log: Logger;
  checkpoint: Checkpoint;
  source: FileSource;
  sink: SinkContext;
  /** Files loaded at once, each on its own connection. */
  queue: PQueue;
  /** Runs database and disk work until it succeeds, waiting out outages and full disks. */
  retry: Retry;
  /** The batch being run, for the shutdown message. */
  inFlight: InFlight;
  /** Times the phases of each trigger and reports each committed batch. */
  progress: ProgressReporter;
}

const PROCESSED: ReadonlySet<string> = new Set(['loaded', 'empty', 'duplicate']);

/**
 * One micro-batch: write its offsets ahead → load each file in its own transaction → finish the
 * batch in the ledger → write its commit record → hand the files back to the source, clean up,
 * log. A replay (the batch was cut short) skips what the database already committed.
 */
export async function runBatch(ctx: BatchContext, batch: PlannedBatch, replay: boolean): Promise<void> {
  const { pool, checkpoint, source, retry, progress, inFlight } = ctx;
  if (!replay) await progress.timed('walCommit', () => retry(`writing the offsets of batch ${batch.id}`, () => checkpoint.writeOffsets(batch)));
  crashPoint('after-offsets', batch.id);
  source.take(batch.files);
  const bytes = batch.files.reduce((sum, f) => sum + f.size, 0);
  inFlight.begin(batch.id, batch.files.length);
  const results = await progress.timed('addBatch', () =>
    retry(`batch ${batch.id}`, async () => {
      await beginBatch(pool, batch.id, batch.files.length, bytes);
      const committed = await committedFilesOfBatch(pool, batch.id);
      return settleAll(batch.files.map(async (f) => inFlight.settled(committed.get(f.name) ?? (await ctx.queue.add(() => loadFile(ctx.sink, f, batch.id)).then(progress.committed)))));
    }),
  );
  if (replay) await finishQuarantines(ctx, batch, results);
  const totals = await progress.timed('ledgerCommit', () => retry(`finishing batch ${batch.id}`, () => finishBatch(pool, batch.id)));
  crashPoint('after-db-commit', batch.id);
  await progress.timed('commitOffsets', () => retry(`writing the commit record of batch ${batch.id}`, () => checkpoint.writeCommit(batch.id, totals)));
  inFlight.committed();
  await retry('folding the rollups', () => compactRollups(pool));
  source.settle(batch.files, (name) => results.get(name)?.status);
  await retireCommitted(ctx, batch.files.filter((f) => PROCESSED.has(results.get(f.name)?.status ?? '')));
  logNewVersions(ctx.log, [...results.values()]);
  await progress.finishTrigger(batch, results, totals, replay);
}

/**
 * --clean-source: processed files leave input once their batch is committed, never before, and
 * only while they are still the version that was committed: a file rewritten or renamed over
 * since it was read is another version, left in input and loaded as such.
 */
async function retireCommitted({ cfg, log, source, retry }: BatchContext, files: SourceFile[]): Promise<void> {
  if (cfg.cleanSource === 'off') return;
  for (const f of files) {
    if (await isUnchanged(f)) {
      await retry(`--clean-source ${cfg.cleanSource} of ${f.name}`, () => retireFile(f.path, f.name, cfg.cleanSource, cfg.archiveDir));
    } else {
      log.warn({ file: f.name }, `${f.name} changed after it was read: it stays in input and is loaded as a new version`);
      source.recheck(f);
    }
  }
}

/** A name that came back with new content is said once, when that version is committed. */
function logNewVersions(log: Logger, results: FileResult[]): void {
  for (const r of results) {
    if (r.version === undefined || r.version < 2) continue;
    const what =
      r.status === 'loaded'
        ? `loaded as version ${r.version}: ${r.rowsLoaded} new rows, ${r.rowsDuplicate} already stored from earlier versions or other files, ${r.rowsRejected} rejected`
        : `recorded as version ${r.version} (${r.status}: ${r.reason})`;
    log.info({ file: r.name, version: r.version, status: r.status }, `${r.name} came back with new content; ${what}`);
  }
}

/** A crash between a file's 'quarantined' ledger row and its move leaves it in input: move it now. */
async function finishQuarantines(ctx: BatchContext, batch: PlannedBatch, results: Map<string, FileResult>): Promise<void> {
  for (const f of batch.files) {
    const r = results.get(f.name);
    if (r?.status === 'quarantined' && existsSync(f.path)) await quarantine(f.path, f.name, ctx.cfg.quarantineDir, r.reason ?? 'set aside', ctx.retry);
  }
}

/** Waits for every file of a batch, so that a retry never runs beside a load still in flight. */
async function settleAll(work: Array<FileResult | Promise<FileResult>>): Promise<Map<string, FileResult>> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return new Map(settled.map((s) => [(s as PromiseFulfilledResult<FileResult>).value.name, (s as PromiseFulfilledResult<FileResult>).value]));
}
