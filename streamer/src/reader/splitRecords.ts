import { isUtf8 } from 'node:buffer';
import { parse } from 'csv-parse/sync';

/** A CSV record and the physical line it starts on (1-based). */
export interface CsvRecord {
  line: number;
  fields: string[];
  raw: string;
}

/** A record that could not be read as CSV text, kept with its line and the reason. */
export interface BadRecord {
  line: number;
  raw: string;
  reason: string;
}

export type SplitItem = CsvRecord | BadRecord;

export function isBadRecord(item: SplitItem): item is BadRecord {
  return (item as BadRecord).reason !== undefined;
}

/** A record is bounded, so that a file without line breaks cannot fill the memory. */
export const MAX_RECORD_BYTES = 1 << 20;

const NEWLINE = 0x0a;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

const CSV_ERRORS: Record<string, string> = {
  CSV_INVALID_CLOSING_QUOTE: 'a closing quote is followed by other characters',
  CSV_QUOTE_NOT_CLOSED: 'a quoted field is not closed',
  CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: 'a closing quote is followed by other characters',
  INVALID_OPENING_QUOTE: 'a quote appears inside an unquoted field',
};

function countQuotes(text: string): number {
  let n = 0;
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i + 1)) n++;
  return n;
}

/**
 * Splits a byte stream into CSV records with exact physical line numbers. Plain lines (no quote)
 * are split on commas here, which is most of the work and fast; a record with quotes (which may
 * span lines) is handed to csv-parse. Blank lines are skipped; a BOM at the start is dropped;
 * CRLF and LF both end a line. Lines with a NUL byte or invalid UTF-8 come out as bad records.
 */
export class RecordSplitter {
  private carry: Buffer = Buffer.alloc(0);
  private lineNo = 0;
  private started = false;
  // A quoted record still open at the end of a line.
  private open: { line: number; parts: string[]; quotes: number; bytes: number; fault?: string } | undefined;
  // Skipping the rest of an over-long line.
  private skippingLongLine = false;

  push(chunk: Buffer): SplitItem[] {
    if (this.skippingLongLine) {
      const end = chunk.indexOf(NEWLINE);
      if (end === -1) return [];
      this.skippingLongLine = false;
      this.lineNo++;
      chunk = chunk.subarray(end + 1);
    }
    let data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    if (!this.started && data.length >= 3) {
      this.started = true;
      if (data.subarray(0, 3).equals(BOM)) data = data.subarray(3);
    }
    const out: SplitItem[] = [];
    const last = data.lastIndexOf(NEWLINE);
    if (last === -1) {
      this.carry = data;
      if (data.length > MAX_RECORD_BYTES) this.dropLongLine(out);
      return out;
    }
    this.carry = data.subarray(last + 1);
    this.lines(data.subarray(0, last), out);
    return out;
  }

  end(): SplitItem[] {
    const out: SplitItem[] = [];
    this.skippingLongLine = false;
    if (this.carry.length) this.lines(this.carry, out);
    this.carry = Buffer.alloc(0);
    if (this.open) {
      out.push({ line: this.open.line, raw: this.open.parts.join('\n'), reason: `unterminated quoted field opened on line ${this.open.line}` });
      this.open = undefined;
    }
    return out;
  }

  /** `bytes` holds whole lines separated by LF, without the last LF. */
  private lines(bytes: Buffer, out: SplitItem[]): void {
    if (isUtf8(bytes) && bytes.indexOf(0) === -1) {
      for (const line of bytes.toString('utf8').split('\n')) this.line(line, undefined, out);
      return;
    }
    // Rare: find the lines that are not clean text, one by one.
    let start = 0;
    for (;;) {
      const end = bytes.indexOf(NEWLINE, start);
      const piece = bytes.subarray(start, end === -1 ? bytes.length : end);
      const fault = piece.indexOf(0) !== -1 ? 'contains a NUL byte' : isUtf8(piece) ? undefined : 'is not valid UTF-8';
      this.line(piece.toString('utf8'), fault, out);
      if (end === -1) return;
      start = end + 1;
    }
  }

  private line(text: string, fault: string | undefined, out: SplitItem[]): void {
    this.lineNo++;
    if (text.endsWith('\r')) text = text.slice(0, -1);
    const open = this.open;
    if (open) {
      open.parts.push(text);
      open.quotes += countQuotes(text);
      open.bytes += text.length + 1;
      open.fault ??= fault;
      if (open.quotes % 2 === 0) {
        this.open = undefined;
        this.record(open.line, open.parts.join('\n'), open.fault, out);
      } else if (open.bytes > MAX_RECORD_BYTES) {
        this.open = undefined;
        out.push({ line: open.line, raw: visible(open.parts.join('\n').slice(0, 10_000)), reason: `quoted field opened on line ${open.line} runs past ${MAX_RECORD_BYTES} bytes` });
      }
      return;
    }
    if (text.trim() === '') return;
    const quotes = countQuotes(text);
    if (quotes % 2 === 1) {
      this.open = { line: this.lineNo, parts: [text], quotes, bytes: text.length, fault };
      return;
    }
    this.record(this.lineNo, text, fault, out);
  }

  private record(line: number, text: string, fault: string | undefined, out: SplitItem[]): void {
    if (fault) {
      out.push({ line, raw: visible(text), reason: `line ${fault}` });
    } else if (text.indexOf('"') === -1) {
      out.push({ line, fields: text.split(','), raw: text });
    } else {
      try {
        const records = parse(text, { relax_column_count: true }) as string[][];
        out.push({ line, fields: records[0] ?? [], raw: text });
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        out.push({ line, raw: text, reason: `malformed CSV: ${CSV_ERRORS[code] ?? (err as Error).message}` });
      }
    }
  }

  private dropLongLine(out: SplitItem[]): void {
    out.push({ line: this.lineNo + 1, raw: visible(this.carry.subarray(0, 10_000).toString('utf8')), reason: `line is longer than ${MAX_RECORD_BYTES} bytes` });
    this.carry = Buffer.alloc(0);
    this.skippingLongLine = true;
  }
}

/** Rejected text is stored in a text column: NUL cannot be, so it is shown as ␀. */
function visible(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\u2400') : text;
}
