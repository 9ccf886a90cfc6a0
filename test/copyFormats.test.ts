import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../streamer/src/db/migrate.ts';
import { DEFAULT_ALIASES } from '../streamer/src/reader/contract/columns.ts';
import { BINARY_COLUMNS } from '../streamer/src/reader/copyBinary.ts';
import { setRowDefaults } from '../streamer/src/sink/loadFile.ts';
import { BUILT_IN_VOCABULARY } from '../streamer/src/reader/contract/vocabulary.ts';
import { FileReader, type ReadRules } from '../streamer/src/reader/fileReader.ts';
import { RejectSpool } from '../streamer/src/reader/rejectSpool.ts';
import { copyInto } from '../streamer/src/sink/copyInto.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

// The reader writes COPY binary: it encodes uuids, prices, quantities and timestamps itself, where
// COPY text leaves the parsing to PostgreSQL. The server is the judge of both: the same rows, read
// both ways and copied into two tables, must be stored with the same values.

const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
const COLUMNS = 'event_id, user_id, event_type, product_id, price, quantity, event_time, source_event_id, attributes, source_file, source_line, batch_id';

const digits = (min: number, max: number) => fc.stringMatching(new RegExp(`^[0-9]{${min},${max}}$`));
const two = (max: number) => fc.integer({ min: 0, max }).map((n) => String(n).padStart(2, '0'));
const anyHour = fc
  .record({ year: fc.integer({ min: 1, max: 9999 }), month: fc.integer({ min: 1, max: 12 }), day: fc.integer({ min: 1, max: 28 }), sep: fc.constantFrom('T', ' '), hour: two(23) })
  .map((t) => `${String(t.year).padStart(4, '0')}-${String(t.month).padStart(2, '0')}-${String(t.day).padStart(2, '0')}${t.sep}${t.hour}`);
// A handful of dates and hours, so that successive rows share them: the fast path keeps the last one's seconds.
const sharedHour = fc.constantFrom('2024-02-29T10', '2024-02-29 10', '2024-02-29T11', '2024-02-28T10', '2024-02-29T23', '2024-03-01T00');
const timestamp = fc
  .record({
    hour: fc.oneof(anyHour, sharedHour),
    minute: two(59),
    second: two(59),
    fraction: fc.oneof(fc.constant(''), digits(1, 9).map((d) => `.${d}`)),
    zone: fc.oneof(fc.constantFrom('Z', '', '+00:00', '-00:00'), fc.tuple(fc.constantFrom('+', '-'), two(15), fc.constantFrom(':', ''), two(59)).map((p) => p.join('')), fc.tuple(fc.constantFrom('+', '-'), two(15)).map((p) => p.join(''))),
  })
  .map((t) => `${t.hour}:${t.minute}:${t.second}${t.fraction}${t.zone}`);
