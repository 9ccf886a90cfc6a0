import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BINARY_HEADER, RowTail, writeEventRow } from '../streamer/src/reader/copyBinary.ts';
import { CopyBuffer } from '../streamer/src/reader/copyBuffer.ts';
import { eventText } from '../streamer/src/reader/copyText.ts';
import { EventTimes, isoFromSeconds2000 } from '../streamer/src/reader/eventTimes.ts';
import { FastRows } from '../streamer/src/reader/fastRow.ts';
import { mapHeader, type ColumnMap } from '../streamer/src/reader/columns.ts';
import { parseTimestamp } from '../streamer/src/reader/parseTimestamp.ts';
import { LineSplitter } from '../streamer/src/reader/lineSplitter.ts';
import { isBadRecord, lineFault, RecordAssembler, type SplitItem } from '../streamer/src/reader/recordAssembler.ts';
import { DEFAULT_EVENT_TYPES, RowRejection, validateRow, type EventRow } from '../streamer/src/reader/validateRow.ts';
import { decodeCopyBinary } from './support/copyData.ts';

/** Lines, then records, as the file reader's full path sees them. */
function split(input: Buffer | string, chunkSize = 5): SplitItem[] {
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input);
  const lines = new LineSplitter();
  const records = new RecordAssembler();
  const items: SplitItem[] = [];
  const onLine = (buf: Buffer, start: number, end: number, line: number, tooLong: boolean) =>
    records.line(buf.toString('utf8', start, end), line, lineFault(buf, start, end, tooLong), items);
  for (let i = 0; i < bytes.length; i += chunkSize) lines.push(bytes.subarray(i, i + chunkSize), onLine);
  lines.end(onLine);
  records.end(items);
  return items;
}

describe('LineSplitter and RecordAssembler', () => {
  it('gives each record the physical line it starts on, across chunk boundaries, CRLF, BOM and blank lines', () => {
    const items = split('\ufeffa,b,c\r\n1,2,3\r\n\r\n  \n"x\r\ny",5,6\r\n7,8,9');
    expect(items).toEqual([
      { line: 1, fields: ['a', 'b', 'c'], raw: 'a,b,c' },
      { line: 2, fields: ['1', '2', '3'], raw: '1,2,3' },
      { line: 5, fields: ['x\ny', '5', '6'], raw: '"x\ny",5,6' },
      { line: 7, fields: ['7', '8', '9'], raw: '7,8,9' },
    ]);
  });

  it('reads quoted commas and doubled quotes with csv-parse', () => {
    expect(split('"a,1","say ""hi""",3\n')).toEqual([{ line: 1, fields: ['a,1', 'say "hi"', '3'], raw: '"a,1","say ""hi""",3' }]);
  });

  it('turns NUL bytes, invalid UTF-8, bad quoting and an unterminated quote into bad records with their line', () => {
    const input = Buffer.concat([
      Buffer.from('h1,h2\nok,1\nnul\u0000,2\n'),
      Buffer.from([0x62, 0x61, 0x64, 0xff, 0x2c, 0x33, 0x0a]), // "bad\xff,3\n"
      Buffer.from('1,"b"x,3\nfine,4\n9,"never closed\nmore,5\n'),
    ]);
    const bad = split(input, 3).filter(isBadRecord).map((b) => [b.line, b.reason]);
    expect(bad).toEqual([
      [3, 'line contains a NUL byte'],
      [4, 'line is not valid UTF-8'],
      [5, 'malformed CSV: a closing quote is followed by other characters'],
      [7, 'unterminated quoted field opened on line 7'],
    ]);
    const good = split(input, 3).filter((i) => !isBadRecord(i)).map((i) => i.line);
    expect(good).toEqual([1, 2, 6]);
  });

  it('bounds a line that never ends instead of buffering it', () => {
    const huge = Buffer.alloc(3 << 20, 0x61);
    const items = split(Buffer.concat([Buffer.from('h\n'), huge, Buffer.from('\nnext\n')]), 1 << 16);
    expect(items.filter(isBadRecord).map((b) => b.reason)).toEqual([expect.stringMatching(/longer than/)]);
    expect(items.filter((i) => !isBadRecord(i)).map((i) => [i.line, i.raw])).toEqual([
      [1, 'h'],
      [3, 'next'],
    ]);
  });
});

