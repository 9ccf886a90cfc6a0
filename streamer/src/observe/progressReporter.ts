import type pg from 'pg';
import type { PlannedBatch } from '../planner.ts';
import type { Retry } from '../retry.ts';
import type { BatchTotals, FileResult } from '../sink/ledger.ts';
import { saveProgress } from './history.ts';
import { buildProgress, type BatchProgress, type Phase } from './progress.ts';
import type { StreamState } from './streamState.ts';

interface Trigger {
  /** Epoch ms, for the record's timestamp and rates. */
  startedAt: number;
  /** performance.now(), for durations. */
  started: number;
  phases: Partial<Record<Phase, number>>;
  committedAt: Map<string, number>;
}

export interface ReporterDeps {
  state: StreamState;
  pool: pg.Pool;
  retry: Retry;
  inputDir: string;
}

/**
 * Times each trigger, as Spark's ProgressReporter does: the loop starts a trigger, each phase of it
 * runs inside timed(), and a committed batch becomes a progress record, stored in ingest_batches
 * and handed to the stream's state. No other code measures time.
 */
export class ProgressReporter {
  private trigger: Trigger | undefined;
  private previousBatchStartedAt: number | undefined;

  constructor(private readonly deps: ReporterDeps) {}

  /** A trigger begins (the heartbeat moves): its phases are timed from here. */
  startTrigger(): void {
    this.trigger = { startedAt: Date.now(), started: performance.now(), phases: {}, committedAt: new Map() };
    this.deps.state.beat();
  }

  /** Runs one phase of the trigger and adds its time to the phase (Spark's reportTimeTaken). */
  async timed<T>(phase: Phase, work: () => T | Promise<T>): Promise<T> {
    const trigger = this.current();
    const started = performance.now();
    try {
      return await work();
    } finally {
      trigger.phases[phase] = (trigger.phases[phase] ?? 0) + performance.now() - started;
    }
  }

  /** A file's transaction committed: its latency runs from its arrival to now. */
  readonly committed = (result: FileResult): FileResult => {
    this.current().committedAt.set(result.name, Date.now());
    return result;
  };

  /** The batch is committed: its progress record is stored with it, then the stream's state (and every view) gets it. */
  async finishTrigger(batch: PlannedBatch, results: Map<string, FileResult>, totals: BatchTotals, replay: boolean): Promise<BatchProgress> {
    const { state, pool, retry, inputDir } = this.deps;
    const trigger = this.current();
    this.trigger = undefined;
    if (state.id === null) throw new Error('the stream has no id yet: StreamState.resume() comes first');
    const report = buildProgress({
      id: state.id,
      runId: state.runId,
      inputDir,
      batch,
      replay,
      totals,
      results,
      startedAt: trigger.startedAt,
      previousStartedAt: this.previousBatchStartedAt,
      phases: trigger.phases,
      triggerMs: performance.now() - trigger.started,
      committedAt: trigger.committedAt,
      backlog: state.backlog(),
    });
    this.previousBatchStartedAt = trigger.startedAt;
    await retry(`recording the progress of batch ${batch.id}`, () => saveProgress(pool, report.progress));
    state.batchFinished(report);
    return report.progress;
  }

  private current(): Trigger {
    if (!this.trigger) throw new Error('no trigger started: call startTrigger() first');
    return this.trigger;
  }
}
