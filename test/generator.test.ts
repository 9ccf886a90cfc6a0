import { isUtf8 } from 'node:buffer';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BAD_ROW_KINDS, MANIFEST_SUFFIX, type BadRowKind, type InjectionManifest } from '../generator/src/badRows.ts';
import { ConfigError, parseCli, SEEDED_START_TIME, type GeneratorConfig } from '../generator/src/config.ts';
import { CSV_HEADER, createEventSource, formatCents, formatCsvLine, formatEventTime } from '../generator/src/events.ts';
import { LAYOUT_NAMES, type LayoutName } from '../generator/src/layouts.ts';
import { createFileNamer, runGenerator } from '../generator/src/runGenerator.ts';
import { writeEventFile } from '../generator/src/writeEventFile.ts';
import { compiled, ROOT } from '../lib/paths.ts';
import { streamAvailableNow } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

const NAME = /^events-\d{8}T\d{9}Z-\d{6}-[0-9a-f]{4}\.csv$/;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO_UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const dirs: string[] = [];
async function tempDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dropstream-generator-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

/** A pino logger whose lines land in an array, to check what the generator reports. */
function captureLogger() {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { log, lines };
}

function config(dataDir: string, overrides: Partial<GeneratorConfig> = {}): GeneratorConfig {
  return {
    dataDir,
    files: 1,
    rows: 100,
    intervalMs: 0,
    seed: undefined,
    purchaseRatio: 0.2,
    startTime: Date.now(),
    layout: 'canonical',
    badRows: 0,
    ...overrides,
  };
}

interface Row {
  eventId: string;
  userId: string;
  eventType: string;
  productId: string;
  price: string;
  quantity: string;
  eventTime: string;
}

function parseRows(text: string): Row[] {
  return text
    .split('\n')
    .slice(1, -1)
    .map((line) => {
      const fields = line.split(',');
      expect(fields).toHaveLength(7);
      const [eventId, userId, eventType, productId, price, quantity, eventTime] = fields as [
        string, string, string, string, string, string, string,
      ];
      return { eventId, userId, eventType, productId, price, quantity, eventTime };
    });
}

/** What a reader must never fail on: the whole file, header to last "\n". */
function expectComplete(text: string, rows: number, name: string): void {
  expect(text.startsWith(`${CSV_HEADER}\n`), `${name} starts with the header`).toBe(true);
  expect(text.endsWith('\n'), `${name} ends with a newline`).toBe(true);
  expect(text.split('\n').length - 1, `${name} has header + ${rows} lines`).toBe(rows + 1);
}

async function readInput(dataDir: string): Promise<Map<string, string>> {
  const input = join(dataDir, 'input');
  const names = (await readdir(input)).sort();
  return new Map(await Promise.all(names.map(async (name) => [name, await readFile(join(input, name), 'utf8')] as const)));
}

/**
 * Reads every file in input over and over until stop() resolves, checking each read at once.
 * Returns how many reads happened while the writer was still running.
 */
async function pollInput(dataDir: string, rows: number, running: Promise<unknown>): Promise<number> {
  let stopped = false;
  void running.finally(() => (stopped = true)).catch(() => undefined);
  const input = join(dataDir, 'input');
  let reads = 0;
  while (!stopped) {
    const names = await readdir(input).catch(() => [] as string[]);
    for (const name of names) {
      expectComplete(await readFile(join(input, name), 'utf8'), rows, name);
      if (!stopped) reads++;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return reads;
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startCli(args: string[]) {
  const child = spawn(process.execPath, [compiled('generator/src/main.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_FORMAT: 'json', DROPSTREAM_DATA_DIR: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<ChildResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, exited };
}

function logLines(stdout: string): LogLine[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

describe('events', () => {
  it('formats event times exactly as Date#toISOString, in any order of calls', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: Date.parse('9999-12-31T23:59:59.999Z') })), (times) => {
        for (const ms of times) expect(formatEventTime(ms)).toBe(new Date(ms).toISOString());
      }),
    );
  });

  it('formats cents with exactly two decimals', () => {
    expect([formatCents(1999), formatCents(49), formatCents(100), formatCents(5), formatCents(0)]).toEqual([
      '19.99',
      '0.49',
      '1.00',
      '0.05',
      '0.00',
    ]);
  });

  it('keeps one price per product', () => {
    const next = createEventSource({ seed: 3, purchaseRatio: 0.5, startTime: 0 });
    const prices = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const event = next();
      expect(prices.get(event.productId) ?? event.priceCents).toBe(event.priceCents);
      prices.set(event.productId, event.priceCents);
    }
  });
});

