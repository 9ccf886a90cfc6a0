import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import type pg from 'pg';
import type { Logger } from '../../lib/log.ts';
import { Checkpoint, CorruptCheckpointError } from './checkpoint/checkpoint.ts';
import type { StreamerConfig } from './config.ts';
import { crashPoint } from './crashPoint.ts';
import { planBatch, type PlannedBatch } from './planner.ts';
import { retryTransient } from './retry.ts';
import {
  beginBatch,
  committedFilesOfBatch,
  finishBatch,
  isBatchFinished,
  lastBatchId,
  lastFinishedBatch,
  processedFiles,
  type BatchTotals,
  type FileResult,
} from './sink/ledger.ts';
import { loadFile, type SinkContext } from './sink/loadFile.ts';
import { quarantine } from './sink/quarantine.ts';
import { FileSource } from './source/fileSource.ts';
import { listInput } from './source/listInput.ts';
import { retireFile } from './source/retireFile.ts';

export interface StreamerDeps {
  cfg: StreamerConfig;
  pool: pg.Pool;
  log: Logger;
  /** Aborted on SIGINT/SIGTERM: the batch in flight finishes (or rolls back), then the loop ends. */
  signal: AbortSignal;
}

/** The micro-batch loop: discover → plan batch → write offsets → read, validate and copy → commit. */
export async function runStreamer({ cfg, pool, log, signal }: StreamerDeps): Promise<void> {
  const retry = <T>(what: string, work: () => Promise<T>) => retryTransient(work, { signal, log, what });
  const checkpoint = await Checkpoint.open(cfg.checkpointDir);
  const processed = await retry('reading the file ledger', () => processedFiles(pool));
  const source = new FileSource({ inputDir: cfg.inputDir, stableMs: cfg.fileStableMs, poll: cfg.poll, recursive: cfg.recursive, availableNow: cfg.availableNow, processed, log });
  const sink: SinkContext = { pool, log, rules: cfg.rules, quarantineDir: cfg.quarantineDir, copyStallMs: cfg.copyStallMs };
  const queue = new PQueue({ concurrency: cfg.fileConcurrency });

  const runBatch = async (batch: PlannedBatch, replay: boolean) => {
    const started = performance.now();
    if (!replay) await checkpoint.writeOffsets(batch);
    crashPoint('after-offsets', batch.id);
    source.take(batch.files);
    const bytes = batch.files.reduce((sum, f) => sum + f.size, 0);
    const results = await retry(`batch ${batch.id}`, async () => {
      await beginBatch(pool, batch.id, batch.files.length, bytes);
      // On a replay, the files the database already committed are not read again.
      const committed = await committedFilesOfBatch(pool, batch.id);
      return settleAll(batch.files.map((f) => committed.get(f.name) ?? queue.add(() => loadFile(sink, f, batch.id))));
    });
    if (replay) await finishQuarantines(batch, results);
    const totals = await retry(`finishing batch ${batch.id}`, () => finishBatch(pool, batch.id));
    crashPoint('after-db-commit', batch.id);
    await checkpoint.writeCommit(batch.id, totals);
    source.settle(batch.files, (name) => results.get(name)?.status);
    await retireAll(batch.files.filter((f) => ['loaded', 'empty', 'duplicate'].includes(results.get(f.name)?.status ?? '')).map((f) => f.name));
    logBatch(log, batch, [...results.values()], totals, performance.now() - started);
  };

  // A crash between a file's 'quarantined' ledger row and its move leaves it in input: move it now.
  const finishQuarantines = async (batch: PlannedBatch, results: Map<string, FileResult>) => {
    for (const f of batch.files) {
      const r = results.get(f.name);
      if (r?.status === 'quarantined' && existsSync(f.path)) await quarantine(f.path, f.name, cfg.quarantineDir, r.reason ?? 'set aside');
    }
  };

  const retireAll = async (names: string[]) => {
    if (cfg.cleanSource === 'off') return;
    for (const name of names) await retireFile(join(cfg.inputDir, name), name, cfg.cleanSource, cfg.archiveDir);
  };

  // Recovery: a batch cut short by a stop or a crash runs again with exactly the same files.
  const latest = await readLatest(checkpoint, cfg, pool, log);
  let nextId = Math.max(await retry('reading the batch ledger', () => lastBatchId(pool)), latest?.batch.id ?? 0) + 1;
  if (latest && !latest.committed) {
    log.info({ batch: latest.batch.id, files: latest.batch.files.length }, 'resuming a batch that was not committed');
    const files = latest.batch.files
      .map((f) => ({ ...f, path: join(cfg.inputDir, f.name) }))
      .filter((f) => existsSync(f.path) || (log.warn({ file: f.name }, 'a file of the resumed batch is gone'), false));
    await runBatch({ ...latest.batch, files }, true);
  }
  // Committed files a crash left in input before --clean-source could retire them.
  if (cfg.cleanSource !== 'off') await retireAll((await listInput(cfg.inputDir, cfg.recursive).catch(() => [])).filter((name) => processed.has(name)));

  await source.start();
  log.info({ input: cfg.inputDir, processedBefore: processed.size, mode: cfg.availableNow ? 'available-now' : 'continuous' }, 'watching for files');
  let lastTrigger = 0;
  while (!signal.aborted && !(cfg.availableNow && source.drained)) {
    await nextTrigger();
    if (signal.aborted) break;
    const ready = await source.readyFiles();
    if (ready.length === 0) continue;
    await runBatch(planBatch(nextId++, ready, { maxFiles: cfg.maxFilesPerBatch, maxBytes: cfg.maxBytesPerBatch }), false);
  }
  await source.close();

  async function nextTrigger(): Promise<void> {
    const pause = (ms: number) => sleep(ms, undefined, { signal }).catch(() => undefined);
    if (cfg.triggerIntervalMs > 0) await pause(lastTrigger + cfg.triggerIntervalMs - Date.now());
    else if (source.hasPending) await pause(Math.min(50, cfg.fileStableMs)); // files seen, not yet stable
    else await source.waitForChange(1000, signal);
    lastTrigger = Date.now();
  }
}

