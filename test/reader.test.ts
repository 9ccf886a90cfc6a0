import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BINARY_HEADER, writeEventRow } from '../streamer/src/reader/copyBinary.ts';
import { CopyBuffer } from '../streamer/src/reader/copyBuffer.ts';
import { eventText } from '../streamer/src/reader/copyText.ts';
import { EventTimes, isoFromSeconds2000 } from '../streamer/src/reader/eventTimes.ts';
import { FastRows } from '../streamer/src/reader/fastRow.ts';
import { DEFAULT_ALIASES } from '../streamer/src/reader/contract/columns.ts';
import { mapHeader, readHeader, type ColumnMap, type Delimiter } from '../streamer/src/reader/contract/layout.ts';
import { BUILT_IN_VOCABULARY, parseEventTypes, type EventVocabulary } from '../streamer/src/reader/contract/vocabulary.ts';
import { parseTimestamp, readEventTime } from '../streamer/src/reader/parseTimestamp.ts';
import { LineSplitter } from '../streamer/src/reader/lineSplitter.ts';
import { isBadRecord, lineFault, RecordAssembler, type SplitItem } from '../streamer/src/reader/recordAssembler.ts';
import { RowRejection, validateRow, type EventRow } from '../streamer/src/reader/validateRow.ts';
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
  it('gives the same lines when every chunk is read into one buffer that is written over after each push', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'b', ',', '\n', '\r\n', '\ufeff', 'é'), { maxLength: 60 }),
        fc.integer({ min: 1, max: 9 }),
        (parts, size) => {
          const bytes = Buffer.from(parts.join(''));
          const seen: Array<[number, string]> = [];
          const onLine = (buf: Buffer, start: number, end: number, line: number) => seen.push([line, buf.toString('latin1', start, end)]);
          const lines = new LineSplitter();
          const reused = Buffer.alloc(size);
          for (let i = 0; i < bytes.length; i += size) {
            const n = bytes.copy(reused, 0, i, i + size);
            lines.push(reused.subarray(0, n), onLine);
            reused.fill(0x78); // what a carried line kept must be its own copy
          }
          lines.end(onLine);
          const whole: Array<[number, string]> = [];
          const once = new LineSplitter();
          once.push(Buffer.from(bytes), (buf, start, end, line) => whole.push([line, buf.toString('latin1', start, end)]));
          once.end((buf, start, end, line) => whole.push([line, buf.toString('latin1', start, end)]));
          expect(seen).toEqual(whole);
        },
      ),
    );
  });

  it('CopyBuffer: a piece taken is never written over by what follows, across slabs', () => {
    const out = new CopyBuffer();
    const taken: Array<[Buffer, number]> = [];
    for (let i = 0; i < 40; i++) {
      const piece = Buffer.alloc(150_000 + i * 1000, i);
      out.writeAll(piece);
      out.int32(i);
      taken.push([out.take(), i]);
    }
    for (const [piece, i] of taken) {
      expect(piece.length).toBe(150_000 + i * 1000 + 4);
      expect(piece.subarray(0, -4).every((b) => b === i)).toBe(true);
      expect(piece.readInt32BE(piece.length - 4)).toBe(i);
    }
  });

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

