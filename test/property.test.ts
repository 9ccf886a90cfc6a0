import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_ALIASES } from '../streamer/src/reader/contract/columns.ts';
import { DELIMITERS, type Delimiter } from '../streamer/src/reader/contract/layout.ts';
import { BUILT_IN_VOCABULARY } from '../streamer/src/reader/contract/vocabulary.ts';
import { FileReader, FileRejectedError, type ReadRules } from '../streamer/src/reader/fileReader.ts';
import { RejectSpool } from '../streamer/src/reader/rejectSpool.ts';
import { accountingViolations } from './fixtures/checks.ts';
import { decodeCopyBinary, decodeCopyText, ROW_FIELDS } from './support/copyData.ts';
import { streamAvailableNow } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

// fast-check's seed: set FC_SEED to replay a failure (the seed is in every failure message).
const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
// FC_RUNS=10 runs ten times as many cases (a longer hunt).
const RUNS = Number(process.env.FC_RUNS ?? 1);
const RULES: ReadRules = { vocabulary: BUILT_IN_VOCABULARY, aliases: DEFAULT_ALIASES, attributes: true, defaultOffset: '+00:00', namedTimeZone: undefined };
const TYPES: ReadonlySet<string> = new Set(BUILT_IN_VOCABULARY.types);
const BATCH = 7;

// ── generators ──────────────────────────────────────────────────────────────────────────────

const b = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

/** A few ids, so that rows repeat ids (same or other content) within and across files. */
const IDS = ['0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b', '6f1c9d0e-2b3a-4c5d-9e8f-7a6b5c4d3e2f', 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d', '00000000-0000-4000-8000-000000000001'];
/** Values every row may hold: ids that are not UUIDs, synonyms, empty optional values, timestamps of other tools. */
const GOOD = {
  id: [...IDS, IDS[0]!.toUpperCase(), ` ${IDS[1]} `, '1', 'evt-778', ''],
  user: ['user_1', 'user_2', ' user_3 ', 'ユーザー', 'back\\slash', 'tab\there'],
  type: ['view', 'purchase', ' PURCHASE ', 'View', 'add_to_cart', 'Buy', 'Product Viewed', 'cart'],
  product: ['SKU-1', 'SKU-2', 'SKU é', '\\N', ''],
  price: ['1.00', '19.99', '0', '9999999999.99', '0.005', '007.50', ''],
  quantity: ['1', '2', '2147483647', ' 3 ', '+4', '01', ''],
  time: [
    '2026-05-01T10:00:00Z', '2026-05-01T10:00:00.123Z', '2026-05-01 10:00:00', '2026-05-01T15:30:00+05:30', '2026-05-01T02:00:00-0800',
    '2024-02-29T00:00:00.123456Z', '2026-05-01T10:00:00.123456789Z', '2019-10-01 00:00:00 UTC', '1569888000', '1569888000123', '2026-05-01T10:00:00+00:00Z',
  ],
};
const BAD_VALUES = ['', ' ', 'abc', 'NaN', '-1.00', '1.5', '0', '-2', '12345678901.00', '2147483648', '2024-02-30T10:00:00Z', 'yesterday', 'teleport', '1e3', 'Infinity', '0x10', '٣', '2019-10-01 00:00:00 CET', '2024'];
/** Pieces of text and bytes that trouble CSV readers. */
const NOISE: Buffer[] = [
  b(','), b(';'), b('|'), b('"'), b('""'), b('\r'), b('\n'), b('\r\n'), b(' '), b('\t'), b('\\'),
  b([0x00]), b([0xff]), b([0xc3]), b([0xe2, 0x82]), b([0xed, 0xa0, 0x80]), b([0xf0, 0x9f, 0x98]), b([0xef, 0xbb, 0xbf]), b([0xc0, 0xaf]),
  b('é'), b('日本'), b('😀'), b('\u2028'),
];

const noise = fc.constantFrom(...NOISE);
const noiseRun = fc.array(noise, { minLength: 1, maxLength: 4 }).map((parts) => Buffer.concat(parts));
const quoted = (v: string) => b(`"${v.replaceAll('"', '""')}"`);
/** Anything but a good value: a bad one, noise, a quoted value, a quoted field with a line break, quote or comma inside. */
const badValue = (good: string[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...BAD_VALUES).map((v) => b(v)) },
    { weight: 2, arbitrary: noiseRun },
    { weight: 2, arbitrary: fc.constantFrom(...good, ...BAD_VALUES).map(quoted) },
    { weight: 1, arbitrary: fc.constantFrom('multi\nline', 'say "hi"', 'a,b', 'crlf\r\ninside').map(quoted) },
  );

