import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, mkdtemp, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_ALIASES } from '../streamer/src/reader/contract/columns.ts';
import { BUILT_IN_VOCABULARY } from '../streamer/src/reader/contract/vocabulary.ts';
import { FileChangedError, FileReader, type ReadRules } from '../streamer/src/reader/fileReader.ts';
import { RejectSpool } from '../streamer/src/reader/rejectSpool.ts';
import { accountingViolations } from './fixtures/checks.ts';
import { finished, startStreamer } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

const HEADER = 'event_id,user_id,event_type,product_id,price,quantity,event_time\n';
const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const row = (i: number) => `${id(i)},user_${i % 1000},${i % 5 ? 'view' : 'purchase'},SKU-${i % 500},${i % 300}.99,${(i % 4) + 1},2026-05-01T10:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}Z\n`;
const rows = (from: number, to: number) => {
  let text = '';
  for (let i = from; i < to; i++) text += row(i);
  return text;
};

interface LedgerRow {
  status: string;
  reason: string | null;
  rows_read: number;
  rows_loaded: number;
  rows_rejected: number;
  rows_duplicate: number;
  started_ms: number;
}

describe('files dropped by hand while the streamer runs', () => {
  const ws = useWorkspace({ input: true });
  let streamer: ReturnType<typeof startStreamer> | undefined;
  // Runs before the workspace's own clean-up (after-hooks run in reverse order).
  afterEach(async () => {
    if (streamer && streamer.exitCode === null && streamer.signalCode === null) {
      streamer.kill('SIGKILL');
      await finished(streamer);
    }
    streamer = undefined;
  });

  async function start(args: string[]) {
    streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100', ...args]);
    const deadline = Date.now() + 30_000;
    while (!streamer.output().includes('watching for files')) {
      if (streamer.exitCode !== null || Date.now() > deadline) throw new Error(`the streamer did not start:\n${streamer.output()}`);
      await sleep(50);
    }
    return streamer;
  }

  /** The file's ledger rows; `started_ms` is when its transaction began (now() is the transaction's start). */
  async function ledger(name: string): Promise<LedgerRow[]> {
    const { rows } = await ws.db.query<LedgerRow>(
      `SELECT status, reason, rows_read::int, rows_loaded::int, rows_rejected::int, rows_duplicate::int,
              (extract(epoch FROM committed_at) * 1000)::float8 AS started_ms
         FROM ingest_files WHERE name = $1 ORDER BY id`,
      [name],
    );
    return rows;
  }

  async function waitForLedger(name: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await ledger(name)).length === 0) {
      if (Date.now() > deadline) throw new Error(`no ingest_files row for ${name} after ${timeoutMs} ms:\n${streamer?.output()}`);
      await sleep(100);
    }
  }

  async function stop() {
    streamer!.kill('SIGTERM');
    const run = await finished(streamer!);
    expect(run.code, run.output).toBe(0);
    return run.output;
  }

  async function stored(name: string) {
    const { rows } = await ws.db.query<{ n: number; rejects: number }>(
      `SELECT (SELECT count(*)::int FROM user_activity WHERE source_file = $1) AS n,
              (SELECT count(*)::int FROM user_activity_rejects WHERE source_file = $1) AS rejects`,
      [name],
    );
    return rows[0]!;
  }

  it.each([
    ['watching for file events', []],
    ['polling (--poll)', ['--poll']],
  ])('%s: a file that grows for 1.5 s is read once, whole, once it has stopped growing for --file-stable-ms', async (_mode, extra) => {
    await start(['--file-stable-ms', '1000', ...extra]);
    const path = join(ws.data.input, 'growing.csv');
    const step = 300;
    await writeFile(path, HEADER + rows(0, step));
    for (let i = 1; i <= 5; i++) {
      await sleep(300);
      await appendFile(path, rows(i * step, (i + 1) * step));
    }
    const lastWrite = (await stat(path)).mtimeMs;
    await waitForLedger('growing.csv', 20_000);
    await sleep(1500); // time for a second, wrong, look at it
    const output = await stop();

    const total = 6 * step;
    const files = await ledger('growing.csv');
    expect(files.map(({ started_ms: _, ...f }) => f)).toEqual([
      { status: 'loaded', reason: null, rows_read: total, rows_loaded: total, rows_rejected: 0, rows_duplicate: 0 },
    ]);
    // Read only after a full --file-stable-ms without change (10 ms for clock rounding).
    expect(files[0]!.started_ms - lastWrite).toBeGreaterThanOrEqual(1000 - 10);
    expect(await stored('growing.csv')).toEqual({ n: total, rejects: 0 });
    expect(output).not.toContain('changed while it was read');
    expect(output).not.toContain('a processed file was changed');
    expect(await accountingViolations(ws.db)).toEqual([]);
  });

  it('a large file copied the way cp does (the first half, a 200 ms pause, the rest) is not read half-written', async () => {
    const total = 100_000;
    const content = Buffer.from(HEADER + rows(0, total));
    await start(['--file-stable-ms', '500']);
    const path = join(ws.data.input, 'copied.csv');
    const file = await open(path, 'w');
    // The cut falls inside a row, as a block-wise copy's would.
    const half = Math.floor(content.length / 2) + 7;
    await file.write(content, 0, half, 0);
    await sleep(200);
    await file.write(content, half, content.length - half, half);
    await file.close();
    await waitForLedger('copied.csv', 60_000);
    await sleep(1000);
    const output = await stop();

    expect((await ledger('copied.csv')).map(({ started_ms: _, ...f }) => f)).toEqual([
      { status: 'loaded', reason: null, rows_read: total, rows_loaded: total, rows_rejected: 0, rows_duplicate: 0 },
    ]);
    expect(await stored('copied.csv')).toEqual({ n: total, rejects: 0 });
    // Not read during the pause at all (the end-of-read check would catch that, but should not have to).
    expect(output).not.toContain('changed while it was read');
    expect(output).not.toContain('a processed file was changed');
  });

  it('a file appended to while its COPY runs is rolled back and read again, whole, later', async () => {
    const total = 300_000;
    const temp = join(ws.data.dir, 'appended.csv.tmp');
    await writeFile(temp, HEADER + rows(0, total));
    await start(['--file-stable-ms', '0']);
    const path = join(ws.data.input, 'appended.csv');
    await rename(temp, path);
    // Wait for its COPY to be running, then add rows.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows: active } = await ws.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'COPY user_activity %'`,
      );
      if (active[0]!.n > 0) break;
      if (Date.now() > deadline || (await ledger('appended.csv')).length > 0) throw new Error(`never saw the COPY running:\n${streamer?.output()}`);
      await sleep(20);
    }
    await appendFile(path, rows(total, total + 1000));
    await waitForLedger('appended.csv', 60_000);
    await sleep(1000);
    const output = await stop();

    expect(output).toContain('changed while it was read');
    expect((await ledger('appended.csv')).map(({ started_ms: _, ...f }) => f)).toEqual([
      { status: 'loaded', reason: null, rows_read: total + 1000, rows_loaded: total + 1000, rows_rejected: 0, rows_duplicate: 0 },
    ]);
    expect(await stored('appended.csv')).toEqual({ n: total + 1000, rejects: 0 });
  });

  it('an empty file waits at least 2 s before it is recorded as empty; one written a second after it was created is loaded', async () => {
    await start(['--file-stable-ms', '300']);
    const created = Date.now();
    await writeFile(join(ws.data.input, 'stays-empty.csv'), '');
    await writeFile(join(ws.data.input, 'filled-later.csv'), '');
    await sleep(1000);
    await writeFile(join(ws.data.input, 'filled-later.csv'), HEADER + rows(0, 10));
    await sleep(700);
    // 1.7 s after creation: far past --file-stable-ms, not yet 2 s.
    expect(await ledger('stays-empty.csv')).toEqual([]);
    await waitForLedger('stays-empty.csv', 10_000);
    await waitForLedger('filled-later.csv', 10_000);
    await stop();

    const empty = await ledger('stays-empty.csv');
    expect(empty.map(({ started_ms: _, ...f }) => f)).toEqual([
      { status: 'empty', reason: 'the file holds no header and no rows', rows_read: 0, rows_loaded: 0, rows_rejected: 0, rows_duplicate: 0 },
    ]);
    expect(empty[0]!.started_ms - created).toBeGreaterThanOrEqual(2000 - 10);
    expect((await ledger('filled-later.csv')).map(({ started_ms: _, ...f }) => f)).toEqual([
      { status: 'loaded', reason: null, rows_read: 10, rows_loaded: 10, rows_rejected: 0, rows_duplicate: 0 },
    ]);
    expect(await stored('filled-later.csv')).toEqual({ n: 10, rejects: 0 });
  });
});

