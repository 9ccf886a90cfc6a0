import { describe, expect, it } from 'vitest';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { finished, makeDataDir, spawnProgram, startStreamer, streamAvailableNow, waitForOutput, type Run } from './support/pipeline.ts';
import { useWorkspace, type Workspace } from './support/workspace.ts';

const HEADER = 'event_id,user_id,event_type,product_id,price,quantity,event_time,note\n';
const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const at = (s: number) => `2026-05-01T10:00:${String(s).padStart(2, '0')}Z`;

/**
 * a.csv and b.csv: rows of an event type outside the built-in vocabulary (share), among them a
 * quoted field over two lines, ids derived from the content, defaults, a row that b.csv repeats
 * (duplicate), one whose id a.csv holds with other content (conflict), rows bad for other reasons
 * too, a NUL byte (stored altered: never read again) and a quote never closed. c.csv: enough share
 * rows to be read in several chunks.
 */
const FILES: Record<string, string> = {
  'a.csv':
    HEADER +
    `${id(1)},u1,view,p1,1.00,1,${at(0)},\n` +
    `${id(2)},u2,share,p2,,,${at(1)},\n` +
    `,u3,share,p3,2.50,2,${at(2)},"two\nlines"\n` +
    `${id(4)},u4,share,p4,-1,1,${at(3)},\n` +
    `${id(5)},u5,teleport,p5,1,1,${at(4)},\n` +
    `${id(6)},u6,share,p6,1,1,${at(5)},\0\n`,
  'b.csv':
    HEADER +
    `${id(2)},u2,share,p2,,,${at(1)},\n` +
    `,u3,share,p3,2.50,2,${at(2)},"two\nlines"\n` +
    `${id(1)},u1,share,p1,1.00,1,${at(0)},\n` +
    `${id(7)},u7,purchase,p7,3.00,1,${at(6)},\n` +
    `${id(8)},u8,share,p8,1,1,${at(7)},"never closed\n`,
  'c.csv': HEADER + Array.from({ length: 25_000 }, (_, i) => `${id(100_000 + i)},u${i},share,p${i % 50},1.50,1,${at(i % 60)},\n`).join(''),
};
const WIDENED = ['--event-types', '+share'];
/** One file at a time, in name order: which of two rows with one id comes first is then the same in every run. */
const SERIAL = ['--file-concurrency', '1'];

async function drop(input: string, files: Record<string, string>): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(input, name), content);
    await utimes(join(input, name), past, past);
  }
}

function replay(ws: Workspace, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return finished(spawnProgram('streamer/src/commands/replayRejects.ts', ['--data-dir', ws.data.dir, ...args], { DATABASE_URL: ws.db.url, ...env }));
}

async function rows<R extends Record<string, unknown>>(db: TestDatabase, sql: string): Promise<R[]> {
  return (await db.query<R>(sql)).rows;
}

/** What the tables hold, as loading the same files under the same settings would make them. */
async function content(db: TestDatabase) {
  return {
    rows: await rows(db, 'SELECT event_id, user_id, event_type, product_id, price, quantity, event_time, source_event_id, attributes, source_file, source_line, batch_id FROM user_activity ORDER BY source_file, source_line'),
    rejects: await rows(db, 'SELECT source_file, source_line, raw, reason, batch_id FROM user_activity_rejects ORDER BY source_file, source_line'),
    files: await rows(db, 'SELECT name, status, batch_id, rows_read, rows_loaded, rows_rejected, rows_duplicate, rows_defaulted, layout, header FROM ingest_files ORDER BY name'),
    batches: await rows(db, 'SELECT id, files, bytes, rows_read, rows_loaded, rows_rejected, rows_duplicate FROM ingest_batches ORDER BY id'),
  };
}