const price = fc.oneof(
  fc.tuple(digits(1, 10), fc.oneof(fc.constant(''), digits(1, 5).map((d) => `.${d}`))).map(([w, f]) => w + f),
  fc.constantFrom('0', '0.00', '0.005', '0.004', '9999999999.99', '9999999999.994', '7.5', '007.50', '1.995', '99.9950'),
);
const text = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).filter((s) => s.trim() !== '' && !s.includes('\0') && !/[\r\n]/.test(s)),
  fc.constantFrom('tab\there', 'back\\slash', '\\N', 'say "hi"', 'a,b', 'ユーザー', '😀'),
);
/** Sometimes empty: the field then takes its default (null, or 1 for quantity). */
const optional = <T extends string>(value: fc.Arbitrary<T>) => fc.oneof({ arbitrary: value, weight: 5 }, { arbitrary: fc.constant(''), weight: 1 });
const row = fc.tuple(
  fc.oneof({ arbitrary: fc.uuid(), weight: 4 }, fc.uuid().map((u) => u.toUpperCase()), fc.constantFrom('1', '2', 'evt-778', '')),
  text,
  fc.constantFrom('view', 'purchase', 'View', ' PURCHASE ', 'cart', 'Order Completed'),
  optional(text),
  optional(price),
  optional(fc.integer({ min: 1, max: 2_147_483_647 }).map(String)),
  fc.oneof(timestamp, fc.constantFrom('2019-10-01 00:00:00 UTC', '1569888000', '1569888000123', '2026-05-01T10:00:00+00:00Z')),
  // Kept in attributes.
  optional(text),
  optional(text),
);
const readRules = (defaultOffset = '+00:00'): ReadRules => ({ vocabulary: BUILT_IN_VOCABULARY, aliases: DEFAULT_ALIASES, attributes: true, defaultOffset, namedTimeZone: undefined });
const csv = (fields: string[]) => fields.map((f) => (/[",\n\r]/.test(f) || f !== f.trim() ? `"${f.replaceAll('"', '""')}"` : f)).join(',');

describe('COPY binary and COPY text store the same values', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const client = await pool.connect();
    await migrate(client).finally(() => client.release());
    dir = await mkdtemp(join(tmpdir(), 'dropstream-copy-'));
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['+00:00', '-03:30'])('for generated rows of every shape (timestamps without a zone at %s)', async (defaultOffset) => {
    const rules = readRules(defaultOffset);
    const rows = fc.sample(row, { numRuns: 3000, seed: SEED });
    const path = join(dir, `rows${defaultOffset}.csv`);
    await writeFile(path, `event_id,user_id,event_type,product_id,price,quantity,event_time,brand,Category Code\n${rows.map(csv).join('\n')}\n`);
    const st = await stat(path);
    const file = { name: 'tab\there ü.csv', path, size: st.size, mtimeMs: st.mtimeMs };

    const client = await pool.connect();
    try {
      await client.query(`DROP TABLE IF EXISTS as_binary, as_text; CREATE TEMP TABLE as_binary (LIKE user_activity INCLUDING DEFAULTS); CREATE TEMP TABLE as_text (LIKE user_activity INCLUDING DEFAULTS, raw text)`);
      const load = async (withRaw: boolean) => {
        const spool = new RejectSpool();
        try {
          const reader = new FileReader(file, 42, rules, spool, withRaw);
          expect(reader.binary).toBe(!withRaw);
          const sql = withRaw ? `COPY as_text (${COLUMNS}, raw) FROM STDIN` : `COPY as_binary (${BINARY_COLUMNS}) FROM STDIN (FORMAT binary)`;
          // As the sink does: the server fills in the file and batch that COPY binary leaves out.
          await client.query('BEGIN');
          if (!withRaw) await client.query(setRowDefaults(file.name, 42));
          const copied = await copyInto(client, sql, reader.copyData(), 60_000);
          await client.query('COMMIT');
          expect(copied).toBe(reader.counts.rowsValid);
          return reader.counts;
        } finally {
          await spool.dispose();
        }
      };
      const binary = await load(false);
      const textual = await load(true);
      expect(binary).toEqual(textual);
      // Only prices that round past 9999999999.99 are rejected.
      expect(binary.rowsValid, `seed ${SEED}`).toBeGreaterThan(rows.length * 0.95);

      const differing = await client.query(
        `SELECT b.source_line, b.price::text AS b_price, t.price::text AS t_price, b.event_time AS b_time, t.event_time AS t_time, t.raw
           FROM as_binary b FULL JOIN as_text t USING (source_line)
          WHERE (b.event_id, b.user_id, b.event_type, b.product_id, b.price::text, b.quantity, b.event_time, b.source_event_id, b.attributes, b.source_file, b.batch_id)
                IS DISTINCT FROM (t.event_id, t.user_id, t.event_type, t.product_id, t.price::text, t.quantity, t.event_time, t.source_event_id, t.attributes, t.source_file, t.batch_id)
          LIMIT 5`,
      );
      expect(differing.rows, `seed ${SEED}`).toEqual([]);
      const { rows: counts } = await client.query('SELECT (SELECT count(*) FROM as_binary)::int AS b, (SELECT count(*) FROM as_text)::int AS t');
      expect(counts[0]).toEqual({ b: binary.rowsValid, t: binary.rowsValid });
      // Guards against a vacuous comparison: nulls, ids that are not UUIDs and attributes were all there.
      const { rows: shapes } = await client.query(
        `SELECT count(*) FILTER (WHERE price IS NULL)::int > 0 AND count(*) FILTER (WHERE product_id IS NULL)::int > 0
            AND count(*) FILTER (WHERE source_event_id IS NOT NULL)::int > 0 AND count(*) FILTER (WHERE attributes ? 'category_code')::int > 0 AS ok
           FROM as_binary`,
      );
      expect(shapes[0].ok).toBe(true);
    } finally {
      client.release();
    }
  });

  it('plain rows that share a date and hour with the row before are stored at their own instant', async () => {
    // The byte-level path keeps the last date and hour it read; these runs of rows share, or nearly share, them.
    const hours = ['2024-02-29T10', '2024-02-29T11', '2024-02-29 11', '2024-02-28 11', '2024-03-01 11', '2023-03-01 11', '2023-03-01T11', '2024-12-29T11', '0001-01-01T00'];
    const zones = ['Z', '+05:30', '-0800', '', '+01'];
    const times: string[] = [];
    for (let i = 0; i < 300; i++) times.push(`${hours[Math.floor(i / 3) % hours.length]}:${String(i % 60).padStart(2, '0')}:${String((i * 7) % 60).padStart(2, '0')}.${String(i).padStart(3, '0')}${zones[i % zones.length]}`);
    const lines = times.map((t, i) => `0b0f7a2e-1c2d-4e5f-8a9b-${i.toString(16).padStart(12, '0')},user_${i},view,SKU-${i},1.00,1,${t},${t}`);
    const path = join(dir, 'hours.csv');
    await writeFile(path, `event_id,user_id,event_type,product_id,price,quantity,event_time,written\n${lines.join('\n')}\n`);
    const st = await stat(path);
    const file = { name: 'hours.csv', path, size: st.size, mtimeMs: st.mtimeMs };
    const spool = new RejectSpool();
    const client = await pool.connect();
    try {
      await client.query(`SET TimeZone = 'UTC'; DROP TABLE IF EXISTS as_binary; CREATE TEMP TABLE as_binary (LIKE user_activity INCLUDING DEFAULTS)`);
      const reader = new FileReader(file, 7, readRules(), spool);
      await client.query('BEGIN');
      await client.query(setRowDefaults(file.name, 7));
      expect(await copyInto(client, `COPY as_binary (${BINARY_COLUMNS}) FROM STDIN (FORMAT binary)`, reader.copyData(), 60_000)).toBe(times.length);
      await client.query('COMMIT');
      // PostgreSQL reads each time as written (kept in attributes) and must find the instant stored.
      const { rows } = await client.query(`SELECT source_line, event_time, attributes->>'written' AS written FROM as_binary WHERE event_time IS DISTINCT FROM (attributes->>'written')::timestamptz`);
      expect(rows).toEqual([]);
      const { rows: n } = await client.query(`SELECT count(DISTINCT date_trunc('hour', event_time))::int AS hours FROM as_binary`);
      expect(n[0].hours).toBeGreaterThan(20);
    } finally {
      client.release();
      await spool.dispose();
    }
  });

  it('a file of many pieces is stored exactly while the memory of pieces handed over is written again', async () => {
    // 60,000 plain rows (~6 MB): some 25 pieces, three slabs' worth, on the byte-level path.
    const lines = Array.from({ length: 60_000 }, (_, i) => {
      const hex = i.toString(16).padStart(12, '0');
      const cents = (i * 7919) % 100_000;
      return `0b0f7a2e-1c2d-4e5f-8a9b-${hex},user_${i % 997},${i % 10 === 0 ? 'purchase' : 'view'},SKU-${i % 501},${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')},${1 + (i % 5)},2026-01-01T00:${String(Math.floor(i / 1000) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z`;
    });
    const path = join(dir, 'pieces.csv');
    await writeFile(path, `event_id,user_id,event_type,product_id,price,quantity,event_time\n${lines.join('\n')}\n`);
    const st = await stat(path);
    const file = { name: 'pieces.csv', path, size: st.size, mtimeMs: st.mtimeMs };

    const client = await pool.connect();
    const spool = new RejectSpool();
    try {
      await client.query('DROP TABLE IF EXISTS pieces; CREATE TEMP TABLE pieces (LIKE user_activity INCLUDING DEFAULTS)');
      const reader = new FileReader(file, 5, readRules(), spool);
      let asked = 0, reused = 0;
      await client.query('BEGIN');
      await client.query(setRowDefaults(file.name, 5));
      const copied = await copyInto(client, `COPY pieces (${BINARY_COLUMNS}) FROM STDIN (FORMAT binary)`, (handedOver) => reader.copyData(() => {
        asked++;
        const free = handedOver();
        if (free) reused++;
        return free;
      }), 60_000);
      await client.query('COMMIT');
      reader.release();
      expect(copied).toBe(lines.length);
      // Not vacuous: pieces were written over, after the connection had handed earlier ones on.
      expect(asked).toBeGreaterThan(20);
      expect(reused).toBeGreaterThan(0);

      const { rows } = await client.query<{ line: string }>(
        `SELECT concat_ws(',', event_id, user_id, event_type, product_id, price, quantity, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), source_file, batch_id) AS line
           FROM pieces ORDER BY source_line`,
      );
      expect(rows.map((r) => r.line)).toEqual(lines.map((l) => `${l},pieces.csv,5`));
    } finally {
      await spool.dispose();
      client.release();
    }
  });
});
