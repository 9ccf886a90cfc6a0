import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate, SQL_DIR } from '../streamer/src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

// [user, type, product, price, quantity, event_time, source_file]: small enough to total by hand.
type Row = [string, 'view' | 'purchase', string, string, number, string, string];
const ROWS: Row[] = [
  ['u1', 'view', 'p1', '10.00', 1, '2026-03-01T10:05:00Z', 'day1.csv'],
  ['u1', 'purchase', 'p1', '10.00', 2, '2026-03-01T10:20:00Z', 'day1.csv'], // 20.00
  ['u2', 'view', 'p1', '10.00', 1, '2026-03-01T10:40:00+00:00', 'day1.csv'],
  ['u2', 'purchase', 'p2', '5.50', 1, '2026-03-01T16:15:00+05:30', 'day1.csv'], // 10:45Z, 5.50
  ['u2', 'view', 'p2', '5.50', 1, '2026-03-01T11:10:00Z', 'day1.csv'],
  ['u2', 'purchase', 'p2', '5.50', 3, '2026-03-01T12:15:00+01:00', 'day1.csv'], // 11:15Z, 16.50
  ['u3', 'view', 'p1', '10.00', 1, '2026-03-01T22:00:00Z', 'day1.csv'],
  // 01:30Z on March 2nd in UTC, but still March 1st in the writer's zone and in New York.
  ['u3', 'purchase', 'p3', '99.99', 1, '2026-03-01T23:30:00-02:00', 'day1.csv'], // 99.99, p3 never viewed
  ['u1', 'purchase', 'p1', '10.00', 1, '2026-03-02T01:45:00Z', 'day2.csv'], // 10.00
  ['u4', 'view', 'p4', '7.25', 1, '2026-03-02T09:00:00Z', 'day2.csv'], // p4: views only
  ['u4', 'view', 'p2', '5.50', 1, '2026-03-02T09:05:00Z', 'day2.csv'],
  ['u1', 'view', 'p4', '7.25', 1, '2026-03-02T09:30:00Z', 'day2.csv'],
];

const VIEWS = {
  revenue_by_hour: 'hour',
  revenue_by_day: 'day',
  revenue_by_product: 'product_id',
  revenue_by_user: 'user_id',
  conversion_funnel: '1',
  ingest_summary: 'name, committed_at',
} as const;
type ViewName = keyof typeof VIEWS;

const TIMESTAMPTZ = 1184;
const DATE = 1082;

/** A client in the given session TimeZone that returns dates as text and instants as UTC ISO strings. */
async function connect(url: string, timeZone: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
        // The default date parser makes a Date at the test process's local midnight: keep the text.
        if (oid === DATE) return (v: string) => v;
        if (oid === TIMESTAMPTZ) return (v: string) => new Date(v).toISOString();
        return pg.types.getTypeParser(oid, format);
      }) as typeof pg.types.getTypeParser,
    },
  });
  await client.connect();
  await client.query(`SET TimeZone = '${timeZone}'`);
  return client;
}

async function readViews(client: pg.Client): Promise<Record<ViewName, Record<string, unknown>[]>> {
  const out = {} as Record<ViewName, Record<string, unknown>[]>;
  for (const [view, orderBy] of Object.entries(VIEWS) as [ViewName, string][]) {
    out[view] = (await client.query(`SELECT * FROM ${view} ORDER BY ${orderBy}`)).rows;
  }
  return out;
}

