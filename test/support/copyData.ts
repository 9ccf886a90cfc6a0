import { parseTimestamp } from '../../streamer/src/reader/parseTimestamp.ts';

// The reader writes user_activity rows as COPY binary (or COPY text for the staging table). Tests
// read both back into one form: each field as COPY text (null as \N), with price as "units.cc"
// (rounded as numeric(12,2) rounds), event_time as the UTC instant to the microsecond and
// attributes as their JSON text, so that rows from either format compare equal when they stand
// for the same values.

const escape = (v: string) => v.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
const unescape = (v: string) => v.replace(/\\(.)/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c));

/** µs since 2000-01-01Z → 2026-01-01T00:00:00.123456Z. */
function instant(micros: bigint): string {
  let seconds = micros / 1_000_000n;
  if (seconds * 1_000_000n > micros) seconds -= 1n;
  const fraction = String(micros - seconds * 1_000_000n).padStart(6, '0');
  return `${new Date(Date.UTC(2000, 0, 1) + Number(seconds) * 1000).toISOString().slice(0, 19)}.${fraction}Z`;
}

/** A price as written in COPY text → "units.cc", rounded half up on the third decimal. */
function priceText(text: string): string {
  const [whole = '', fraction = ''] = text.split('.');
  const d = (i: number) => Number(fraction[i] ?? 0);
  const cents = BigInt(whole) * 100n + BigInt(d(0) * 10 + d(1) + (d(2) >= 5 ? 1 : 0));
  return `${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`;
}

/** user_activity's columns in a COPY text row. */
export const ROW_FIELDS = 12;
/** COPY binary leaves out source_file and batch_id (the server fills them in). */
const BINARY_FIELDS = 10;
const NULL = '\\N';

/** Rows of COPY text (user_activity's 12 columns, maybe a raw one after), normalised. */
export function decodeCopyText(data: Buffer): string[][] {
  const text = data.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(data)) throw new Error('COPY text is not valid UTF-8');
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new Error('COPY text does not end with a line break');
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => {
      const f = line.split('\t');
      if (f.length >= ROW_FIELDS) {
        const t = parseTimestamp(unescape(f[6]!), undefined);
        if (f[4] !== NULL) f[4] = priceText(f[4]!);
        f[6] = t && !Number.isNaN(t.seconds) ? instant(BigInt(t.seconds) * 1_000_000n + BigInt(t.micros)) : `unreadable: ${f[6]}`;
      }
      return f;
    });
}

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Rows of COPY binary for user_activity (BINARY_COLUMNS), decoded by the format's definition, with
 * the file and batch the server adds to them (the loading transaction's settings) in their places.
 */
export function decodeCopyBinary(data: Buffer, file: string, batch: number): string[][] {
  if (data.length === 0) return [];
  if (!data.subarray(0, 11).equals(SIGNATURE)) throw new Error('COPY binary signature missing');
  let at = 19 + data.readInt32BE(15);
  const rows: string[][] = [];
  for (;;) {
    const fields = data.readInt16BE(at);
    at += 2;
    if (fields === -1) break;
    if (fields !== BINARY_FIELDS) throw new Error(`a row of ${fields} fields`);
    const values: Array<Buffer | null> = [];
    for (let i = 0; i < fields; i++) {
      const n = data.readInt32BE(at);
      values.push(n === -1 ? null : data.subarray(at + 4, at + 4 + n));
      at += 4 + Math.max(n, 0);
    }
    const text = (v: Buffer) => {
      const s = v.toString('utf8');
      if (!Buffer.from(s, 'utf8').equals(v)) throw new Error('a text field that is not valid UTF-8');
      return escape(s);
    };
    type Field = Buffer | null;
    const [id, user, type, product, price, quantity, time, sourceId, attributes, line] = values as [Field, Field, Field, Field, Field, Field, Field, Field, Field, Field];
    const required = (v: Buffer | null, what: string) => {
      if (v === null) throw new Error(`${what} is null`);
      return v;
    };
    const hex = required(id, 'event_id').toString('hex');
    if (attributes && attributes[0] !== 1) throw new Error(`jsonb version ${attributes[0]}`);
    rows.push([
      `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
      text(required(user, 'user_id')),
      text(required(type, 'event_type')),
      product ? text(product) : NULL,
      price ? numeric(price) : NULL,
      String(required(quantity, 'quantity').readInt32BE(0)),
      instant(required(time, 'event_time').readBigInt64BE(0)),
      sourceId ? text(sourceId) : NULL,
      attributes ? text(attributes.subarray(1)) : NULL,
      escape(file),
      String(required(line, 'source_line').readBigInt64BE(0)),
      String(batch),
    ]);
  }
  if (at !== data.length) throw new Error(`${data.length - at} bytes after the trailer`);
  return rows;
}

/** numeric's binary form → "units.cc" (scale 2, positive, as numeric(12,2) holds it). */
function numeric(v: Buffer): string {
  const ndigits = v.readInt16BE(0), weight = v.readInt16BE(2), sign = v.readUInt16BE(4), dscale = v.readInt16BE(6);
  if (sign !== 0 || dscale !== 2) throw new Error(`numeric sign ${sign}, scale ${dscale}`);
  let cents = 0n;
  for (let i = 0; i < ndigits; i++) {
    const d = v.readInt16BE(8 + 2 * i);
    if (d < 0 || d > 9999) throw new Error(`numeric digit ${d}`);
    // Digit i is worth 10000^(weight - i); cents are 10000^-1 / 100.
    const power = weight - i + 1; // in units of 10000^-1
    cents += power >= 0 ? BigInt(d) * 10000n ** BigInt(power) / 100n : 0n;
    if (power < 0 && d !== 0) throw new Error('numeric digits below the scale');
  }
  return `${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`;
}