describe('runGenerator', () => {
  it('writes --files files of --rows valid rows into input, nothing left in temp, and logs their revenue', async () => {
    const dataDir = await tempDataDir();
    const { log, lines } = captureLogger();
    const { files } = await runGenerator(config(dataDir, { files: 3, rows: 50 }), { log });

    const written = await readInput(dataDir);
    expect([...written.keys()]).toHaveLength(3);
    // Lexical order of the names is the order they were written in.
    expect(files.map((path) => basename(path))).toEqual([...written.keys()]);
    expect(await readdir(join(dataDir, 'temp'))).toEqual([]);

    const eventIds = new Set<string>();
    const fileLogs = lines.filter((line) => line.msg === 'file written');
    expect(fileLogs).toHaveLength(3);
    for (const [name, text] of written) {
      expect(name).toMatch(NAME);
      expectComplete(text, 50, name);
      let revenueCents = 0;
      let purchases = 0;
      for (const row of parseRows(text)) {
        expect(row.eventId).toMatch(UUID_V4);
        eventIds.add(row.eventId);
        expect(row.userId).toMatch(/^user_\d{4}$/);
        expect(['view', 'purchase']).toContain(row.eventType);
        expect(row.productId).toMatch(/^SKU-\d+$/);
        expect(row.price).toMatch(/^\d+\.\d{2}$/);
        expect(row.quantity).toMatch(/^[1-9]\d*$/);
        if (row.eventType === 'view') expect(row.quantity).toBe('1');
        else expect(Number(row.quantity)).toBeLessThanOrEqual(5);
        expect(row.eventTime).toMatch(ISO_UTC_MS);
        expect(new Date(row.eventTime).toISOString()).toBe(row.eventTime);
        if (row.eventType === 'purchase') {
          purchases++;
          revenueCents += Math.round(Number(row.price) * 100) * Number(row.quantity);
        }
      }
      const fileLog = fileLogs.find((line) => line.file === name);
      expect(fileLog).toMatchObject({ rows: 50, bytes: Buffer.byteLength(text), purchases });
      expect(Math.round((fileLog?.revenue as number) * 100)).toBe(revenueCents);
    }
    expect(eventIds.size).toBe(150);
    expect(lines.at(-1)).toMatchObject({ msg: 'generator finished', files: 3, rows: 150 });
  });

  it('writes no purchases at --purchase-ratio 0 and only purchases at 1', async () => {
    for (const [ratio, expected] of [
      [0, ['view']],
      [1, ['purchase']],
    ] as const) {
      const dataDir = await tempDataDir();
      await runGenerator(config(dataDir, { files: 2, rows: 300, purchaseRatio: ratio }), { log: pino({ level: 'silent' }) });
      const types = new Set([...(await readInput(dataDir)).values()].flatMap((text) => parseRows(text).map((r) => r.eventType)));
      expect([...types]).toEqual(expected);
    }
  });

  it('writes the events of createEventSource, formatted by formatCsvLine', async () => {
    const dataDir = await tempDataDir();
    const startTime = Date.parse('2026-03-01T12:00:00Z');
    await runGenerator(config(dataDir, { files: 2, rows: 40, seed: 9, startTime }), { log: pino({ level: 'silent' }) });

    const next = createEventSource({ seed: 9, purchaseRatio: 0.2, startTime });
    const expected = [0, 1].map(() => `${CSV_HEADER}\n${Array.from({ length: 40 }, () => formatCsvLine(next())).join('')}`);
    expect([...(await readInput(dataDir)).values()]).toEqual(expected);
  });

  it('writes the same bytes for the same seed and different bytes for another seed', async () => {
    const run = async (seed: string) => {
      const dataDir = await tempDataDir();
      const request = parseCli(['--seed', seed, '--files', '3', '--rows', '200', '--interval-ms', '0', '--data-dir', dataDir], {});
      if (request.help) throw new Error('unexpected --help');
      await runGenerator(request.config, { log: pino({ level: 'silent' }) });
      return [...(await readInput(dataDir)).values()];
    };
    const first = await run('42');
    await sleep(5); // a later wall clock must not change a seeded run
    const second = await run('42');
    const other = await run('43');

    expect(first).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      expect(second[i]).toBe(first[i]);
      expect(other[i]).not.toBe(first[i]);
    }
    expect(new Set(first).size).toBe(3);
    // Seeded runs start at the fixed reference time.
    expect(parseRows(first[0]!)[0]!.eventTime.startsWith('2026-01-01T00:00:')).toBe(true);
  });

  it('never shows a reader polling input a partial file', async () => {
    const dataDir = await tempDataDir();
    const running = runGenerator(config(dataDir, { files: 6, rows: 20_000 }), { log: pino({ level: 'silent' }) });
    const reads = await pollInput(dataDir, 20_000, running);
    await running;
    expect(reads).toBeGreaterThan(0);
    expect([...(await readInput(dataDir)).keys()]).toHaveLength(6);
  });

  it('discards the file being written when aborted: nothing in input, nothing in temp', async () => {
    const dataDir = await tempDataDir();
    const controller = new AbortController();
    const source = createEventSource({ seed: 1, purchaseRatio: 0.2, startTime: 0 });
    let produced = 0;
    const stats = await writeEventFile({
      tempDir: dataDir,
      inputDir: join(dataDir, 'input-never-created'),
      name: 'events-test.csv',
      rows: 100_000,
      nextEvent: () => {
        if (++produced === 5_000) controller.abort();
        return source();
      },
      signal: controller.signal,
    });
    expect(stats).toBeUndefined();
    expect(produced).toBeLessThan(100_000);
    expect(await readdir(dataDir)).toEqual([]);
  });
});

