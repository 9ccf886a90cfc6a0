import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { isUnchanged } from '../streamer/src/source/fileVersion.ts';
import { readStatus } from '../streamer/src/status/readStatus.ts';
import { inputName } from '../streamer/src/source/inputName.ts';
import { finished, startStreamer, streamAvailableNow, waitForOutput } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

const HEADER = 'event_id,user_id,event_type,product_id,price,quantity,event_time\n';
const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
/** Rows from..to-1 of a daily export; the same i is the same event in every file. */
const rows = (from: number, to: number) => {
  let text = HEADER;
  for (let i = from; i < to; i++) text += `${id(i)},user_${i % 7},${i % 3 ? 'view' : 'purchase'},SKU-${i % 5},${i}.50,1,2026-05-01T10:00:${String(i % 60).padStart(2, '0')}Z\n`;
  return text;
};
/** The same without event_id: rows are identified by their content. */
const rowsWithoutIds = (from: number, to: number) =>
  rows(from, to)
    .split('\n')
    .map((line) => line.slice(line.indexOf(',') + 1))
    .join('\n');

interface Version {
  name: string;
  status: string;
  version: number | null;
  rows_loaded: number;
  rows_duplicate: number;
}

describe('a file is its content; a name is only where it was found', () => {
  // A streamer a test leaves running is killed by the workspace after it.
  const ws = useWorkspace({ input: true });
  let streamer: ReturnType<typeof startStreamer> | undefined;

  const versions = async (name?: string) =>
    (
      await ws.db.query<Version>(
        `SELECT name, status, version, rows_loaded::int, rows_duplicate::int FROM ingest_files ${name ? 'WHERE name = $1' : ''} ORDER BY name, id`,
        name ? [name] : [],
      )
    ).rows;
  const count = async (sql: string) => Number((await ws.db.query<{ n: string }>(sql)).rows[0]!.n);
  const eventIds = async () => (await ws.db.query<{ event_id: string }>('SELECT event_id FROM user_activity ORDER BY event_id')).rows.map((r) => r.event_id);

  async function start(args: string[] = []) {
    streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100', ...args]);
    await waitForOutput(streamer, 'watching for files');
    return streamer;
  }

  async function waitForVersions(name: string, n: number): Promise<Version[]> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const v = await versions(name);
      if (v.length >= n) return v;
      if (Date.now() > deadline) throw new Error(`${name}: ${v.length} versions, not ${n}:\n${streamer?.output()}`);
      await sleep(100);
    }
  }

  it('a daily export copied over its name while the streamer runs: each version is loaded, shared rows stored once, the user told once', async () => {
    const s = await start();
    await writeFile(join(ws.data.input, 'daily.csv'), rows(0, 10));
    await waitForVersions('daily.csv', 1);
    // The next day's export: yesterday's rows and new ones, written in place as cp does.
    await writeFile(join(ws.data.input, 'daily.csv'), rows(5, 20));
    const v = await waitForVersions('daily.csv', 2);
    expect(v.map((r) => [r.status, r.version, r.rows_loaded, r.rows_duplicate])).toEqual([
      ['loaded', 1, 10, 0],
      ['loaded', 2, 10, 5],
    ]);
    expect(await eventIds()).toEqual(Array.from({ length: 20 }, (_, i) => id(i)));
    await waitForOutput(s, 'daily.csv came back with new content; loaded as version 2: 10 new rows, 5 already stored');
    expect(s.output().split('came back with new content').length - 1, 'said once').toBe(1);
  });

  it('renamed over the old name with mv (the atomic hand-off): loaded as a new version; a file that only grew loads its new rows', async () => {
    await start();
    await writeFile(join(ws.data.input, 'export.csv'), rowsWithoutIds(0, 10));
    await waitForVersions('export.csv', 1);
    await mkdir(join(ws.data.dir, 'temp'));
    await writeFile(join(ws.data.dir, 'temp', 'export.csv'), rowsWithoutIds(0, 25));
    await rename(join(ws.data.dir, 'temp', 'export.csv'), join(ws.data.input, 'export.csv'));
    const v = await waitForVersions('export.csv', 2);
    expect(v.map((r) => [r.version, r.rows_loaded, r.rows_duplicate])).toEqual([
      [1, 10, 0],
      [2, 15, 10],
    ]);
    expect(await count('SELECT count(*) AS n FROM user_activity')).toBe(25);
  });

  it('replaced while the streamer was stopped: found at the next start, even among processed files, and loaded', async () => {
    for (let f = 0; f < 50; f++) await writeFile(join(ws.data.input, `old-${f}.csv`), rows(1000 + f * 2, 1002 + f * 2));
    await writeFile(join(ws.data.input, 'daily.csv'), rows(0, 10));
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    await writeFile(join(ws.data.input, 'daily.csv'), rows(10, 15));
    const client = new pg.Client({ connectionString: ws.db.url });
    await client.connect();
    const { pending } = await readStatus({ db: client, dataDir: ws.data.dir }).finally(() => client.end());
    expect(pending, 'npm run status counts the new version as pending').toMatchObject({ count: 1, bytes: rows(10, 15).length });
    const second = await streamAvailableNow(ws.data.dir, ws.db);
    expect(second.code, second.output).toBe(0);
    expect((await versions('daily.csv')).map((r) => [r.version, r.rows_loaded])).toEqual([
      [1, 10],
      [2, 5],
    ]);
    // Nothing else was read again: the other 50 files are still their first version.
    expect(await count(`SELECT count(*) AS n FROM ingest_files WHERE name LIKE 'old-%' AND version = 1`)).toBe(50);
    expect(await count('SELECT count(*) AS n FROM ingest_files')).toBe(52);
    // The same again, with a streamer that keeps running: its background check finds it.
    await writeFile(join(ws.data.input, 'daily.csv'), rows(15, 18));
    await start();
    expect((await waitForVersions('daily.csv', 3)).at(-1)).toMatchObject({ version: 3, rows_loaded: 3 });
  });

  it('replaced between a crash and the replay of its batch: the batch counts only the files it recorded, the new version loads in the next', async () => {
    await writeFile(join(ws.data.input, 'a.csv'), rows(0, 4));
    await writeFile(join(ws.data.input, 'b.csv'), rows(4, 8));
    const crashed = await streamAvailableNow(ws.data.dir, ws.db, [], { DROPSTREAM_CRASH_AT: 'after-offsets' });
    expect(crashed.signal, crashed.output).toBe('SIGKILL');
    await writeFile(join(ws.data.input, 'b.csv'), rows(4, 12)); // it grew, written in place
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);
    const batches = await ws.db.query<{ id: string; files: number; bytes: string; rows_loaded: string }>('SELECT id, files, bytes, rows_loaded FROM ingest_batches ORDER BY id');
    expect(batches.rows.map((b) => [Number(b.id), b.files, Number(b.bytes), Number(b.rows_loaded)])).toEqual([
      [1, 1, rows(0, 4).length, 4],
      [2, 1, rows(4, 12).length, 8],
    ]);
    expect((await versions()).map((r) => [r.name, r.version, r.rows_loaded])).toEqual([
      ['a.csv', 1, 4],
      ['b.csv', 1, 8],
    ]);
  });

  it('--clean-source delete at start deletes only a file that is still the committed version; a new version under the name is loaded first', async () => {
    await writeFile(join(ws.data.input, 'a.csv'), rows(0, 4));
    await writeFile(join(ws.data.input, 'b.csv'), rows(4, 8));
    // Both committed, the process dies before --clean-source deletes them.
    const crashed = await streamAvailableNow(ws.data.dir, ws.db, ['--clean-source', 'delete'], { DROPSTREAM_CRASH_AT: 'after-db-commit' });
    expect(crashed.signal).toBe('SIGKILL');
    // Meanwhile b.csv is exported again with other content.
    await writeFile(join(ws.data.input, 'b.csv'), rows(8, 11));
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--clean-source', 'delete']);
    expect(run.code, run.output).toBe(0);
    expect(await readdir(ws.data.input)).toEqual([]);
    expect((await versions()).map((r) => [r.name, r.version, r.rows_loaded])).toEqual([
      ['a.csv', 1, 4],
      ['b.csv', 1, 4],
      ['b.csv', 2, 3],
    ]);
    expect(await eventIds()).toEqual(Array.from({ length: 11 }, (_, i) => id(i)));
  });

  it('a file rewritten or renamed over after it was read is no longer the version that was committed', async () => {
    const path = join(ws.data.input, 'x.csv');
    await writeFile(path, rows(0, 3));
    const read = { ...inputName(Buffer.from('x.csv')), path, ...(await stat(path).then((s) => ({ size: s.size, mtimeMs: s.mtimeMs, ino: s.ino }))) };
    expect(await isUnchanged(read)).toBe(true);
    // Same size and mtime, another inode: what `mv` of a same-size export with a preserved mtime leaves.
    await writeFile(`${path}.new`, rows(3, 6));
    execFileSync('touch', ['-r', path, `${path}.new`]);
    await rename(`${path}.new`, path);
    expect((await stat(path)).size).toBe(read.size);
    expect(await isUnchanged(read)).toBe(false);
    await rm(path);
    expect(await isUnchanged(read)).toBe(false);
  });

  it('a zero-byte file left by a failing cp does not block the complete file copied later under its name', async () => {
    await start(['--file-stable-ms', '0']);
    await writeFile(join(ws.data.input, 'torn.csv'), '');
    await waitForVersions('torn.csv', 1);
    await writeFile(join(ws.data.input, 'torn.csv'), rows(0, 6));
    expect((await waitForVersions('torn.csv', 2)).map((r) => [r.status, r.version, r.rows_loaded])).toEqual([
      ['empty', 1, 0],
      ['loaded', 2, 6],
    ]);
  });

  it('the same content under its name again (touched, copied back) is a duplicate version, not loaded twice', async () => {
    await start();
    await writeFile(join(ws.data.input, 'same.csv'), rows(0, 5));
    await waitForVersions('same.csv', 1);
    await sleep(20);
    await writeFile(join(ws.data.input, 'same.csv'), rows(0, 5)); // new mtime, same bytes
    const v = await waitForVersions('same.csv', 2);
    expect(v.map((r) => [r.status, r.version])).toEqual([
      ['loaded', 1],
      ['duplicate', 2],
    ]);
    expect(await count('SELECT count(*) AS n FROM user_activity')).toBe(5);
  });
});

