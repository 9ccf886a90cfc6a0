import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate } from '../streamer/src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

describe('migrations', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db.drop());

  it('creates the tables once and is a no-op when run again, even by two starters at once', async () => {
    const clients = [new pg.Client(db.url), new pg.Client(db.url)];
    await Promise.all(clients.map((c) => c.connect()));
    const [first, second] = await Promise.all(clients.map((c) => migrate(c)));
    // Exactly one of them applied the files; the other found them applied.
    expect([first!.length, second!.length].sort()).toEqual([0, first!.length || second!.length]);
    expect([...first!, ...second!]).toContain('001_schema.sql');
    expect(await migrate(clients[0]!)).toEqual([]);
    await Promise.all(clients.map((c) => c.end()));

    const { rows } = await db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    );
    expect(rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(['ingest_batches', 'ingest_files', 'user_activity', 'user_activity_rejects']),
    );
  });
});
