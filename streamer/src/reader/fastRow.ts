import { COLUMNS, type ColumnMap } from './columns.ts';
import type { CopyBuffer } from './copyBuffer.ts';

const COMMA = 44;
const TAB = 9;
const DASH = 45;
const SPACE = 32;

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

function isLowerUuid(b: Buffer, s: number, e: number): boolean {
  if (e - s !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = b[s + i]!;
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== DASH) return false;
    } else if (!isDigit(c) && (c < 97 || c > 102)) return false;
  }
  return true;
}

/** Non-empty, nothing to trim (control bytes were ruled out by the caller). */
const isPlainText = (b: Buffer, s: number, e: number) => e > s && b[s] !== SPACE && b[e - 1] !== SPACE;

/** 1 to 10 digits before an optional point with at least one digit after it. */
function isPrice(b: Buffer, s: number, e: number): boolean {
  let i = s;
  while (i < e && isDigit(b[i]!)) i++;
  if (i === s || i - s > 10) return false;
  if (i === e) return true;
  if (b[i] !== 46 || i + 1 === e) return false;
  for (i++; i < e; i++) if (!isDigit(b[i]!)) return false;
  return true;
}

/** 1 to 2147483647 written without sign or leading zero. */
function isQuantity(b: Buffer, s: number, e: number): boolean {
  if (e - s < 1 || e - s > 10 || b[s] === 48) return false;
  const v = digits(b, s, e - s);
  return v >= 1 && v <= 2_147_483_647;
}

function daysInMonth(year: number, month: number): number {
  return month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** YYYY-MM-DDTHH:MM:SS[.f{1,9}] then Z or ±HH[[:]MM]: the form the validator would pass on unchanged. */
function isCanonicalTimestamp(b: Buffer, s: number, e: number): boolean {
  if (e - s < 20 || b[s + 4] !== DASH || b[s + 7] !== DASH || b[s + 10] !== 84 || b[s + 13] !== 58 || b[s + 16] !== 58) return false;
  const year = digits(b, s, 4), month = digits(b, s + 5, 2), day = digits(b, s + 8, 2);
  const hour = digits(b, s + 11, 2), minute = digits(b, s + 14, 2), second = digits(b, s + 17, 2);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return false;
  let i = s + 19;
  if (b[i] === 46) {
    const from = ++i;
    while (i < e && isDigit(b[i]!)) i++;
    if (i === from || i - from > 9) return false;
  }
  if (i === e - 1) return b[i] === 90; // Z
  const sign = b[i];
  if (sign !== 43 && sign !== DASH) return false;
  const rest = e - i - 1;
  const zh = digits(b, i + 1, 2);
  if (zh < 0 || zh > 15) return false;
  if (rest === 2) return true;
  const m = rest === 5 && b[i + 3] === 58 ? i + 4 : rest === 4 ? i + 3 : -1;
  if (m < 0) return false;
  const zm = digits(b, m, 2);
  return zm >= 0 && zm <= 59;
}

/**
 * The hot path: most lines are plain ASCII rows whose values are already in canonical form. Such a
 * line is checked byte by byte and its bytes are copied out as COPY text, with no string made and
 * no re-serialising. Anything else (quotes, non-ASCII, spaces to trim, upper case, a zone-less
 * timestamp, a bad value) returns false and goes through the full reader, which decides.
 */
export class FastRows {
  private readonly source: number[];
  private readonly identity: boolean;
  private readonly fieldStart: Int32Array;
  private readonly types: Buffer[];

  constructor(
    private readonly map: ColumnMap,
    eventTypes: ReadonlySet<string>,
    private readonly fileColumn: Buffer,
    private readonly batchEnd: Buffer,
  ) {
    this.source = COLUMNS.map((c) => map.index[c]);
    this.identity = map.width === COLUMNS.length && this.source.every((position, i) => position === i);
    this.fieldStart = new Int32Array(map.width + 1);
    this.types = [...eventTypes].map((t) => Buffer.from(t));
  }

  /** Derived event ids (no event_id column) are computed by the full reader. */
  get usable(): boolean {
    return this.map.index.event_id >= 0;
  }

  write(b: Buffer, s: number, e: number, line: number, out: CopyBuffer): boolean {
    const width = this.map.width;
    const at = this.fieldStart;
    at[0] = s;
    let fields = 1;
    for (let i = s; i < e; i++) {
      const c = b[i]!;
      if (c === COMMA) {
        if (fields === width) return false;
        at[fields++] = i + 1;
      } else if (c < SPACE || c >= 128 || c === 34 || c === 92) {
        return false; // control byte, non-ASCII, quote or backslash
      }
    }
    if (fields !== width) return false;
    at[width] = e + 1;

    // Field k is at[k] .. at[k + 1] - 1; columns in COPY order (see COLUMNS).
    const src = this.source;
    const id = src[0]!, user = src[1]!, type = src[2]!, product = src[3]!, price = src[4]!, quantity = src[5]!, time = src[6]!;
    if (!isLowerUuid(b, at[id]!, at[id + 1]! - 1)) return false;
    if (!isPlainText(b, at[user]!, at[user + 1]! - 1) || !isPlainText(b, at[product]!, at[product + 1]! - 1)) return false;
    if (!this.isType(b, at[type]!, at[type + 1]! - 1)) return false;
    if (!isPrice(b, at[price]!, at[price + 1]! - 1) || !isQuantity(b, at[quantity]!, at[quantity + 1]! - 1)) return false;
    if (!isCanonicalTimestamp(b, at[time]!, at[time + 1]! - 1)) return false;

    if (this.identity) {
      const base = out.length - s;
      out.writeBytes(b, s, e);
      const buf = out.reserve(0);
      for (let k = 1; k < width; k++) buf[base + at[k]! - 1] = TAB;
    } else {
      for (let k = 0; k < this.source.length; k++) {
        const f = this.source[k]!;
        if (k > 0) out.reserve(1)[out.length++] = TAB;
        out.writeBytes(b, at[f]!, at[f + 1]! - 1);
      }
    }
    out.writeBytes(this.fileColumn, 0, this.fileColumn.length);
    out.writeUint(line);
    out.writeBytes(this.batchEnd, 0, this.batchEnd.length);
    return true;
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
