import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrate, SQL_DIR } from '../streamer/src/db/migrate.ts';
import type { TestDatabase } from './support/db.ts';
import { finished, generate, spawnProgram, streamAvailableNow, tableState, type Run } from './support/pipeline.ts';
import { useWorkspace, type Workspace } from './support/workspace.ts';

// Each revenue view, read from the rollups, against the same view as the migrations before the
// rollups defined it (the aggregate over user_activity), row for row as text: values, scale and nulls.

const VIEWS = ['revenue_by_minute', 'revenue_by_hour', 'revenue_by_day', 'revenue_by_product', 'revenue_by_user', 'conversion_funnel'] as const;
const HEADER = 'event_id,user_id,event_type,product_id,price,quantity,event_time\n';
const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** The last definition of each view in the migrations before 050, as reference_<view>; revenue_by_minute as revenue_by_hour's by minute. */
async function referenceViews(): Promise<Map<string, string>> {
  const defs = new Map<string, string>();
  for (const file of (await readdir(SQL_DIR)).filter((f) => /^0[0-4]\d_.*\.sql$/.test(f)).sort()) {
    for (const m of (await readFile(join(SQL_DIR, file), 'utf8')).matchAll(/CREATE OR REPLACE VIEW (\w+) AS\n([\s\S]*?);\n/g)) defs.set(m[1]!, m[2]!);
  }
  defs.set('revenue_by_minute', defs.get('revenue_by_hour')!.replace(`date_trunc('hour'`, `date_trunc('minute'`).replace(/AS hour\b/, 'AS minute'));
  return defs;
}

async function createReferences(db: TestDatabase): Promise<void> {
  const defs = await referenceViews();
  for (const view of VIEWS) await db.query(`CREATE OR REPLACE VIEW reference_${view} AS ${defs.get(view)}`);
}

async function rowsAsText(db: TestDatabase, relation: string): Promise<string[]> {
  return (await db.query<{ r: string }>(`SELECT t::text AS r FROM ${relation} t ORDER BY 1`)).rows.map((r) => r.r);
}

async function columns(db: TestDatabase, relation: string): Promise<string[]> {
  const { rows } = await db.query<{ c: string }>(
    `SELECT attname || ' ' || format_type(atttypid, atttypmod) AS c FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum`,
    [relation],
  );
  return rows.map((r) => r.c);
}

/** Every view equals its aggregate over user_activity, with the same columns; `expectRows`: user_activity is not empty. */
async function expectViewsExact(db: TestDatabase, expectRows = true): Promise<void> {
  await createReferences(db);
  for (const view of VIEWS) {
    expect(await columns(db, view), view).toEqual(await columns(db, `reference_${view}`));
    const rows = await rowsAsText(db, view);
    expect(rows, view).toEqual(await rowsAsText(db, `reference_${view}`));
    if (expectRows) expect(rows.length, view).toBeGreaterThan(0);
  }
}