interface WrittenFile {
  name: string;
  bytes: Buffer;
  manifest: InjectionManifest | undefined;
}

/** A seeded run in a fresh data directory: its files in name order, each with its manifest, and its log. */
async function generateFiles(overrides: Partial<GeneratorConfig>) {
  const dataDir = await tempDataDir();
  const { log, lines } = captureLogger();
  const cfg = config(dataDir, { seed: 5, startTime: Date.parse(SEEDED_START_TIME), ...overrides });
  await runGenerator(cfg, { log });
  const input = join(dataDir, 'input');
  const names = (await readdir(input)).sort();
  const csvs = names.filter((name) => name.endsWith('.csv'));
  // A manifest beside each file when rows are spoiled, nothing else ever.
  expect(names).toEqual(cfg.badRows > 0 ? csvs.flatMap((name) => [name, name + MANIFEST_SUFFIX]) : csvs);
  const files: WrittenFile[] = await Promise.all(
    csvs.map(async (name) => ({
      name,
      bytes: await readFile(join(input, name)),
      manifest: cfg.badRows > 0 ? (JSON.parse(await readFile(join(input, name + MANIFEST_SUFFIX), 'utf8')) as InjectionManifest) : undefined,
    })),
  );
  return { files, lines };
}

/** The lines of a file as bytes, without their "\n"; the file ends with one. */
function byteLines(bytes: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  for (let start = 0, end = bytes.indexOf(10); end !== -1; start = end + 1, end = bytes.indexOf(10, start)) lines.push(bytes.subarray(start, end));
  expect(bytes.at(-1)).toBe(10);
  return lines;
}

const UUID = UUID_V4;
const PRICE = /^\d+\.\d{2}$/;
const QUANTITY = /^[1-9]\d*$/;
const NAIVE_SECOND = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

/**
 * What each layout must look like, stated here and not taken from the generator: the header (the
 * keys, in order) and the shape of every value; which column holds what, and the name of a purchase.
 */