type Key = keyof typeof GOOD | 'note';
/** Header names and the column each stands for. */
const HEADER_SPECS: Array<Array<[string, Key]>> = [
  [['event_id', 'id'], ['user_id', 'user'], ['event_type', 'type'], ['product_id', 'product'], ['price', 'price'], ['quantity', 'quantity'], ['event_time', 'time']],
  [['Event ID', 'id'], ['User Id', 'user'], ['EVENT_TYPE', 'type'], ['product', 'product'], ['price', 'price'], ['qty', 'quantity'], ['timestamp', 'time']],
  [['event_id', 'id'], ['user_id', 'user'], ['note', 'note'], ['event_type', 'type'], ['product_id', 'product'], ['price', 'price'], ['quantity', 'quantity'], ['event_time', 'time']],
  // No event_id column: ids derived from content.
  [['user_id', 'user'], ['event_type', 'type'], ['product_id', 'product'], ['price', 'price'], ['quantity', 'quantity'], ['event_time', 'time']],
  [['event_time', 'time'], ['quantity', 'quantity'], ['price', 'price'], ['product_id', 'product'], ['event_type', 'type'], ['user_id', 'user'], ['event_id', 'id']],
  // REES46: no event_id, no quantity, columns kept in attributes.
  [['event_time', 'time'], ['event_type', 'type'], ['product_id', 'product'], ['category_code', 'note'], ['brand', 'note'], ['price', 'price'], ['user_id', 'user'], ['user_session', 'note']],
  // Only the required columns.
  [['event_type', 'type'], ['event_time', 'time'], ['user_id', 'user']],
  // The fast path's columns, and an attribute.
  [['event_id', 'id'], ['user_id', 'user'], ['event_type', 'type'], ['product_id', 'product'], ['price', 'price'], ['quantity', 'quantity'], ['event_time', 'time'], ['Device Type', 'note']],
];
const headerText = (spec: Array<[string, Key]>, delimiter: Delimiter) => spec.map(([name]) => name).join(delimiter);
const HEADERS = HEADER_SPECS.map((spec) => headerText(spec, ','));
const pool = (key: Key) => (key === 'note' ? ['', 'a note', 'x'] : GOOD[key]);

/**
 * A row for a header: all good values (valid, through the fast path or the full reader), one value
 * spoiled, a field too many or too few, or anything.
 */
const rowFor = (spec: Array<[string, Key]>, delimiter: Delimiter = ','): fc.Arbitrary<Buffer> => {
  const good = fc.tuple(...spec.map(([, key]) => fc.constantFrom(...pool(key)).map((v) => b(v))));
  const join = (fields: Buffer[]) => Buffer.concat(fields.flatMap((f, i) => (i ? [b(delimiter), f] : [f])));
  return fc.oneof(
    { weight: 5, arbitrary: good.map(join) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(good, fc.nat(spec.length - 1), fc.constantFrom(...spec.map(([, key]) => key)).chain((key) => badValue(pool(key))))
        .map(([fields, at, bad]) => join(fields.map((f, i) => (i === at ? bad : f)))),
    },
    { weight: 1, arbitrary: fc.tuple(good, fc.boolean()).map(([fields, more]) => join(more ? [...fields, b('extra')] : fields.slice(0, -1))) },
    { weight: 1, arbitrary: fc.array(fc.oneof(noise, fc.constantFrom(...Object.values(GOOD).flat(), ...BAD_VALUES).map((v) => b(v))), { maxLength: 10 }).map((p) => Buffer.concat(p)) },
  );
};
const EOL = fc.constantFrom(b('\n'), b('\n'), b('\r\n'), b('\n\n'), b('\n  \n'));
const lines = (line: fc.Arbitrary<Buffer>) => fc.array(fc.tuple(line, EOL), { maxLength: 30 }).map((ls) => Buffer.concat(ls.flat()));