describe('a file that changes while it is read (in-process)', () => {
  const rules: ReadRules = { vocabulary: BUILT_IN_VOCABULARY, aliases: DEFAULT_ALIASES, attributes: true, defaultOffset: '+00:00', namedTimeZone: undefined };
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dropstream-changing-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Reads a 4 MB file, calling `change` once the first piece of COPY data is out; returns what the read ended with. */
  async function readWhileChanging(name: string, change: (path: string) => Promise<void>): Promise<unknown> {
    const path = join(dir, name);
    await writeFile(path, HEADER + rows(0, 40_000));
    const st = await stat(path);
    await sleep(20); // the change gets another mtime
    const spool = new RejectSpool();
    const reader = new FileReader({ name, path, size: st.size, mtimeMs: st.mtimeMs }, 1, rules, spool);
    let pieces = 0;
    try {
      for await (const _ of reader.copyData()) {
        if (pieces++ === 0) await change(path);
      }
      return 'read to the end';
    } catch (err) {
      return err;
    } finally {
      await spool.dispose();
    }
  }

  it('rows appended during the read: FileChangedError', async () => {
    const outcome = await readWhileChanging('appended.csv', (path) => appendFile(path, rows(40_000, 40_100)));
    expect(outcome).toBeInstanceOf(FileChangedError);
  });

  it('bytes rewritten in place, same size, during the read: FileChangedError', async () => {
    const outcome = await readWhileChanging('rewritten.csv', async (path) => {
      const file = await open(path, 'r+');
      await file.write(Buffer.from('9'), 0, 1, HEADER.length + 40); // a digit of the first row's event_id
      await file.close();
    });
    expect(outcome).toBeInstanceOf(FileChangedError);
  });

  it('truncated during the read: FileChangedError', async () => {
    const outcome = await readWhileChanging('truncated.csv', async (path) => {
      const file = await open(path, 'r+');
      await file.truncate(1000);
      await file.close();
    });
    expect(outcome).toBeInstanceOf(FileChangedError);
  });
});
