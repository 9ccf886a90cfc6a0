import { randomUUID } from 'node:crypto';
import type { FileStatus } from '../sink/ledger.ts';
import { DATABASE_UNAVAILABLE } from '../retry.ts';
import type { Backlog } from '../source/fileSource.ts';
import type { PendingFiles } from '../status/readStatus.ts';
import { FILE_STATUSES, type BatchProgress, type BatchReport } from './progress.ts';

export type LoopState = 'starting' | 'running' | 'stopping' | 'stopped';

export interface Failure {
  at: string;
  /** What was being done, as the retry log says it ("batch 12", "writing the offsets of batch 3"). */
  what: string;
  reason: string;
}

export interface SinceStart {
  /** Batches committed by this run, replays included. */
  batches: number;
  files: Record<FileStatus, number>;
  rows: { loaded: number; rejected: number; duplicate: number };
  /** Failed attempts that were retried: database outages, full disks. */
  retries: number;
  /** Of those, the ones the database caused. */
  databaseErrors: number;
}

/** The backlog grew at each of the last `batches` batches: files arrive faster than they are loaded. */
export interface BacklogGrowth {
  batches: number;
  /** Over the last GROWTH_BATCHES batches. */
  seconds: number;
  filesArrivingPerSecond: number;
  filesLoadedPerSecond: number;
  rowsLoadedPerSecond: number;
}

/** The live part of /api/status (and of `npm run status` while a streamer runs). */
export interface StreamSnapshot {
  id: string | null;
  runId: string;
  startedAt: string;
  state: LoopState;
  mode: 'continuous' | 'available-now';
  /** The last time the loop ran a trigger, idle or not. */
  heartbeat: string | null;
  heartbeatAgeMs: number | null;
  lastProgress: BatchProgress | null;
  /** The newest batch committed, by this run or an earlier one. */
  lastSuccess: { batchId: number; at: string } | null;
  /** The last error the stream hit and waited out, in this run. */
  lastFailure: Failure | null;
  backlogGrowth: BacklogGrowth | null;
  sinceStart: SinceStart;
}

/** What the stream knows of its past at start (observe/history.ts). */
export interface StreamHistory {
  id: string;
  lastProgress: BatchProgress | null;
  lastSuccess: { batchId: number; at: string } | null;
}

interface BacklogSource {
  backlog(): Backlog;
  readonly watching: boolean;
}

/** Consecutive batches after which a growing backlog is worth a warning. */
export const GROWTH_BATCHES = 3;

interface TrendPoint {
  at: number;
  backlogFiles: number;
  files: number;
  rows: number;
}

/**
 * The one model of the stream: the loop updates it (heartbeat, each batch's progress, retries),
 * and every view reads it: the batch log line, /api/status, /readyz, /metrics. A view that needs
 * a figure adds it here rather than computing its own.
 */
export class StreamState {
  readonly runId = randomUUID();
  readonly startedAt = new Date().toISOString();
  id: string | null = null;
  state: LoopState = 'starting';
  lastProgress: BatchProgress | null = null;
  lastSuccess: { batchId: number; at: string } | null = null;
  lastFailure: Failure | null = null;
  readonly sinceStart: SinceStart = {
    batches: 0,
    files: Object.fromEntries(FILE_STATUSES.map((s) => [s, 0])) as Record<FileStatus, number>,
    rows: { loaded: 0, rejected: 0, duplicate: 0 },
    retries: 0,
    databaseErrors: 0,
  };
  private heartbeatMs: number | undefined;
  private source: BacklogSource | undefined;
  private readonly listeners: Array<(report: BatchReport) => void> = [];
  private readonly trend: TrendPoint[] = [];
  private growing = 0;

  constructor(readonly mode: StreamSnapshot['mode']) {}

  // ——— updates, from the loop ———

  resume(history: StreamHistory): void {
    this.id = history.id;
    this.lastProgress = history.lastProgress;
    this.lastSuccess = history.lastSuccess;
  }

  /** The loop runs, over this source, until `signal` aborts. */
  attach(source: BacklogSource, signal: AbortSignal): void {
    this.source = source;
    this.state = signal.aborted ? 'stopping' : 'running';
    signal.addEventListener('abort', () => this.state !== 'stopped' && (this.state = 'stopping'), { once: true });
  }