/** Every row as stored, with the transaction that wrote it (xmin): a row rewritten, even with the same values, shows. */
async function snapshot(db: TestDatabase) {
  return {
    rows: await rows(db, 'SELECT xmin::text, * FROM user_activity ORDER BY event_id'),
    rejects: await rows(db, 'SELECT xmin::text, * FROM user_activity_rejects ORDER BY id'),
    files: await rows(db, 'SELECT xmin::text, * FROM ingest_files ORDER BY id'),
    batches: await rows(db, 'SELECT xmin::text, * FROM ingest_batches ORDER BY id'),
  };
}

/** Each loaded file: rows_read = loaded + rejected + duplicate, and the tables hold what its counts say. */
async function expectLedgerTrue(db: TestDatabase): Promise<void> {
  const files = await rows<{ name: string; read: number; loaded: number; rejected: number; duplicate: number; stored: number; rejects: number }>(
    db,
    `SELECT f.name, f.rows_read::int AS read, f.rows_loaded::int AS loaded, f.rows_rejected::int AS rejected, f.rows_duplicate::int AS duplicate,
            (SELECT count(*)::int FROM user_activity u WHERE u.source_file = f.name AND u.batch_id = f.batch_id) AS stored,
            (SELECT count(*)::int FROM user_activity_rejects r WHERE r.source_file = f.name AND r.batch_id = f.batch_id) AS rejects
       FROM ingest_files f WHERE f.status = 'loaded' ORDER BY f.name`,
  );
  expect(files.length).toBeGreaterThan(0);
  for (const f of files) {
    expect(f.read, f.name).toBe(f.loaded + f.rejected + f.duplicate);
    expect(f.stored, f.name).toBe(f.loaded);
    expect(f.rejects, f.name).toBe(f.rejected);
  }
  const [batches] = await rows<{ off: string }>(
    db,
    `SELECT count(*) AS off FROM ingest_batches b
       JOIN (SELECT batch_id, sum(rows_loaded) AS l, sum(rows_rejected) AS r, sum(rows_duplicate) AS d FROM ingest_files GROUP BY batch_id) f ON f.batch_id = b.id
      WHERE (b.rows_loaded, b.rows_rejected, b.rows_duplicate) IS DISTINCT FROM (f.l, f.r, f.d)`,
  );
  expect(batches!.off, 'batches whose totals are not their files').toBe('0');
}

/** The line of each figure the replay printed: `<file> (batch n): …` and `total: …`. */
const lineOf = (run: Run, start: string) => run.output.split('\n').find((l) => l.startsWith(start));