describe('readEventTime: timestamps other tools write', () => {
  const utc = (text: string) => {
    const t = readEventTime(text, '+00:00');
    return typeof t === 'string' ? t : new Date(Date.UTC(2000, 0, 1) + t.seconds * 1000 + t.micros / 1000).toISOString();
  };

  it('reads a trailing UTC or GMT, a redundant Z after a zero offset, and Unix epoch seconds or milliseconds', () => {
    expect(utc('2019-10-01 00:00:00 UTC')).toBe('2019-10-01T00:00:00.000Z');
    expect(utc('2019-10-01 00:00:00.5 gmt')).toBe('2019-10-01T00:00:00.500Z');
    expect(utc('2026-05-01T10:00:00+00:00Z')).toBe('2026-05-01T10:00:00.000Z');
    expect(utc('2026-05-01T10:00:00-0000Z')).toBe('2026-05-01T10:00:00.000Z');
    expect(utc('1569888000')).toBe('2019-10-01T00:00:00.000Z');
    expect(utc('1569888000.25')).toBe('2019-10-01T00:00:00.250Z');
    expect(utc('1569888000123')).toBe('2019-10-01T00:00:00.123Z');
    expect(utc('433036800')).toBe('1983-09-22T00:00:00.000Z'); // 9 digits
  });

  it('gives epoch times a zoned text form, so that COPY text and derived ids see the same instant', () => {
    expect(readEventTime('1569888000123', undefined)).toEqual({ text: '2019-10-01T00:00:00.123Z', seconds: 1569888000 - 946684800, micros: 123000 });
  });

  it.each([
    ['2019-10-01 00:00:00 CET', "event_time '2019-10-01 00:00:00 CET' ends in the zone name 'CET': only UTC and GMT are read by name; write an offset such as +01:00"],
    ['2019-10-01T00:00:00 Europe/Paris', "event_time '2019-10-01T00:00:00 Europe/Paris' ends in the zone name 'Europe/Paris': only UTC and GMT are read by name; write an offset such as +01:00"],
    ['2026-05-01T10:00:00+02:00Z', "event_time '2026-05-01T10:00:00+02:00Z' has two zones that disagree: +02:00 and Z"],
    ['2024', "event_time '2024' is a number, but not Unix epoch seconds (9 to 11 digits) or milliseconds (12 to 14 digits)"],
    ['123456789012345', "event_time '123456789012345' is a number, but not Unix epoch seconds (9 to 11 digits) or milliseconds (12 to 14 digits)"],
    ['1569888000123.5', "event_time '1569888000123.5' is a number, but not Unix epoch seconds (9 to 11 digits) or milliseconds (12 to 14 digits)"],
    ['yesterday', "event_time 'yesterday' is not a valid ISO-8601 timestamp"],
    ['2019-02-30 00:00:00 UTC', "event_time '2019-02-30 00:00:00 UTC' is not a valid ISO-8601 timestamp"],
  ])('rejects %s saying what it saw', (input, reason) => expect(readEventTime(input, '+00:00')).toBe(reason));
});

const HEADER = ['event_id', 'user_id', 'event_type', 'product_id', 'price', 'quantity', 'event_time'];
const rulesFor = (header: string[], vocabulary: EventVocabulary = BUILT_IN_VOCABULARY, delimiter: Delimiter = ',') => ({
  map: mapHeader(header, undefined, delimiter) as ColumnMap,
  vocabulary,
  defaultOffset: '+00:00',
});