describe('revenue views', () => {
  let db: TestDatabase;
  let utc: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    utc = await connect(db.url, 'UTC');
    expect(await migrate(utc)).toContain('002_revenue_views.sql');
    for (const [i, [user, type, product, price, quantity, time, file]] of ROWS.entries()) {
      await utc.query(
        `INSERT INTO user_activity (event_id, user_id, event_type, product_id, price, quantity, event_time,
                                    source_file, source_line, batch_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [randomUUID(), user, type, product, price, quantity, time, file, i + 2, file === 'day1.csv' ? 1 : 2],
      );
    }
    await utc.query(
      `INSERT INTO ingest_files (name, fingerprint, size, mtime, status, reason, rows_read, rows_loaded,
                                 rows_rejected, batch_id, committed_at)
       VALUES ('day1.csv', 'aa', 100, '2026-03-02T00:00:00Z', 'loaded', NULL, 9, 8, 1, 1, '2026-03-02T00:00:01Z'),
              ('day2.csv', 'bb', 100, '2026-03-03T00:00:00Z', 'loaded', NULL, 4, 4, 0, 2, '2026-03-03T00:00:01Z'),
              ('bad.csv',  'cc', 10,  '2026-03-03T00:00:00Z', 'quarantined', 'no header', 0, 0, 0, 2,
               '2026-03-03T00:00:02Z')`,
    );
  });
  afterAll(async () => {
    await utc?.end();
    await db?.drop();
  });

  it('revenue_by_hour: purchases per UTC hour', async () => {
    expect((await readViews(utc)).revenue_by_hour).toEqual([
      { hour: '2026-03-01T10:00:00.000Z', purchases: '2', units: '3', revenue: '25.50', purchases_unpriced: '0' },
      { hour: '2026-03-01T11:00:00.000Z', purchases: '1', units: '3', revenue: '16.50', purchases_unpriced: '0' },
      { hour: '2026-03-02T01:00:00.000Z', purchases: '2', units: '2', revenue: '109.99', purchases_unpriced: '0' },
    ]);
  });

  it('revenue_by_day: purchases per UTC day, with distinct buyers', async () => {
    expect((await readViews(utc)).revenue_by_day).toEqual([
      { day: '2026-03-01', purchases: '3', units: '6', revenue: '42.00', buyers: '2', purchases_unpriced: '0' },
      { day: '2026-03-02', purchases: '2', units: '2', revenue: '109.99', buyers: '2', purchases_unpriced: '0' },
    ]);
  });

  it('revenue_by_product: null conversion without views, zero revenue without purchases', async () => {
    expect((await readViews(utc)).revenue_by_product).toEqual([
      { product_id: 'p1', views: '3', purchases: '2', units: '3', revenue: '30.00', conversion_rate: '0.6667', purchases_unpriced: '0' },
      { product_id: 'p2', views: '2', purchases: '2', units: '4', revenue: '22.00', conversion_rate: '1.0000', purchases_unpriced: '0' },
      { product_id: 'p3', views: '0', purchases: '1', units: '1', revenue: '99.99', conversion_rate: null, purchases_unpriced: '0' },
      { product_id: 'p4', views: '2', purchases: '0', units: '0', revenue: '0.00', conversion_rate: '0.0000', purchases_unpriced: '0' },
    ]);
  });

  it('revenue_by_user: activity and revenue per user', async () => {
    expect((await readViews(utc)).revenue_by_user).toEqual([
      {
        user_id: 'u1', views: '2', purchases: '2', revenue: '30.00',
        first_seen: '2026-03-01T10:05:00.000Z', last_seen: '2026-03-02T09:30:00.000Z', purchases_unpriced: '0',
      },
      {
        user_id: 'u2', views: '2', purchases: '2', revenue: '22.00',
        first_seen: '2026-03-01T10:40:00.000Z', last_seen: '2026-03-01T11:15:00.000Z', purchases_unpriced: '0',
      },
      {
        user_id: 'u3', views: '1', purchases: '1', revenue: '99.99',
        first_seen: '2026-03-01T22:00:00.000Z', last_seen: '2026-03-02T01:30:00.000Z', purchases_unpriced: '0',
      },
      {
        user_id: 'u4', views: '2', purchases: '0', revenue: '0.00',
        first_seen: '2026-03-02T09:00:00.000Z', last_seen: '2026-03-02T09:05:00.000Z', purchases_unpriced: '0',
      },
    ]);
  });

  it('conversion_funnel: one row of totals and rates', async () => {
    expect((await readViews(utc)).conversion_funnel).toEqual([
      { viewers: '4', buyers: '3', views: '7', purchases: '5', view_to_purchase_rate: '0.7143', buyer_rate: '0.7500' },
    ]);
  });

  it('ingest_summary: each file beside the rows it holds', async () => {
    const common = { rows_duplicate: '0', purchases_unpriced: '0' };
    expect((await readViews(utc)).ingest_summary).toEqual([
      {
        ...common, name: 'bad.csv', batch_id: '2', status: 'quarantined', reason: 'no header', committed_at: '2026-03-03T00:00:02.000Z',
        rows_read: '0', rows_loaded: '0', rows_rejected: '0',
        rows_in_table: '0', purchases: '0', revenue: '0.00', first_event: null, last_event: null,
      },
      {
        ...common, name: 'day1.csv', batch_id: '1', status: 'loaded', reason: null, committed_at: '2026-03-02T00:00:01.000Z',
        rows_read: '9', rows_loaded: '8', rows_rejected: '1',
        rows_in_table: '8', purchases: '4', revenue: '141.99',
        first_event: '2026-03-01T10:05:00.000Z', last_event: '2026-03-02T01:30:00.000Z',
      },
      {
        ...common, name: 'day2.csv', batch_id: '2', status: 'loaded', reason: null, committed_at: '2026-03-03T00:00:01.000Z',
        rows_read: '4', rows_loaded: '4', rows_rejected: '0',
        rows_in_table: '4', purchases: '1', revenue: '10.00',
        first_event: '2026-03-02T01:45:00.000Z', last_event: '2026-03-02T09:30:00.000Z',
      },
    ]);
  });

  it('gives the same rows whatever the session TimeZone', async () => {
    const expected = await readViews(utc);
    for (const zone of ['America/New_York', 'Asia/Kolkata', 'Pacific/Chatham']) {
      const client = await connect(db.url, zone);
      try {
        // Guard against a vacuous test: cutting in this session's zone would give other hours or days.
        const cuts = async (c: pg.Client, hour: string, day: string) =>
          (await c.query(`SELECT ${hour} AS hour, ${day} AS day FROM user_activity ORDER BY event_time`)).rows;
        expect(await cuts(client, `date_trunc('hour', event_time)`, 'event_time::date')).not.toEqual(
          await cuts(utc, `date_trunc('hour', event_time)`, 'event_time::date'),
        );
        expect(await readViews(client), zone).toEqual(expected);
      } finally {
        await client.end();
      }
    }
  });

  it('can be applied again by hand (CREATE OR REPLACE; the latest definitions are in 010)', async () => {
    expect(await migrate(utc)).toEqual([]);
    const before = await readViews(utc);
    await utc.query(await readFile(`${SQL_DIR}/010_data_contract.sql`, 'utf8'));
    expect(await readViews(utc)).toEqual(before);
  });
});

describe('revenue views, with purchases that have no price', () => {
  let db: TestDatabase;
  let utc: pg.Client;
  // [user, type, product, price, quantity, event_time, source_file]; null: not in the file.
  const rows: Array<[string, string, string | null, string | null, number, string, string]> = [
    ['u1', 'purchase', 'p1', '10.00', 2, '2026-03-01T10:00:00Z', 'a.csv'],
    ['u1', 'purchase', 'p1', null, 3, '2026-03-01T10:30:00Z', 'a.csv'],
    ['u3', 'purchase', null, '5.00', 1, '2026-03-02T08:00:00Z', 'a.csv'],
    ['u3', 'view', null, null, 1, '2026-03-02T07:00:00Z', 'a.csv'],
    ['u2', 'purchase', 'p2', null, 1, '2026-03-01T11:00:00Z', 'b.csv'],
    ['u2', 'view', 'p2', null, 1, '2026-03-01T10:50:00Z', 'b.csv'],
  ];

  beforeAll(async () => {
    db = await createTestDatabase();
    utc = await connect(db.url, 'UTC');
    await migrate(utc);
    for (const [i, [user, type, product, price, quantity, time, file]] of rows.entries()) {
      await utc.query(
        `INSERT INTO user_activity (event_id, user_id, event_type, product_id, price, quantity, event_time, source_file, source_line, batch_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)`,
        [randomUUID(), user, type, product, price, quantity, time, file, i + 2],
      );
    }
    await utc.query(
      `INSERT INTO ingest_files (name, fingerprint, size, mtime, status, rows_read, rows_loaded, batch_id, committed_at)
       VALUES ('a.csv', 'aa', 100, '2026-03-02T00:00:00Z', 'loaded', 4, 4, 1, '2026-03-02T00:00:01Z'),
              ('b.csv', 'bb', 100, '2026-03-02T00:00:00Z', 'loaded', 2, 2, 1, '2026-03-02T00:00:02Z')`,
    );
  });
  afterAll(async () => {
    await utc?.end();
    await db?.drop();
  });

  it('count them apart and never as 0: revenue is of the priced ones, null where none is priced', async () => {
    const views = await readViews(utc);
    expect(views.revenue_by_hour).toEqual([
      { hour: '2026-03-01T10:00:00.000Z', purchases: '2', units: '5', revenue: '20.00', purchases_unpriced: '1' },
      { hour: '2026-03-01T11:00:00.000Z', purchases: '1', units: '1', revenue: null, purchases_unpriced: '1' },
      { hour: '2026-03-02T08:00:00.000Z', purchases: '1', units: '1', revenue: '5.00', purchases_unpriced: '0' },
    ]);
    expect(views.revenue_by_day).toEqual([
      { day: '2026-03-01', purchases: '3', units: '6', revenue: '20.00', buyers: '2', purchases_unpriced: '2' },
      { day: '2026-03-02', purchases: '1', units: '1', revenue: '5.00', buyers: '1', purchases_unpriced: '0' },
    ]);
    // ORDER BY product_id puts the events without a product last.
    expect(views.revenue_by_product).toEqual([
      { product_id: 'p1', views: '0', purchases: '2', units: '5', revenue: '20.00', conversion_rate: null, purchases_unpriced: '1' },
      { product_id: 'p2', views: '1', purchases: '1', units: '1', revenue: null, conversion_rate: '1.0000', purchases_unpriced: '1' },
      { product_id: null, views: '1', purchases: '1', units: '1', revenue: '5.00', conversion_rate: '1.0000', purchases_unpriced: '0' },
    ]);
    expect(views.revenue_by_user.map(({ user_id, purchases, revenue, purchases_unpriced }) => ({ user_id, purchases, revenue, purchases_unpriced }))).toEqual([
      { user_id: 'u1', purchases: '2', revenue: '20.00', purchases_unpriced: '1' },
      { user_id: 'u2', purchases: '1', revenue: null, purchases_unpriced: '1' },
      { user_id: 'u3', purchases: '1', revenue: '5.00', purchases_unpriced: '0' },
    ]);
    expect(views.ingest_summary.map(({ name, purchases, revenue, purchases_unpriced }) => ({ name, purchases, revenue, purchases_unpriced }))).toEqual([
      { name: 'a.csv', purchases: '3', revenue: '25.00', purchases_unpriced: '1' },
      { name: 'b.csv', purchases: '1', revenue: null, purchases_unpriced: '1' },
    ]);
    expect(views.conversion_funnel).toEqual([{ viewers: '2', buyers: '3', views: '2', purchases: '4', view_to_purchase_rate: '2.0000', buyer_rate: '1.5000' }]);
  });
});
