import type { CopyBuffer } from './copyBuffer.ts';
import type { EventRow } from './validateRow.ts';

// PostgreSQL's COPY binary format: what its *_recv functions read, so that the server does not
// parse uuids, numbers and timestamps again after the reader has validated them.

/** Signature, flags (no OIDs), no header extension. */
export const BINARY_HEADER = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);
/**
 * The event's 7 columns, source_event_id and attributes, then source_line. source_file and batch_id
 * are the same for every row of a file: the server fills them in from the transaction's settings
 * (sql/060_row_defaults.sql), which spares the client a third of the bytes it would write.
 */
export const ROW_FIELDS = 10;
export const BINARY_COLUMNS = 'event_id, user_id, event_type, product_id, price, quantity, event_time, source_event_id, attributes, source_line';

const DASH = 45;
const NOT_HEX = 0xffff;
/** A byte's value per pair of lower-case hex digits (first << 8 | second): half the look-ups of one per digit. */
const HEX_PAIR = new Uint16Array(1 << 16).fill(NOT_HEX);
for (let i = 0; i < 256; i++) {
  const hex = i.toString(16).padStart(2, '0');
  HEX_PAIR[(hex.charCodeAt(0) << 8) | hex.charCodeAt(1)] = i;
}
/** Where each of a uuid's 16 bytes is written, in its 36 characters. */
const PAIR_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/** Reads a lower-case uuid written at s..e into 16 bytes; false if it is not one. */
export function decodeUuid(src: Buffer, s: number, e: number, into: Buffer): boolean {
  if (e - s !== 36 || src[s + 8] !== DASH || src[s + 13] !== DASH || src[s + 18] !== DASH || src[s + 23] !== DASH) return false;
  let bad = 0;
  for (let j = 0; j < 16; j++) {
    const i = s + PAIR_AT[j]!;
    const v = HEX_PAIR[(src[i]! << 8) | src[i + 1]!]!;
    bad |= v;
    into[j] = v;
  }
  return bad < 256;
}

export function uuidField(out: CopyBuffer, bytes: Buffer): void {
  out.int32(16);
  out.writeAll(bytes);
}

export function textField(out: CopyBuffer, src: Buffer, start: number, end: number): void {
  out.int32(end - start);
  out.writeBytes(src, start, end);
}

export function stringField(out: CopyBuffer, text: string): void {
  out.int32(Buffer.byteLength(text));
  out.writeString(text);
}

export function nullField(out: CopyBuffer): void {
  out.int32(-1);
}

/** jsonb: a version byte (1), then the JSON text. */
export function jsonbField(out: CopyBuffer, json: string): void {
  out.int32(Buffer.byteLength(json) + 1);
  out.uint8(1);
  out.writeString(json);
}

/** numeric(12,2) from cents: base-10000 digits, most significant first, scale 2. */
export function numericField(out: CopyBuffer, cents: number): void {
  const units = Math.floor(cents / 100);
  const groups = units >= 1e8 ? 3 : units >= 1e4 ? 2 : units > 0 ? 1 : 0;
  out.int32(8 + 2 * (groups + 1));
  out.int16(groups + 1); // digits
  out.int16(groups - 1); // weight of the first digit
  out.int16(0); // sign: positive
  out.int16(2); // display scale
  if (groups === 3) out.int16(Math.floor(units / 1e8));
  if (groups >= 2) out.int16(Math.floor(units / 1e4) % 1e4);
  if (groups >= 1) out.int16(units % 1e4);
  out.int16((cents % 100) * 100);
}

export function int4Field(out: CopyBuffer, v: number): void {
  out.int32(4);
  out.int32(v);
}

export function int8Field(out: CopyBuffer, v: number): void {
  out.int32(8);
  out.int64(v);
}

/** timestamptz: microseconds since 2000-01-01 UTC. Beyond ±285 years of 2000 they outgrow a double's integers. */
export function timestamptzField(out: CopyBuffer, seconds: number, micros: number): void {
  out.int32(8);
  const v = seconds * 1e6 + micros;
  if (Number.isSafeInteger(v)) out.int64(v);
  else out.bigInt64(BigInt(seconds) * 1_000_000n + BigInt(micros));
}

/** source_event_id and attributes null, then source_line: most rows end so. */
export function nullsThenLine(out: CopyBuffer, line: number): void {
  out.int32(-1);
  out.int32(-1);
  int8Field(out, line);
}

/** A row the full validator accepted. */
export function writeEventRow(out: CopyBuffer, row: EventRow, line: number): void {
  out.int16(ROW_FIELDS);
  const id = Buffer.allocUnsafe(16);
  decodeUuid(Buffer.from(row.eventId, 'latin1'), 0, 36, id);
  uuidField(out, id);
  stringField(out, row.userId);
  stringField(out, row.eventType);
  if (row.productId === null) nullField(out);
  else stringField(out, row.productId);
  if (row.priceCents < 0) nullField(out);
  else numericField(out, row.priceCents);
  int4Field(out, row.quantity);
  timestamptzField(out, row.eventTime.seconds, row.eventTime.micros);
  if (row.sourceEventId === null) nullField(out);
  else stringField(out, row.sourceEventId);
  if (row.attributes === null) nullField(out);
  else jsonbField(out, row.attributes);
  int8Field(out, line);
}