describe('parseTimestamp', () => {
  it.each([
    ['2026-11-21T10:15:30.123Z', '2026-11-21T10:15:30.123Z'],
    ['2026-11-21T10:15:30Z', '2026-11-21T10:15:30Z'],
    ['2026-11-21T10:15:30+05:30', '2026-11-21T10:15:30+05:30'],
    ['2026-11-21 10:15:30.123456', '2026-11-21T10:15:30.123456+00:00'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00Z'],
  ])('accepts %s', (input, output) => expect(parseTimestamp(input, '+00:00')?.text).toBe(output));

  it('leaves a zone-less timestamp zone-less when a named zone (the session TimeZone) is to apply', () => {
    expect(parseTimestamp('2026-07-01 12:00:00.25', undefined)).toEqual({ text: '2026-07-01T12:00:00.25', seconds: NaN, micros: 250_000 });
    expect(parseTimestamp('2026-07-01 12:00:00', '+02:00')?.text).toBe('2026-07-01T12:00:00+02:00');
  });

  it('gives the instant in seconds since 2000-01-01Z (PostgreSQL\'s epoch), in the proleptic Gregorian calendar', () => {
    const seconds = (text: string) => parseTimestamp(text, '+00:00')!.seconds;
    expect(seconds('2000-01-01T00:00:00Z')).toBe(0);
    expect(seconds('1999-12-31T23:59:59Z')).toBe(-1);
    expect(seconds('2000-01-01T05:30:00+05:30')).toBe(0);
    expect(seconds('1999-12-31 16:00:00')).toBe(-8 * 3600);
    expect(seconds('1999-12-31T16:00:00-0800')).toBe(0);
    fc.assert(
      fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), (d) => {
        expect(seconds(d.toISOString())).toBe(Math.floor((d.getTime() - Date.UTC(2000, 0, 1)) / 1000));
      }),
    );
  });

  it.each(['2024-02-30T00:00:00Z', '2023-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', 'yesterday', '1700000000', ''])(
    'rejects %s',
    (input) => expect(parseTimestamp(input, '+00:00')).toBeUndefined(),
  );
});