describe('validateRow', () => {
  const rules = rulesFor(HEADER);
  const good = ['0B0F7A2E-1C2D-4E5F-8A9B-0C1D2E3F4A5B', ' user_1 ', 'Purchase', 'SKU-1', '19.99', '2', '2026-01-01T00:00:00Z'];
  const reason = (i: number, value: string, base = good) => {
    const fields = [...base];
    fields[i] = value;
    const r = validateRow(fields, rules);
    return r instanceof RowRejection ? r.reason : 'accepted';
  };

  it('normalises a good row (and writes it as COPY text)', () => {
    const row = validateRow(good, rules) as EventRow;
    expect(row).toMatchObject({ eventId: '0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b', userId: 'user_1', eventType: 'purchase', productId: 'SKU-1', price: '19.99', priceCents: 1999, quantity: 2, sourceEventId: null, attributes: null, defaulted: 0 });
    expect(eventText(row)).toBe('0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b\tuser_1\tpurchase\tSKU-1\t19.99\t2\t2026-01-01T00:00:00Z\t\\N\t\\N');
  });

  it('rounds the price to cents as numeric(12,2) does, and rejects one that no longer fits once rounded', () => {
    const cents = (price: string) => (validateRow(good.map((f, i) => (i === 4 ? price : f)), rules) as EventRow).priceCents;
    expect([cents('0.005'), cents('0.0049'), cents('007.5'), cents('2.999'), cents('9999999999.994')]).toEqual([1, 0, 750, 300, 999999999999]);
    expect(reason(4, '9999999999.995')).toBe("price '9999999999.995' is too large (at most 9999999999.99)");
  });

  it('rejects each kind of bad value with its own reason', () => {
    expect(reason(1, '  ')).toBe('user_id is empty');
    expect(reason(2, '')).toBe('event_type is empty');
    expect(reason(2, 'teleport')).toBe(
      "event_type 'teleport' is not in the event vocabulary: accept it with --event-types +teleport, or name the type it stands for with --event-synonyms, e.g. purchase=teleport",
    );
    expect(reason(4, 'NaN')).toBe("price 'NaN' is not a decimal number");
    expect(reason(4, '-1.00')).toBe("price '-1.00' is negative");
    expect(reason(4, '19,99')).toBe("price '19,99' is not a decimal number"); // a comma-delimited file
    expect(reason(4, '12345678901.00')).toBe("price '12345678901.00' is too large (at most 9999999999.99)");
    expect(reason(5, '0')).toBe("quantity '0' must be at least 1 for a purchase");
    expect(reason(5, '-2')).toBe("quantity '-2' is negative");
    expect(reason(5, '1.5')).toBe("quantity '1.5' is not a whole number");
    expect(reason(5, '99999999999')).toBe("quantity '99999999999' is too large (at most 2147483647)");
    expect(reason(6, '2024-02-30T00:00:00Z')).toBe("event_time '2024-02-30T00:00:00Z' is not a valid ISO-8601 timestamp");
    expect(reason(6, ' ')).toBe('event_time is empty');
    expect(validateRow(good.slice(0, 6), rules)).toEqual(new RowRejection('expected 7 fields as in the header, got 6'));
  });

  it('applies the rule that only makes sense for purchases to purchases: other events may have a quantity of 0', () => {
    const view = good.map((f, i) => (i === 2 ? 'view' : f));
    expect(reason(5, '0', view)).toBe('accepted');
    expect(reason(5, '-1', view)).toBe("quantity '-1' is negative");
  });

  it('gives an empty product_id, price or quantity its default, and says which it gave', () => {
    const row = validateRow(good.map((f, i) => (i === 3 || i === 4 || i === 5 ? ' ' : f)), rules) as EventRow;
    expect(row).toMatchObject({ productId: null, price: null, priceCents: -1, quantity: 1, defaulted: 2 | 4 | 8 });
    expect(eventText(row)).toBe('0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b\tuser_1\tpurchase\t\\N\t\\N\t1\t2026-01-01T00:00:00Z\t\\N\t\\N');
  });

  it('needs only event_type, event_time and user_id: every other column may be missing', () => {
    const row = validateRow(['buy', '2019-10-01 00:00:00 UTC', 'u7'], rulesFor(['event_type', 'event_time', 'user_id'])) as EventRow;
    expect(row).toMatchObject({ eventType: 'purchase', productId: null, price: null, quantity: 1, sourceEventId: null, attributes: null, defaulted: 1 | 2 | 4 | 8 });
    expect(row.eventTime.text).toBe('2019-10-01T00:00:00Z');
  });

  it('stores the canonical name of a synonym, however it is written', () => {
    const type = (written: string) => (validateRow(good.map((f, i) => (i === 2 ? written : f)), rules) as EventRow).eventType;
    expect(['BUY', ' Order Completed ', 'order-completed', 'transaction'].map(type)).toEqual(['purchase', 'purchase', 'purchase', 'purchase']);
    expect(['cart', 'AddToCart', 'Product Added', 'add-to-cart'].map(type)).toEqual(['add_to_cart', 'add_to_cart', 'add_to_cart', 'add_to_cart']);
    expect(['Product Viewed', 'page_view', 'remove_from_cart', 'Products Searched', 'refund'].map(type)).toEqual(['view', 'view', 'remove_from_cart', 'search', 'refund']);
  });

  it('names the setting that would accept a value outside a replaced vocabulary', () => {
    const replaced = rulesFor(HEADER, parseEventTypes('view,purchase') as EventVocabulary);
    const r = (written: string) => (validateRow(good.map((f, i) => (i === 2 ? written : f)), replaced) as RowRejection).reason;
    expect(r('Cart')).toBe(
      "event_type 'Cart' is not one of view, purchase ('cart' is a built-in name for add_to_cart): accept it with --event-types view,purchase,add_to_cart, or name the type it stands for with --event-synonyms, e.g. purchase=cart",
    );
    expect(r('teleport')).toBe(
      "event_type 'teleport' is not one of view, purchase: accept it with --event-types view,purchase,teleport, or name the type it stands for with --event-synonyms, e.g. purchase=teleport",
    );
    // Synonyms of the listed types still apply.
    expect((validateRow(good.map((f, i) => (i === 2 ? 'buy' : f)), replaced) as EventRow).eventType).toBe('purchase');
    const any = rulesFor(HEADER, parseEventTypes('*') as EventVocabulary);
    expect((validateRow(good.map((f, i) => (i === 2 ? ' Teleport Home ' : f)), any) as EventRow).eventType).toBe('teleport_home');
    expect((validateRow(good.map((f, i) => (i === 2 ? 'buy' : f)), any) as EventRow).eventType).toBe('purchase');
  });

  it('reads a decimal comma in a file delimited otherwise (19,99 in a ; file)', () => {
    const row = validateRow(good.map((f, i) => (i === 4 ? '19,99' : f)), rulesFor(HEADER, BUILT_IN_VOCABULARY, ';')) as EventRow;
    expect(row).toMatchObject({ price: '19.99', priceCents: 1999 });
  });

  it('escapes tabs, newlines and backslashes in text columns', () => {
    const fields = [...good];
    fields[1] = 'a\tb\\c\nd';
    expect(eventText(validateRow(fields, rules) as EventRow)).toContain('\ta\\tb\\\\c\\nd\t');
  });

  it('derives a stable event id when the file has no event_id column, the same as before the contract for a row of every field', () => {
    const noId = rulesFor(['user', 'action', 'sku', 'price', 'qty', 'timestamp']);
    const a = (validateRow(good.slice(1), noId) as EventRow).eventId;
    const b = (validateRow(good.slice(1), noId) as EventRow).eventId;
    expect(a).toBe(b);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((validateRow(['u', 'view', 'p', '7.50', '1', '2026-01-01T10:00:00Z'], noId) as EventRow).eventId).toBe('2f644fb3-2f67-883a-b06e-a11eac169fa4');
  });

  it('keeps an event_id that is not a UUID in source_event_id and identifies the row by all its content, that id included', () => {
    const id = (fields: string[]) => validateRow(fields, rules) as EventRow;
    const row = ['1', 'u1', 'view', 'p1', '1.00', '1', '2026-01-01T00:00:00Z'];
    const one = id(row);
    expect(one).toMatchObject({ sourceEventId: '1', defaulted: 1 });
    expect(one.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8/);
    expect(id([...row]).eventId).toBe(one.eventId); // the same row again: the same event
    expect(id(['2', ...row.slice(1)]).eventId).not.toBe(one.eventId); // another id: another event
    expect(id(['1', 'u2', ...row.slice(2)]).eventId).not.toBe(one.eventId); // row 1 of another file
    expect(id(['EVT-778', ...row.slice(1)]).sourceEventId).toBe('EVT-778'); // kept as written
    expect(id(['', ...row.slice(1)])).toMatchObject({ sourceEventId: null, defaulted: 1 });
  });

  it('keeps the columns that map to no field in attributes: one key per column, empty values left out', () => {
    const withExtra = rulesFor(['event_type', 'Category Code', 'event_time', 'brand', 'user_id', 'brand']);
    const row = validateRow(['view', 'electronics.smartphone', '2019-10-01 00:00:00 UTC', ' ', 'u1', 'say "hi"'], withExtra) as EventRow;
    expect(JSON.parse(row.attributes!)).toEqual({ category_code: 'electronics.smartphone', brand_2: 'say "hi"' });
    expect((validateRow(['view', '', '2019-10-01 00:00:00 UTC', '', 'u1', ''], withExtra) as EventRow).attributes).toBeNull();
    // Part of the content: the same row with other attributes is another event.
    const other = validateRow(['view', 'electronics.tablet', '2019-10-01 00:00:00 UTC', ' ', 'u1', 'say "hi"'], withExtra) as EventRow;
    expect(other.eventId).not.toBe(row.eventId);
  });
});

