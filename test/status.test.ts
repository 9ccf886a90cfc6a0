import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../streamer/src/db/migrate.ts';
import { readStatus, type StreamStatus } from '../streamer/src/status/readStatus.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { finished, generate, makeDataDir, spawnProgram, streamAvailableNow } from './support/pipeline.ts';

async function migrated(db: TestDatabase): Promise<void> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await migrate(client);
  } finally {
    await client.end();
  }
}

async function status(db: TestDatabase, dataDir: string): Promise<StreamStatus> {
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  try {
    return await readStatus({ db: pool, dataDir });
  } finally {
    await pool.end();
  }
}

/** The figures that do not depend on when they were read. */
function timeless(s: StreamStatus): unknown {
  return { ...s, at: undefined, pending: { ...s.pending, oldest: s.pending.oldest && { ...s.pending.oldest, ageMs: undefined } } };
}

// Another layout than the generator's: ; between columns, and a column kept in attributes.
const HANDMADE = [
  'event_id;user_id;event_type;product_id;price;quantity;event_time;channel',
  '0b6f1c9e-1d2a-4b3c-8d4e-5f6a7b8c9d01;user_1;purchase;SKU-1;10.00;2;2026-01-01T00:00:00Z;web',
  '0b6f1c9e-1d2a-4b3c-8d4e-5f6a7b8c9d02;user_2;view;SKU-2;5.50;1;2026-01-01T00:00:01Z;app',
  '0b6f1c9e-1d2a-4b3c-8d4e-5f6a7b8c9d03;user_3;view;SKU-3;NaN;1;2026-01-01T00:00:02Z;web',
].join('\n');
const FIELDS = ['event_id', 'user_id', 'event_type', 'product_id', 'price', 'quantity', 'event_time'];
const named = Object.fromEntries(FIELDS.map((f) => [f, f]));