const header = fc.constantFrom(...HEADERS).map((h) => b(h));
const bom = fc.boolean().map((yes) => b(yes ? [0xef, 0xbb, 0xbf] : []));
const lastEol = fc.constantFrom(b('\n'), b('\r\n'), b(''));

/** CSV-ish text: a header that maps, with any delimiter, then rows for it; the last line break may be missing. */
const csvish = fc
  .tuple(bom, fc.nat(HEADER_SPECS.length - 1), fc.constantFrom(b('\n'), b('\r\n')), fc.constantFrom(...DELIMITERS))
  .chain(([bom, h, eol, d]) =>
    fc.tuple(lines(rowFor(HEADER_SPECS[h]!, d)), lastEol).map(([body, last]) => Buffer.concat([bom, b(headerText(HEADER_SPECS[h]!, d)), eol, body, last])),
  );
/** Anything at all: random bytes, noise, or a good header followed by either. */
const anyBytes = fc.oneof(
  fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
  fc.array(noise, { maxLength: 200 }).map((p) => Buffer.concat(p)),
  fc.tuple(header, fc.constantFrom(b('\n')), fc.uint8Array({ maxLength: 2000 })).map(([h, n, a]) => Buffer.concat([h, n, Buffer.from(a)])),
  csvish,
);

// ── reading in-process ─────────────────────────────────────────────────────────────────────

interface Read {
  outcome: 'read' | 'rejected-file';
  reason?: string;
  counts: FileReader['counts'];
  /** The rows for user_activity, COPY binary or text read back into one form (see support/copyData.ts). */
  rows: string[][];
  /** The COPY lines for user_activity_rejects, split into fields. */
  rejects: string[][];
  spoolCount: number;
}

async function readFile(path: string, name: string, withRaw = false, rules = RULES): Promise<Read> {
  const st = await stat(path);
  const spool = new RejectSpool();
  const reader = new FileReader({ name, path, size: st.size, mtimeMs: st.mtimeMs }, BATCH, rules, spool, withRaw);
  const chunks: Buffer[] = [];
  try {
    try {
      for await (const chunk of reader.copyData()) chunks.push(Buffer.from(chunk));
    } catch (err) {
      if (err instanceof FileRejectedError) return { outcome: 'rejected-file', reason: err.message, counts: reader.counts, rows: [], rejects: [], spoolCount: spool.count };
      throw err;
    }
    const rejectChunks: Buffer[] = [];
    for await (const chunk of await spool.stream()) rejectChunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, 'utf8'));
    const data = Buffer.concat(chunks);
    const rows = reader.binary ? decodeCopyBinary(data, name, BATCH) : decodeCopyText(data);
    return { outcome: 'read', counts: reader.counts, rows, rejects: decodeCopyText(Buffer.concat(rejectChunks)), spoolCount: spool.count };
  } finally {
    await spool.dispose();
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
/** A COPY text value: null (\N), or no raw tab, line break or NUL, and backslashes only as escapes. */
const COPY_VALUE = /^(?:\\N|(?:[^\\\t\n\r\0]|\\[\\tnr])*)$/;

const NULL = '\\N';

/** The checks every read must pass, whatever the input. Plain checks, one expect at the end: thousands of rows stay fast. */
/** A JSON object of non-empty text values (COPY-escaped). */
function isAttributes(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text.replace(/\\(.)/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c)));
    return typeof value === 'object' && value !== null && Object.values(value).length > 0 && Object.values(value).every((v) => typeof v === 'string' && v !== '' && v === v.trim());
  } catch {
    return false;
  }
}

