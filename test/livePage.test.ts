import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../lib/freePort.ts';
import { ROOT } from '../lib/paths.ts';
import { PAGE_DIR } from '../streamer/src/observe/livePage.ts';
import { openBrowser, type Browser } from './support/browser.ts';
import { ownServer, type OwnServer } from './support/ownServer.ts';
import { finished, generate, makeDataDir, startStreamer, waitForOutput, type DataDir } from './support/pipeline.ts';

/** The charts drawn from the progress records: one point per batch. */
const PROGRESS_CHARTS = ['rates', 'durations', 'backlog', 'latency', 'rejects'];
/** Where the screenshot goes; LIVE_PAGE_SCREENSHOT=docs/live-page.png renews the README's. */
const SCREENSHOT = resolve(ROOT, process.env.LIVE_PAGE_SCREENSHOT ?? 'test-results/live-page.png');

const int = new Intl.NumberFormat('en-US');
const money = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const HEADER = 'event_id,user_id,event_type,product_id,price,quantity,event_time\n';
const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

describe('the live page at /, in headless Chromium, against a running streamer', () => {
  let server: OwnServer;
  let data: DataDir;
  let streamer: ReturnType<typeof startStreamer>;
  let browser: Browser;
  let page: Page;
  let origin: string;
  const requests: string[] = [];
  const pageErrors: string[] = [];

  const count = async (sql: string) => Number((await server.query<{ n: string }>(sql)).rows[0]!.n);
  const batchesWithProgress = () => count('SELECT count(*) AS n FROM ingest_batches WHERE progress IS NOT NULL');
  const text = async (selector: string) => (await page.locator(selector).textContent())?.trim();
  const rowsOf = (table: string) => page.$$eval(`#${table} tbody tr:not(.empty)`, (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));

  /** A file written beside input, then renamed in whole, as a careful producer does. */
  async function drop(name: string, content: string): Promise<void> {
    const temp = join(data.dir, `.${name}.tmp`);
    await writeFile(temp, content);
    await rename(temp, join(data.input, name));
  }

  /** Waits until every progress chart has `n` points, saying how many they have if they do not get there. */
  async function waitForPoints(n: number): Promise<void> {
    try {
      await page.waitForFunction(
        ({ charts, n }) => charts.every((c) => document.getElementById(`chart-${c}`)?.dataset.points === String(n)),
        { charts: PROGRESS_CHARTS, n },
        { timeout: 20_000 },
      );
    } catch (err) {
      const points = await page.$$eval('figure.chart', (figures) => figures.map((f) => `${f.id}=${f.dataset.points}`));
      throw new Error(`the charts did not reach ${n} points: ${points.join(' ')}`, { cause: err });
    }
  }

  /** Waits for a whole poll that began after this call, so that everything shown is at least as new. */
  async function freshPoll(): Promise<void> {
    const seen = Number(await page.locator('body').getAttribute('data-polls'));
    await page.waitForFunction((after) => Number(document.body.dataset.polls) >= after + 2, seen, { timeout: 15_000 });
  }

  beforeAll(async () => {
    server = await ownServer();
    data = await makeDataDir();
    await mkdir(data.input, { recursive: true });
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    // One file per batch: each file dropped is one more point on every chart.
    streamer = startStreamer(data.dir, server, ['--http-port', String(port), '--max-files-per-batch', '1', '--trigger-interval-ms', '200']);
    await waitForOutput(streamer, 'watching for files');
    browser = await openBrowser();
    page = browser.page;
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${origin}/`);
    await page.locator('#state[data-state="running"]').waitFor({ timeout: 15_000 });
  });

  afterAll(async () => {
    await browser?.close();
    if (streamer && streamer.exitCode === null) {
      streamer.kill('SIGTERM');
      await finished(streamer);
    }
    await server?.remove();
    await data?.remove();
  });

  it('draws each batch as it commits: the charts gain a point per batch as files are dropped', async () => {
    await waitForPoints(0);
    await generate(data.dir, { files: 3, rows: 2000, seed: 71 });
    await drop(
      'hand-typed.csv',
      `${HEADER}${uuid(1)},user_1,purchase,SKU-1,abc,1,2026-05-01T10:00:00Z\n${uuid(2)},user_1,teleport,SKU-1,1.00,1,2026-05-01T10:00:01Z\n${uuid(3)},user_2,purchase,SKU-2,12.50,2,2026-05-01T10:00:02Z\n`,
    );
    await expect.poll(batchesWithProgress, { timeout: 60_000 }).toBe(4);
    await waitForPoints(4);

    await generate(data.dir, { files: 3, rows: 2000, seed: 72 });
    await drop('not-a-csv.csv', 'this is not a header\n1,2,3\n');
    await expect.poll(batchesWithProgress, { timeout: 60_000 }).toBe(8);
    await waitForPoints(8);
    expect(await page.locator('#chart-rates canvas').count(), 'uPlot drew the chart').toBe(1);
  });

  it('shows the figures the database holds: totals, revenue per minute, recent batches, rejects, files set aside, layouts', async () => {
    await freshPoll();
    const db = (
      await server.query<Record<string, string>>(
        `SELECT (SELECT count(*) FROM user_activity) AS events,
                (SELECT count(*) FROM user_activity_rejects) AS rejects,
                (SELECT count(*) FROM ingest_batches) AS batches,
                (SELECT count(*) FROM ingest_files WHERE status = 'loaded') AS loaded,
                (SELECT count(*) FROM ingest_files WHERE status = 'quarantined') AS quarantined,
                (SELECT count(*) FROM user_activity WHERE event_type = 'purchase') AS purchases,
                (SELECT sum(price * quantity) FROM user_activity WHERE event_type = 'purchase') AS revenue,
                (SELECT id FROM ingest_stream) AS stream_id,
                (SELECT progress->>'runId' FROM ingest_batches ORDER BY id DESC LIMIT 1) AS run_id`,
      )
    ).rows[0]!;
    expect(Number(db.rejects), 'the hand-typed file has two bad rows').toBe(2);
    expect(await text('#stream-id')).toBe(db.stream_id);
    expect(await text('#run-id')).toBe(db.run_id);
    expect(await text('#total-events')).toBe(int.format(Number(db.events)));
    expect(await text('#total-rejects')).toBe(int.format(Number(db.rejects)));
    expect(await text('#total-batches')).toBe(int.format(Number(db.batches)));
    expect(await text('#total-files')).toBe(int.format(Number(db.loaded)));
    expect(await text('#total-quarantined')).toBe(int.format(Number(db.quarantined)));
    // Revenue per minute loaded, over the last 15 minutes: this test's rows, all loaded within them.
    expect(await text('#revenue-window')).toBe(money.format(Number(db.revenue)));
    expect(await text('#purchases-window')).toBe(int.format(Number(db.purchases)));
    expect(await page.locator('#chart-revenue').getAttribute('data-points')).toBe('15');

    const batches = await server.query<Record<string, string>>(
      'SELECT id, files, rows_read, rows_loaded, rows_rejected, rows_duplicate FROM ingest_batches ORDER BY id DESC LIMIT 15',
    );
    expect((await rowsOf('batches')).map((cells) => [0, 2, 3, 4, 5, 6].map((i) => cells[i]))).toEqual(
      batches.rows.map((b) => [b.id, b.files, b.rows_read, b.rows_loaded, b.rows_rejected, b.rows_duplicate].map((v) => int.format(Number(v)))),
    );

    const rejects = await server.query<{ source_file: string; source_line: string; reason: string }>(
      'SELECT source_file, source_line, reason FROM user_activity_rejects ORDER BY id DESC LIMIT 20',
    );
    expect((await rowsOf('rejects')).map((cells) => cells.slice(1, 4))).toEqual(rejects.rows.map((r) => [r.source_file, r.source_line, r.reason]));

    const aside = await server.query<{ name: string; reason: string; batch_id: string }>(
      `SELECT name, reason, batch_id FROM ingest_files WHERE status = 'quarantined' ORDER BY committed_at DESC, id DESC`,
    );
    expect(aside.rows.map((r) => r.name)).toEqual(['not-a-csv.csv']);
    expect((await rowsOf('quarantine')).map((cells) => cells.slice(1, 4))).toEqual(aside.rows.map((r) => [r.name, r.reason, r.batch_id]));

    // Layouts are recorded by streamers whose schema has ingest_layouts; the table is there, and empty, without.
    if (await count(`SELECT (to_regclass('ingest_layouts') IS NOT NULL)::int AS n`)) {
      const layouts = await server.query<{ id: string; first_file: string }>('SELECT id, first_file FROM ingest_layouts');
      expect((await rowsOf('layouts')).map((cells) => [cells[0], cells[5]]).sort()).toEqual(layouts.rows.map((l) => [l.id, l.first_file]).sort());
    } else {
      expect(await rowsOf('layouts')).toEqual([]);
      expect(await text('#layouts tbody tr.empty')).toBe('this streamer records no layouts');
    }
    expect(pageErrors).toEqual([]);
  });

  it('turns to a database outage when its PostgreSQL stops, with the error, and back to running when it returns; the stream goes on', async () => {
    const runId = await text('#run-id');
    await server.stop();
    await page.locator('#state[data-state="outage"]').waitFor({ timeout: 30_000 });
    // A file dropped now waits with the stream; its batch's retries are the last error shown.
    await generate(data.dir, { files: 1, rows: 2000, seed: 73 });
    await page.waitForFunction(() => document.getElementById('last-error')?.textContent?.includes('database unavailable'), null, { timeout: 30_000 });
    expect(await text('#state')).toBe('database outage');
    expect(await text('#run-id'), 'the header still shows the stream').toBe(runId);
    await page.locator('main.stale').waitFor({ timeout: 15_000 }); // the figures are the last read, dimmed

    await server.start();
    await page.locator('#state[data-state="running"]').waitFor({ timeout: 60_000 });
    await page.locator('main:not(.stale)').waitFor({ timeout: 15_000 });
    await expect.poll(batchesWithProgress, { timeout: 60_000 }).toBe(9);
    await waitForPoints(9);
    expect(await page.locator('#last-error').getAttribute('class')).toBe('last-error past');
    expect(await text('#last-error')).toMatch(/^last error .* ago, at \d\d:\d\d:\d\d, .*database unavailable/);
    expect(pageErrors).toEqual([]);
  });

  it('fetches nothing but from the streamer (it works offline), and saves a screenshot', async () => {
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.filter((url) => !url.startsWith(`${origin}/`))).toEqual([]);
    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const png = await readFile(SCREENSHOT);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(50_000);
  });
});

describe('the live page in the image', () => {
  it("is there: the Dockerfile's last stage copies the page's files, and uPlot is a dependency its npm ci keeps", async () => {
    const runtime = (await readFile(join(ROOT, 'Dockerfile'), 'utf8')).split(/^FROM /m).at(-1)!;
    const dir = relative(ROOT, PAGE_DIR);
    expect(runtime).toContain(`COPY ${dir} ${dir}`);
    const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(manifest.dependencies).toHaveProperty('uplot');
  });
});