describe('file names are bytes', () => {
  const ws = useWorkspace({ input: true });
  // café.csv as Latin-1 (SMB shares, Windows tools): not valid UTF-8.
  const latin1 = (name: string) => Buffer.from(name, 'latin1');
  const bytePath = (dir: string, name: string) => Buffer.concat([Buffer.from(`${dir}/`), latin1(name)]);

  it('a name that is not UTF-8 is loaded, at start and while running, and stored in a readable escaped form', async () => {
    await writeFile(bytePath(ws.data.input, 'café.csv'), rows(0, 3));
    const s = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100']);
    try {
      await waitForOutput(s, '"batch":1,');
      await writeFile(bytePath(ws.data.input, 'naïve.csv'), rows(3, 5));
      await waitForOutput(s, '"batch":2,');
    } finally {
      s.kill('SIGTERM');
      await finished(s);
    }
    const { rows: ledger } = await ws.db.query<{ name: string; status: string; rows_loaded: number }>('SELECT name, status, rows_loaded::int FROM ingest_files ORDER BY id');
    expect(ledger).toEqual([
      { name: 'caf\\xE9.csv', status: 'loaded', rows_loaded: 3 },
      { name: 'na\\xEFve.csv', status: 'loaded', rows_loaded: 2 },
    ]);
    const { rows: sources } = await ws.db.query<{ source_file: string; n: string }>('SELECT source_file, count(*) AS n FROM user_activity GROUP BY 1 ORDER BY 1');
    expect(sources).toEqual([
      { source_file: 'caf\\xE9.csv', n: '3' },
      { source_file: 'na\\xEFve.csv', n: '2' },
    ]);
  });

  it('one with bad content is set aside under its readable name; with --clean-source archive a good one is archived', async () => {
    await writeFile(bytePath(ws.data.input, 'bad-é.csv'), 'foo,bar\n1,2\n');
    await writeFile(bytePath(ws.data.input, 'good-é.csv'), rows(0, 2));
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--clean-source', 'archive']);
    expect(run.code, run.output).toBe(0);
    expect(await readdir(ws.data.input)).toEqual([]);
    expect((await readdir(join(ws.data.dir, 'quarantine'))).sort()).toEqual(['bad-\\xE9.csv', 'bad-\\xE9.csv.reason']);
    expect(await readdir(join(ws.data.dir, 'archive'))).toEqual(['good-\\xE9.csv']);
    const { rows: ledger } = await ws.db.query<{ name: string; status: string }>('SELECT name, status FROM ingest_files ORDER BY name');
    expect(ledger).toEqual([
      { name: 'bad-\\xE9.csv', status: 'quarantined' },
      { name: 'good-\\xE9.csv', status: 'loaded' },
    ]);
  });

  it('the readable form keeps valid UTF-8 and escapes only the bytes that are not', () => {
    expect(inputName(Buffer.from('día-1.csv'))).toEqual({ name: 'día-1.csv' });
    const mixed = Buffer.concat([Buffer.from('día-'), Buffer.from([0xe9, 0xff]), Buffer.from('.csv')]);
    expect(inputName(mixed)).toEqual({ name: 'día-\\xE9\\xFF.csv', bytes: mixed.toString('base64') });
  });
});