function checkRead(read: Read, content: Buffer, name: string, width = ROW_FIELDS): void {
  const { counts } = read;
  const problems: string[] = [];
  const check = (ok: boolean, what: () => string) => {
    if (!ok && problems.length < 20) problems.push(what());
  };
  check(counts.rowsRead === counts.rowsValid + counts.rowsRejected, () => `rowsRead ${counts.rowsRead} ≠ rowsValid ${counts.rowsValid} + rowsRejected ${counts.rowsRejected}`);
  if (read.outcome === 'rejected-file') {
    check(!!read.reason, () => 'a file rejected without a reason');
    expect(problems).toEqual([]);
    return;
  }
  check(counts.bytes === content.length, () => `bytes ${counts.bytes}, file has ${content.length}`);
  check(read.rows.length === counts.rowsValid, () => `${read.rows.length} COPY lines for ${counts.rowsValid} valid rows`);
  check(read.rejects.length === counts.rowsRejected, () => `${read.rejects.length} reject lines for ${counts.rowsRejected} rejected rows`);
  check(read.spoolCount === counts.rowsRejected, () => `spool count ${read.spoolCount} ≠ rowsRejected ${counts.rowsRejected}`);

  const physicalLines = content.filter((c) => c === 0x0a).length + 1;
  const escapedName = name.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
  const lineNumbers: number[] = [];
  for (const fields of read.rows) {
    const show = () => JSON.stringify(fields);
    check(fields.length === width, () => `a COPY line with ${fields.length} fields, not ${width}: ${show()}`);
    const [eventId, userId, eventType, productId, price, quantity, eventTime, sourceEventId, attributes, sourceFile, sourceLine, batch] = fields as string[] as [
      string, string, string, string, string, string, string, string, string, string, string, string,
    ];
    check(UUID.test(eventId), () => `event_id: ${show()}`);
    check(userId !== '' && userId !== NULL && productId !== '', () => `empty user_id or product_id: ${show()}`);
    check(fields.every((v) => COPY_VALUE.test(v)), () => `a value that is not COPY text: ${show()}`);
    check(TYPES.has(eventType), () => `event_type: ${show()}`);
    check(price === NULL || /^(0|[1-9]\d{0,9})\.\d{2}$/.test(price), () => `price: ${show()}`);
    check(/^(0|[1-9]\d{0,9})$/.test(quantity) && Number(quantity) <= 2_147_483_647 && (quantity !== '0' || eventType !== 'purchase'), () => `quantity: ${show()}`);
    check(sourceEventId !== '' && (sourceEventId === NULL || !UUID.test(sourceEventId.toLowerCase())), () => `source_event_id: ${show()}`);
    check(attributes === NULL || isAttributes(attributes), () => `attributes: ${show()}`);
    check(INSTANT.test(eventTime), () => `event_time: ${show()}`);
    check(sourceFile === escapedName, () => `source_file: ${show()}`);
    check(batch === String(BATCH), () => `batch_id: ${show()}`);
    lineNumbers.push(Number(sourceLine));
  }
  for (const fields of read.rejects) {
    const show = () => JSON.stringify(fields);
    check(fields.length === 5, () => `a reject line with ${fields.length} fields, not 5: ${show()}`);
    check(fields.every((v) => COPY_VALUE.test(v)), () => `a value that is not COPY text: ${show()}`);
    check(fields[0] === escapedName && fields[4] === String(BATCH), () => `source_file or batch_id: ${show()}`);
    lineNumbers.push(Number(fields[1]));
  }
  // Each record is reported once, at a line of the file after the header.
  for (const n of lineNumbers) check(Number.isInteger(n) && n >= 2 && n <= physicalLines, () => `line ${n} of ${physicalLines}`);
  check(new Set(lineNumbers).size === lineNumbers.length, () => 'two records start on the same line');
  expect(problems).toEqual([]);
}