describe('status: where the stream stands', () => {
  let db: TestDatabase;
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  /** Names dropped into input/ after the run: the pending files, with their sizes. */
  let late: Array<{ name: string; size: number; mtimeMs: number }>;
  let firstRun: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    data = await makeDataDir();
    await migrated(db);
    // 6 generated files of 50 rows, one file with a rejected row, one that is set aside: 8 files
    // in batches of at most 3 → batches 1, 2, 3 with 3, 3 and 2 files.
    await generate(data.dir, { files: 6, rows: 50, seed: 21 });
    await writeFile(join(data.input, 'handmade.csv'), `${HANDMADE}\n`);
    await writeFile(join(data.input, 'bad.csv'), 'event_id,user_id\nx,y\n');
    // Three files at once: the first batch meets the generator's layout three times concurrently.
    const run = await streamAvailableNow(data.dir, db, ['--max-files-per-batch', '3', '--file-concurrency', '3']);
    expect(run.code, run.output).toBe(0);
    firstRun = run.output;

    // Dropped after the run: two files pending, and names the streamer never reads.
    const before = new Set(await readdir(data.input));
    await generate(data.dir, { files: 2, rows: 30, seed: 22 });
    const names = (await readdir(data.input)).filter((n) => !before.has(n));
    late = await Promise.all(names.map(async (name) => ({ name, ...(await lstat(join(data.input, name))) })));
    await writeFile(join(data.input, '.hidden.csv'), 'not read');
    await writeFile(join(data.input, 'notes.txt'), 'not read');
    await writeFile(join(data.input, 'copying.csv.part'), 'not read');
    await symlink(join(data.input, 'handmade.csv'), join(data.input, 'link.csv'));
    await mkdir(join(data.input, 'folder.csv'));
  });
  afterAll(async () => {
    await db?.drop();
    await data?.remove();
  });

  it('reports exact figures: last batch, checkpoint agreement, pending files and bytes, set-aside files, totals', async () => {
    const s = await status(db, data.dir);
    expect(s.schema).toBe(true);
    expect(s.lastBatch).toMatchObject({ id: 3, files: 2 });
    expect(s.lastBatch!.finishedAt).not.toBeNull();
    expect(s.recentBatches.map((b) => [b.id, b.files])).toEqual([[3, 2], [2, 3], [1, 3]]);
    expect(s.recentBatches.reduce((n, b) => n + b.rowsLoaded, 0)).toBe(6 * 50 + 2);
    expect(s.recentBatches.reduce((n, b) => n + b.rowsRejected, 0)).toBe(1);
    expect(s.recentBatches.every((b) => b.rowsRead === b.rowsLoaded + b.rowsRejected + b.rowsDuplicate && b.durationMs! >= 0)).toBe(true);

    expect(s.checkpoint).toEqual({
      state: 'agrees',
      latestOffsetsId: 3,
      hasCommitRecord: true,
      plannedFiles: 2,
      finishedInDatabase: true,
      filesCommittedInDatabase: 2,
    });

    // Only the two generated files are pending: not processed files, hidden or temporary names,
    // other extensions, symbolic links or directories.
    expect(late).toHaveLength(2);
    expect(s.pending.count).toBe(2);
    expect(s.pending.bytes).toBe(late[0]!.size + late[1]!.size);
    const oldest = [...late].sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : 1))[0]!;
    expect(s.pending.oldest).toMatchObject({ name: oldest.name, mtime: new Date(oldest.mtimeMs).toISOString() });
    expect(s.pending.oldest!.ageMs).toBeGreaterThanOrEqual(0);
    expect(s.pending.oldest!.ageMs).toBeLessThan(120_000);

    expect(s.quarantine.total).toBe(1);
    expect(s.quarantine.filesInDirectory).toBe(1);
    expect(s.quarantine.entries).toEqual([{ name: 'bad.csv', reason: expect.stringMatching(/required columns missing/), at: expect.any(String), batchId: expect.any(Number), reloaded: false }]);

    expect(s.totals).toEqual({ events: 302, rejects: 1, batches: 3, files: { loaded: 7, empty: 0, duplicate: 0, quarantined: 1 } });

    // Each layout is announced once, by the transaction that recorded it.
    const announced = firstRun.split('\n').filter((l) => l.includes('"msg":"new layout #'));
    expect(announced.map((l) => JSON.parse(l).layoutId).sort()).toEqual(s.layouts.map((l) => l.id).sort());
    // The generator's layout for 6 files, the hand-made one for 1; the file set aside has none.
    expect(s.layouts).toEqual([
      {
        id: expect.any(Number),
        files: 6,
        firstFile: expect.stringMatching(/^events-.*\.csv$/),
        firstSeen: expect.any(String),
        layout: { delimiter: ',', fields: named, attributes: {}, ignored: [], defaults: {} },
      },
      {
        id: expect.any(Number),
        files: 1,
        firstFile: 'handmade.csv',
        firstSeen: expect.any(String),
        layout: { delimiter: ';', fields: named, attributes: { channel: 'channel' }, ignored: [], defaults: {} },
      },
    ]);
  });

  it('the CLI with --json prints the same figures as parseable JSON', async () => {
    const run = await finished(spawnProgram('scripts/status.ts', ['--data-dir', data.dir, '--json'], { DATABASE_URL: db.url }));
    expect(run.code, run.output).toBe(0);
    const printed = JSON.parse(run.output) as StreamStatus;
    expect(printed.pending).toMatchObject({ count: 2, bytes: late[0]!.size + late[1]!.size });
    expect(printed.lastBatch!.id).toBe(3);
    expect(printed.quarantine.entries.map((q) => q.name)).toEqual(['bad.csv']);
    expect(timeless(printed)).toEqual(timeless(await status(db, data.dir)));
  });

  it('the CLI prints aligned text: summary lines and a table of recent batches', async () => {
    const run = await finished(spawnProgram('scripts/status.ts', ['--data-dir', data.dir], { DATABASE_URL: db.url }));
    expect(run.code, run.output).toBe(0);
    const lines = run.output.split('\n');
    expect(run.output).toMatch(/^ {2}Last batch {2}#3, finished \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(.+ ago\): 2 files, \d+ rows loaded/m);
    expect(run.output).toMatch(/^ {2}Checkpoint {2}agrees: offsets\/3 has its commit record$/m);
    expect(run.output).toMatch(new RegExp(`^  Pending     2 files, .+ waiting in input/; the oldest is .+ old \\(${oldestName()}\\)$`, 'm'));
    expect(run.output).toMatch(/^ {2}Loaded {6}302 events, 1 row rejected$/m);
    // Recent batches: a header, a rule, then one line per batch, every column right-aligned under its header.
    const header = lines.findIndex((l) => l.trimStart().startsWith('batch  finished'));
    expect(header).toBeGreaterThan(0);
    const rows = lines.slice(header + 2, header + 5);
    expect(rows.map((r) => r.trim().split(/\s+/)[0])).toEqual(['3', '2', '1']);
    const filesEnd = lines[header]!.indexOf('files') + 'files'.length;
    for (const r of rows) expect(r.slice(0, filesEnd)).toMatch(/ [23]$/);
    expect(run.output).toMatch(/^ {2}bad\.csv +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d+ {2}required columns missing/m);
    // The layouts seen, the most used first, each in one line.
    const fields = FIELDS.join(', ');
    expect(run.output).toMatch(/^Layouts seen \(2, the most used first\)$/m);
    expect(run.output).toMatch(new RegExp(`^  #\\d+  6 files, first met in events-\\S+\\.csv: delimiter ','; fields ${fields}$`, 'm'));
    expect(run.output).toMatch(new RegExp(`^  #\\d+  1 file, first met in handmade\\.csv: delimiter ';'; fields ${fields}; attributes channel$`, 'm'));

    function oldestName(): string {
      return [...late].sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : 1))[0]!.name.replace(/[.]/g, '\\.');
    }
  });

  it('a batch cut short after the database commit shows as uncommitted, then agrees after the restart; a deleted checkpoint shows as behind', async () => {
    const crashed = await streamAvailableNow(data.dir, db, ['--max-files-per-batch', '3'], { DROPSTREAM_CRASH_AT: 'after-db-commit' });
    expect(crashed.signal, crashed.output).toBe('SIGKILL');
    let s = await status(db, data.dir);
    expect(s.checkpoint).toEqual({
      state: 'uncommitted',
      latestOffsetsId: 4,
      hasCommitRecord: false,
      plannedFiles: 2,
      finishedInDatabase: true,
      filesCommittedInDatabase: 2,
    });
    expect(s.lastBatch!.id).toBe(4);
    expect(s.pending).toMatchObject({ count: 0, bytes: 0, oldest: null });

    const resumed = await streamAvailableNow(data.dir, db, ['--max-files-per-batch', '3']);
    expect(resumed.code, resumed.output).toBe(0);
    s = await status(db, data.dir);
    expect(s.checkpoint).toMatchObject({ state: 'agrees', latestOffsetsId: 4, hasCommitRecord: true });
    expect(s.totals.events).toBe(302 + 60);

    await rm(join(data.dir, 'checkpoint'), { recursive: true });
    s = await status(db, data.dir);
    expect(s.checkpoint).toMatchObject({ state: 'behind', latestOffsetsId: null, hasCommitRecord: null });
  });
});