describe('the watcher heals itself', () => {
  const ws = useWorkspace({ input: true });

  it('input/ deleted and recreated while the streamer runs (default watcher): files dropped into the new one are loaded', async () => {
    const s = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100']);
    try {
      await waitForOutput(s, 'watching for files');
      await writeFile(join(ws.data.input, 'before.csv'), rows(0, 2));
      await waitForOutput(s, '"batch":1,');
      await rm(ws.data.input, { recursive: true });
      await mkdir(ws.data.input);
      await waitForOutput(s, 'the input directory was replaced: watching the new one');
      await writeFile(join(ws.data.input, 'after.csv'), rows(2, 5));
      await waitForOutput(s, '"batch":2,');
      // Removed and not recreated: the streamer makes it again itself.
      await rm(ws.data.input, { recursive: true });
      await waitForOutput(s, 'the input directory was removed: creating it again');
      await writeFile(join(ws.data.input, 'again.csv'), rows(5, 6));
      await waitForOutput(s, '"batch":3,');
    } finally {
      s.kill('SIGTERM');
      await finished(s);
    }
    const { rows: ledger } = await ws.db.query<{ name: string }>('SELECT name FROM ingest_files ORDER BY id');
    expect(ledger.map((r) => r.name)).toEqual(['before.csv', 'after.csv', 'again.csv']);
  });

  it('when polling, a name chokidar cannot decode (not UTF-8) is found by listing the directory as bytes', async () => {
    const s = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100', '--poll', '--rescan-interval-ms', '1000']);
    try {
      await waitForOutput(s, 'watching for files');
      await writeFile(Buffer.concat([Buffer.from(`${ws.data.input}/`), Buffer.from('r\xe9sum\xe9.csv', 'latin1')]), rows(0, 2));
      await waitForOutput(s, '"batch":1,');
    } finally {
      s.kill('SIGTERM');
      await finished(s);
    }
    expect((await ws.db.query('SELECT name FROM ingest_files')).rows).toEqual([{ name: 'r\\xE9sum\\xE9.csv' }]);
  });
});