const SHAPES: Record<LayoutName, { delimiter: string; columns: Record<string, RegExp>; type: string; price: string; quantity?: string; time: string; purchase: string }> = {
  canonical: {
    delimiter: ',',
    columns: { event_id: UUID, user_id: /^user_\d{4}$/, event_type: /^(view|purchase)$/, product_id: /^SKU-\d+$/, price: PRICE, quantity: QUANTITY, event_time: ISO_UTC_MS },
    type: 'event_type',
    price: 'price',
    quantity: 'quantity',
    time: 'event_time',
    purchase: 'purchase',
  },
  rees46: {
    delimiter: ',',
    columns: {
      event_time: /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/,
      event_type: /^(view|cart|remove_from_cart|purchase)$/,
      product_id: /^[1-9]\d*$/,
      category_id: /^\d{19}$/,
      category_code: /^([a-z]+\.[a-z]+)?$/,
      brand: /^[a-z]*$/,
      price: PRICE,
      user_id: /^[1-9]\d*$/,
      user_session: UUID,
    },
    type: 'event_type',
    price: 'price',
    time: 'event_time',
    purchase: 'purchase',
  },
  segment: {
    delimiter: ',',
    columns: {
      messageId: UUID,
      anonymousId: UUID,
      userId: /^user_\d{4}$/,
      event: /^(Product Viewed|Product Added|Product Removed|Order Completed)$/,
      sku: /^SKU-\d+$/,
      price: PRICE,
      quantity: QUANTITY,
      currency: /^USD$/,
      timestamp: ISO_UTC_MS,
    },
    type: 'event',
    price: 'price',
    quantity: 'quantity',
    time: 'timestamp',
    purchase: 'Order Completed',
  },
  semicolon: {
    delimiter: ';',
    columns: {
      event_id: UUID,
      user_id: /^user_\d{4}$/,
      event_type: /^(view|purchase)$/,
      product_id: /^SKU-\d+$/,
      price: PRICE,
      quantity: QUANTITY,
      event_time: NAIVE_SECOND,
      session_id: UUID,
      brand: /^[a-z]*$/,
      category: /^[A-Z][a-z]+$/,
      device_type: /^(desktop|mobile|tablet)$/,
      country: /^[A-Z]{2}$/,
    },
    type: 'event_type',
    price: 'price',
    quantity: 'quantity',
    time: 'event_time',
    purchase: 'purchase',
  },
};

/** Records as objects keyed by the header, read by csv-parse as another tool would read the file. */
function parseLayout(bytes: Buffer, layout: LayoutName): Array<Record<string, string>> {
  const records = parse(bytes, { delimiter: SHAPES[layout].delimiter }) as string[][];
  const header = records[0]!;
  return records.slice(1).map((fields) => {
    expect(fields).toHaveLength(header.length);
    return Object.fromEntries(header.map((name, i) => [name, fields[i]!]));
  });
}

/** Each a maps to one b. */
function expectFunction(pairs: Array<[string, string]>): void {
  const seen = new Map<string, string>();
  for (const [a, b] of pairs) {
    expect(seen.get(a) ?? b, a).toBe(b);
    seen.set(a, b);
  }
}

/** Each a maps to one b, and each b to one a. */
function expectOneToOne(pairs: Array<[string, string]>): void {
  expectFunction(pairs);
  expectFunction(pairs.map(([a, b]) => [b, a]));
}

