import { COLUMNS } from './contract/columns.ts';
import type { ColumnMap } from './contract/layout.ts';
import type { EventVocabulary } from './contract/vocabulary.ts';
import { decodeUuid, int4Field, int8Field, nullField, nullsThenLine, numericField, ROW_FIELDS, textField, timestamptzField, uuidField } from './copyBinary.ts';
import type { CopyBuffer } from './copyBuffer.ts';
import type { EventTimes } from './eventTimes.ts';
import { daysInMonth, fractionMicros, secondsSince2000 } from './parseTimestamp.ts';
import { roundedCents } from './validateRow.ts';

const DASH = 45;
const QUOTE = 34;
const SPACE = 32;

// One table look-up per byte where the scan of a line made up to five comparisons.
const PLAIN = 0;
const DELIMITER = 1;
const STOP = 2;

const isDigit = (c: number) => c >= 48 && c <= 57;

function digits(b: Buffer, s: number, n: number): number {
  let v = 0;
  for (let i = s; i < s + n; i++) {
    const c = b[i]!;
    if (!isDigit(c)) return -1;
    v = v * 10 + c - 48;
  }
  return v;
}

/** Non-empty, nothing to trim (control bytes were ruled out by the caller). */
const isPlainText = (b: Buffer, s: number, e: number) => e > s && b[s] !== SPACE && b[e - 1] !== SPACE;

/** 1 to 2147483647 written without sign or leading zero; -1 otherwise. */
function quantity(b: Buffer, s: number, e: number): number {
  if (e - s < 1 || e - s > 10 || b[s] === 48) return -1;
  const v = digits(b, s, e - s);
  return v >= 1 && v <= 2_147_483_647 ? v : -1;
}

/** Microseconds in a unit of a fraction's last digit, by number of digits (10 ** (6 - n): Math.pow cost a sixth of a row). */
const MICROS_PER_UNIT = [0, 100_000, 10_000, 1_000, 100, 10, 1];

/** What zonedTimestamp leaves behind: the last fraction, and the last date and hour read, which most rows of a file share. */
class TimestampScratch {
  micros = 0;
  /** The bytes YYYY-MM-DDTHH of the last valid timestamp, and their seconds since 2000. Zeros at first, which no timestamp matches. */
  readonly hourKey = new Uint8Array(13);
  hourSeconds = 0;
}

/** Seconds since 2000 of the date and hour at s (the caller checked the dashes and the separator), or NaN. */
function hourSeconds(b: Buffer, s: number, scratch: TimestampScratch): number {
  const key = scratch.hourKey;
  let k = 0;
  while (k < 13 && key[k] === b[s + k]) k++;
  if (k === 13) return scratch.hourSeconds;
  const year = digits(b, s, 4), month = digits(b, s + 5, 2), day = digits(b, s + 8, 2), hour = digits(b, s + 11, 2);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour < 0 || hour > 23) return Number.NaN;
  for (k = 0; k < 13; k++) key[k] = b[s + k]!;
  return (scratch.hourSeconds = secondsSince2000(year, month, day, hour, 0, 0, 0));
}

/**
 * YYYY-MM-DD(T| )HH:MM:SS[.f{1,9}] then Z, ±HH[[:]MM] or no zone (then `defaultOffset`, in minutes):
 * the forms the validator reads the same way.
 * Returns its seconds since 2000 (and leaves the fraction's microseconds in `scratch.micros`), or NaN.
 */