describe('mapHeader and readHeader', () => {
  it('maps names in any case, order and spacing, with aliases, and keeps extra columns as attributes', () => {
    const map = mapHeader(['Event Time', 'EVENT_ID', 'note', 'user id', 'Action', 'sku', 'Price', 'qty']) as ColumnMap;
    expect(map).toMatchObject({
      delimiter: ',',
      index: { event_id: 1, user_id: 3, event_type: 4, product_id: 5, price: 6, quantity: 7, event_time: 0 },
      width: 8,
      attributes: [{ position: 2, key: 'note', json: '"note"' }],
      ignored: [],
    });
    expect(map.report).toEqual({
      delimiter: ',',
      fields: { event_time: 'Event Time', event_id: 'EVENT_ID', user_id: 'user id', event_type: 'Action', product_id: 'sku', price: 'Price', quantity: 'qty' },
      attributes: { note: 'note' },
      ignored: [],
      defaults: {},
    });
    const ignoring = mapHeader(['event_type', 'note', 'event_time', 'user_id'], { aliases: DEFAULT_ALIASES, attributes: false }) as ColumnMap;
    expect(ignoring).toMatchObject({ attributes: [], ignored: ['note'] });
  });

  it('records the defaults of the missing optional columns', () => {
    expect((mapHeader(['timestamp', 'visitorid', 'event', 'itemid', 'transactionid']) as ColumnMap).report).toEqual({
      delimiter: ',',
      fields: { event_time: 'timestamp', user_id: 'visitorid', event_type: 'event', product_id: 'itemid' },
      attributes: { transactionid: 'transactionid' },
      ignored: [],
      defaults: { event_id: "derived from the row's content", price: 'null', quantity: '1' },
    });
  });

  it('finds the delimiter from the header line: , ; tab |', () => {
    const rules = { aliases: DEFAULT_ALIASES, attributes: true };
    for (const d of [',', ';', '\t', '|'] as const) {
      const map = readHeader(['event_time', 'Event Type', 'user_id', 'price'].join(d), rules) as ColumnMap;
      expect(map.delimiter).toBe(d);
      expect(map.index).toMatchObject({ event_time: 0, event_type: 1, user_id: 2, price: 3 });
    }
    // The most frequent first, but the first that maps wins: here the commas are inside a quoted name.
    const quoted = readHeader('"notes, a, b, c";event_time;user_id;event_type', rules) as ColumnMap;
    expect(quoted.delimiter).toBe(';');
    expect(quoted.report.attributes).toEqual({ 'notes,_a,_b,_c': 'notes, a, b, c' });
  });

  it('says what is wrong with a header that cannot be used, showing the header it saw', () => {
    const rules = { aliases: DEFAULT_ALIASES, attributes: true };
    expect(readHeader('name,email,phone', rules)).toEqual({
      error: 'the first line is not a header naming the required columns (event_type, event_time, user_id), split on any of , ; tab |: saw "name,email,phone"',
    });
    expect(readHeader('event_time event_type user_id', rules)).toEqual({
      error: 'the first line is not a header naming the required columns (event_type, event_time, user_id), split on any of , ; tab |: saw "event_time event_type user_id"',
    });
    expect(readHeader('event_time;event_type;price', rules)).toEqual({
      error: 'required column missing from the header: user_id (header "event_time;event_type;price", split on \';\')',
    });
    expect(readHeader('event_id\tuser_id\tprice', rules)).toEqual({
      error: 'required columns missing from the header: event_type, event_time (header "event_id\\tuser_id\\tprice", split on \'tab\')',
    });
  });
});

