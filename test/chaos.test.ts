import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomInt } from 'node:crypto';
import pg from 'pg';
import { checkExactlyOnce, CRASH_POINTS, formatReport, runChaos, type ChaosReport } from './support/chaos.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { makeDataDir } from './support/pipeline.ts';

// 30 rounds of start-then-SIGKILL over 200+ files (test/support/chaos.ts), then one undisturbed run.
// Each `it` checks one invariant of the outcome. The seed replays the same files and the same plan
// of kills (not the same timing): DROPSTREAM_CHAOS_SEED=<seed> npx vitest run test/chaos.test.ts
const ROUNDS = 30;
const FILES = 200;
const seed = process.env.DROPSTREAM_CHAOS_SEED ? Number(process.env.DROPSTREAM_CHAOS_SEED) : randomInt(2 ** 31);

describe(`chaos: ${ROUNDS} rounds of SIGKILL anywhere over ${FILES}+ files (seed ${seed})`, () => {
  let db: TestDatabase;
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  let report: ChaosReport;
  const because = () => `seed ${seed}\n${formatReport(report)}`;

  beforeAll(async () => {
    db = await createTestDatabase();
    data = await makeDataDir();
    report = await runChaos({ dataDir: data.dir, databaseUrl: db.url, rounds: ROUNDS, files: FILES, rows: 50, seed });
    console.log(formatReport(report));
  }, 240_000);
  afterAll(async () => {
    await db?.drop();
    await data?.remove();
  });

  it('really kills the streamer: most rounds end in SIGKILL, some at a crash point, some at a random moment', () => {
    expect(report.rounds).toHaveLength(ROUNDS);
    expect(report.kills.total, because()).toBeGreaterThanOrEqual(ROUNDS / 2);
    expect(report.kills.delay, because()).toBeGreaterThan(0);
    const fired = CRASH_POINTS.filter((p) => report.kills.crashPoints[p].fired > 0);
    expect(fired.length, because()).toBeGreaterThanOrEqual(2);
    expect(report.rounds.filter((r) => r.resumed).length, because()).toBeGreaterThan(0);
    expect(report.files.dropped, because()).toBeGreaterThan(0);
  });

  it('after every kill, the table and the ledger agree (rows stored = rows the ledger says loaded); no round fails or hangs', () => {
    expect(report.rounds.filter((r) => r.outcome === 'failed' || r.outcome === 'hung'), because()).toEqual([]);
    expect(report.rounds.flatMap((r) => r.violations)).toEqual([]);
  });

  it('the streamer restarted after all of it runs to the end with exit 0', () => {
    expect(report.finalRun.code, report.finalRun.output).toBe(0);
  });

  it('no event lost: every event_id of every file in input/ is stored', () => {
    expect(report.rows.distinctEvents).toBeGreaterThanOrEqual(FILES * 50);
    expect(report.rows.lost, because()).toBe(0);
  });

  it('no event duplicated or invented: one row per event, count and revenue equal the files', () => {
    expect(report.rows.duplicated, because()).toBe(0);
    expect(report.rows.unexpected, because()).toBe(0);
    expect(report.rows.stored, because()).toBe(report.rows.distinctEvents);
    expect(report.revenueCents.stored, because()).toBe(report.revenueCents.expected);
  });

  it('exactly one processed ingest_files row per file in input/, batch totals equal their files, the checkpoint agrees: no violation at all', () => {
    expect(report.files.inInput).toBe(report.files.initial + report.files.dropped + report.files.copies);
    expect(report.violations, because()).toEqual([]);
  });

  // Last: it breaks the database on purpose.
  it('the checks fail when the invariants break: a deleted event is lost, a deleted ledger row is a missing file', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    try {
      await pool.query('DELETE FROM user_activity WHERE event_id = (SELECT event_id FROM user_activity LIMIT 1)');
      await pool.query(`DELETE FROM ingest_files WHERE id = (SELECT id FROM ingest_files WHERE status = 'duplicate' OR rows_loaded = 0 LIMIT 1)`);
      await pool.query(`DELETE FROM ingest_files WHERE id = (SELECT max(id) FROM ingest_files)`);
      const broken = await checkExactlyOnce(pool, data.dir);
      expect(broken.rows.lost).toBe(1);
      expect(broken.violations.join('\n')).toMatch(/1 events lost/);
      expect(broken.violations.join('\n')).toMatch(/files in input\/ have no processed ledger row/);
      expect(broken.violations.join('\n')).toMatch(/user_activity holds \d+ rows but the ledger says/);
    } finally {
      await pool.end();
    }
  });
});