/**
 * The newest batch in the checkpoint. A damaged record is rebuilt from the database ledger when
 * the database shows that batch finished (nothing is lost: the ledger has every file), or when
 * --rebuild-checkpoint says so; otherwise the streamer stops and says what to do.
 */
async function readLatest(checkpoint: Checkpoint, cfg: StreamerConfig, pool: pg.Pool, log: Logger) {
  try {
    if (!cfg.rebuildCheckpoint) return await checkpoint.latest();
  } catch (err) {
    if (!(err instanceof CorruptCheckpointError)) throw err;
    if (!(await isBatchFinished(pool, err.batchId))) {
      throw new Error(
        `${err.message}. Batch ${err.batchId} is not finished in the database, so the checkpoint cannot be repaired by itself. ` +
          'Run the streamer once with --rebuild-checkpoint: the damaged checkpoint is kept aside, and the files of that batch ' +
          'that the database has not committed are picked up again as new files (nothing is lost or loaded twice).',
      );
    }
    log.warn({ err: err.message }, 'damaged checkpoint record of a batch the database has finished: rebuilding the checkpoint');
  }
  const damaged = await checkpoint.rebuild(await lastFinishedBatch(pool));
  log.warn({ movedTo: damaged }, 'checkpoint rebuilt from the database ledger; the old one is kept aside');
  return checkpoint.latest();
}

/** Waits for every file of a batch, so that a retry never runs beside a load still in flight. */
async function settleAll(work: Array<FileResult | Promise<FileResult>>): Promise<Map<string, FileResult>> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return new Map(settled.map((s) => [(s as PromiseFulfilledResult<FileResult>).value.name, (s as PromiseFulfilledResult<FileResult>).value]));
}

function logBatch(log: Logger, batch: PlannedBatch, results: FileResult[], totals: BatchTotals, ms: number): void {
  const notLoaded = results.filter((r) => r.status !== 'loaded').map((r) => ({ file: r.name, status: r.status, reason: r.reason }));
  log.info(
    {
      batch: batch.id,
      files: totals.files,
      bytes: totals.bytes,
      rowsRead: totals.rowsRead,
      rowsLoaded: totals.rowsLoaded,
      rowsRejected: totals.rowsRejected,
      rowsDuplicate: totals.rowsDuplicate,
      durationMs: Math.round(ms),
      rowsPerSec: Math.round((totals.rowsRead * 1000) / Math.max(ms, 1)),
      ...(notLoaded.length > 0 && { notLoaded }),
    },
    `batch ${batch.id}: ${totals.files} files, ${totals.rowsLoaded} rows loaded, ${totals.rowsRejected} rejected, ${totals.rowsDuplicate} duplicate in ${Math.round(ms)} ms`,
  );
}