async function pendingDeltas(db: TestDatabase): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM rollup_minute_delta) + (SELECT count(*) FROM rollup_day_delta) + (SELECT count(*) FROM rollup_day_user_delta)
          + (SELECT count(*) FROM rollup_product_delta) + (SELECT count(*) FROM rollup_user_delta) AS n`,
  );
  return Number(rows[0]!.n);
}

function verify(ws: Workspace, args: string[] = []): Promise<Run> {
  return finished(spawnProgram('streamer/src/commands/verify.ts', ['--data-dir', ws.data.dir, ...args], { DATABASE_URL: ws.db.url }));
}

async function deadlocks(db: TestDatabase): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0]!.n);
}

describe('rollups behind the revenue views', () => {
  const ws = useWorkspace({ input: true });

  it('are exact after a generated run, folded after each batch, and verify agrees', async () => {
    await generate(ws.data.dir, { files: 6, rows: 700, seed: 31 });
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--max-files-per-batch', '2']);
    expect(run.code, run.output).toBe(0);
    expect((await tableState(ws.db)).count).toBe(4200);
    await expectViewsExact(ws.db);
    expect(await pendingDeltas(ws.db)).toBe(0);
    const checked = await verify(ws);
    expect(checked.code, checked.output).toBe(0);
    expect(checked.output).toContain('the rollups agree with user_activity');
  });

  it('count a duplicate once: repeated ids in and across files, a file dropped again, unpriced purchases, a manual insert', async () => {
    await generate(ws.data.dir, { files: 2, rows: 500, seed: 32 });
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    const [first] = (await readdir(ws.data.input)).sort();
    await copyFile(join(ws.data.input, first!), join(ws.data.input, 'again.csv'));
    // Ids 1..3 twice within the file, then stored ids of the first file (same content: duplicates).
    const stored = (await readFile(join(ws.data.input, first!), 'utf8')).split('\n').slice(1, 40).join('\n');
    const row = (i: number, type: string, product: string, price: string, t: string) => `${id(i)},u${i % 4},${type},${product},${price},2,${t}\n`;
    await writeFile(
      join(ws.data.input, 'repeats.csv'),
      HEADER +
        row(1, 'purchase', '', '', '2026-05-01T10:00:00Z') + // no product, no price: null revenue where all are unpriced
        row(2, 'purchase', 'SKU-1', '', '2026-05-01T10:00:30Z') +
        row(3, 'view', '', '4.00', '2026-05-01T23:59:59.999Z') +
        row(1, 'purchase', '', '', '2026-05-01T10:00:00Z') +
        row(2, 'purchase', 'SKU-1', '', '2026-05-01T10:00:30Z') +
        row(4, 'purchase', 'SKU-1', '7.25', '2026-05-02T00:00:00Z') +
        `${stored}\n`,
    );
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);
    const { rows } = await ws.db.query<{ name: string; status: string; rows_duplicate: string }>(`SELECT name, status, rows_duplicate FROM ingest_files WHERE name IN ('again.csv', 'repeats.csv') ORDER BY name`);
    expect(rows).toEqual([
      { name: 'again.csv', status: 'duplicate', rows_duplicate: '0' },
      { name: 'repeats.csv', status: 'loaded', rows_duplicate: '41' },
    ]);
    // Whatever path stores a row: an INSERT by hand, with a conflict skipped.
    await ws.db.query(
      `INSERT INTO user_activity (event_id, user_id, event_type, product_id, price, quantity, event_time, source_file, source_line, batch_id)
       VALUES ($1, 'u9', 'purchase', 'SKU-9', 1.10, 3, '2026-05-03T00:00:00Z', 'by-hand', 1, 0), ($2, 'u9', 'purchase', 'SKU-9', 1.10, 3, now(), 'by-hand', 2, 0)
       ON CONFLICT (event_id) DO NOTHING`,
      [id(900), id(4)],
    );
    const day = () => ws.db.query(`SELECT purchases, revenue, buyers, purchases_unpriced FROM revenue_by_day WHERE day = '2026-05-01'`);
    expect((await day()).rows).toEqual([{ purchases: '2', revenue: null, buyers: '2', purchases_unpriced: '2' }]);
    // Not folded yet: a buyer already compacted for the day, and one pending twice, are each one buyer.
    for (const [i, user, t] of [[901, 'u1', '2026-05-01T12:00:00Z'], [902, 'u9', '2026-05-03T01:00:00Z']] as const) {
      await ws.db.query(
        `INSERT INTO user_activity (event_id, user_id, event_type, product_id, price, quantity, event_time, source_file, source_line, batch_id)
         VALUES ($1, $2, 'purchase', 'SKU-9', 1.10, 2, $3, 'by-hand', $4, 0)`,
        [id(i), user, t, i],
      );
    }
    expect(await pendingDeltas(ws.db)).toBeGreaterThan(0);
    await expectViewsExact(ws.db);
    expect((await day()).rows).toEqual([{ purchases: '3', revenue: '2.20', buyers: '2', purchases_unpriced: '2' }]);
  });

  it('follow replay-rejects: rows it stores are counted, duplicates among them are not', async () => {
    await writeFile(
      join(ws.data.input, 'paid.csv'),
      HEADER +
        `${id(1)},u1,purchase,SKU-1,2.00,1,2026-05-01T10:00:00Z\n` +
        `${id(1)},u1,paid,SKU-1,2.00,1,2026-05-01T10:00:00Z\n` + // rejected now, a duplicate of line 2 once read as a purchase
        `${id(2)},u2,paid,SKU-2,3.50,2,2026-05-01T11:00:00Z\n` +
        `${id(3)},u3,paid,SKU-2,,1,2026-05-02T11:00:00Z\n`,
    );
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    expect((await tableState(ws.db)).count).toBe(1);
    const replay = await finished(
      spawnProgram('streamer/src/commands/replayRejects.ts', ['--data-dir', ws.data.dir, '--event-synonyms', 'purchase=paid'], { DATABASE_URL: ws.db.url }),
    );
    expect(replay.code, replay.output).toBe(0);
    expect(replay.output).toContain('3 replayed: 2 now loaded, 1 duplicate');
    expect(await pendingDeltas(ws.db)).toBe(0);
    await expectViewsExact(ws.db);
    const funnel = await ws.db.query('SELECT buyers, purchases FROM conversion_funnel');
    expect(funnel.rows).toEqual([{ buyers: '3', purchases: '3' }]);
  });

  const points = ['after-offsets', 'mid-copy', 'before-file-commit', 'after-db-commit', 'mid-checkpoint-write'] as const;
  it.each(points)('agree with the rows after a crash at %s and the restart', async (point) => {
    await generate(ws.data.dir, { files: 6, rows: 800, seed: 33 });
    const args = ['--max-files-per-batch', '2', '--file-concurrency', '2'];
    const crashed = await streamAvailableNow(ws.data.dir, ws.db, args, { DROPSTREAM_CRASH_AT: `${point}@2` });
    expect(crashed.signal, crashed.output).toBe('SIGKILL');
    await expectViewsExact(ws.db);
    const resumed = await streamAvailableNow(ws.data.dir, ws.db, args);
    expect(resumed.code, resumed.output).toBe(0);
    expect((await tableState(ws.db)).count).toBe(4800);
    await expectViewsExact(ws.db);
  });

  it('stay exact and deadlock-free with --file-concurrency 4, files sharing ids loading at once', async () => {
    await generate(ws.data.dir, { files: 8, rows: 1500, seed: 34 });
    // Every generated file again with half its rows, under other names: the staging path, concurrently.
    for (const name of await readdir(ws.data.input)) {
      const lines = (await readFile(join(ws.data.input, name), 'utf8')).split('\n');
      await writeFile(join(ws.data.input, `half-${name}`), `${lines.filter((_, i) => i === 0 || i % 2 === 1).join('\n')}\n`);
    }
    const before = await deadlocks(ws.db);
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--file-concurrency', '4', '--max-files-per-batch', '8']);
    expect(run.code, run.output).toBe(0);
    expect(run.output).not.toMatch(/deadlock/i);
    expect(await deadlocks(ws.db)).toBe(before);
    expect((await tableState(ws.db)).count).toBe(12_000);
    await expectViewsExact(ws.db);
    expect(await pendingDeltas(ws.db)).toBe(0);
  });

  it('verify reports a rollup row edited by hand and a row deleted from user_activity, and --rebuild repairs both', async () => {
    await generate(ws.data.dir, { files: 2, rows: 400, seed: 35 });
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    const { rows: [product] } = await ws.db.query<{ product_id: string; views: string }>('SELECT product_id, views FROM rollup_product ORDER BY product_id LIMIT 1');
    await ws.db.query('UPDATE rollup_product SET views = views + 1 WHERE product_id = $1', [product!.product_id]);
    const edited = await verify(ws);
    expect(edited.code, edited.output).toBe(1);
    expect(edited.output).toContain(`product product_id=${product!.product_id}: rollups {`);
    expect(edited.output).toContain(`"views":${Number(product!.views) + 1}`);
    expect(edited.output).toContain('1 keys differ');

    await ws.db.query(`DELETE FROM user_activity WHERE event_id = (SELECT event_id FROM user_activity WHERE event_type = 'purchase' ORDER BY event_id LIMIT 1)`);
    const deleted = await verify(ws);
    expect(deleted.code).toBe(1);
    expect(deleted.output).toMatch(/minute minute=/);
    expect(deleted.output).toMatch(/day_user day=/);

    const rebuilt = await verify(ws, ['--rebuild']);
    expect(rebuilt.code, rebuilt.output).toBe(0);
    expect(rebuilt.output).toContain('the rollups agree with user_activity');
    await expectViewsExact(ws.db);
  });
});

describe('the migration of the rollups', () => {
  const ws = useWorkspace();

  it('counts the rows loaded before it, once, and the views stay what they were', async () => {
    const earlier = await mkdtemp(join(tmpdir(), 'dropstream-sql-'));
    const client = new pg.Client({ connectionString: ws.db.url });
    await client.connect();
    try {
      for (const f of (await readdir(SQL_DIR)).filter((f) => f < '050')) await copyFile(join(SQL_DIR, f), join(earlier, f));
      await migrate(client, earlier);
      // Rows of every kind the views tell apart: unpriced, without product, other event types, UTC day edges.
      await client.query(
        `INSERT INTO user_activity (event_id, user_id, event_type, product_id, price, quantity, event_time, source_file, source_line, batch_id)
         SELECT gen_random_uuid(), 'u' || (i % 23), (ARRAY['view', 'view', 'purchase', 'add_to_cart'])[1 + i % 4],
                CASE WHEN i % 31 = 0 THEN NULL ELSE 'p' || (i % 17) END, CASE WHEN i % 7 = 0 THEN NULL ELSE (i % 90) + 0.49 END,
                1 + i % 4, '2026-03-01T22:00:00Z'::timestamptz + i * interval '13 seconds', 'before.csv', i, 1
           FROM generate_series(1, 20000) i`,
      );
      const before = Object.fromEntries(await Promise.all(VIEWS.filter((v) => v !== 'revenue_by_minute').map(async (v) => [v, await rowsAsText(ws.db, v)] as const)));
      // The rollups' migration first; later ones follow it.
      expect((await migrate(client))[0]).toBe('050_rollups.sql');
      for (const [view, rows] of Object.entries(before)) expect(await rowsAsText(ws.db, view), view).toEqual(rows);
      await expectViewsExact(ws.db);
      const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM rollup_user');
      expect(Number(rows[0]!.n)).toBe(23);
      expect(await pendingDeltas(ws.db)).toBe(0);
    } finally {
      await client.end();
      await rm(earlier, { recursive: true, force: true });
    }
  });
});
