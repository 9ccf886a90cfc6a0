import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { logProgress } from '../streamer/src/observe/logProgress.ts';
import { buildProgress } from '../streamer/src/observe/progress.ts';
import { StreamState } from '../streamer/src/observe/streamState.ts';
import { EventTimes } from '../streamer/src/reader/eventTimes.ts';
import type { FileResult } from '../streamer/src/sink/ledger.ts';
import type { Backlog } from '../streamer/src/source/fileSource.ts';

/** A stream whose source's backlog the test sets, and the lines its log view writes. */
function stream() {
  let backlog: Backlog = { files: 0, bytes: 0, oldest: undefined };
  const state = new StreamState('continuous');
  state.resume({ id: '00000000-0000-4000-8000-000000000001', lastProgress: null, lastSuccess: null });
  state.attach({ backlog: () => backlog, watching: true }, new AbortController().signal);
  const lines: Array<Record<string, unknown>> = [];
  logProgress(state, pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) }));
  let id = 0;
  /** One batch of one file of 100 rows, after which `waiting` files of 1 kB are left. */
  const batch = (waiting: number) => {
    backlog = { files: waiting, bytes: waiting * 1000, oldest: waiting ? { name: 'old.csv', mtimeMs: Date.now() - 5000 } : undefined };
    const file = { name: `f${++id}.csv`, path: '', size: 1000, mtimeMs: Date.now() - 100 };
    const result: FileResult = { name: file.name, status: 'loaded', bytes: 1000, rowsRead: 100, rowsLoaded: 100, rowsRejected: 0, rowsDuplicate: 0 };
    const totals = { files: 1, bytes: 1000, rowsRead: 100, rowsLoaded: 100, rowsRejected: 0, rowsDuplicate: 0 };
    state.batchFinished(
      buildProgress({
        id: state.id!,
        runId: state.runId,
        inputDir: '/in',
        batch: { id, plannedAt: new Date().toISOString(), files: [file] },
        replay: false,
        totals,
        results: new Map([[file.name, result]]),
        startedAt: Date.now() - 50,
        previousStartedAt: undefined,
        phases: { addBatch: 40 },
        triggerMs: 50,
        committedAt: new Map([[file.name, Date.now()]]),
        backlog: state.backlog(),
      }),
    );
  };
  const warnings = () => lines.filter((l) => l.level === 40);
  return { state, lines, batch, warnings };
}

describe('StreamState: a growing backlog', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-05-01T10:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const tenSecondsLater = () => vi.setSystemTime(Date.now() + 10_000);

  it('is reported after 3 batches in a row left more files waiting, with the rates of arrival and loading, and warned of once a minute', () => {
    const s = stream();
    for (const waiting of [0, 2, 4]) {
      s.batch(waiting);
      tenSecondsLater();
    }
    expect(s.state.backlogGrowth()).toBeNull(); // two rises
    s.batch(6);
    // Over the last 3 batches (30 s): 3 files loaded, and 6 more waiting than before: 9 arrived.
    expect(s.state.backlogGrowth()).toEqual({ batches: 3, seconds: 30, filesArrivingPerSecond: 0.3, filesLoadedPerSecond: 0.1, rowsLoadedPerSecond: 10 });
    expect(s.state.snapshot().backlogGrowth).toEqual(s.state.backlogGrowth());
    expect(s.warnings().map((w) => w.msg)).toEqual([
      'the backlog has grown over the last 3 batches, to 6 files (5.9 KB): files arrive at 0.3/s and are loaded at 0.1/s (10 rows/s); ' +
        'processing is slower than input (more --file-concurrency, larger --max-files-per-batch, or a faster database)',
    ]);

    tenSecondsLater();
    s.batch(8); // still growing, 10 s after the warning: not said again
    expect(s.state.backlogGrowth()!.batches).toBe(4);
    expect(s.warnings()).toHaveLength(1);
    vi.setSystemTime(Date.now() + 60_000);
    s.batch(9); // a minute on: said again
    expect(s.warnings()).toHaveLength(2);

    tenSecondsLater();
    s.batch(9); // no longer growing
    expect(s.state.backlogGrowth()).toBeNull();
    for (const waiting of [10, 11, 12]) {
      tenSecondsLater();
      s.batch(waiting);
    }
    expect(s.warnings()).toHaveLength(3); // a new episode is warned of at once
  });

  it('a steady backlog, or one that shrinks, is no warning', () => {
    const s = stream();
    for (const waiting of [5, 5, 6, 6, 7, 3, 4, 5]) {
      s.batch(waiting);
      tenSecondsLater();
    }
    expect(s.state.backlogGrowth()).toBeNull();
    expect(s.warnings()).toEqual([]);
    // Every batch still gets its one line, waiting files in the message.
    expect(s.lines.filter((l) => l.level === 30).map((l) => l.msg)).toHaveLength(8);
    expect(s.lines.at(-1)!.msg).toBe('batch 8: 1 files, 100 rows loaded, 0 rejected, 0 duplicate in 50 ms; 5 files (4.9 KB) waiting');
    expect(s.state.sinceStart).toMatchObject({ batches: 8, rows: { loaded: 800, rejected: 0, duplicate: 0 } });
  });
});

describe('EventTimes', () => {
  it('merges the times of several files: min, max and the mean of all rows', () => {
    const a = new EventTimes();
    const b = new EventTimes();
    for (const t of [100, 200, 300]) a.add(8e8 + t);
    b.add(8e8 + 1000);
    const all = new EventTimes();
    all.merge(new EventTimes());
    all.merge(a);
    all.merge(b);
    expect([all.count, all.min, all.max, all.mean]).toEqual([4, 8e8 + 100, 8e8 + 1000, 8e8 + 400]);
  });
});
