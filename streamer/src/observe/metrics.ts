import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FILE_STATUSES, PHASES } from './progress.ts';
import type { StreamState } from './streamState.ts';

const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const OUTCOMES = ['loaded', 'rejected', 'duplicate'] as const;

/**
 * The Prometheus view of the stream's state (README, "Metrics"). Counters and gauges are read
 * from the state when scraped; histograms take each batch's progress as it is reported. Every
 * series exists from the start, at 0.
 */
export function createMetrics(state: StreamState): Registry {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  new Counter({
    name: 'dropstream_rows_total',
    help: 'Rows read since the streamer started, by what became of them',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      for (const outcome of OUTCOMES) this.inc({ outcome }, state.sinceStart.rows[outcome]);
    },
  });
  new Counter({
    name: 'dropstream_files_total',
    help: "Files of committed batches since the streamer started, by status ('changed': read again later)",
    labelNames: ['status'],
    registers,
    collect() {
      this.reset();
      for (const status of FILE_STATUSES) this.inc({ status }, state.sinceStart.files[status]);
    },
  });
  const counter = (name: string, help: string, value: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  counter('dropstream_batches_total', 'Batches committed since the streamer started, replays included', () => state.sinceStart.batches);
  counter('dropstream_retries_total', 'Failed attempts retried since the streamer started (database outages, full disks)', () => state.sinceStart.retries);
  counter('dropstream_database_errors_total', 'Failed attempts caused by the database being unavailable, since the streamer started', () => state.sinceStart.databaseErrors);

  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(value());
      },
    });
  gauge('dropstream_backlog_files', 'Files seen in input and not taken by a batch yet', () => state.backlog().count);
  gauge('dropstream_backlog_bytes', 'Bytes of the files seen in input and not taken by a batch yet', () => state.backlog().bytes);
  gauge('dropstream_oldest_pending_file_timestamp_seconds', 'Modification time of the oldest file waiting in input; 0 when none waits', () => {
    const oldest = state.backlog().oldest;
    return oldest ? Date.parse(oldest.mtime) / 1000 : 0;
  });
  gauge('dropstream_last_batch_timestamp_seconds', 'When the newest batch was committed; 0 before any', () => (state.lastSuccess ? Date.parse(state.lastSuccess.at) / 1000 : 0));
  gauge('dropstream_heartbeat_timestamp_seconds', 'The last time the loop ran a trigger, idle or not; 0 before the first', () => (state.heartbeat ?? 0) / 1000);

  const batchDuration = new Histogram({ name: 'dropstream_batch_duration_seconds', help: 'Whole trigger of each committed batch (triggerExecution)', buckets: SECONDS_BUCKETS, registers });
  const phaseDuration = new Histogram({
    name: 'dropstream_phase_duration_seconds',
    help: 'Each phase of a committed batch (durationMs of its progress record)',
    labelNames: ['phase'],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  for (const phase of PHASES) phaseDuration.zero({ phase });
  const fileLatency = new Histogram({
    name: 'dropstream_file_latency_seconds',
    help: "From a file's arrival in input (its modification time) to the commit of its rows",
    buckets: LATENCY_BUCKETS,
    registers,
  });
  state.onBatch(({ progress, files }) => {
    batchDuration.observe(progress.durationMs.triggerExecution / 1000);
    for (const phase of PHASES) phaseDuration.observe({ phase }, progress.durationMs[phase] / 1000);
    for (const f of files) if (f.latencyMs !== undefined) fileLatency.observe(f.latencyMs / 1000);
  });
  return registry;
}
