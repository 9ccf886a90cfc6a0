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

/**
 * Whether a line ends inside a quoted field (RFC 4180: a quote opens a field only at its start;
 * "" inside quotes is a quote). A stray quote in the middle of a field does not open anything, so
 * it costs one rejected line, not the rest of the file.
 */
function endsInQuotes(text: string, inQuotes: boolean, delimiter: number): boolean {
  let atFieldStart = !inQuotes;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inQuotes) {
      if (c === 34) {
        if (text.charCodeAt(i + 1) === 34) i++;
        else inQuotes = false;
      }
    } else if (c === delimiter) {
      atFieldStart = true;
    } else {
      inQuotes = c === 34 && atFieldStart;
      atFieldStart = false;
    }
  }
  return inQuotes;
}

/** Why a line cannot be read as text, or undefined when it can. */
export function lineFault(buf: Buffer, start: number, end: number, tooLong: boolean): string | undefined {
  if (tooLong) return `is longer than ${MAX_LINE_BYTES} bytes`;
  const bytes = buf.subarray(start, end);
  if (bytes.indexOf(0) !== -1) return 'contains a NUL byte';
  return isUtf8(bytes) ? undefined : 'is not valid UTF-8';
}

/** The fields of one record's text: split on the delimiter, or by csv-parse when it holds quotes; a string says why it cannot be read. */
export function splitRecord(text: string, delimiter: string): string[] | string {
  if (text.indexOf('"') === -1) return text.split(delimiter);
  try {
    const records = parse(text, { delimiter, relax_column_count: true }) as string[][];
    return records[0] ?? [];
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    return `malformed CSV: ${CSV_ERRORS[code] ?? (err as Error).message}`;
  }
}

/**
 * Turns lines of text into CSV records. A plain line (no quote) is split on the delimiter here; a
 * record with quotes, which may span lines, is handed to csv-parse and reported at the line it
 * starts on. Blank lines are skipped. A line with a fault (see lineFault) comes out as a bad record.
 */
export class RecordAssembler {
  // A quoted record still open at the end of a line.
  private open: { line: number; parts: string[]; bytes: number; fault?: string } | undefined;
  // The file's delimiter, once its header has told it; a comma until then.
  private delimiter = ',';
  private delimiterCode = 44;

  setDelimiter(delimiter: string): void {
    this.delimiter = delimiter;
    this.delimiterCode = delimiter.charCodeAt(0);
  }

  get isOpen(): boolean {
    return this.open !== undefined;
  }

  line(text: string, lineNo: number, fault: string | undefined, out: SplitItem[]): void {
    const open = this.open;
    if (open) {
      open.parts.push(text);
      open.bytes += text.length + 1;
      open.fault ??= fault;
      if (!endsInQuotes(text, true, this.delimiterCode)) {
        this.open = undefined;
        this.record(open.line, open.parts.join('\n'), open.fault, out);
      } else if (open.bytes > MAX_LINE_BYTES) {
        this.open = undefined;
        out.push({ line: open.line, raw: visible(open.parts.join('\n').slice(0, 10_000)), reason: `quoted field opened on line ${open.line} runs past ${MAX_LINE_BYTES} bytes` });
      }
      return;
    }
    if (text.trim() === '') return;
    if (!fault && text.includes('"') && endsInQuotes(text, false, this.delimiterCode)) {
      this.open = { line: lineNo, parts: [text], bytes: text.length, fault };
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
      return;
    }
    const fields = splitRecord(text, this.delimiter);
    out.push(typeof fields === 'string' ? { line, raw: text, reason: fields } : { line, fields, raw: text });
  }
}

/** The reasons given above to a record whose raw text is not what was read: a line's fault (see lineFault) or a cut-off quoted field. */
const ALTERED_RAW = /^(line |quoted field opened on line \d+ runs past )/;

/**
 * Whether a rejected record's raw text is the record as it was read, so that reading it again
 * means something: not for a preview of a line too long, nor for bytes shown otherwise (NUL as ␀,
 * invalid UTF-8 as U+FFFD).
 */
export function rawIsRecord(reason: string): boolean {
  return !ALTERED_RAW.test(reason);
}

/** Rejected text is stored in a text column: NUL cannot be, so it is shown as ␀. */
function visible(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\u2400') : text;
}