describe('the reader, on generated input (in-process)', () => {
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dropstream-property-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const write = async (content: Buffer) => {
    const path = join(dir, `f${n++}.csv`);
    await writeFile(path, content);
    return path;
  };

  it('never crashes: it reads a file or rejects it as a whole; counts add up; every COPY row has 12 valid fields', async () => {
    await fc.assert(
      fc.asyncProperty(anyBytes, async (content) => {
        const path = await write(content);
        checkRead(await readFile(path, 'gen.csv'), content, 'gen.csv');
      }),
      { numRuns: 300 * RUNS, seed: SEED },
    );
  });

  it('the fast path and the full reader agree: reading with and without the raw column gives the same rows and rejects', async () => {
    await fc.assert(
      fc.asyncProperty(csvish, async (content) => {
        const path = await write(content);
        const plain = await readFile(path, 'a\tb\\c.csv');
        const withRaw = await readFile(path, 'a\tb\\c.csv', true);
        checkRead(plain, content, 'a\tb\\c.csv');
        checkRead(withRaw, content, 'a\tb\\c.csv', ROW_FIELDS + 1);
        expect(withRaw.outcome).toBe(plain.outcome);
        expect(withRaw.counts).toEqual(plain.counts);
        expect(withRaw.rows.map((f) => f.slice(0, ROW_FIELDS))).toEqual(plain.rows);
        expect(withRaw.rejects).toEqual(plain.rejects);
      }),
      { numRuns: 200 * RUNS, seed: SEED },
    );
  });

  it('across read chunks (files of 300 to 700 KB): every non-blank line without quotes is one record, at its own line number', async () => {
    // Lines without quotes: each non-blank one is a record (valid or rejected), whatever else it holds.
    const plainLine = rowFor(HEADER_SPECS[0]!)
      // No quote, line break or tab; no BOM or U+2028 either (JavaScript's trim() counts them as blank space).
      .map((l) => Buffer.from(l.toString('latin1').replace(/\xef\xbb\xbf|\xe2\x80\xa8|["\n\r\t]/g, ''), 'latin1'));
    await fc.assert(
      fc.asyncProperty(fc.array(plainLine, { minLength: 5, maxLength: 40 }), fc.integer({ min: 300_000, max: 700_000 }), fc.integer(), async (pool, size, seed) => {
        const parts: Buffer[] = [b(`${HEADERS[0]}\n`)];
        const expected: number[] = [];
        let line = 1;
        let length = parts[0]!.length;
        let x = seed | 1;
        while (length < size) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          const text = pool[Math.abs(x) % pool.length]!;
          const eol = Math.abs(x >> 8) % 3 === 0 ? b('\r\n') : b('\n');
          line++;
          // Blank: nothing but spaces.
          if (text.some((c) => c !== 0x20)) expected.push(line);
          parts.push(text, eol);
          length += text.length + eol.length;
        }
        const content = Buffer.concat(parts);
        const path = await write(content);
        const read = await readFile(path, 'big.csv');
        checkRead(read, content, 'big.csv');
        const seen = [...read.rows.map((f) => Number(f[ROW_FIELDS - 2])), ...read.rejects.map((f) => Number(f[1]))].sort((p, q) => p - q);
        expect(seen).toEqual(expected);
      }),
      { numRuns: 8 * RUNS, seed: SEED },
    );
  });
});

describe('the accounting, end to end through the streamer', () => {
  const ws = useWorkspace({ input: true });

  it('for 8 generated files: rows_read = loaded + rejected + duplicate, and the tables hold exactly those rows', async () => {
    const contents = fc.sample(csvish, { numRuns: 40, seed: SEED }).filter((c, i, all) => all.findIndex((d) => d.equals(c)) === i && c.length > 0);
    // The longest few: they hold the most rows.
    const files = contents.sort((p, q) => q.length - p.length).slice(0, 8);
    const past = new Date(Date.now() - 60_000);
    const reads = new Map<string, Read>();
    for (const [i, content] of files.entries()) {
      const name = `generated-${i}.csv`;
      const path = join(ws.data.input, name);
      await writeFile(path, content);
      await utimes(path, past, past);
      reads.set(name, await readFile(path, name));
    }
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, `seed ${SEED}\n${run.output}`).toBe(0);

    expect(await accountingViolations(ws.db), `seed ${SEED}`).toEqual([]);
    const { rows } = await ws.db.query<{ name: string; status: string; reason: string | null; rows_read: number; rows_rejected: number }>(
      'SELECT name, status, reason, rows_read::int, rows_rejected::int FROM ingest_files ORDER BY name',
    );
    expect(rows.map((r) => r.name), `seed ${SEED}`).toEqual([...reads.keys()].sort());
    for (const r of rows) {
      const read = reads.get(r.name)!;
      // Every generated file has a header that maps: it loads, whatever its rows hold.
      expect({ name: r.name, status: r.status, reason: r.reason, rowsRead: r.rows_read }, `seed ${SEED}`).toEqual({ name: r.name, status: 'loaded', reason: null, rowsRead: read.counts.rowsRead });
      // Rows the reader rejected, plus those whose id was stored before with other content.
      expect(r.rows_rejected).toBeGreaterThanOrEqual(read.counts.rowsRejected);
    }
  });
});
