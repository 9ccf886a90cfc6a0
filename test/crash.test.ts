import { describe, expect, it } from 'vitest';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expectedFromFiles, finished, generate, startStreamer, streamAvailableNow, tableState, waitForOutput } from './support/pipeline.ts';
import type { TestDatabase } from './support/db.ts';
import { useWorkspace } from './support/workspace.ts';

/** Invariant: every generated event is stored exactly once and every file has exactly one ledger row. */
async function expectExact(db: TestDatabase, input: string): Promise<void> {
  const expected = await expectedFromFiles([input]);
  const table = await tableState(db);
  expect(table.count, 'rows in user_activity').toBe(expected.ids.size);
  expect(table.distinctIds).toBe(table.count);
  expect(table.ids).toEqual(expected.ids);
  expect(table.revenueCents).toBe(expected.revenueCents);
  const ledger = await db.query<{ name: string; n: string }>(`SELECT name, count(*) AS n FROM ingest_files WHERE status = 'loaded' GROUP BY name`);
  expect(ledger.rows.map((r) => r.name).sort()).toEqual((await readdir(input)).sort());
  expect(ledger.rows.every((r) => r.n === '1')).toBe(true);
}

describe('crash recovery (SIGKILL, then restart)', () => {
  const ws = useWorkspace();

  const points = [
    ['after-offsets', 'the batch is planned and its offsets written, nothing loaded'],
    ['mid-copy', 'a COPY has received part of a file'],
    ['before-file-commit', 'a file is copied into the database but not committed'],
    ['after-db-commit', 'every file of the batch is committed in the database, the checkpoint commit is not written'],
    ['mid-checkpoint-write', 'the checkpoint commit record is in its temp file, not yet renamed into place'],
  ] as const;

  for (const [point, meaning] of points) {
    it(`resumes exactly when killed where ${meaning} (${point})`, async () => {
      // 800 rows make more than one COPY chunk per file, so mid-copy is reached.
      await generate(ws.data.dir, { files: 9, rows: 800, seed: 3 });
      const args = ['--max-files-per-batch', '3'];
      const crashed = await streamAvailableNow(ws.data.dir, ws.db, args, { DROPSTREAM_CRASH_AT: `${point}@2` });
      expect(crashed.signal, crashed.output).toBe('SIGKILL');

      // Files dropped while the streamer is down are picked up too.
      await generate(ws.data.dir, { files: 2, rows: 800, seed: 4 });
      const resumed = await streamAvailableNow(ws.data.dir, ws.db, args);
      expect(resumed.code, resumed.output).toBe(0);
      expect(resumed.output).toContain('resuming a batch that was not committed');
      await expectExact(ws.db, ws.data.input);

      // Batch 2 was run again with the same files, never split or renumbered.
      const batch2 = await ws.db.query<{ n: string }>('SELECT count(*) AS n FROM ingest_files WHERE batch_id = 2');
      expect(Number(batch2.rows[0]!.n)).toBe(3);
      const commits = await readdir(join(ws.data.dir, 'checkpoint', 'commits'));
      expect(commits).toContain('2.json');
    });
  }

  it('a file set aside when the process dies before moving it is moved at the restart, with one ledger row', async () => {
    await mkdir(ws.data.input, { recursive: true });
    await writeFile(join(ws.data.input, 'not-events.csv'), 'foo,bar\n1,2\n');
    const crashed = await streamAvailableNow(ws.data.dir, ws.db, [], { DROPSTREAM_CRASH_AT: 'before-quarantine-move' });
    expect(crashed.signal).toBe('SIGKILL');
    expect(await readdir(ws.data.input)).toEqual(['not-events.csv']);
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);
    expect(await readdir(ws.data.input)).toEqual([]);
    expect((await readdir(join(ws.data.dir, 'quarantine'))).sort()).toEqual(['not-events.csv', 'not-events.csv.reason']);
    const { rows } = await ws.db.query('SELECT name, status FROM ingest_files');
    expect(rows).toEqual([{ name: 'not-events.csv', status: 'quarantined' }]);
  });

  it('stays exact through SIGKILLs at random moments of a run', async () => {
    await generate(ws.data.dir, { files: 30, rows: 300, seed: 5 });
    const args = ['--max-files-per-batch', '2', '--trigger-interval-ms', '0'];
    // The first round dies for certain, mid-COPY of a random early batch; the others are killed at a
    // random moment after a batch of theirs (if they have not finished by then).
    const first = await streamAvailableNow(ws.data.dir, ws.db, args, { DROPSTREAM_CRASH_AT: `mid-copy@${1 + Math.floor(Math.random() * 3)}` });
    expect(first.signal, first.output).toBe('SIGKILL');
    let kills = 1;
    for (let round = 1; round < 6; round++) {
      const child = startStreamer(ws.data.dir, ws.db, ['--available-now', ...args]);
      await waitForOutput(child, '"batch":').catch(() => undefined); // a round with nothing left exits at once
      await sleep(Math.floor(Math.random() * 300));
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        kills++;
      }
      await finished(child);
    }
    const last = await streamAvailableNow(ws.data.dir, ws.db, args);
    expect(last.code, last.output).toBe(0);
    expect(kills).toBeGreaterThan(0);
    await expectExact(ws.db, ws.data.input);
  });
});
