import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { logLines } from './fixtures/checks.ts';
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
            `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dropstream' AND query LIKE 'COPY user_activity %' AND state = 'active'`,
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

    it('an error the file\'s rows cause (a constraint they violate, SQLSTATE class 23) sets that file aside and the stream goes on', async () => {
      await generate(data.dir, { files: 2, rows: 100, seed: 34 });
      expect((await streamAvailableNow(data.dir, db)).code).toBe(0);
      await db.query('ALTER TABLE user_activity ADD CONSTRAINT cheap CHECK (price < 0.5) NOT VALID');
      await generate(data.dir, { files: 1, rows: 100, seed: 35 });
      const run = await streamAvailableNow(data.dir, db);
      expect(run.code, run.output).toBe(0);
      const { rows } = await db.query<{ status: string; reason: string }>(`SELECT status, reason FROM ingest_files WHERE batch_id = 2`);
      expect(rows).toEqual([{ status: 'quarantined', reason: expect.stringMatching(/^the database refused the file: .*"cheap".*\(SQLSTATE 23514, table user_activity\)$/) }]);
      expect(run.output.match(/file set aside/g)).toHaveLength(1);
    });

    it('an error that cannot fix itself and is no file\'s fault (a missing table, 42P01) stops the stream with exit 1 and says what to do; the file stays in input and loads once the table is back', async () => {
      await generate(data.dir, { files: 2, rows: 100, seed: 36 });
      expect((await streamAvailableNow(data.dir + '/none', db)).code).toBe(0);
      await db.query('ALTER TABLE user_activity RENAME TO user_activity_gone');
      const run = await streamAvailableNow(data.dir, db, ['--max-files-per-batch', '2']);
      expect(run.code, run.output).toBe(1);
      expect(logLines(run.output).find((l) => l.level === 60)?.msg).toMatch(/^the streamer stopped: batch 1 failed: relation "user_activity" does not exist \(SQLSTATE 42P01\): the schema is not the one the migrations in sql\/ created .*: restore it; batch 1 was cut short \(0 of 2 files committed, the rest resumes at the next start\)/);
      expect(run.output).not.toContain('file set aside');
      expect(await loadedFiles(db)).toBe(0);
      expect(existsSync(join(data.dir, 'quarantine'))).toBe(false);
      expect(await readdir(data.input)).toHaveLength(2);

      await db.query('ALTER TABLE user_activity_gone RENAME TO user_activity');
      const again = await streamAvailableNow(data.dir, db, ['--max-files-per-batch', '2']);
      expect(again.code, again.output).toBe(0);
      expect(again.output).toContain('resuming a batch that was not committed');
      await expectExact(db, data.input);
      // The same batch 1 was run again, not a new one.
      const ledger = await db.query<{ batch_id: string; status: string }>('SELECT batch_id, status FROM ingest_files');
      expect(ledger.rows).toEqual([
        { batch_id: '1', status: 'loaded' },
        { batch_id: '1', status: 'loaded' },
      ]);
    });

    /**
     * Operational errors (a setting or a privilege someone has to fix) are never the file's fault:
     * the streamer retries, saying what to fix; the files stay in input, none is set aside, and once
     * it is fixed each loads exactly once.
     */
    async function expectRetriedUntilFixed(opts: { url: string; sqlstate: string; hint: string; fix: () => Promise<unknown> }): Promise<void> {
      const streamer = startStreamer(data.dir, { url: opts.url }, ['--available-now']);
      const retries = () => streamer.output().match(new RegExp(`failed: [^"]*\\(SQLSTATE ${opts.sqlstate}[^"]*; retrying`, 'g'))?.length ?? 0;
      await waitFor(`three retries on SQLSTATE ${opts.sqlstate}`, () => retries() >= 3 || streamer.exitCode !== null, 30_000);
      expect(streamer.exitCode, streamer.output()).toBeNull();
      expect(streamer.output()).toContain(opts.hint);
      expect(streamer.output()).not.toContain('file set aside');
      expect(existsSync(join(data.dir, 'quarantine'))).toBe(false);
      expect(await readdir(data.input)).toHaveLength(3);

      await opts.fix();
      const run = await finished(streamer);
      expect(run.code, run.output).toBe(0);
      expect(existsSync(join(data.dir, 'quarantine'))).toBe(false);
      await expectExact(db, data.input);
      const ledger = await db.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM ingest_files GROUP BY status');
      expect(ledger.rows).toEqual([{ status: 'loaded', n: '3' }]);
    }

    it('a statement_timeout that cancels the loads (57014) is retried until it is raised; no file is set aside', async () => {
      await generate(data.dir, { files: 3, rows: 2000, seed: 37 });
      expect((await streamAvailableNow(data.dir + '/none', db)).code).toBe(0);
      // A client of its own, connected before: new sessions of this database get the 1 ms timeout.
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        const name = new URL(db.url).pathname.slice(1);
        await admin.query(`ALTER DATABASE ${name} SET statement_timeout = '1ms'`);
        await expectRetriedUntilFixed({ url: db.url, sqlstate: '57014', hint: 'raise statement_timeout', fix: () => admin.query(`ALTER DATABASE ${name} RESET statement_timeout`) });
      } finally {
        await admin.end();
      }
    });

    it('a role without INSERT on user_activity (42501) is retried until it is granted; no file is set aside', async () => {
      await generate(data.dir, { files: 3, rows: 200, seed: 38 });
      expect((await streamAvailableNow(data.dir + '/none', db)).code).toBe(0);
      const role = `dropstream_r_${randomBytes(4).toString('hex')}`;
      await db.query(`CREATE ROLE ${role} LOGIN PASSWORD '${role}'`); // a password: the embedded server asks for one
      try {
        await db.query(`GRANT CREATE ON SCHEMA public TO ${role}`);
        await db.query(`GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO ${role}`);
        await db.query(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
        await db.query(`REVOKE INSERT ON user_activity FROM ${role}`);
        const url = new URL(db.url);
        url.username = role;
        url.password = role;
        await expectRetriedUntilFixed({ url: url.toString(), sqlstate: '42501', hint: 'GRANT it what the message names', fix: () => db.query(`GRANT INSERT ON user_activity TO ${role}`) });
      } finally {
        await db.query(`DROP OWNED BY ${role}`);
        await db.query(`DROP ROLE ${role}`);
      }
    });
  });
});
