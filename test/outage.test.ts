import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { ownServer, type OwnServer } from './support/ownServer.ts';
import { expectedFromFiles, finished, generate, makeDataDir, startStreamer, streamAvailableNow, tableState } from './support/pipeline.ts';

type Db = Pick<TestDatabase, 'url' | 'query'>;

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const loadedFiles = async (db: Db) => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ingest_files`)).rows[0]!.n);

/** Invariant: the table holds exactly the events of the files in input, each once. */
async function expectExact(db: Db, input: string): Promise<void> {
  const expected = await expectedFromFiles([input]);
  const table = await tableState(db);
  expect(table.count).toBe(expected.ids.size);
  expect(table.ids).toEqual(expected.ids);
  expect(table.revenueCents).toBe(expected.revenueCents);
}

describe('database outages', () => {
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  beforeEach(async () => {
    data = await makeDataDir();
  });
  afterEach(async () => data.remove());

  it('PostgreSQL stopping mid-run is waited out: the streamer retries, resumes by itself, loses and doubles nothing, leaks no connections', async () => {
    const server: OwnServer = await ownServer();
    try {
      await generate(data.dir, { files: 16, rows: 2000, seed: 31 });
      const streamer = startStreamer(data.dir, server, ['--trigger-interval-ms', '0', '--max-files-per-batch', '2']);
      await waitFor('a first batch', async () => (await loadedFiles(server).catch(() => 0)) >= 2);
      await server.stop();
      await waitFor('a retry message', () => streamer.output().includes('database unavailable, retrying'), 30_000);
      await sleep(2000);
      expect(streamer.exitCode, 'the streamer keeps running while the database is down').toBeNull();
      await server.start();
      await waitFor('every file', async () => (await loadedFiles(server).catch(() => 0)) === 16, 90_000);
      await expectExact(server, data.input);

      const { rows } = await server.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'dropstream'`);
      expect(Number(rows[0]!.n), 'connections held by the streamer (pool max is 4)').toBeLessThanOrEqual(4);
      streamer.kill('SIGTERM');
      expect((await finished(streamer)).code).toBe(0);
    } finally {
      await server.remove();
    }
  });

  describe('on the shared test server', () => {
    let db: TestDatabase;
    beforeEach(async () => {
      db = await createTestDatabase();
    });
    afterEach(async () => db.drop());

    it('a COPY whose connection is terminated half-way (pg_terminate_backend) is rolled back and retried', async () => {
      await generate(data.dir, { files: 3, rows: 150_000, seed: 32 });
      const streamer = startStreamer(data.dir, db, ['--available-now', '--file-concurrency', '1']);
      let terminated = 0;
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        while (streamer.exitCode === null && terminated < 2) {
          const { rows } = await admin.query(
            `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'dropstream' AND query LIKE 'COPY user_activity %' AND state = 'active'`,
          );
          terminated += rows.filter((r) => r.ok).length;
          await sleep(rows.length ? 300 : 20);
        }
      } finally {
        await admin.end();
      }
      const run = await finished(streamer);
      expect(terminated, 'COPYs terminated').toBeGreaterThan(0);
      expect(run.code, run.output).toBe(0);
      expect(run.output).toContain('database unavailable, retrying');
      await expectExact(db, data.input);
    });

    it('a COPY that makes no progress (it waits on a lock) is cut off after the stall timeout and retried', async () => {
      await generate(data.dir, { files: 1, rows: 500, seed: 33 });
      // The streamer creates the tables; a first run on an empty input does just that.
      expect((await streamAvailableNow(data.dir + '/none', db)).code).toBe(0);
      const locker = new pg.Client({ connectionString: db.url });
      await locker.connect();
      await locker.query('BEGIN; LOCK TABLE user_activity IN ACCESS EXCLUSIVE MODE');
      const streamer = startStreamer(data.dir, db, ['--available-now', '--copy-stall-timeout-ms', '1500']);
      await waitFor('a stalled COPY to be cut off', () => streamer.output().includes('COPY made no progress'), 30_000);
      await locker.query('COMMIT');
      await locker.end();
      const run = await finished(streamer);
      expect(run.code, run.output).toBe(0);
      await expectExact(db, data.input);
    });

    it('errors retrying cannot fix (a constraint the data violates, a missing table) set the file aside and the stream goes on', async () => {
      await generate(data.dir, { files: 2, rows: 100, seed: 34 });
      expect((await streamAvailableNow(data.dir, db)).code).toBe(0);
      await db.query('ALTER TABLE user_activity ADD CONSTRAINT cheap CHECK (price < 0.5) NOT VALID');
      await generate(data.dir, { files: 1, rows: 100, seed: 35 });
      const run = await streamAvailableNow(data.dir, db);
      expect(run.code, run.output).toBe(0);
      const { rows } = await db.query<{ status: string; reason: string }>(`SELECT status, reason FROM ingest_files WHERE batch_id = 2`);
      expect(rows).toEqual([{ status: 'quarantined', reason: expect.stringMatching(/^the database refused the file: .*"cheap".*\(SQLSTATE 23514, table user_activity\)$/) }]);
      expect(run.output.match(/file set aside/g)).toHaveLength(1);

      await db.query('ALTER TABLE user_activity RENAME TO user_activity_gone');
      await generate(data.dir, { files: 1, rows: 100, seed: 36 });
      const again = await streamAvailableNow(data.dir, db);
      expect(again.code, again.output).toBe(0);
      const missing = await db.query<{ reason: string }>(`SELECT reason FROM ingest_files WHERE batch_id = 3`);
      expect(missing.rows[0]!.reason).toMatch(/relation "user_activity" does not exist \(SQLSTATE 42P01\)/);
    });
  });
});
