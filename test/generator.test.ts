import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseCli, type GeneratorConfig } from '../generator/src/config.ts';
import { CSV_HEADER, createEventSource, formatCents, formatCsvLine, formatEventTime } from '../generator/src/events.ts';
import { createFileNamer, runGenerator } from '../generator/src/runGenerator.ts';
import { writeEventFile } from '../generator/src/writeEventFile.ts';
import { compiled, ROOT } from '../lib/paths.ts';

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
    expect(parseCli(['--rows', 'abc', '--help'], {})).toEqual({ help: true });
  });

  it.each([
    [['--rows', 'abc'], "--rows must be a whole number ≥ 1, got 'abc'"],
    [['--rows', '0'], "--rows must be a whole number ≥ 1, got '0'"],
    [['--files', '1.5'], "--files must be a whole number ≥ 1, got '1.5'"],
    [['--files', '1e3'], "--files must be a whole number ≥ 1, got '1e3'"],
    [['--interval-ms=-1'], "--interval-ms must be a whole number ≥ 0, got '-1'"],
    [['--interval-ms', '-1'], '--interval-ms'],
    [['--seed', 'abc'], "--seed must be a whole number from 0 to 4294967295, got 'abc'"],
    [['--seed', '4294967296'], '--seed must be a whole number from 0 to 4294967295'],
    [['--purchase-ratio', '1.5'], "--purchase-ratio must be a number from 0 to 1, got '1.5'"],
    [['--purchase-ratio', ''], "--purchase-ratio must be a number from 0 to 1, got ''"],
    [['--start-time', 'yesterday'], "--start-time must be an ISO-8601 date-time with a zone, e.g. 2026-01-01T00:00:00Z, got 'yesterday'"],
    [['--start-time', '2026-01-01T00:00:00'], '--start-time'],
    [['--data-dir='], "--data-dir must be a directory path, got ''"],
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
    expect(result.stdout).toContain('--purchase-ratio');
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