describe('npm run replay-rejects', () => {
  const ws = useWorkspace({ input: true });

  async function loadThenWiden(): Promise<void> {
    await drop(ws.data.input, FILES);
    const load = await streamAvailableNow(ws.data.dir, ws.db, SERIAL);
    expect(load.code, load.output).toBe(0);
  }

  it('after a widened vocabulary, leaves the tables as loading with it from the start would have: each row once, duplicates and conflicts found, ledger true', async () => {
    await loadThenWiden();
    const before = await content(ws.db);
    expect(before.rejects).toHaveLength(5 + 4 + 25_000);

    const run = await replay(ws, WIDENED);
    expect(run.code, run.output).toBe(0);
    expect(lineOf(run, 'a.csv (batch 1)')).toBe('a.csv (batch 1): 4 replayed: 2 now loaded, 0 duplicate, 2 still rejected (1 with a new reason); 1 left as they are (their stored text is not the line as read)');
    expect(lineOf(run, 'b.csv (batch 1)')).toBe('b.csv (batch 1): 4 replayed: 0 now loaded, 2 duplicate, 2 still rejected (1 with a new reason)');
    expect(lineOf(run, 'c.csv (batch 1)')).toBe('c.csv (batch 1): 25000 replayed: 25000 now loaded, 0 duplicate, 0 still rejected (0 with a new reason)');
    expect(lineOf(run, 'total')).toBe('total: 25008 replayed: 25002 now loaded, 2 duplicate, 4 still rejected (2 with a new reason); 1 left as they are');

    // The same files loaded with the widened vocabulary from the start, elsewhere.
    const fresh = await createTestDatabase();
    const dir = await makeDataDir();
    try {
      await mkdir(dir.input);
      await drop(dir.input, FILES);
      const load = await streamAvailableNow(dir.dir, fresh, [...SERIAL, ...WIDENED]);
      expect(load.code, load.output).toBe(0);
      expect(await content(ws.db)).toEqual(await content(fresh));
    } finally {
      await fresh.drop();
      await dir.remove();
    }
    await expectLedgerTrue(ws.db);
  });

  it('run a second time, changes nothing: not a row written', async () => {
    await loadThenWiden();
    expect((await replay(ws, WIDENED)).code).toBe(0);
    const once = await snapshot(ws.db);
    const again = await replay(ws, WIDENED);
    expect(again.code, again.output).toBe(0);
    expect(lineOf(again, 'total')).toBe('total: 4 replayed: 0 now loaded, 0 duplicate, 4 still rejected (0 with a new reason); 1 left as they are');
    expect(await snapshot(ws.db)).toEqual(once);
  });

  it('--dry-run changes nothing, and tells the figures the replay then has', async () => {
    await loadThenWiden();
    const before = await snapshot(ws.db);
    const dry = await replay(ws, [...WIDENED, '--dry-run']);
    expect(dry.code, dry.output).toBe(0);
    expect(await snapshot(ws.db)).toEqual(before);
    expect(lineOf(dry, 'total')).toBe('total: 25008 replayed: 25002 would be loaded, 2 duplicate, 4 still rejected (2 with a new reason); 1 left as they are; nothing was changed');

    const real = await replay(ws, WIDENED);
    expect(lineOf(real, 'total')).toBe('total: 25008 replayed: 25002 now loaded, 2 duplicate, 4 still rejected (2 with a new reason); 1 left as they are');
  });

  it('--file and --reason pick the rows read again; the others are not touched', async () => {
    await drop(ws.data.input, { 'a.csv': FILES['a.csv']!, 'b.csv': FILES['b.csv']! });
    expect((await streamAvailableNow(ws.data.dir, ws.db, SERIAL)).code).toBe(0);
    const rejectsOf = async (file: string) => rows(ws.db, `SELECT xmin::text, * FROM user_activity_rejects WHERE source_file = '${file}' ORDER BY id`);
    const bBefore = await rejectsOf('b.csv');

    // Only a.csv, only its rows rejected for their event type: the negative price's row too (its type is checked first).
    const run = await replay(ws, [...WIDENED, '--file', 'a*', '--reason', "*'share' is not in the event vocabulary*"]);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain("3 rejected rows in 1 files match --file 'a*' --reason '*'share' is not in the event vocabulary*'");
    expect(lineOf(run, 'total')).toBe('total: 3 replayed: 2 now loaded, 0 duplicate, 1 still rejected (1 with a new reason)');
    expect(await rejectsOf('b.csv')).toEqual(bBefore);
    expect(await rows(ws.db, `SELECT source_line, reason FROM user_activity_rejects WHERE source_file = 'a.csv' ORDER BY source_line`)).toEqual([
      { source_line: '6', reason: "price '-1' is negative" },
      { source_line: '7', reason: expect.stringMatching(/^event_type 'teleport' is not in the event vocabulary/) },
      { source_line: '8', reason: 'line contains a NUL byte' },
    ]);

    // A pattern nothing matches: nothing to do.
    const none = await replay(ws, [...WIDENED, '--file', 'nothing-*.csv']);
    expect(none.code, none.output).toBe(0);
    expect(none.output).toContain("0 rejected rows in 0 files match --file 'nothing-*.csv'");
    await expectLedgerTrue(ws.db);
  });

  it('a row still bad keeps its row (id, time) with its new reason; a line stored altered (a NUL byte) is left as it is', async () => {
    await drop(ws.data.input, { 'a.csv': FILES['a.csv']! });
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    const before = await rows<{ id: string; source_line: string; reason: string; rejected_at: Date }>(ws.db, 'SELECT id, source_line, reason, rejected_at FROM user_activity_rejects ORDER BY id');

    // A vocabulary that replaces the built-in one: teleport's reason names it now.
    const run = await replay(ws, ['--event-types', 'view,purchase,share']);
    expect(run.code, run.output).toBe(0);
    const after = await rows<{ id: string; source_line: string; reason: string; rejected_at: Date }>(ws.db, 'SELECT id, source_line, reason, rejected_at FROM user_activity_rejects ORDER BY id');
    const kept = (line: string) => [before.find((r) => r.source_line === line), after.find((r) => r.source_line === line)];
    for (const [line, reason] of [
      ['6', "price '-1' is negative"],
      ['7', "event_type 'teleport' is not one of view, purchase, share: accept it with --event-types view,purchase,share,teleport, or name the type it stands for with --event-synonyms, e.g. purchase=teleport"],
    ] as const) {
      const [was, now] = kept(line);
      expect(now).toEqual({ ...was, reason });
      expect(was!.reason).not.toBe(reason);
    }
    expect(kept('8')[1]).toEqual(kept('8')[0]);
    expect(after.map((r) => r.source_line)).toEqual(['6', '7', '8']);
    await expectLedgerTrue(ws.db);
  });

  it('a replayed row whose id a later file stored is a duplicate with the same content, rejected as a conflict with other content', async () => {
    await drop(ws.data.input, { 'a.csv': FILES['a.csv']! });
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    // Loaded since, with share accepted: a.csv's row of id 2 as it is, and id 5 as another event.
    await writeFile(join(ws.data.input, 'later.csv'), HEADER + `${id(2)},u2,share,p2,,,${at(1)},\n` + `${id(5)},u5,view,p5,1,1,${at(4)},\n`);
    expect((await streamAvailableNow(ws.data.dir, ws.db, WIDENED)).code).toBe(0);

    const run = await replay(ws, ['--event-types', '+share,teleport']);
    expect(run.code, run.output).toBe(0);
    expect(lineOf(run, 'a.csv (batch 1)')).toBe('a.csv (batch 1): 4 replayed: 1 now loaded, 1 duplicate, 2 still rejected (2 with a new reason); 1 left as they are (their stored text is not the line as read)');
    expect(await rows(ws.db, `SELECT user_id, event_type, source_file FROM user_activity WHERE user_id IN ('u2', 'u3', 'u5') ORDER BY user_id`)).toEqual([
      { user_id: 'u2', event_type: 'share', source_file: 'later.csv' },
      { user_id: 'u3', event_type: 'share', source_file: 'a.csv' },
      { user_id: 'u5', event_type: 'view', source_file: 'later.csv' },
    ]);
    expect(await rows(ws.db, `SELECT reason FROM user_activity_rejects WHERE source_file = 'a.csv' AND source_line = 7`)).toEqual([
      { reason: `event_id ${id(5)} was already loaded with different content (from later.csv line 3)` },
    ]);
    await expectLedgerTrue(ws.db);
  });

  it('killed in the middle (one file committed, the next not), loses nothing: every row is in one of the two tables; run again, it finishes', async () => {
    const files = { 'a.csv': FILES['c.csv']!.split('\n').slice(0, 2001).join('\n') + '\n', 'b.csv': HEADER + FILES['c.csv']!.split('\n').slice(3001, 5001).join('\n') + '\n' };
    await drop(ws.data.input, files);
    expect((await streamAvailableNow(ws.data.dir, ws.db, ['--max-files-per-batch', '1'])).code).toBe(0);
    const lines = Array.from({ length: 2000 }, (_, i) => String(i + 2));
    /** Each file's data lines, in the table of rows and in the rejects: each line in exactly one. */
    const placed = async () => {
      const where = async (table: string, file: string) => (await rows<{ l: string }>(ws.db, `SELECT source_line AS l FROM ${table} WHERE source_file = '${file}' ORDER BY source_line`)).map((r) => r.l);
      const out: Record<string, { stored: number; rejected: number }> = {};
      for (const file of ['a.csv', 'b.csv']) {
        const stored = await where('user_activity', file);
        const rejected = await where('user_activity_rejects', file);
        expect([...stored, ...rejected].sort((x, y) => Number(x) - Number(y)), file).toEqual(lines);
        out[file] = { stored: stored.length, rejected: rejected.length };
      }
      return out;
    };
    expect(await placed()).toEqual({ 'a.csv': { stored: 0, rejected: 2000 }, 'b.csv': { stored: 0, rejected: 2000 } });

    const crashed = await replay(ws, WIDENED, { DROPSTREAM_CRASH_AT: 'before-replay-commit@2' });
    expect(crashed.signal, crashed.output).toBe('SIGKILL');
    expect(crashed.output).toContain('a.csv (batch 1): 2000 replayed: 2000 now loaded');
    expect(await placed()).toEqual({ 'a.csv': { stored: 2000, rejected: 0 }, 'b.csv': { stored: 0, rejected: 2000 } });
    await expectLedgerTrue(ws.db);

    // The lock of the killed replay does not stand in the way.
    const again = await replay(ws, WIDENED);
    expect(again.code, again.output).toBe(0);
    expect(lineOf(again, 'total')).toBe('total: 2000 replayed: 2000 now loaded, 0 duplicate, 0 still rejected (0 with a new reason)');
    expect(await placed()).toEqual({ 'a.csv': { stored: 2000, rejected: 0 }, 'b.csv': { stored: 2000, rejected: 0 } });
    await expectLedgerTrue(ws.db);
  });

  it('refuses to run beside a streamer of the data directory, changing nothing', async () => {
    await loadThenWiden();
    const streamer = startStreamer(ws.data.dir, ws.db);
    await waitForOutput(streamer, 'watching for files');
    const before = await snapshot(ws.db);
    const run = await replay(ws, WIDENED);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain(`replay-rejects needs the data directory to itself. Another streamer is already running on data directory ${ws.data.dir}: pid ${streamer.pid}`);
    expect(await snapshot(ws.db)).toEqual(before);
    streamer.kill('SIGTERM');
    expect((await finished(streamer)).code).toBe(0);
  });

  it('leaves the rows of a file whose header reads otherwise with these settings as they are, saying why', async () => {
    await writeFile(join(ws.data.input, 'when.csv'), `user_id,event_type,when,channel\nu1,view,${at(0)},web\nu2,share,${at(1)},app\n`);
    expect((await streamAvailableNow(ws.data.dir, ws.db, ['--column-aliases', 'event_time=when'])).code).toBe(0);
    const before = await snapshot(ws.db);

    const without = await replay(ws, WIDENED);
    expect(without.code, without.output).toBe(0);
    expect(lineOf(without, 'when.csv (batch 1)')).toBe(
      `when.csv (batch 1): 0 replayed: 0 now loaded, 0 duplicate, 0 still rejected (0 with a new reason); 1 left as they are (its header cannot be read with these settings: required column missing from the header: event_time (header "user_id,event_type,when,channel", split on ','))`,
    );
    expect(await snapshot(ws.db)).toEqual(before);

    const otherwise = await replay(ws, [...WIDENED, '--column-aliases', 'event_time=when', '--extra-columns', 'ignore']);
    expect(lineOf(otherwise, 'when.csv (batch 1)')).toMatch(/1 left as they are \(its header reads otherwise with these settings \(.*; ignored channel; .*\) than when it was loaded \(.*; attributes channel; .*\): give the column settings it was loaded with\)$/);
    expect(await snapshot(ws.db)).toEqual(before);

    const withIt = await replay(ws, [...WIDENED, '--column-aliases', 'event_time=when']);
    expect(lineOf(withIt, 'total')).toBe('total: 1 replayed: 1 now loaded, 0 duplicate, 0 still rejected (0 with a new reason)');
    await expectLedgerTrue(ws.db);
  });
});