describe('status before the streamer ever ran', () => {
  it('a database without the schema: schema false, every accepted file in input/ pending', async () => {
    const db = await createTestDatabase();
    const data = await makeDataDir();
    try {
      await generate(data.dir, { files: 2, rows: 10, seed: 23 });
      const sizes = await Promise.all((await readdir(data.input)).map(async (n) => (await lstat(join(data.input, n))).size));
      const s = await status(db, data.dir);
      expect(s.schema).toBe(false);
      expect(s.lastBatch).toBeNull();
      expect(s.checkpoint.state).toBe('none');
      expect(s.pending).toMatchObject({ count: 2, bytes: sizes[0]! + sizes[1]!, inputExists: true });
      expect(s.totals.events).toBe(0);
    } finally {
      await db.drop();
      await data.remove();
    }
  });

  it('without DATABASE_URL and no embedded database yet, the CLI says so and creates nothing; a wrong flag exits 2', async () => {
    const data = await makeDataDir();
    try {
      const run = await finished(spawnProgram('scripts/status.ts', ['--data-dir', data.dir], { DATABASE_URL: '' }));
      expect(run.code, run.output).toBe(1);
      expect(run.output).toMatch(/No embedded PostgreSQL in .*postgres: the streamer has not run/);
      expect(existsSync(join(data.dir, 'postgres'))).toBe(false);

      const wrong = await finished(spawnProgram('scripts/status.ts', ['--data-dir', data.dir, '--bogus'], { DATABASE_URL: '' }));
      expect(wrong.code, wrong.output).toBe(2);
      expect(wrong.output).toMatch(/bogus/);
    } finally {
      await data.remove();
    }
  });
});