describe('FastRows (the byte-level path) agrees with the full validator', () => {
  /** The COPY binary the full validator's row is written as. */
  const slowBytes = (row: EventRow, line: number) => {
    const out = new CopyBuffer();
    writeEventRow(out, row, line);
    return out.take();
  };
  const pick = <T>(...xs: T[]) => fc.constantFrom(...xs);
  // Mostly good values, often near the edges of what either path accepts.
  const mostly = <T>(good: fc.Arbitrary<T>, edge: fc.Arbitrary<T>) => fc.oneof({ arbitrary: good, weight: 6 }, { arbitrary: edge, weight: 1 });
  const field = {
    event_id: mostly(fc.uuid().map((u) => u.toLowerCase()), fc.oneof(fc.uuid().map((u) => u.toUpperCase()), pick('', 'x', ' 0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b'))),
    text: mostly(fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/), pick('', ' padded ', 'é', 'a"b', 'a\\b', 'tab\there')),
    event_type: mostly(pick('view', 'purchase', 'add_to_cart'), pick('View', ' view', 'click', 'cart', 'Buy', 'teleport', '')),
    price: mostly(fc.stringMatching(/^[0-9]{1,10}(\.[0-9]{1,3})?$/), fc.oneof(fc.stringMatching(/^[0-9]{11,12}(\.[0-9]{0,2})?$/), pick('NaN', '-1', '1e5', '.5', '1.', '00000000001.5'))),
    quantity: mostly(fc.integer({ min: 1, max: 2147483647 }).map(String), fc.oneof(fc.stringMatching(/^[+-]?[0-9]{1,11}$/), pick('0', '01', '2147483648'))),
    event_time: mostly(
      fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.stringMatching(/^20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9](:[0-6][0-9](\.[0-9]{1,10})?)?(Z|z|[+-][01][0-9](:?[0-9]{2})?)?$/),
    ),
  };
  const row = fc.tuple(field.event_id, field.text, field.event_type, field.text, field.price, field.quantity, field.event_time);
  const attribute = mostly(fc.stringMatching(/^[A-Za-z0-9_.:/-]{1,8}$/), pick('', ' ', ' x ', 'a"b', 'é'));
  /** The 7 columns with up to two extra ones (kept in attributes) at any place, and a delimiter. */
  const layout = fc.record({
    delimiter: fc.constantFrom<Delimiter>(',', ';', '\t', '|'),
    extra: fc.subarray(['note', 'Brand Name']),
    at: fc.tuple(fc.nat(7), fc.nat(8)),
  });

  it('every line the fast path takes comes out byte for byte as the validator\'s row is written (any delimiter, attributes)', () => {
    let taken = 0;
    let withAttributes = 0;
    fc.assert(
      fc.property(layout, row, fc.tuple(attribute, attribute), fc.boolean(), pick('+00:00', '-03:30', '+0545'), ({ delimiter, extra, at }, fields, values, extraDelimiter, defaultOffset) => {
        const names = [...HEADER];
        const line = [...fields];
        extra.forEach((name, i) => {
          names.splice(at[i]! % (names.length + 1), 0, name);
          line.splice(at[i]! % (line.length + 1), 0, values[i]!);
        });
        const map = mapHeader(names, undefined, delimiter) as ColumnMap;
        const text = line.join(delimiter) + (extraDelimiter ? delimiter : '');
        const out = new CopyBuffer();
        const bytes = Buffer.from(`x${text}y`);
        const times = new EventTimes();
        if (!new FastRows(map, BUILT_IN_VOCABULARY, times, defaultOffset).write(bytes, 1, bytes.length - 1, 42, out)) {
          expect(times.count).toBe(0); // a line left to the full reader is not counted here
          return;
        }
        taken++;
        const slow = validateRow(text.split(delimiter), { map, vocabulary: BUILT_IN_VOCABULARY, defaultOffset });
        expect(slow).not.toBeInstanceOf(RowRejection);
        if ((slow as EventRow).attributes) withAttributes++;
        expect(out.take().equals(slowBytes(slow as EventRow, 42))).toBe(true);
        // Its event time is counted once, as the instant the validator read.
        const { seconds, micros } = (slow as EventRow).eventTime;
        expect([times.count, times.min]).toEqual([1, seconds + micros / 1e6]);
      }),
      { numRuns: 4000 },
    );
    expect(taken).toBeGreaterThan(100);
    expect(withAttributes).toBeGreaterThan(20);
  });

  it('takes a spreadsheet export\'s zone-less timestamps, read at the configured offset as the validator reads them', () => {
    const names = [...HEADER, 'brand', 'country'];
    const map = mapHeader(names, undefined, ';') as ColumnMap;
    for (const [time, defaultOffset, instant] of [
      ['2026-01-01 00:00:00', '+00:00', '2026-01-01T00:00:00.000Z'],
      ['2026-01-01 00:00:00.25', '-03:30', '2026-01-01T03:30:00.250Z'],
      ['2026-06-30T23:59:59', '+0545', '2026-06-30T18:14:59.000Z'],
    ] as const) {
      const text = ['bb731714-ce7a-4a98-a8a6-06d7b1390974', 'user_0849', 'view', 'SKU-1092', '77.95', '1', time, '', 'KM'].join(';');
      const out = new CopyBuffer();
      const times = new EventTimes();
      expect(new FastRows(map, BUILT_IN_VOCABULARY, times, defaultOffset).write(Buffer.from(text), 0, text.length, 7, out), time).toBe(true);
      expect(isoFromSeconds2000(times.min)).toBe(instant);
      const slow = validateRow(text.split(';'), { map, vocabulary: BUILT_IN_VOCABULARY, defaultOffset });
      expect(out.take().equals(slowBytes(slow as EventRow, 7))).toBe(true);
      // Without a configured offset (a named zone, applied by PostgreSQL) the full reader takes it.
      expect(new FastRows(map, BUILT_IN_VOCABULARY, new EventTimes()).write(Buffer.from(text), 0, text.length, 7, new CopyBuffer())).toBe(false);
    }
  });

  it('takes the generator\'s rows, in any column order, and writes extra columns as attributes', () => {
    const line = '0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b,user_0042,purchase,SKU-1042,19.99,2,2026-11-21T10:15:30.123Z';
    const reordered = ['event_time', 'price', 'event_id', 'quantity', 'user_id', 'product_id', 'event_type', 'note'];
    const values = line.split(',');
    const byName = Object.fromEntries(HEADER.map((h, i) => [h, values[i]!]));
    const moved = reordered.map((h) => byName[h] ?? 'extra').join(',');
    const event = ['0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b', 'user_0042', 'purchase', 'SKU-1042', '19.99', '2', '2026-11-21T10:15:30.123000Z', '\\N'];
    for (const [cols, text, attributes] of [[HEADER, line, '\\N'], [reordered, moved, '{"note":"extra"}']] as const) {
      const map = mapHeader([...cols]) as ColumnMap;
      const out = new CopyBuffer();
      out.writeAll(BINARY_HEADER);
      const times = new EventTimes();
      expect(new FastRows(map, BUILT_IN_VOCABULARY, times).write(Buffer.from(text), 0, text.length, 7, out)).toBe(true);
      expect([times.count, isoFromSeconds2000(times.min), isoFromSeconds2000(times.mean)]).toEqual([1, '2026-11-21T10:15:30.123Z', '2026-11-21T10:15:30.123Z']);
      out.int16(-1);
      expect(decodeCopyBinary(out.take(), 'f.csv', 9)).toEqual([[...event, attributes, 'f.csv', '7', '9']]);
    }
  });

  it('leaves to the full reader what takes a default, a synonym or an id that is not a UUID', () => {
    const map = mapHeader(HEADER) as ColumnMap;
    const fast = new FastRows(map, BUILT_IN_VOCABULARY, new EventTimes());
    const takes = (text: string) => fast.write(Buffer.from(text), 0, text.length, 2, new CopyBuffer());
    const base = ['0b0f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b', 'u', 'view', 'p', '1.00', '1', '2026-01-01T00:00:00Z'];
    const line = (i: number, v: string) => base.map((f, j) => (j === i ? v : f)).join(',');
    expect(takes(base.join(','))).toBe(true);
    expect([takes(line(0, '1')), takes(line(2, 'cart')), takes(line(3, '')), takes(line(4, '')), takes(line(5, '')), takes(line(5, '0'))]).toEqual([false, false, false, false, false, false]);
    expect(new FastRows(mapHeader(HEADER.slice(1)) as ColumnMap, BUILT_IN_VOCABULARY, new EventTimes()).usable).toBe(false);
    expect(new FastRows(mapHeader(HEADER.filter((c) => c !== 'quantity')) as ColumnMap, BUILT_IN_VOCABULARY, new EventTimes()).usable).toBe(false);
  });
});