describe('validateRow', () => {
  const map = mapHeader(['event_id', 'user_id', 'event_type', 'product_id', 'price', 'quantity', 'event_time']) as ColumnMap;
  const rules = { map, eventTypes: DEFAULT_EVENT_TYPES, defaultOffset: '+00:00' };
  const good = ['0B0F7A2E-1C2D-4E5F-8A9B-0C1D2E3F4A5B', ' user_1 ', 'Purchase', 'SKU-1', '19.99', '2', '2026-01-01T00:00:00Z'];
  const reason = (i: number, value: string) => {
    const fields = [...good];
    fields[i] = value;
    const r = validateRow(fields, rules);
    return r instanceof RowRejection ? r.reason : 'accepted';
  };

  it('normalises a good row (and writes it as COPY text)', () => {
    const row = validateRow(good, rules) as EventRow;
    expect(row).toMatchObject({ eventId: '0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b', userId: 'user_1', eventType: 'purchase', productId: 'SKU-1', price: '19.99', priceCents: 1999, quantity: 2 });
    expect(eventText(row)).toBe('0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b\tuser_1\tpurchase\tSKU-1\t19.99\t2\t2026-01-01T00:00:00Z');
  });

  it('rounds the price to cents as numeric(12,2) does, and rejects one that no longer fits once rounded', () => {
    const cents = (price: string) => (validateRow(good.map((f, i) => (i === 4 ? price : f)), rules) as EventRow).priceCents;
    expect([cents('0.005'), cents('0.0049'), cents('007.5'), cents('2.999'), cents('9999999999.994')]).toEqual([1, 0, 750, 300, 999999999999]);
    expect(reason(4, '9999999999.995')).toBe("price '9999999999.995' is too large (at most 9999999999.99)");
  });

  it('rejects each kind of bad value with its own reason', () => {
    expect(reason(0, 'not-a-uuid')).toBe("event_id 'not-a-uuid' is not a UUID");
    expect(reason(1, '  ')).toBe('user_id is empty');
    expect(reason(2, 'click')).toBe("event_type 'click' is not one of view, purchase");
    expect(reason(4, 'NaN')).toBe("price 'NaN' is not a decimal number");
    expect(reason(4, '-1.00')).toBe("price '-1.00' is negative");
    expect(reason(4, '12345678901.00')).toBe("price '12345678901.00' is too large (at most 9999999999.99)");
    expect(reason(5, '0')).toBe("quantity '0' must be at least 1");
    expect(reason(5, '1.5')).toBe("quantity '1.5' is not a whole number");
    expect(reason(5, '99999999999')).toBe("quantity '99999999999' is too large (at most 2147483647)");
    expect(reason(6, '2024-02-30T00:00:00Z')).toBe("event_time '2024-02-30T00:00:00Z' is not a valid ISO-8601 timestamp");
    expect(validateRow(good.slice(0, 6), rules)).toEqual(new RowRejection('expected 7 fields as in the header, got 6'));
  });

  it('escapes tabs, newlines and backslashes in text columns', () => {
    const fields = [...good];
    fields[1] = 'a\tb\\c\nd';
    expect(eventText(validateRow(fields, rules) as EventRow)).toContain('\ta\\tb\\\\c\\nd\t');
  });

  it('derives a stable event id when the file has no event_id column', () => {
    const noId = mapHeader(['user', 'action', 'sku', 'price', 'qty', 'timestamp']) as ColumnMap;
    const a = (validateRow(good.slice(1), { map: noId, eventTypes: DEFAULT_EVENT_TYPES, defaultOffset: '+00:00' }) as EventRow).eventId;
    const b = (validateRow(good.slice(1), { map: noId, eventTypes: DEFAULT_EVENT_TYPES, defaultOffset: '+00:00' }) as EventRow).eventId;
    expect(a).toBe(b);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('mapHeader', () => {
  it('maps names in any case, order and spacing, with aliases, and lists extra columns', () => {
    const map = mapHeader(['Event Time', 'EVENT_ID', 'note', 'user id', 'Action', 'sku', 'Price', 'qty']);
    expect(map).toEqual({
      index: { event_id: 1, user_id: 3, event_type: 4, product_id: 5, price: 6, quantity: 7, event_time: 0 },
      width: 8,
      ignored: ['note'],
    });
  });

  it('says what is wrong with a header that cannot be used', () => {
    expect(mapHeader(['foo', 'bar'])).toEqual({ error: expect.stringMatching(/^the first line is not a header/) });
    expect(mapHeader(['event_id', 'user_id', 'event_type', 'product_id', 'price'])).toEqual({
      error: 'required columns missing from the header: quantity, event_time',
    });
  });
});

describe('FastRows (the byte-level path) agrees with the full validator', () => {
  const header = ['event_id', 'user_id', 'event_type', 'product_id', 'price', 'quantity', 'event_time'];
  const tail = new RowTail('f.csv', 9);
  /** The COPY binary the full validator's row is written as. */
  const slowBytes = (row: EventRow, line: number) => {
    const out = new CopyBuffer();
    writeEventRow(out, row, tail, line);
    return out.take();
  };
  const pick = <T>(...xs: T[]) => fc.constantFrom(...xs);
  // Mostly good values, often near the edges of what either path accepts.
  const mostly = <T>(good: fc.Arbitrary<T>, edge: fc.Arbitrary<T>) => fc.oneof({ arbitrary: good, weight: 6 }, { arbitrary: edge, weight: 1 });
  const field = {
    event_id: mostly(fc.uuid().map((u) => u.toLowerCase()), fc.oneof(fc.uuid().map((u) => u.toUpperCase()), pick('', 'x', ' 0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b'))),
    text: mostly(fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/), pick('', ' padded ', 'é', 'a"b', 'a\\b', 'tab\there')),
    event_type: mostly(pick('view', 'purchase'), pick('View', ' view', 'click', '')),
    price: mostly(fc.stringMatching(/^[0-9]{1,10}(\.[0-9]{1,3})?$/), fc.oneof(fc.stringMatching(/^[0-9]{11,12}(\.[0-9]{0,2})?$/), pick('NaN', '-1', '1e5', '.5', '1.', '00000000001.5'))),
    quantity: mostly(fc.integer({ min: 1, max: 2147483647 }).map(String), fc.oneof(fc.stringMatching(/^[+-]?[0-9]{1,11}$/), pick('0', '01', '2147483648'))),
    event_time: mostly(
      fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.stringMatching(/^20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9](:[0-6][0-9](\.[0-9]{1,10})?)?(Z|z|[+-][01][0-9](:?[0-9]{2})?)?$/),
    ),
  };
  const row = fc.tuple(field.event_id, field.text, field.event_type, field.text, field.price, field.quantity, field.event_time);

  it('every line the fast path takes comes out byte for byte as the validator\'s row is written', () => {
    const map = mapHeader(header) as ColumnMap;
    const times = new EventTimes();
    const fast = new FastRows(map, DEFAULT_EVENT_TYPES, tail, times);
    let taken = 0;
    fc.assert(
      fc.property(row, fc.boolean(), (fields, extraComma) => {
        const line = fields.join(',') + (extraComma ? ',' : '');
        const out = new CopyBuffer();
        const bytes = Buffer.from(`x${line}y`);
        const before = times.count;
        if (!fast.write(bytes, 1, bytes.length - 1, 42, out)) {
          expect(times.count).toBe(before); // a line left to the full reader is not counted here
          return;
        }
        taken++;
        const slow = validateRow(line.split(','), { map, eventTypes: DEFAULT_EVENT_TYPES, defaultOffset: '+00:00' });
        expect(slow).not.toBeInstanceOf(RowRejection);
        expect(out.take().equals(slowBytes(slow as EventRow, 42))).toBe(true);
        // Its event time is counted once, as the instant the validator read.
        const instant = new EventTimes();
        instant.add((slow as EventRow).eventTime.seconds + (slow as EventRow).eventTime.micros / 1e6);
        expect(times.count).toBe(before + 1);
        expect(times.max).toBeGreaterThanOrEqual(instant.max);
        expect(times.min).toBeLessThanOrEqual(instant.min);
      }),
      { numRuns: 3000 },
    );
    expect(taken).toBeGreaterThan(100);
  });

  it('takes the generator\'s rows, in any column order', () => {
    const line = '0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b,user_0042,purchase,SKU-1042,19.99,2,2026-11-21T10:15:30.123Z';
    const reordered = ['event_time', 'price', 'event_id', 'quantity', 'user_id', 'product_id', 'event_type', 'note'];
    const values = line.split(',');
    const byName = Object.fromEntries(header.map((h, i) => [h, values[i]!]));
    const moved = reordered.map((h) => byName[h] ?? 'extra').join(',');
    for (const [cols, text] of [[header, line], [reordered, moved]] as const) {
      const map = mapHeader([...cols]) as ColumnMap;
      const out = new CopyBuffer();
      out.writeAll(BINARY_HEADER);
      const times = new EventTimes();
      expect(new FastRows(map, DEFAULT_EVENT_TYPES, tail, times).write(Buffer.from(text), 0, text.length, 7, out)).toBe(true);
      expect([times.count, isoFromSeconds2000(times.min), isoFromSeconds2000(times.mean)]).toEqual([1, '2026-11-21T10:15:30.123Z', '2026-11-21T10:15:30.123Z']);
      out.int16(-1);
      expect(decodeCopyBinary(out.take())).toEqual([
        ['0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b', 'user_0042', 'purchase', 'SKU-1042', '19.99', '2', '2026-11-21T10:15:30.123000Z', 'f.csv', '7', '9'],
      ]);
    }
  });
});

describe('derived event ids', () => {
  it('are the same for the same event written another way (price zeros, time zone spelling, fraction zeros)', () => {
    const map = mapHeader(['user_id', 'event_type', 'product_id', 'price', 'quantity', 'event_time']) as ColumnMap;
    const id = (fields: string[]) => (validateRow(fields, { map, eventTypes: DEFAULT_EVENT_TYPES, defaultOffset: '+00:00' }) as EventRow).eventId;
    const a = id(['u', 'view', 'p', '7.50', '1', '2026-01-01T10:00:00Z']);
    expect(id(['u', 'view', 'p', '007.5', '1', '2026-01-01 10:00:00.000'])).toBe(a);
    expect(id(['u', 'view', 'p', '7.5', '1', '2026-01-01T12:00:00+02:00'])).toBe(a);
    expect(id(['u', 'view', 'p', '7.5', '1', '2026-01-01T10:00:00.001Z'])).not.toBe(a);
    expect(id(['u', 'view', 'p', '7.51', '1', '2026-01-01T10:00:00Z'])).not.toBe(a);
  });
});

describe('stray quotes', () => {
  it('a quote in the middle of an unquoted field costs that one line, not the lines after it', () => {
    const items = split('h1,h2\n1,5" screen\n2,ok\n3,7" tablet\n4,fine\n');
    expect(items.map((i) => [i.line, isBadRecord(i) ? i.reason : 'ok'])).toEqual([
      [1, 'ok'],
      [2, 'malformed CSV: a quote appears inside an unquoted field'],
      [3, 'ok'],
      [4, 'malformed CSV: a quote appears inside an unquoted field'],
      [5, 'ok'],
    ]);
  });
});