describe('layouts', () => {
  it('writes the canonical layout as before: the bytes of a seed are pinned', async () => {
    // Files written by earlier versions must stay reproducible from their seed.
    const { files } = await generateFiles({ seed: 42, files: 2, rows: 500 });
    const hash = createHash('sha256');
    for (const file of files) hash.update(file.bytes);
    expect(hash.digest('hex')).toBe('048f6d8b6f8e33c930dc3030c93395a43319746e3c028a6dc1b38f23a94e961e');
  });

  it.each(LAYOUT_NAMES)('%s: the header, the same field count on every line, values of the right shape, and revenue as logged', async (layout) => {
    const shape = SHAPES[layout];
    const { files, lines } = await generateFiles({ layout, files: 2, rows: 400, purchaseRatio: 0.3 });
    expect(files).toHaveLength(2);
    const types = new Set<string>();
    for (const file of files) {
      expect(file.bytes.toString('utf8', 0, file.bytes.indexOf(10))).toBe(Object.keys(shape.columns).join(shape.delimiter));
      expect(file.bytes.includes('"'), 'nothing is quoted').toBe(false);
      const records = parseLayout(file.bytes, layout);
      expect(records).toHaveLength(400);
      let purchases = 0;
      let revenueCents = 0;
      for (const record of records) {
        for (const [column, pattern] of Object.entries(shape.columns)) expect(record[column], `${column} of ${JSON.stringify(record)}`).toMatch(pattern);
        types.add(record[shape.type]!);
        if (record[shape.type] === shape.purchase) {
          purchases++;
          revenueCents += Math.round(Number(record[shape.price]) * 100) * (shape.quantity ? Number(record[shape.quantity]) : 1);
        }
      }
      const fileLog = lines.find((line) => line.msg === 'file written' && line.file === file.name);
      expect(fileLog).toMatchObject({ rows: 400, badRows: 0, purchases });
      expect(Math.round((fileLog?.revenue as number) * 100)).toBe(revenueCents);
    }
    // Every event type of the layout's vocabulary occurs.
    expect([...types].sort()).toEqual(shape.columns[shape.type]!.source.slice(2, -2).split('|').sort());
    expect(lines[0]).toMatchObject({ msg: 'generator started', layout, badRows: 0 });
  });

  it.each(['rees46', 'segment', 'semicolon'] as const)('%s: the events of the same seed in the canonical layout, in the same order', async (layout) => {
    const [canonical, other] = await Promise.all([generateFiles({ files: 2, rows: 300 }), generateFiles({ layout, files: 2, rows: 300 })]);
    const events = canonical.files.flatMap((f) => parseLayout(f.bytes, 'canonical'));
    const records = other.files.flatMap((f) => parseLayout(f.bytes, layout));
    expect(records).toHaveLength(events.length);
    // What a layout adds belongs to a user or a product for the whole run, a session to one user.
    const users: Array<[string, string]> = [];
    const products: Array<[string, string]> = [];
    const sessions: Array<[string, string]> = [];
    records.forEach((r, i) => {
      const e = events[i]!;
      const second = `${e.event_time!.slice(0, 10)} ${e.event_time!.slice(11, 19)}`;
      const purchase = e.event_type === 'purchase';
      if (layout === 'rees46') {
        expect([r.event_time, r.price, r.event_type === 'purchase']).toEqual([`${second} UTC`, e.price, purchase]);
        users.push([e.user_id!, r.user_id!]);
        products.push([e.product_id!, r.product_id!]);
        sessions.push([r.user_session!, r.user_id!]);
      } else if (layout === 'segment') {
        expect([r.messageId, r.userId, r.sku, r.price, r.quantity, r.timestamp, r.event === 'Order Completed']).toEqual([e.event_id, e.user_id, e.product_id, e.price, e.quantity, e.event_time, purchase]);
        users.push([e.user_id!, r.anonymousId!]);
      } else {
        expect(r).toEqual({ ...r, ...e, event_time: second });
        users.push([e.user_id!, `${r.device_type} ${r.country}`]);
        products.push([e.product_id!, `${r.brand} ${r.category}`]);
        sessions.push([r.session_id!, r.user_id!]);
      }
    });
    if (layout === 'semicolon') {
      expectFunction(users);
      expectFunction(products);
    } else {
      // Numeric ids and anonymous ids stand for one user (product) each.
      expectOneToOne(users);
      expectOneToOne(products);
    }
    expectFunction(sessions);
    if (layout !== 'segment') expect(new Set(sessions.map(([s]) => s)).size, 'sessions end').toBeGreaterThan(new Set(sessions.map(([, user]) => user)).size);
  });

  it.each(LAYOUT_NAMES)('%s: the same seed writes the same bytes and the same manifests, another seed others', async (layout) => {
    const run = async (seed: number) => (await generateFiles({ layout, seed, files: 2, rows: 300, badRows: 0.1 })).files;
    const [first, second, other] = await Promise.all([run(5), run(5), run(6)]);
    const injected = (files: WrittenFile[]) => files.map((f) => f.manifest?.injected);
    expect(second.map((f) => f.bytes)).toEqual(first.map((f) => f.bytes));
    expect(injected(second)).toEqual(injected(first));
    expect(injected(first).every((rows) => (rows?.length ?? 0) > 0)).toBe(true);
    for (let i = 0; i < 2; i++) expect(other[i]!.bytes.equals(first[i]!.bytes)).toBe(false);
    expect(injected(other)).not.toEqual(injected(first));
  });
});

/** The field a spoiled line of `kind` must differ in, by its shape's role; undefined: the line is bytes, or one field short. */
const SPOILED_FIELD: Record<BadRowKind, 'type' | 'price' | 'quantity' | 'time' | undefined> = {
  'bad-timestamp': 'time',
  'negative-price': 'price',
  'unknown-event-type': 'type',
  'non-numeric-quantity': 'quantity',
  'wrong-field-count': undefined,
  'invalid-utf8': undefined,
  'nul-byte': undefined,
  'price-overflow': 'price',
  'nan-price': 'price',
};