describe('derived event ids', () => {
  it('are the same for the same event written another way (price zeros, time zone spelling, fraction zeros)', () => {
    const rules = rulesFor(['user_id', 'event_type', 'product_id', 'price', 'quantity', 'event_time']);
    const id = (fields: string[]) => (validateRow(fields, rules) as EventRow).eventId;
    const a = id(['u', 'view', 'p', '7.50', '1', '2026-01-01T10:00:00Z']);
    expect(id(['u', 'view', 'p', '007.5', '1', '2026-01-01 10:00:00.000'])).toBe(a);
    expect(id(['u', 'view', 'p', '7.5', '1', '2026-01-01T12:00:00+02:00'])).toBe(a);
    expect(id(['u', 'view', 'p', '7.5', '1', '2026-01-01T10:00:00.001Z'])).not.toBe(a);
    expect(id(['u', 'view', 'p', '7.51', '1', '2026-01-01T10:00:00Z'])).not.toBe(a);
    // Synonyms, epoch times and a trailing UTC are the same event too.
    expect(id(['u', 'Product Viewed', 'p', '7.5', '1', '1767261600'])).toBe(a);
    expect(id(['u', 'page_view', 'p', '7.5', '1', '2026-01-01 10:00:00 UTC'])).toBe(a);
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
