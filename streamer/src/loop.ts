import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import type pg from 'pg';
import type { Logger } from '../../lib/log.ts';
import { Checkpoint } from './checkpoint/checkpoint.ts';
import type { StreamerConfig } from './config.ts';
import { streamHistory } from './observe/history.ts';
import { ProgressReporter } from './observe/progressReporter.ts';
import type { StreamState } from './observe/streamState.ts';
import { planBatch } from './planner.ts';
import { recover } from './recover.ts';
import { retryTransient } from './retry.ts';
import { runBatch, type BatchContext } from './runBatch.ts';
import { processedVersions } from './sink/ledger.ts';
import { FileSource } from './source/fileSource.ts';

export interface StreamerDeps {
  cfg: StreamerConfig;
  pool: pg.Pool;
  log: Logger;
  /** Aborted on SIGINT/SIGTERM: the batch in flight finishes (or rolls back), then the loop ends. */
  signal: AbortSignal;
  /** The stream's state, which the loop keeps up to date for the log, the HTTP server and the metrics. */
  state: StreamState;
}

/** The micro-batch loop: discover → plan batch → write offsets → read, validate and copy → commit. */
export async function runStreamer({ cfg, pool, log, signal, state }: StreamerDeps): Promise<void> {
  const retry = <T>(what: string, work: () => Promise<T>) => retryTransient(work, { signal, log, what, onRetry: state.retried });
  state.resume(await retry('reading the stream history', () => streamHistory(pool)));
  const processed = await retry('reading the file ledger', () => processedVersions(pool));
  const source = new FileSource({
    inputDir: cfg.inputDir,
    stableMs: cfg.fileStableMs,
    poll: cfg.poll,
    recursive: cfg.recursive,
    availableNow: cfg.availableNow,
    rescanMs: cfg.rescanIntervalMs,
    processed,
    log,
  });
  const ctx: BatchContext = {
    cfg,
    pool,
    log,
    source,
    retry,
    checkpoint: await retry('opening the checkpoint', () => Checkpoint.open(cfg.checkpointDir)),
    sink: { pool, log, rules: cfg.rules, quarantineDir: cfg.quarantineDir, copyStallMs: cfg.copyStallMs, retry },
    queue: new PQueue({ concurrency: cfg.fileConcurrency }),
    progress: new ProgressReporter({ state, pool, retry, inputDir: cfg.inputDir }),
  };

  let nextId = await recover(ctx, processed);
  await source.start();
  state.attach(source, signal);
  log.info({ input: cfg.inputDir, processedBefore: processed.size, mode: cfg.availableNow ? 'available-now' : 'continuous' }, 'watching for files');
  let lastTrigger = 0;
  try {
    while (!signal.aborted && !(cfg.availableNow && source.drained)) {
      await nextTrigger();
      if (signal.aborted) break;
      ctx.progress.startTrigger();
      const ready = await ctx.progress.timed('latestOffset', () => source.readyFiles());
      if (ready.length === 0) continue;
      const batch = await ctx.progress.timed('queryPlanning', () => planBatch(nextId++, ready, { maxFiles: cfg.maxFilesPerBatch, maxBytes: cfg.maxBytesPerBatch }));
      await runBatch(ctx, batch, false);
    }
  } finally {
    await source.close();
    state.stopped();
  }

  async function nextTrigger(): Promise<void> {
    const pause = (ms: number) => sleep(ms, undefined, { signal }).catch(() => undefined);
    if (cfg.triggerIntervalMs > 0) await pause(lastTrigger + cfg.triggerIntervalMs - Date.now());
    else if (source.hasPending) await pause(Math.min(50, cfg.fileStableMs)); // files seen, not yet stable
    else await source.waitForChange(1000, signal);
    lastTrigger = Date.now();
  }
}
