import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../lib/freePort.ts';
import type { BatchProgress } from '../streamer/src/observe/progress.ts';
import { PHASES } from '../streamer/src/observe/progress.ts';
import type { LiveStatus } from '../streamer/src/observe/httpServer.ts';
import type { TestDatabase } from './support/db.ts';
import { ownServer } from './support/ownServer.ts';
import { parsePrometheusText, type Family } from './support/prometheusText.ts';
import { expectedFromFiles, finished, generate, spawnProgram, startStreamer, streamAvailableNow, waitFor, waitForOutput } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

const HANDMADE = [
  'event_id,user_id,event_type,product_id,price,quantity,event_time',
  '0b6f1c9e-1d2a-4b3c-8d4e-5f6a7b8c9d01,user_1,purchase,SKU-1,10.00,2,2026-03-01T00:00:00Z',
  '0b6f1c9e-1d2a-4b3c-8d4e-5f6a7b8c9d02,user_2,view,SKU-2,5.50,1,2026-03-01T00:00:01.500Z',
  '0b6f1c9e-1d2a-4b3c-8d4e-5f6a7b8c9d03,user_3,view,SKU-3,NaN,1,2026-03-01T00:00:02Z',
].join('\n');

const RECORD_KEYS = ['batchId', 'durationMs', 'eventTime', 'id', 'inputRowsPerSecond', 'latency', 'numInputRows', 'processedRowsPerSecond', 'replay', 'runId', 'sink', 'sources', 'timestamp'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface BatchRow {
  id: string;
  files: number;
  bytes: string;
  rows_read: string;
  rows_loaded: string;
  rows_rejected: string;
  rows_duplicate: string;
  progress: BatchProgress | null;
}

const batchRows = async (db: Pick<TestDatabase, 'query'>) =>
  (await db.query<BatchRow>('SELECT id, files, bytes, rows_read, rows_loaded, rows_rejected, rows_duplicate, progress FROM ingest_batches ORDER BY id')).rows;
const count = async (db: Pick<TestDatabase, 'query'>, table: string) => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);

async function get(port: number, path: string, init?: RequestInit): Promise<{ status: number; type: string; text: string; json: () => any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, init);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, json: () => JSON.parse(text) };
}

async function scrape(port: number): Promise<Map<string, Family>> {
  const res = await get(port, '/metrics');
  expect(res.status).toBe(200);
  expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusText(res.text);
  // Every histogram series: cumulative buckets, the last (+Inf) equal to its count.
  for (const f of families.values()) {
    if (f.type !== 'histogram') continue;
    for (const count of f.samples.filter((s) => s.name === `${f.name}_count`)) {
      const { le: _, ...series } = count.labels;
      const same = (s: { labels: Record<string, string> }) => Object.entries(series).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(series).length + 1;
      const buckets = f.samples.filter((s) => s.name === `${f.name}_bucket` && same(s)).map((s) => s.value);
      expect(buckets, f.name).toEqual([...buckets].sort((a, b) => a - b));
      expect(buckets.at(-1), f.name).toBe(count.value);
    }
  }
  return families;
}

