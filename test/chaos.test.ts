import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomInt } from 'node:crypto';
import { rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { checkExactlyOnce, CRASH_POINTS, formatReport, runChaos, type ChaosReport } from './support/chaos.ts';
import { label } from './support/chaosDrops.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { makeDataDir } from './support/pipeline.ts';

// 30 rounds of start-then-SIGKILL over 200+ files (test/support/chaos.ts), names coming back with
// new content between rounds, then one undisturbed run. --clean-source mixed: each round with or
// without delete, the final run with it, so that both kinds of rounds are certain. Each `it` checks
// one invariant of the outcome. The seed replays the same files and the same plan of kills (not the
// same timing): DROPSTREAM_CHAOS_SEED=<seed> npx vitest run test/chaos.test.ts
const ROUNDS = 30;
const FILES = 200;
const seed = process.env.DROPSTREAM_CHAOS_SEED ? Number(process.env.DROPSTREAM_CHAOS_SEED) : randomInt(2 ** 31);

describe(`chaos: ${ROUNDS} rounds of SIGKILL anywhere over ${FILES}+ files, names reused, --clean-source mixed (seed ${seed})`, () => {
  let db: TestDatabase;
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  let report: ChaosReport;
  const because = () => `seed ${seed}\n${formatReport(report)}`;

  beforeAll(async () => {
    db = await createTestDatabase();
    data = await makeDataDir();
    report = await runChaos({ dataDir: data.dir, databaseUrl: db.url, rounds: ROUNDS, files: FILES, rows: 50, seed, cleanSource: 'mixed' });
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

  it('no event lost: every event_id of every version ever dropped is stored', () => {
    expect(report.rows.distinctEvents).toBeGreaterThanOrEqual(FILES * 50);
    expect(report.rows.lost, because()).toBe(0);
  });

  it('no event duplicated or invented: one row per event, count and revenue equal the dropped files', () => {
    expect(report.rows.duplicated, because()).toBe(0);
    expect(report.rows.unexpected, because()).toBe(0);
    expect(report.rows.stored, because()).toBe(report.rows.distinctEvents);
    expect(report.revenueCents.stored, because()).toBe(report.revenueCents.expected);
  });

  it('names came back, cp in place and mv over, as new versions of loaded names; rows shared between versions counted once; files deleted once committed', () => {
    const d = report.drops;
    expect(d.comebacks, because()).toBeGreaterThanOrEqual(ROUNDS - 1);
    expect(d.byHow.cp, because()).toBeGreaterThan(0);
    expect(d.byHow.mv, because()).toBeGreaterThan(0);
    expect(d.laterInLedger, because()).toBeGreaterThan(0);
    expect(report.rows.inFiles, because()).toBeGreaterThan(report.rows.distinctEvents);
    expect(report.cleanSource.deleteRounds, because()).toBeGreaterThan(0);
    expect(d.deleted, because()).toBeGreaterThan(0);
    // The final run deletes: every name's last version is committed, so none is left.
    expect(report.files.inInput, because()).toBe(0);
  });

  it('every version a finished run saw has exactly one ledger row and no row is another; nothing left input/ uncommitted; batch totals equal their files; the checkpoint agrees: no violation at all', () => {
    expect(report.violations, because()).toEqual([]);
  });

  // Last: it breaks the database and input/ on purpose.
  it('the checks fail when the invariants break: a lost event, versions deleted without being committed, a committed version left in input/, a version not loaded, a version recorded twice', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const drops = report.dropLog;
    const input = join(data.dir, 'input');
    // Each name's last version, deleted from input/ after its commit (with a ledger row of its own).
    const [gone, back, newer, twice, unread] = drops
      .names()
      .map((n) => drops.current(n)!)
      .filter((v) => v.state === 'deleted' && !v.retiredByContent && v.lines.length > 0);
    try {
      await pool.query('DELETE FROM user_activity WHERE event_id = (SELECT event_id FROM user_activity LIMIT 1)');
      await pool.query(`DELETE FROM ingest_files WHERE id = (SELECT max(id) FROM ingest_files WHERE name = $1)`, [gone!.name]);
      await writeFile(join(input, back!.name), drops.contentOf(back!));
      await utimes(join(input, back!.name), new Date(), back!.mtimeMs / 1000);
      await writeFile(join(input, newer!.name), newer!.header + newer!.lines[0]);
      // A new version dropped, then gone before any run read it, as a streamer deleting it before its commit would leave things.
      const deletedUnread = await drops.put(unread!.name, unread!.header + unread!.lines.slice(1).join(''), ROUNDS + 1, 'mv', 'next-day');
      await rm(join(input, unread!.name));
      await pool.query(
        `INSERT INTO ingest_files (name, fingerprint, size, mtime, status, rows_read, rows_loaded, batch_id, version)
         SELECT name, fingerprint, size, mtime, 'duplicate', rows_read, 0, batch_id + 100000, version + 1 FROM ingest_files WHERE id = (SELECT max(id) FROM ingest_files WHERE name = $1)`,
        [twice!.name],
      );
      const broken = await checkExactlyOnce(pool, data.dir, drops, 'delete');
      const said = broken.violations.join('\n');
      expect(broken.rows.lost).toBeGreaterThanOrEqual(1);
      expect(said).toMatch(/\d+ events lost/);
      expect(said).toMatch(/user_activity holds \d+ rows but the ledger says/);
      expect(said).toContain(`${label(gone!)} was deleted from input/ but has no ledger row: deleted without its version being committed`);
      expect(said).toContain(`${label(deletedUnread)} was deleted from input/ without its version being committed`);
      expect(said).toContain(`${back!.name} remains in input/ though it is the committed version of its name`);
      expect(said).toContain(`${newer!.name} in input/ is not the newest processed version of its name in the ledger`);
      expect(said).toContain(`${label(twice!)} has two ledger rows`);
      expect(said).toMatch(/ledger rows name a batch that ingest_batches does not have/);
    } finally {
      await pool.end();
    }
  });
});
