import { isUtf8 } from 'node:buffer';
import { parse } from 'csv-parse/sync';
import { MAX_LINE_BYTES } from './lineSplitter.ts';

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

/** Why a line cannot be read as text, or undefined when it can. */
export function lineFault(buf: Buffer, start: number, end: number, tooLong: boolean): string | undefined {
  if (tooLong) return `is longer than ${MAX_LINE_BYTES} bytes`;
  const bytes = buf.subarray(start, end);
  if (bytes.indexOf(0) !== -1) return 'contains a NUL byte';
  return isUtf8(bytes) ? undefined : 'is not valid UTF-8';
}

/**
 * Turns lines of text into CSV records. A plain line (no quote) is split on commas here; a record
 * with quotes, which may span lines, is handed to csv-parse and reported at the line it starts on.
 * Blank lines are skipped. A line with a fault (see lineFault) comes out as a bad record.
 */
export class RecordAssembler {
  // A quoted record still open at the end of a line.
  private open: { line: number; parts: string[]; quotes: number; bytes: number; fault?: string } | undefined;

  get isOpen(): boolean {
    return this.open !== undefined;
  }

  line(text: string, lineNo: number, fault: string | undefined, out: SplitItem[]): void {
    const open = this.open;
    if (open) {
      open.parts.push(text);
      open.quotes += countQuotes(text);
      open.bytes += text.length + 1;
      open.fault ??= fault;
      if (open.quotes % 2 === 0) {
        this.open = undefined;
        this.record(open.line, open.parts.join('\n'), open.fault, out);
      } else if (open.bytes > MAX_LINE_BYTES) {
        this.open = undefined;
        out.push({ line: open.line, raw: visible(open.parts.join('\n').slice(0, 10_000)), reason: `quoted field opened on line ${open.line} runs past ${MAX_LINE_BYTES} bytes` });
      }
      return;
    }
    if (text.trim() === '') return;
    const quotes = countQuotes(text);
    if (quotes % 2 === 1 && !fault) {
      this.open = { line: lineNo, parts: [text], quotes, bytes: text.length, fault };
      return;
    }
    this.record(lineNo, text, fault, out);
  }

  end(out: SplitItem[]): void {
    if (this.open) {
      out.push({ line: this.open.line, raw: visible(this.open.parts.join('\n')), reason: `unterminated quoted field opened on line ${this.open.line}` });
      this.open = undefined;
    }
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
}

/** Rejected text is stored in a text column: NUL cannot be, so it is shown as ␀. */
function visible(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\u2400') : text;
}