describe('bad rows', () => {
  it.each(LAYOUT_NAMES)('%s: spoils about R of the rows, each as its kind says, lists them, and leaves every other line as a clean run writes it', async (layout) => {
    const shape = SHAPES[layout];
    const header = Object.keys(shape.columns);
    const [clean, spoiled] = await Promise.all([generateFiles({ layout, files: 2, rows: 600 }), generateFiles({ layout, files: 2, rows: 600, badRows: 0.3 })]);
    const kinds = new Set<BadRowKind>();
    let injectedRows = 0;
    for (let f = 0; f < 2; f++) {
      const file = spoiled.files[f]!;
      const manifest = file.manifest!;
      expect(manifest).toMatchObject({ file: file.name, layout, seed: 5, rows: 600 });
      const lines = byteLines(file.bytes);
      const cleanLines = byteLines(clean.files[f]!.bytes);
      expect(lines).toHaveLength(601);
      const changed = lines.flatMap((line, i) => (line.equals(cleanLines[i]!) ? [] : [i + 1]));
      expect(manifest.injected.map((row) => row.line)).toEqual(changed);
      injectedRows += changed.length;

      for (const { line, kind } of manifest.injected) {
        kinds.add(kind);
        const bytes = lines[line - 1]!;
        const fields = bytes.toString('utf8').split(shape.delimiter);
        const good = cleanLines[line - 1]!.toString('utf8').split(shape.delimiter);
        const value = (role: 'type' | 'price' | 'quantity' | 'time') => fields[header.indexOf(shape[role]!)]!;
        const role = SPOILED_FIELD[kind];
        if (role) {
          // Only the field of the kind's role differs.
          expect(fields.flatMap((v, i) => (v === good[i] ? [] : [header[i]])), kind).toEqual([shape[role]]);
        }
        switch (kind) {
          case 'bad-timestamp':
            expect(value('time').slice(5, 7)).toBe('13');
            break;
          case 'negative-price':
            expect(value('price')).toBe(`-${good[header.indexOf(shape.price)]}`);
            break;
          case 'unknown-event-type':
            expect(value('type')).not.toMatch(shape.columns[shape.type]!);
            expect(value('type')).not.toBe('');
            break;
          case 'non-numeric-quantity':
            expect(value('quantity')).not.toMatch(/^[+-]?\d+$/);
            break;
          case 'wrong-field-count':
            expect(fields).toEqual(good.slice(0, -1));
            break;
          case 'invalid-utf8':
            expect(isUtf8(bytes)).toBe(false);
            expect(bytes.includes(0)).toBe(false);
            break;
          case 'nul-byte':
            expect(bytes.includes(0)).toBe(true);
            expect(isUtf8(bytes)).toBe(true);
            break;
          case 'price-overflow':
            expect(value('price')).toMatch(/^\d{11,}\.\d{2}$/);
            break;
          case 'nan-price':
            expect(value('price')).toBe('NaN');
            break;
        }
      }

      // Purchases and revenue count the rows a loader keeps.
      const kept = new Set(manifest.injected.map((row) => row.line));
      const purchases = parseLayout(clean.files[f]!.bytes, layout).filter((r, i) => !kept.has(i + 2) && r[shape.type] === shape.purchase);
      const fileLog = spoiled.lines.find((l) => l.msg === 'file written' && l.file === file.name);
      expect(fileLog).toMatchObject({ rows: 600, badRows: manifest.injected.length, purchases: purchases.length });
    }
    expect(injectedRows / 1200).toBeGreaterThan(0.25);
    expect(injectedRows / 1200).toBeLessThan(0.35);
    // Every kind the layout can hold: REES46 has no quantity to spoil.
    expect([...kinds].sort()).toEqual(BAD_ROW_KINDS.filter((k) => layout !== 'rees46' || k !== 'non-numeric-quantity').sort());
  });

  it('spoils every row at --bad-rows 1: no purchase is counted', async () => {
    const { files, lines } = await generateFiles({ files: 1, rows: 200, badRows: 1, purchaseRatio: 1 });
    expect(files[0]!.manifest!.injected.map((row) => row.line)).toEqual(Array.from({ length: 200 }, (_, i) => i + 2));
    expect(lines.at(-1)).toMatchObject({ msg: 'generator finished', rows: 200, badRows: 200, purchases: 0, revenue: 0 });
  });

  it('renames a manifest into input before its file: a reader polling input never sees a file without it', async () => {
    const dataDir = await tempDataDir();
    const input = join(dataDir, 'input');
    let stopped = false;
    const running = runGenerator(config(dataDir, { files: 6, rows: 20_000, badRows: 0.01 }), { log: pino({ level: 'silent' }) }).finally(() => (stopped = true));
    let reads = 0;
    while (!stopped) {
      const names = await readdir(input).catch(() => [] as string[]);
      for (const name of names.filter((n) => n.endsWith('.csv'))) {
        expect(names).toContain(name + MANIFEST_SUFFIX);
        if (!stopped) reads++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await running;
    expect(reads).toBeGreaterThan(0);
  });
});

describe('bad rows, loaded by the streamer', () => {
  const ws = useWorkspace();

  it('are exactly the rows it rejects, line for line, for the reason of their kind', async () => {
    const { files } = await runGenerator(config(ws.data.dir, { seed: 3, files: 2, rows: 500, badRows: 0.1 }), { log: pino({ level: 'silent' }) });
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);

    // Loose words of each reason: the kind's own cause, not some other fault of the line.
    const cause: Record<BadRowKind, RegExp> = {
      'bad-timestamp': /event_time/,
      'negative-price': /price.*negative/,
      'unknown-event-type': /event_type/,
      'non-numeric-quantity': /quantity/,
      'wrong-field-count': /fields/,
      'invalid-utf8': /UTF-8/,
      'nul-byte': /NUL/,
      'price-overflow': /price.*too large/,
      'nan-price': /price/,
    };
    const rejects = await ws.db.query<{ source_file: string; source_line: string; reason: string }>('SELECT source_file, source_line, reason FROM user_activity_rejects ORDER BY source_file, source_line');
    const expected: Array<{ file: string; line: number; kind: BadRowKind }> = [];
    for (const path of files) {
      const manifest = JSON.parse(await readFile(path + MANIFEST_SUFFIX, 'utf8')) as InjectionManifest;
      expected.push(...manifest.injected.map((row) => ({ file: basename(path), ...row })));
    }
    expect(rejects.rows.map((r) => `${r.source_file}:${r.source_line}`)).toEqual(expected.map((e) => `${e.file}:${e.line}`));
    rejects.rows.forEach((r, i) => expect(r.reason, expected[i]!.kind).toMatch(cause[expected[i]!.kind]));
    expect(new Set(expected.map((e) => e.kind)).size).toBe(BAD_ROW_KINDS.length);

    // The manifests are not taken for data: the ledger holds the two files, each fully accounted for.
    const ledger = await ws.db.query<{ name: string; status: string; rows_loaded: string; rows_rejected: string }>('SELECT name, status, rows_loaded, rows_rejected FROM ingest_files ORDER BY name');
    expect(ledger.rows.map((r) => [r.name, r.status, Number(r.rows_loaded) + Number(r.rows_rejected)])).toEqual(files.map((p) => [basename(p), 'loaded', 500]));
  });
});

describe('file names', () => {
  it('sort in creation order even when the clock goes back', () => {
    const clock = [Date.parse('2026-11-21T10:15:30.123Z'), Date.parse('2026-11-21T10:15:30.123Z'), 0, Date.parse('2027-01-01T00:00:00Z')];
    const nextName = createFileNamer(() => clock.shift() ?? 0);
    const names = [nextName(), nextName(), nextName(), nextName()];
    for (const name of names) expect(name).toMatch(NAME);
    expect(names[0]).toMatch(/^events-20261121T101530123Z-000001-/);
    expect([...names].sort()).toEqual(names);
  });
});

describe('parseCli', () => {
  it('applies defaults, lets --data-dir win over DROPSTREAM_DATA_DIR and seeds start at the reference time', () => {
    const now = Date.parse('2030-05-05T05:05:05.555Z');
    expect(parseCli([], {}, now)).toEqual({
      help: false,
      config: {
        dataDir: join(process.cwd(), 'data'),
        files: undefined,
        rows: 1000,
        intervalMs: 1000,
        seed: undefined,
        purchaseRatio: 0.2,
        startTime: now,
        layout: 'canonical',
        badRows: 0,
      },
    });
    expect(parseCli([], { DROPSTREAM_DATA_DIR: '/env/dir' }, now)).toMatchObject({ config: { dataDir: '/env/dir' } });
    expect(parseCli(['--data-dir', '/flag/dir'], { DROPSTREAM_DATA_DIR: '/env/dir' }, now)).toMatchObject({
      config: { dataDir: '/flag/dir' },
    });
    expect(parseCli(['--seed', '7'], {}, now)).toMatchObject({ config: { seed: 7, startTime: Date.parse('2026-01-01T00:00:00Z') } });
    expect(parseCli(['--seed', '7', '--start-time', '2026-06-01T00:00:00+02:00'], {}, now)).toMatchObject({
      config: { startTime: Date.parse('2026-05-31T22:00:00Z') },
    });
    expect(parseCli(['--files', '3', '--purchase-ratio', '.5', '--interval-ms', '0'], {}, now)).toMatchObject({
      config: { files: 3, purchaseRatio: 0.5, intervalMs: 0 },
    });
    expect(parseCli(['--interval-ms', '2147483647'], {}, now)).toMatchObject({ config: { intervalMs: 2147483647 } });
    expect(parseCli(['--layout', 'semicolon', '--bad-rows', '0.05'], {}, now)).toMatchObject({ config: { layout: 'semicolon', badRows: 0.05 } });
    expect(parseCli(['--rows', 'abc', '--help'], {})).toEqual({ help: true });
  });

  it.each([
    [['--rows', 'abc'], "--rows must be a whole number ≥ 1, got 'abc'"],
    [['--rows', '0'], "--rows must be a whole number ≥ 1, got '0'"],
    [['--files', '1.5'], "--files must be a whole number ≥ 1, got '1.5'"],
    [['--files', '1e3'], "--files must be a whole number ≥ 1, got '1e3'"],
    [['--interval-ms=-1'], "--interval-ms must be a whole number from 0 to 2147483647, got '-1'"],
    [['--interval-ms', '-1'], '--interval-ms'],
    // Beyond setTimeout's limit, Node.js would pause 1 ms instead.
    [['--interval-ms', '2147483648'], "--interval-ms must be a whole number from 0 to 2147483647, got '2147483648'"],
    [['--seed', 'abc'], "--seed must be a whole number from 0 to 4294967295, got 'abc'"],
    [['--seed', '4294967296'], '--seed must be a whole number from 0 to 4294967295'],
    [['--purchase-ratio', '1.5'], "--purchase-ratio must be a number from 0 to 1, got '1.5'"],
    [['--purchase-ratio', ''], "--purchase-ratio must be a number from 0 to 1, got ''"],
    [['--start-time', 'yesterday'], "--start-time must be an ISO-8601 date-time with a zone, e.g. 2026-01-01T00:00:00Z, got 'yesterday'"],
    [['--start-time', '2026-01-01T00:00:00'], '--start-time'],
    [['--data-dir='], "--data-dir must be a directory path, got ''"],
    [['--layout', 'tsv'], "--layout must be one of canonical, rees46, segment, semicolon, got 'tsv'"],
    [['--bad-rows', '-0.1'], '--bad-rows'],
    [['--bad-rows=1.01'], "--bad-rows must be a number from 0 to 1, got '1.01'"],
    [['--rows'], '--rows'],
    [['--bogus'], '--bogus'],
    [['stray'], 'stray'],
  ])('rejects %j with one line naming the flag', (argv, message) => {
    let error: unknown;
    try {
      parseCli(argv, {});
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain('\n');
  });
});

describe('generator CLI', () => {
  it('exits 2 with a message naming the flag on a bad value', async () => {
    const { exited } = startCli(['--rows', 'abc']);
    const result = await exited;
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--rows must be a whole number ≥ 1, got 'abc'");
  });

  it('prints usage on --help', async () => {
    const result = await startCli(['--help']).exited;
    expect(result.code).toBe(0);
    for (const flag of ['--purchase-ratio', '--layout', '--bad-rows']) expect(result.stdout).toContain(flag);
  });

  it('never shows a reader polling input a partial file', async () => {
    const dataDir = await tempDataDir();
    const { exited } = startCli(['--files', '5', '--rows', '20000', '--interval-ms', '0', '--data-dir', dataDir]);
    const reads = await pollInput(dataDir, 20_000, exited);
    const result = await exited;
    expect(result.code, result.stderr).toBe(0);
    expect(reads).toBeGreaterThan(0);
    expect([...(await readInput(dataDir)).keys()]).toHaveLength(5);
  });

  it('stops on SIGTERM during an endless run with exit 0, complete files in input and none in temp', async () => {
    const dataDir = await tempDataDir();
    const rows = 100_000;
    const { child, exited } = startCli(['--rows', String(rows), '--interval-ms', '0', '--data-dir', dataDir]);
    const deadline = Date.now() + 60_000;
    while ((await readdir(join(dataDir, 'input')).catch(() => [])).length < 2) {
      if (Date.now() > deadline) throw new Error('the generator wrote no files');
      await sleep(10);
    }
    child.kill('SIGTERM');
    const result = await exited;

    expect(result.code, result.stderr).toBe(0);
    const written = await readInput(dataDir);
    for (const [name, text] of written) expectComplete(text, rows, name);
    expect(await readdir(join(dataDir, 'temp'))).toEqual([]);
    const summary = logLines(result.stdout).at(-1);
    expect(summary).toMatchObject({ msg: 'generator finished', stopped: true, files: written.size });
  });
});