function zonedTimestamp(b: Buffer, s: number, e: number, scratch: TimestampScratch, defaultOffset: number | undefined): number {
  const separator = b[s + 10];
  if (e - s < 19 || b[s + 4] !== DASH || b[s + 7] !== DASH || (separator !== 84 && separator !== SPACE) || b[s + 13] !== 58 || b[s + 16] !== 58) return NaN;
  const minute = digits(b, s + 14, 2), second = digits(b, s + 17, 2);
  if (minute < 0 || minute > 59 || second < 0 || second > 59) return NaN;
  const hour = hourSeconds(b, s, scratch);
  if (Number.isNaN(hour)) return NaN;
  let i = s + 19;
  scratch.micros = 0;
  if (b[i] === 46) {
    const from = ++i;
    while (i < e && isDigit(b[i]!)) i++;
    const n = i - from;
    if (n === 0 || n > 9) return NaN;
    // Up to 6 digits are exact; more are rounded as PostgreSQL rounds them.
    scratch.micros = n <= 6 ? digits(b, from, n) * MICROS_PER_UNIT[n]! : fractionMicros(b.toString('latin1', from, i));
  }
  let offset = 0;
  if (i === e) {
    // No zone (spreadsheet exports): the configured offset, which the full reader applies too.
    if (defaultOffset === undefined) return NaN;
    offset = defaultOffset;
  } else if (i === e - 1) {
    if (b[i] !== 90) return NaN; // Z
  } else {
    const sign = b[i];
    if (sign !== 43 && sign !== DASH) return NaN;
    const rest = e - i - 1;
    const zh = digits(b, i + 1, 2);
    if (zh < 0 || zh > 15) return NaN;
    let zm = 0;
    if (rest !== 2) {
      const m = rest === 5 && b[i + 3] === 58 ? i + 4 : rest === 4 ? i + 3 : -1;
      if (m < 0) return NaN;
      zm = digits(b, m, 2);
      if (zm < 0 || zm > 59) return NaN;
    }
    offset = (sign === DASH ? -1 : 1) * (zh * 60 + zm);
  }
  return hour + (minute - offset) * 60 + second;
}

/** '+02:00', '-0330' or '+05' as minutes east of UTC. */
function offsetMinutes(offset: string | undefined): number | undefined {
  const m = offset === undefined ? null : /^([+-])(\d{2}):?(\d{2})?$/.exec(offset);
  if (!m) return undefined;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3] ?? 0));
}

/** 1 to 10 digits, then an optional point with at least one digit after it: its value in cents, or -1. */
function priceCents(b: Buffer, s: number, e: number): number {
  let i = s;
  while (i < e && isDigit(b[i]!)) i++;
  if (i === s || i - s > 10) return -1;
  const whole = digits(b, s, i - s);
  if (i === e) return whole * 100;
  if (b[i] !== 46 || i + 1 === e) return -1;
  const from = ++i;
  for (; i < e; i++) if (!isDigit(b[i]!)) return -1;
  const n = e - from;
  return roundedCents(whole, b[from]! - 48, n > 1 ? b[from + 1]! - 48 : 0, n > 2 ? b[from + 2]! - 48 : 0);
}

/**
 * The hot path: most lines are plain ASCII rows whose values are already in canonical form. Such a
 * line is checked byte by byte and written out as a row of COPY binary, with no string made.
 * Anything else (quotes, non-ASCII, spaces to trim, upper case, a synonym, an id that is not a
 * UUID, an empty or defaulted value, a zone-less timestamp, a bad value) returns false and goes
 * through the full reader, which decides.
 */
export class FastRows {
  private readonly source: number[];
  private readonly fieldStart: Int32Array;
  private readonly types: Buffer[];
  /** Per byte value: PLAIN, DELIMITER or STOP (control byte, non-ASCII, quote or backslash). */
  private readonly byteKind = new Uint8Array(256);
  /** Columns kept in attributes, with the JSON before each value: `{"key":"` first, `,"key":"` after. */
  private readonly attributes: Array<{ position: number; first: Buffer; next: Buffer }>;
  private readonly stamp = new TimestampScratch();
  /** Minutes east of UTC for timestamps written without a zone; undefined: the full reader decides. */
  private readonly defaultOffset: number | undefined;
  private readonly uuid = Buffer.alloc(16);

  constructor(
    private readonly map: ColumnMap,
    vocabulary: EventVocabulary,
    private readonly times: EventTimes,
    defaultOffset?: string,
  ) {
    this.defaultOffset = offsetMinutes(defaultOffset);
    this.source = COLUMNS.map((c) => map.index[c]);
    this.fieldStart = new Int32Array(map.width + 1);
    this.types = vocabulary.types.map((t) => Buffer.from(t));
    for (let c = 0; c < 256; c++) this.byteKind[c] = c < SPACE || c >= 128 || c === QUOTE || c === 92 ? STOP : PLAIN;
    this.byteKind[map.delimiter.charCodeAt(0)] = DELIMITER;
    this.attributes = map.attributes.map((a) => ({ position: a.position, first: Buffer.from(`{${a.json}:"`), next: Buffer.from(`,${a.json}:"`) }));
  }

