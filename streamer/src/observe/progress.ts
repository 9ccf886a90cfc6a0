import type { PlannedBatch } from '../planner.ts';
import { EventTimes, isoFromSeconds2000 } from '../reader/eventTimes.ts';
import type { BatchTotals, FileResult, FileStatus } from '../sink/ledger.ts';
import type { PendingFiles } from '../status/readStatus.ts';

/**
 * The timed phases of a trigger, in order, named as in Spark's durationMs:
 * latestOffset = discovering the ready files, queryPlanning = planning the batch, walCommit =
 * writing its offsets, addBatch = reading and copying its files, ledgerCommit = finishing it in
 * the database's ledger, commitOffsets = writing its commit record.
 */
export const PHASES = ['latestOffset', 'queryPlanning', 'walCommit', 'addBatch', 'ledgerCommit', 'commitOffsets'] as const;
export type Phase = (typeof PHASES)[number];
/** Milliseconds per phase, and triggerExecution: the whole trigger, from discovery to the log line. */
export type Durations = Record<Phase | 'triggerExecution', number>;

export const FILE_STATUSES = ['loaded', 'empty', 'duplicate', 'quarantined', 'changed'] as const satisfies readonly FileStatus[];

/** One batch, as Spark's StreamingQueryProgress reports a trigger (README, "Progress"). */
export interface BatchProgress {
  /** The stream's id: the same across restarts (ingest_stream). */
  id: string;
  /** New at every start of the streamer. */
  runId: string;
  batchId: number;
  /** When the trigger began. */
  timestamp: string;
  /** Run again at start, after a stop or a crash cut it short: files committed before are not read again. */
  replay: boolean;
  numInputRows: number;
  /** numInputRows ÷ the time since the previous batch's trigger began; null for the first batch of a run. */
  inputRowsPerSecond: number | null;
  /** numInputRows ÷ triggerExecution. */
  processedRowsPerSecond: number;
  durationMs: Durations;
  /** Of the rows read in this run whose instant the reader knows; null when there are none. */
  eventTime: { min: string | null; max: string | null; avg: string | null };
  /** From a file's arrival in input (its modification time) to the commit of its transaction, over the files committed in this run. */
  latency: { files: number; p50Ms: number | null; maxMs: number | null };
  sources: SourceProgress[];
  sink: SinkProgress;
}

export interface SourceProgress {
  description: string;
  numInputRows: number;
  inputRowsPerSecond: number | null;
  processedRowsPerSecond: number;
  numFiles: number;
  numBytes: number;
  /** The backlog left behind: files seen and not taken by a batch yet (Auto Loader's names). */
  metrics: { numFilesOutstanding: number; numBytesOutstanding: number; oldestFileAgeMs: number | null };
}

export interface SinkProgress {
  description: string;
  /** Rows stored in user_activity. */
  numOutputRows: number;
  numRejectedRows: number;
  numDuplicateRows: number;
  /** The batch's files by what became of them. */
  files: Record<FileStatus, number>;
}

/** What became of one file of the batch: for the log line and the latency histogram, not stored. */
export interface FileOutcome {
  name: string;
  status: FileStatus;
  reason?: string;
  /** Unset for a file not committed in this run. */
  latencyMs?: number;
}

export interface BatchReport {
  progress: BatchProgress;
  files: FileOutcome[];
}

export interface ProgressInput {
  id: string;
  runId: string;
  inputDir: string;
  batch: PlannedBatch;
  replay: boolean;
  totals: BatchTotals;
  results: Map<string, FileResult>;
  /** Epoch ms at which this trigger and the previous batch's trigger began. */
  startedAt: number;
  previousStartedAt: number | undefined;
  /** Milliseconds, unrounded. */
  phases: Partial<Record<Phase, number>>;
  triggerMs: number;
  /** Epoch ms at which each file's transaction committed, for the files committed in this run. */
  committedAt: ReadonlyMap<string, number>;
  backlog: PendingFiles;
}

/** The progress record of a committed batch, from the figures the trigger gathered. */
export function buildProgress(p: ProgressInput): BatchReport {
  const { totals } = p;
  // Phases rounded down and the whole rounded up: their sum never exceeds the whole.
  const durationMs = Object.fromEntries(PHASES.map((phase) => [phase, Math.floor(p.phases[phase] ?? 0)])) as Durations;
  durationMs.triggerExecution = Math.ceil(p.triggerMs);
  const rate = (rows: number, ms: number) => Math.round((rows * 10_000) / Math.max(ms, 1)) / 10;
  const inputRowsPerSecond = p.previousStartedAt === undefined ? null : rate(totals.rowsRead, p.startedAt - p.previousStartedAt);
  const processedRowsPerSecond = rate(totals.rowsRead, p.triggerMs);

  const times = new EventTimes();
  const files: FileOutcome[] = [];
  const byStatus = Object.fromEntries(FILE_STATUSES.map((s) => [s, 0])) as Record<FileStatus, number>;
  for (const f of p.batch.files) {
    const r = p.results.get(f.name);
    if (!r) continue;
    byStatus[r.status]++;
    if (r.eventTimes) times.merge(r.eventTimes);
    const committed = p.committedAt.get(f.name);
    files.push({
      name: r.name,
      status: r.status,
      ...(r.reason !== undefined && { reason: r.reason }),
      ...(committed !== undefined && r.status !== 'changed' && { latencyMs: Math.max(0, Math.round(committed - f.mtimeMs)) }),
    });
  }
  const latencies = files.flatMap((f) => (f.latencyMs === undefined ? [] : [f.latencyMs])).sort((a, b) => a - b);
  const iso = (seconds: number) => (times.count > 0 ? isoFromSeconds2000(seconds) : null);

  const progress: BatchProgress = {
    id: p.id,
    runId: p.runId,
    batchId: p.batch.id,
    timestamp: new Date(p.startedAt).toISOString(),
    replay: p.replay,
    numInputRows: totals.rowsRead,
    inputRowsPerSecond,
    processedRowsPerSecond,
    durationMs,
    eventTime: { min: iso(times.min), max: iso(times.max), avg: iso(times.mean) },
    latency: { files: latencies.length, p50Ms: percentile(latencies, 50) ?? null, maxMs: latencies.at(-1) ?? null },
    sources: [
      {
        description: `FileSource[${p.inputDir}]`,
        numInputRows: totals.rowsRead,
        inputRowsPerSecond,
        processedRowsPerSecond,
        numFiles: totals.files,
        numBytes: totals.bytes,
        metrics: { numFilesOutstanding: p.backlog.count, numBytesOutstanding: p.backlog.bytes, oldestFileAgeMs: p.backlog.oldest?.ageMs ?? null },
      },
    ],
    sink: {
      description: 'PostgreSQL user_activity',
      numOutputRows: totals.rowsLoaded,
      numRejectedRows: totals.rowsRejected,
      numDuplicateRows: totals.rowsDuplicate,
      files: byStatus,
    },
  };
  return { progress, files };
}

/** Nearest-rank percentile of ascending values; undefined for none. */
function percentile(sorted: number[], p: number): number | undefined {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