  stopped(): void {
    this.state = 'stopped';
  }

  /** A trigger begins, whether or not it finds files. */
  beat(): void {
    this.heartbeatMs = Date.now();
  }

  /** A failed attempt is being retried (see RetryOptions.onRetry). */
  readonly retried = (what: string, cause: string, err: Error): void => {
    this.sinceStart.retries++;
    if (cause === DATABASE_UNAVAILABLE) this.sinceStart.databaseErrors++;
    this.lastFailure = { at: new Date().toISOString(), what, reason: `${cause}: ${err.message}` };
  };

  batchFinished(report: BatchReport): void {
    const p = report.progress;
    const s = this.sinceStart;
    this.lastProgress = p;
    this.lastSuccess = { batchId: p.batchId, at: new Date().toISOString() };
    s.batches++;
    for (const status of FILE_STATUSES) s.files[status] += p.sink.files[status];
    s.rows.loaded += p.sink.numOutputRows;
    s.rows.rejected += p.sink.numRejectedRows;
    s.rows.duplicate += p.sink.numDuplicateRows;
    this.followTrend(p);
    for (const listener of this.listeners) listener(report);
  }

  // ——— reads, for the views ———

  onBatch(listener: (report: BatchReport) => void): void {
    this.listeners.push(listener);
  }

  get watching(): boolean {
    return this.source?.watching ?? false;
  }

  get heartbeat(): number | undefined {
    return this.heartbeatMs;
  }

  /** Files waiting, now: read from the source's memory, so cheap enough for every scrape. */
  backlog(now = Date.now()): PendingFiles {
    const b = this.source?.backlog() ?? { files: 0, bytes: 0, oldest: undefined };
    return {
      count: b.files,
      bytes: b.bytes,
      oldest: b.oldest ? { name: b.oldest.name, mtime: new Date(b.oldest.mtimeMs).toISOString(), ageMs: Math.max(0, Math.round(now - b.oldest.mtimeMs)) } : null,
      inputExists: true,
    };
  }

  /** Set while the backlog has grown at each of the last GROWTH_BATCHES batches or more. */
  backlogGrowth(): BacklogGrowth | null {
    if (this.growing < GROWTH_BATCHES) return null;
    const first = this.trend[0]!;
    const window = this.trend.slice(1);
    const last = window.at(-1)!;
    const seconds = Math.max((last.at - first.at) / 1000, 0.001);
    const files = window.reduce((n, t) => n + t.files, 0);
    const per = (n: number) => Math.round((n * 10) / seconds) / 10;
    return {
      batches: this.growing,
      seconds: Math.round(seconds * 10) / 10,
      filesArrivingPerSecond: per(files + last.backlogFiles - first.backlogFiles),
      filesLoadedPerSecond: per(files),
      rowsLoadedPerSecond: per(window.reduce((n, t) => n + t.rows, 0)),
    };
  }

  snapshot(now = Date.now()): StreamSnapshot {
    return {
      id: this.id,
      runId: this.runId,
      startedAt: this.startedAt,
      state: this.state,
      mode: this.mode,
      heartbeat: this.heartbeatMs === undefined ? null : new Date(this.heartbeatMs).toISOString(),
      heartbeatAgeMs: this.heartbeatMs === undefined ? null : Math.max(0, now - this.heartbeatMs),
      lastProgress: this.lastProgress,
      lastSuccess: this.lastSuccess,
      lastFailure: this.lastFailure,
      backlogGrowth: this.backlogGrowth(),
      sinceStart: structuredClone(this.sinceStart),
    };
  }

  private followTrend(p: BatchProgress): void {
    const source = p.sources[0]!;
    const point = { at: Date.now(), backlogFiles: source.metrics.numFilesOutstanding, files: source.numFiles, rows: p.numInputRows };
    const previous = this.trend.at(-1);
    this.growing = previous && point.backlogFiles > previous.backlogFiles ? this.growing + 1 : 0;
    this.trend.push(point);
    if (this.trend.length > GROWTH_BATCHES + 1) this.trend.shift();
  }
}