  /** Rows without an event_id, product_id, price or quantity column take defaults: the full reader does that. */
  get usable(): boolean {
    const { index } = this.map;
    return index.event_id >= 0 && index.product_id >= 0 && index.price >= 0 && index.quantity >= 0;
  }

  write(b: Buffer, s: number, e: number, line: number, out: CopyBuffer): boolean {
    const width = this.map.width;
    const at = this.fieldStart;
    at[0] = s;
    const kind = this.byteKind;
    let fields = 1;
    for (let i = s; i < e; i++) {
      const k = kind[b[i]!]!;
      if (k === PLAIN) continue;
      if (k === STOP || fields === width) return false;
      at[fields++] = i + 1;
    }
    if (fields !== width) return false;
    at[width] = e + 1;

    // Field k is at[k] .. at[k + 1] - 1; columns in COPY order (see COLUMNS).
    const src = this.source;
    const id = at[src[0]!]!, user = src[1]!, type = src[2]!, product = src[3]!, price = src[4]!, time = src[6]!;
    if (!decodeUuid(b, id, at[src[0]! + 1]! - 1, this.uuid)) return false;
    if (!isPlainText(b, at[user]!, at[user + 1]! - 1) || !isPlainText(b, at[product]!, at[product + 1]! - 1)) return false;
    if (!this.isType(b, at[type]!, at[type + 1]! - 1)) return false;
    const cents = priceCents(b, at[price]!, at[price + 1]! - 1);
    const count = quantity(b, at[src[5]!]!, at[src[5]! + 1]! - 1);
    if (cents < 0 || count < 0) return false;
    const seconds = zonedTimestamp(b, at[time]!, at[time + 1]! - 1, this.stamp, this.defaultOffset);
    if (Number.isNaN(seconds)) return false;
    const json = this.attributes.length === 0 ? 0 : this.attributesLength(b);
    if (json < 0) return false;

    out.int16(ROW_FIELDS);
    uuidField(out, this.uuid);
    textField(out, b, at[user]!, at[user + 1]! - 1);
    textField(out, b, at[type]!, at[type + 1]! - 1);
    textField(out, b, at[product]!, at[product + 1]! - 1);
    numericField(out, cents);
    int4Field(out, count);
    timestamptzField(out, seconds, this.stamp.micros);
    // source_event_id is null: the id is a UUID.
    if (json === 0) {
      nullsThenLine(out, line);
    } else {
      nullField(out);
      this.writeAttributes(b, json, out);
      int8Field(out, line);
    }
    this.times.add(seconds + this.stamp.micros / 1e6);
    return true;
  }

  /**
   * The bytes of `{"key":"value",…` for the non-empty attributes (0: none), or -1 when one has spaces
   * to trim. The line holds no quote, backslash or control byte: a value is its own JSON string.
   */
  private attributesLength(b: Buffer): number {
    const at = this.fieldStart;
    let json = 0;
    for (const a of this.attributes) {
      const from = at[a.position]!, to = at[a.position + 1]! - 1;
      if (to === from) continue;
      if (b[from] === SPACE || b[to - 1] === SPACE) return -1;
      json += a.next.length + (to - from) + 1;
    }
    return json;
  }

  /** jsonb: its version byte, then `{"key":"value",…}` (`json` bytes of it before the closing brace). */
  private writeAttributes(b: Buffer, json: number, out: CopyBuffer): void {
    const at = this.fieldStart;
    out.int32(json + 2);
    out.uint8(1);
    let first = true;
    for (const a of this.attributes) {
      const from = at[a.position]!, to = at[a.position + 1]! - 1;
      if (to === from) continue;
      out.writeAll(first ? a.first : a.next);
      first = false;
      out.writeBytes(b, from, to);
      out.uint8(QUOTE);
    }
    out.uint8(125); // }
  }

  private isType(b: Buffer, s: number, e: number): boolean {
    for (const t of this.types) {
      if (t.length !== e - s) continue;
      let i = 0;
      while (i < t.length && t[i] === b[s + i]) i++;
      if (i === t.length) return true;
    }
    return false;
  }
}