function series(metrics: Map<string, Family>, name: string, labels: Record<string, string>): number {
  const samples = [...metrics.values()].flatMap((f) => f.samples.filter((s) => s.name === name));
  const sample = samples.find((s) => Object.keys(s.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (!sample) throw new Error(`no series ${name}${JSON.stringify(labels)}`);
  return sample.value;
}

/** The value of a counter or gauge series, found by its labels. */
const value = (metrics: Map<string, Family>, name: string, labels: Record<string, string> = {}) => series(metrics, name, labels);
/** A histogram series' observation count and sum. */
const observations = (metrics: Map<string, Family>, name: string, labels: Record<string, string> = {}) => series(metrics, `${name}_count`, labels);
const observedSum = (metrics: Map<string, Family>, name: string, labels: Record<string, string> = {}) => series(metrics, `${name}_sum`, labels);

describe('progress records in ingest_batches', () => {
  const ws = useWorkspace();

  it('one per batch with every field, figures equal to the files and the ledger; id stays and runId changes across a restart', async () => {
    await generate(ws.data.dir, { files: 6, rows: 200, seed: 81 });
    await writeFile(join(ws.data.input, 'handmade.csv'), `${HANDMADE}\n`); // the newest: alone in the last batch
    const before = Date.now();
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--max-files-per-batch', '2']);
    const after = Date.now();
    expect(run.code, run.output).toBe(0);

    const rows = await batchRows(ws.db);
    expect(rows.map((r) => r.files)).toEqual([2, 2, 2, 1]);
    const records = rows.map((r) => r.progress!);
    const expected = await expectedFromFiles([ws.data.input]);
    expect(records.reduce((n, p) => n + p.numInputRows, 0), 'rows read = the lines of the files').toBe(expected.rows);

    const ledger = (await ws.db.query<{ batch_id: string; size: string; mtime: Date; committed_at: Date }>('SELECT batch_id, size, mtime, committed_at FROM ingest_files')).rows;
    const events = (
      await ws.db.query<{ batch_id: string; min: Date; max: Date; avg: string }>(
        'SELECT batch_id, min(event_time), max(event_time), avg(extract(epoch FROM event_time)) AS avg FROM user_activity GROUP BY batch_id',
      )
    ).rows;
    const totalBytes = rows.reduce((n, r) => n + Number(r.bytes), 0);
    let bytesDone = 0;
    let filesDone = 0;
    for (const [i, p] of records.entries()) {
      const r = rows[i]!;
      expect(Object.keys(p).sort()).toEqual(RECORD_KEYS);
      expect(p.id).toMatch(UUID);
      expect(p.runId).toMatch(UUID);
      expect([p.id, p.runId]).toEqual([records[0]!.id, records[0]!.runId]);
      expect(p.batchId).toBe(Number(r.id));
      expect(p.replay).toBe(false);
      const started = Date.parse(p.timestamp);
      expect(started).toBeGreaterThanOrEqual(before);
      expect(started).toBeLessThanOrEqual(after);

      // Rows and files as the ledger counts them.
      expect(p.numInputRows).toBe(Number(r.rows_read));
      expect(p.sink).toEqual({
        description: 'PostgreSQL user_activity',
        numOutputRows: Number(r.rows_loaded),
        numRejectedRows: Number(r.rows_rejected),
        numDuplicateRows: Number(r.rows_duplicate),
        files: { loaded: r.files, empty: 0, duplicate: 0, quarantined: 0, changed: 0 },
      });
      const source = p.sources[0]!;
      expect(p.sources).toHaveLength(1);
      expect(source.description).toBe(`FileSource[${ws.data.input}]`);
      expect([source.numFiles, source.numBytes, source.numInputRows]).toEqual([r.files, Number(r.bytes), p.numInputRows]);

      // The backlog left behind: every later batch's files (all were there at start).
      filesDone += r.files;
      bytesDone += Number(r.bytes);
      expect(source.metrics.numFilesOutstanding).toBe(7 - filesDone);
      expect(source.metrics.numBytesOutstanding).toBe(totalBytes - bytesDone);
      if (filesDone === 7) expect(source.metrics.oldestFileAgeMs).toBeNull();
      else expect(source.metrics.oldestFileAgeMs).toBeGreaterThan(0);

      // Phases: whole milliseconds that add up to at most the whole trigger.
      expect(Object.keys(p.durationMs).sort()).toEqual([...PHASES, 'triggerExecution'].sort());
      for (const ms of Object.values(p.durationMs)) expect(Number.isInteger(ms) && ms >= 0).toBe(true);
      const phases = PHASES.reduce((n, phase) => n + p.durationMs[phase], 0);
      expect(phases).toBeLessThanOrEqual(p.durationMs.triggerExecution);
      expect(p.durationMs.addBatch).toBeGreaterThan(0);
      expect(p.durationMs.triggerExecution).toBeLessThanOrEqual(after - before);

      // Rates: rows over the trigger, and over the time since the previous batch's trigger began.
      const trigger = p.durationMs.triggerExecution;
      expect(p.processedRowsPerSecond).toBeGreaterThanOrEqual((p.numInputRows * 1000) / trigger - 0.1);
      expect(p.processedRowsPerSecond).toBeLessThanOrEqual((p.numInputRows * 1000) / Math.max(trigger - 1, 1) + 0.1);
      if (i === 0) expect(p.inputRowsPerSecond).toBeNull();
      else expect(p.inputRowsPerSecond).toBe(Math.round((p.numInputRows * 10_000) / (started - Date.parse(records[i - 1]!.timestamp))) / 10);
      expect(source.inputRowsPerSecond).toBe(p.inputRowsPerSecond);
      expect(source.processedRowsPerSecond).toBe(p.processedRowsPerSecond);

      // Event times: those of the rows stored (a rejected row has none).
      const e = events.find((x) => Number(x.batch_id) === p.batchId)!;
      expect(p.eventTime.min).toBe(e.min.toISOString());
      expect(p.eventTime.max).toBe(e.max.toISOString());
      expect(Math.abs(Date.parse(p.eventTime.avg!) - Number(e.avg) * 1000)).toBeLessThanOrEqual(1);

      // Latency: each file from its mtime to its commit, which comes after its transaction began.
      const files = ledger.filter((f) => Number(f.batch_id) === p.batchId);
      expect(p.latency.files).toBe(r.files);
      expect(p.latency.p50Ms!).toBeLessThanOrEqual(p.latency.maxMs!);
      expect(p.latency.maxMs!).toBeGreaterThanOrEqual(Math.max(...files.map((f) => f.committed_at.getTime() - f.mtime.getTime())) - 5);
      expect(p.latency.maxMs!).toBeLessThanOrEqual(after - Math.min(...files.map((f) => f.mtime.getTime())));
    }
    expect(records.at(-1)!.sink.numRejectedRows).toBe(1);
    expect(records.at(-1)!.eventTime).toEqual({ min: '2026-03-01T00:00:00.000Z', max: '2026-03-01T00:00:01.500Z', avg: '2026-03-01T00:00:00.750Z' });

    // The JSON log line of a batch carries the same record.
    const logged = run.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .find((l) => l.batch === 4);
    expect(logged.progress).toEqual(records[3]);
    expect([logged.rowsLoaded, logged.rowsRejected, logged.durationMs]).toEqual([2, 1, records[3]!.durationMs.triggerExecution]);

    // A restart: the same stream, a new run.
    await generate(ws.data.dir, { files: 2, rows: 50, seed: 82 });
    const again = await streamAvailableNow(ws.data.dir, ws.db, ['--max-files-per-batch', '2']);
    expect(again.code, again.output).toBe(0);
    const next = (await batchRows(ws.db)).at(-1)!.progress!;
    expect(next.batchId).toBe(5);
    expect(next.id).toBe(records[0]!.id);
    expect(next.runId).not.toBe(records[0]!.runId);
    expect(next.inputRowsPerSecond).toBeNull(); // the first batch of its run
    const { rows: identity } = await ws.db.query<{ id: string }>('SELECT id FROM ingest_stream');
    expect(identity).toEqual([{ id: next.id }]);
  });

  it('a batch replayed after a crash gets its record, marked replay, with the whole batch counted', async () => {
    await generate(ws.data.dir, { files: 2, rows: 100, seed: 83 });
    const crashed = await streamAvailableNow(ws.data.dir, ws.db, [], { DROPSTREAM_CRASH_AT: 'after-db-commit' });
    expect(crashed.signal, crashed.output).toBe('SIGKILL');
    expect((await batchRows(ws.db))[0]!.progress).toBeNull();
    const resumed = await streamAvailableNow(ws.data.dir, ws.db);
    expect(resumed.code, resumed.output).toBe(0);
    const p = (await batchRows(ws.db))[0]!.progress!;
    expect(p).toMatchObject({ batchId: 1, replay: true, numInputRows: 200, sink: { numOutputRows: 200, files: { loaded: 2 } } });
    // Its files were committed by the crashed run: none was read or committed in this one.
    expect(p.latency).toEqual({ files: 0, p50Ms: null, maxMs: null });
    expect(p.eventTime).toEqual({ min: null, max: null, avg: null });
    expect([p.durationMs.latestOffset, p.durationMs.queryPlanning, p.durationMs.walCommit]).toEqual([0, 0, 0]);
  });
});

describe('the HTTP server of a running streamer', () => {
  const ws = useWorkspace({ input: true });

  it('idle: no progress, the heartbeat moves; /metrics at 0 before any batch and exact after; /api/* equal the database; npm run status reads the same', async () => {
    const port = await freePort();
    const streamer = startStreamer(ws.data.dir, ws.db, ['--http-port', String(port), '--trigger-interval-ms', '100']);
    await waitForOutput(streamer, `HTTP on http://127.0.0.1:${port}/`);
    await waitFor('ready', async () => (await get(port, '/readyz')).status === 200);

    // Before any batch: every series is there, at 0, named by the rules.
    let metrics = await scrape(port);
    for (const outcome of ['loaded', 'rejected', 'duplicate']) expect(value(metrics, 'dropstream_rows_total', { outcome })).toBe(0);
    for (const status of ['loaded', 'empty', 'duplicate', 'quarantined', 'changed']) expect(value(metrics, 'dropstream_files_total', { status })).toBe(0);
    for (const name of ['dropstream_batches_total', 'dropstream_database_errors_total', 'dropstream_retries_total', 'dropstream_backlog_files', 'dropstream_backlog_bytes', 'dropstream_oldest_pending_file_timestamp_seconds', 'dropstream_last_batch_timestamp_seconds']) {
      expect(value(metrics, name), name).toBe(0);
    }
    expect(observations(metrics, 'dropstream_batch_duration_seconds')).toBe(0);
    expect(observations(metrics, 'dropstream_file_latency_seconds')).toBe(0);
    for (const phase of PHASES) expect(observations(metrics, 'dropstream_phase_duration_seconds', { phase })).toBe(0);
    expect(value(metrics, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    for (const name of ['dropstream_batch_duration_seconds', 'dropstream_phase_duration_seconds', 'dropstream_file_latency_seconds']) expect(metrics.get(name)!.type).toBe('histogram');
    for (const family of metrics.values()) {
      expect(family.name).toMatch(/^(dropstream_|process_|nodejs_)/);
      expect(family.help).not.toBe('');
      if (family.type === 'counter') expect(family.name).toMatch(/_total$/);
      if (family.name.startsWith('dropstream_')) {
        expect(family.name).toMatch(/_(total|seconds|bytes|files)$/);
        // No file names or ids as labels: only these, with their few values.
        for (const s of family.samples) expect(Object.keys(s.labels).every((l) => ['outcome', 'status', 'phase', 'le'].includes(l)), s.name).toBe(true);
      }
    }

    // Idle: the heartbeat moves, and no progress is written.
    const firstBeat = value(metrics, 'dropstream_heartbeat_timestamp_seconds');
    expect(firstBeat).toBeGreaterThan(0);
    await waitFor('the heartbeat to move on', async () => Date.parse((await get(port, '/api/status')).json().stream.heartbeat) > firstBeat * 1000 + 500, 10_000);
    expect(await count(ws.db, 'ingest_batches')).toBe(0);
    expect((await get(port, '/api/progress')).json()).toEqual({ progress: [] });

    // Three generated files and one with a rejected row.
    await generate(ws.data.dir, { files: 3, rows: 100, seed: 84 });
    await writeFile(join(ws.data.input, 'handmade.csv'), `${HANDMADE}\n`);
    await waitFor('4 files in the metrics', async () => {
      const m = await scrape(port);
      return ['loaded', 'empty', 'duplicate', 'quarantined'].reduce((n, status) => n + value(m, 'dropstream_files_total', { status }), 0) === 4;
    });
    metrics = await scrape(port);
    const batches = await batchRows(ws.db);
    const lastFinished = (await ws.db.query<{ at: Date }>('SELECT max(finished_at) AS at FROM ingest_batches')).rows[0]!.at;
    expect(value(metrics, 'dropstream_rows_total', { outcome: 'loaded' })).toBe(await count(ws.db, 'user_activity'));
    expect(value(metrics, 'dropstream_rows_total', { outcome: 'rejected' })).toBe(await count(ws.db, 'user_activity_rejects'));
    expect(value(metrics, 'dropstream_rows_total', { outcome: 'duplicate' })).toBe(0);
    expect(value(metrics, 'dropstream_files_total', { status: 'loaded' })).toBe(4);
    expect(value(metrics, 'dropstream_batches_total')).toBe(batches.length);
    expect(observations(metrics, 'dropstream_batch_duration_seconds')).toBe(batches.length);
    for (const phase of PHASES) expect(observations(metrics, 'dropstream_phase_duration_seconds', { phase })).toBe(batches.length);
    expect(observations(metrics, 'dropstream_file_latency_seconds')).toBe(4);
    expect(Math.abs(value(metrics, 'dropstream_last_batch_timestamp_seconds') - lastFinished.getTime() / 1000)).toBeLessThan(1);
    expect(value(metrics, 'dropstream_backlog_files')).toBe(0);
    const triggerSeconds = batches.reduce((n, b) => n + b.progress!.durationMs.triggerExecution, 0) / 1000;
    expect(observedSum(metrics, 'dropstream_batch_duration_seconds')).toBeCloseTo(triggerSeconds, 6);

    // /api/status: npm run status's figures, plus the live state.
    const status = (await get(port, '/api/status')).json() as LiveStatus;
    expect(status.dataDir).toBe(ws.data.dir);
    expect(status.totals).toEqual({ events: 302, rejects: 1, batches: batches.length, files: { loaded: 4, empty: 0, duplicate: 0, quarantined: 0 } });
    expect(status.lastBatch!.id).toBe(Number(batches.at(-1)!.id));
    expect(status.pending).toEqual({ count: 0, bytes: 0, oldest: null, inputExists: true });
    const { rows: identity } = await ws.db.query<{ id: string }>('SELECT id FROM ingest_stream');
    expect(status.stream).toMatchObject({ id: identity[0]!.id, state: 'running', mode: 'continuous', lastFailure: null, backlogGrowth: null });
    expect(status.stream.lastProgress).toEqual(batches.at(-1)!.progress);
    expect(status.stream.lastSuccess!.batchId).toBe(status.lastBatch!.id);
    expect(status.stream.sinceStart).toEqual({
      batches: batches.length,
      files: { loaded: 4, empty: 0, duplicate: 0, quarantined: 0, changed: 0 },
      rows: { loaded: 302, rejected: 1, duplicate: 0 },
      retries: 0,
      databaseErrors: 0,
    });

    // /api/progress and /api/rejects: the database's rows, newest first.
    const progress = (await get(port, '/api/progress?limit=2')).json().progress as BatchProgress[];
    expect(progress).toEqual(batches.slice(-2).reverse().map((b) => b.progress));
    expect((await get(port, `/api/progress?limit=1000`)).json().progress).toHaveLength(batches.length);
    const rejects = (await get(port, '/api/rejects?limit=5')).json().rejects;
    const stored = (await ws.db.query<{ batch_id: string; rejected_at: Date }>('SELECT batch_id, rejected_at FROM user_activity_rejects')).rows[0]!;
    expect(rejects).toEqual([
      {
        file: 'handmade.csv',
        line: 4,
        reason: "price 'NaN' is not a decimal number",
        raw: HANDMADE.split('\n')[3],
        batchId: Number(stored.batch_id),
        rejectedAt: stored.rejected_at.toISOString(),
      },
    ]);
    for (const bad of ['0', '1001', 'ten', '-1']) {
      const res = await get(port, `/api/rejects?limit=${bad}`);
      expect([res.status, res.json().error]).toEqual([400, `limit must be a whole number from 1 to 1000, got '${bad}'`]);
    }
    expect((await get(port, '/nowhere')).status).toBe(404);
    expect((await get(port, '/livez', { method: 'POST' })).status).toBe(405);
    const home = await get(port, '/');
    expect([home.status, home.type]).toEqual([200, 'text/html; charset=utf-8']);
    for (const path of ['/livez', '/readyz', '/api/status', '/api/progress', '/api/rejects', '/metrics']) expect(home.text).toContain(`href="${path}`);

    // npm run status asks the streamer: the same model, live part included.
    const cli = await finished(spawnProgram('scripts/status.ts', ['--data-dir', ws.data.dir, '--json', '--http-port', String(port)], { DATABASE_URL: ws.db.url }));
    expect(cli.code, cli.output).toBe(0);
    const printed = JSON.parse(cli.output) as LiveStatus;
    expect(printed.stream.runId).toBe(status.stream.runId);
    expect(printed.stream.sinceStart).toEqual(status.stream.sinceStart);
    expect(printed.totals).toEqual(status.totals);
    const text = await finished(spawnProgram('scripts/status.ts', ['--data-dir', ws.data.dir, '--http-port', String(port)], { DATABASE_URL: ws.db.url }));
    expect(text.output).toMatch(new RegExp(`^ {2}Streamer {4}running \\(continuous\\) since .+, last trigger .+ ago; ${batches.length} batch(es)?, 302 rows loaded since start \\(run ${status.stream.runId.slice(0, 8)}\\)$`, 'm'));

    // Idle again: the heartbeat moves on, no more progress rows.
    const beat = Date.parse((await get(port, '/api/status')).json().stream.heartbeat);
    await waitFor('the heartbeat to move on', async () => Date.parse((await get(port, '/api/status')).json().stream.heartbeat) > beat + 500, 10_000);
    expect(await count(ws.db, 'ingest_batches')).toBe(batches.length);

    streamer.kill('SIGTERM');
    expect((await finished(streamer)).code).toBe(0);
  });

  it('/livez stays 200 while the database is down; /readyz is 503 and names it; retries are counted and the last failure given', async () => {
    const server = await ownServer();
    try {
      const port = await freePort();
      const streamer = startStreamer(ws.data.dir, server, ['--http-port', String(port), '--trigger-interval-ms', '100']);
      await waitFor('ready', async () => (await get(port, '/readyz').catch(() => ({ status: 0 }))).status === 200);
      expect((await get(port, '/readyz')).json()).toEqual({ status: 'ready', checks: [] });
      const verbose = (await get(port, '/readyz?verbose')).json();
      expect(verbose.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok])).toEqual([['database', true], ['watcher', true], ['checkpoint', true]]);

      await server.stop();
      let notReady: any;
      await waitFor('/readyz to fail', async () => {
        const res = await get(port, '/readyz');
        notReady = res.json();
        return res.status === 503;
      });
      expect(notReady).toEqual({ status: 'not ready', checks: [{ name: 'database', ok: false, detail: expect.stringMatching(/ECONNREFUSED|terminat|connect/i) }] });
      const live = await get(port, '/livez');
      expect([live.status, live.json().status, live.json().state]).toEqual([200, 'alive', 'running']);

      // A file arrives meanwhile: its batch waits the outage out, and says so.
      await generate(ws.data.dir, { files: 1, rows: 100, seed: 85 });
      await waitFor('a database error in the metrics', async () => value(await scrape(port), 'dropstream_database_errors_total') > 0);
      const metrics = await scrape(port);
      expect(value(metrics, 'dropstream_retries_total')).toBeGreaterThanOrEqual(value(metrics, 'dropstream_database_errors_total'));
      const down = await get(port, '/api/status');
      expect(down.status).toBe(503);
      expect(down.json().error).toMatch(/^the database cannot be read: /);
      expect(down.json().stream.lastFailure).toMatchObject({ what: expect.stringMatching(/batch 1|offsets/), reason: expect.stringMatching(/^database unavailable: /) });
      expect((await get(port, '/livez')).status).toBe(200);

      await server.start();
      await waitFor('ready again', async () => (await get(port, '/readyz')).status === 200);
      await waitFor('the file loaded', async () => (await count(server, 'user_activity').catch(() => 0)) === 100);
      streamer.kill('SIGTERM');
      expect((await finished(streamer)).code).toBe(0);
    } finally {
      await server.remove();
    }
  });

  it('a port in use stops the start with a message saying what to set', async () => {
    const port = await freePort();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const run = await finished(startStreamer(ws.data.dir, ws.db, ['--http-port', String(port)]));
      expect(run.code, run.output).toBe(1);
      expect(run.output).toContain(`The HTTP server's address 127.0.0.1:${port} is in use (another streamer?): set --http-port / DROPSTREAM_HTTP_PORT`);
    } finally {
      squatter.close();
    }
  });
});

describe('logs in a terminal', () => {
  const ws = useWorkspace();

  it('pretty: one line per batch; its fields at LOG_LEVEL=debug and in JSON', async () => {
    await generate(ws.data.dir, { files: 2, rows: 50, seed: 86 });
    const pretty = await streamAvailableNow(ws.data.dir, ws.db, [], { LOG_FORMAT: 'pretty' });
    expect(pretty.code, pretty.output).toBe(0);
    const lines = pretty.output.split('\n');
    const at = lines.findIndex((l) => /INFO \(streamer\): batch 1: 2 files, 100 rows loaded, 0 rejected, 0 duplicate in \d+ ms$/.test(l));
    expect(at, pretty.output).toBeGreaterThanOrEqual(0);
    expect(lines[at + 1]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO/); // the next line is the next message
    expect(pretty.output).not.toContain('rowsLoaded');

    await generate(ws.data.dir, { files: 1, rows: 50, seed: 87 });
    const debug = await streamAvailableNow(ws.data.dir, ws.db, [], { LOG_FORMAT: 'pretty', LOG_LEVEL: 'debug' });
    expect(debug.code, debug.output).toBe(0);
    expect(debug.output).toMatch(/batch 2: 1 files, 50 rows loaded.*\n\s+batch: 2\n/);
    expect(debug.output).toMatch(/^\s+rowsLoaded: 50$/m);
  });
});
