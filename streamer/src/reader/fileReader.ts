import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { crashPoint } from '../crashPoint.ts';
import type { InputName } from '../source/inputName.ts';
import type { Column } from './contract/columns.ts';
import { OPTIONAL, DEFAULTED, type OptionalColumn } from './contract/defaults.ts';
import { readHeader, type ColumnMap, type LayoutReport } from './contract/layout.ts';
import type { EventVocabulary } from './contract/vocabulary.ts';
import { BINARY_HEADER, BINARY_TRAILER, writeEventRow } from './copyBinary.ts';
import { CopyBuffer } from './copyBuffer.ts';
import { escapeCopy, eventText } from './copyText.ts';
import { EventTimes } from './eventTimes.ts';
import { FastRows } from './fastRow.ts';
import { LineSplitter } from './lineSplitter.ts';
import { isBadRecord, lineFault, RecordAssembler, type SplitItem } from './recordAssembler.ts';
import type { RejectSpool } from './rejectSpool.ts';
import { RowRejection, validateRow } from './validateRow.ts';

/** A file the source found ready, as the planner saw it: one version of its name. */
export interface SourceFile extends InputName {
  /** InputName.name, the path relative to the input directory, is the file's name everywhere (ledger, rows, logs). */
  path: string | Buffer;
  size: number;
  mtimeMs: number;
  /** Tells a file renamed over this one from this one, when size and mtime are the same (unknown in older checkpoints). */
  ino?: number;
}

/** How rows are read; set by configuration. */
export interface ReadRules {
  vocabulary: EventVocabulary;
  aliases: Record<Column, readonly string[]>;
  /** Columns that map to no field are kept in attributes (else ignored, and said so in the log). */
  attributes: boolean;
  /** Offset for timestamps without a zone (UTC: +00:00), or undefined when a named zone is used. */
  defaultOffset: string | undefined;
  /** A named zone (Europe/Paris) for timestamps without one: the loading session's TimeZone. */
  namedTimeZone: string | undefined;
}

export interface ReadCounts {
  bytes: number;
  rowsRead: number;
  rowsValid: number;
  rowsRejected: number;
  /** sha256 of the whole content; set once the file has been read to the end. */
  fingerprint: string;
  /** Header names that map to no field and are not kept in attributes. */
  ignoredColumns: string[];
  /** How the header was read; unset until it has been. */
  layout: LayoutReport | undefined;
  /** The header record as written; unset until it has been read. */
  header: string | undefined;
  /** Per optional field, the valid rows that took its default (column missing or value empty). */
  defaulted: Record<OptionalColumn, number>;
  /** Nothing but blank space in the file: no header, no rows. */
  empty: boolean;
}

/** The whole file cannot be loaded (no usable header, …): it is set aside with this reason. */
export class FileRejectedError extends Error {}

/** The file changed while it was read: the work is rolled back and the file read again later. */
export class FileChangedError extends Error {}

/** COPY data is handed to the database in pieces of about this size. */
const FLUSH_BYTES = 1 << 18;
const READ_BYTES = 1 << 18;
/** Read buffers of files read to the end, for the next ones. */
const readBuffers: Buffer[] = [];

const isUtf16 = (chunk: Buffer) => chunk.length >= 2 && ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff));

/**
 * Reads one file as a stream: bytes → lines → records → validated rows. Valid rows come out as COPY
 * data for user_activity (with their source line); rejected rows go to the spool.
 * The data is COPY binary (BINARY_COLUMNS: the server adds the file and batch): plain rows take a
 * byte-level fast path (FastRows), every other line goes through csv-parse and the validator, and
 * both write the same bytes for the rows both accept.
 * It is COPY text, with the file and batch in every row, where the server must still interpret
 * values: for the staging table (each row followed by its raw line) and when zone-less timestamps
 * take a named zone (the session's TimeZone).
 */
export class FileReader {
  readonly counts: ReadCounts = {
    bytes: 0,
    rowsRead: 0,
    rowsValid: 0,
    rowsRejected: 0,
    fingerprint: '',
    ignoredColumns: [],
    layout: undefined,
    header: undefined,
    defaulted: { event_id: 0, product_id: 0, price: 0, quantity: 0 },
    empty: false,
  };
  /** Of the valid rows whose instant is known here (not zone-less ones in a named zone: PostgreSQL places those). */
  readonly eventTimes = new EventTimes();
  private readonly out = new CopyBuffer();
  private readonly assembler = new RecordAssembler();
  private readonly items: SplitItem[] = [];
  /** COPY (FORMAT binary) rather than text. */
  readonly binary: boolean;
  private readonly fileColumn: string;
  private readonly rowEnd: string;
  private map: ColumnMap | undefined;
  private fast: FastRows | undefined;

  /** `withRaw`: each row also carries its original text (for the staging table, to reject it later). */
  constructor(
    private readonly file: SourceFile,
    private readonly batchId: number,
    private readonly rules: ReadRules,
    private readonly rejects: RejectSpool,
    private readonly withRaw = false,
  ) {
    this.binary = !withRaw && rules.namedTimeZone === undefined;
    this.fileColumn = `\t${escapeCopy(file.name)}\t`;
    this.rowEnd = withRaw ? `\t${batchId}\t` : `\t${batchId}\n`;
    if (this.binary) this.out.writeAll(BINARY_HEADER);
  }

  /**
   * The file's COPY data, in pieces. `handedOver`: whether the database connection holds none of
   * the pieces given so far (then their memory is written again); without it, none is reused.
   */
  async *copyData(handedOver?: () => boolean): AsyncGenerator<Buffer> {
    const hash = createHash('sha256');
    const lines = new LineSplitter();
    const onLine = this.onLine.bind(this);
    // One buffer read into again and again, file after file: everything reads a chunk before the
    // next read (a stream's fresh buffer per chunk made the garbage collector run for the external memory).
    const handle = await open(this.file.path, 'r');
    const buffer = readBuffers.pop() ?? Buffer.allocUnsafe(READ_BYTES);
    try {
      for (let n; (n = (await handle.read(buffer, 0, READ_BYTES, null)).bytesRead) > 0; ) {
        const chunk = buffer.subarray(0, n);
        if (this.counts.bytes === 0 && isUtf16(chunk)) throw new FileRejectedError('the file is encoded as UTF-16, not UTF-8');
        hash.update(chunk);
        this.counts.bytes += n;
        lines.push(chunk, onLine);
        await this.rejects.settle();
        if (this.out.length >= FLUSH_BYTES) {
          yield this.out.take();
          crashPoint('mid-copy', this.batchId);
          if (handedOver?.()) this.out.reuse();
        }
      }
    } finally {
      readBuffers.push(buffer);
      await handle.close();
    }
    lines.end(onLine);
    this.assembler.end(this.items);
    this.drainItems();
    if (this.binary) this.out.writeAll(BINARY_TRAILER);
    if (this.out.length > 0) {
      yield this.out.take();
      crashPoint('mid-copy', this.batchId);
    }
    this.counts.empty = this.map === undefined;
    this.counts.fingerprint = hash.digest('hex');

    const now = await stat(this.file.path);
    if (now.size !== this.counts.bytes || now.size !== this.file.size || now.mtimeMs !== this.file.mtimeMs) {
      throw new FileChangedError(`${this.file.name} changed while it was read (${this.file.size} → ${now.size} bytes)`);
    }
  }

  /** The COPY of this file's data has ended (it holds none of it): its memory goes to the next file. */
  release(): void {
    this.out.release();
  }

  /** replay-rejects: the file's header as the ledger recorded it, read in place of the file's first line. */
  readRecordedHeader(header: string): void {
    this.readRecord(1, header);
    if (this.map === undefined) throw new FileRejectedError('the recorded header is blank');
  }

  /**
   * replay-rejects: records read again from the text user_activity_rejects keeps of them, each at
   * its line, as copyData read them in their file. For a reader made `withRaw` (COPY text, so that
   * each call can be a COPY of its own).
   */
  async *copyRecords(records: Iterable<{ line: number; raw: string }>): AsyncGenerator<Buffer> {
    for (const { line, raw } of records) {
      this.readRecord(line, raw);
      await this.rejects.settle();
      if (this.out.length >= FLUSH_BYTES) yield this.out.take();
    }
    if (this.out.length > 0) yield this.out.take();
  }

  /** A record on its own: a quote it leaves open closes with it, as at the end of a file. */
  private readRecord(line: number, raw: string): void {
    raw.split('\n').forEach((text, i) => {
      const buf = Buffer.from(text);
      this.onLine(buf, 0, buf.length, line + i, false);
    });
    this.assembler.end(this.items);
    this.drainItems();
  }

  private onLine(buf: Buffer, start: number, end: number, line: number, tooLong: boolean): void {
    if (this.fast && !this.assembler.isOpen && !tooLong && this.fast.write(buf, start, end, line, this.out)) {
      this.counts.rowsRead++;
      this.counts.rowsValid++;
      return;
    }
    this.assembler.line(buf.toString('utf8', start, end), line, lineFault(buf, start, end, tooLong), this.items);
    this.drainItems();
  }

  private drainItems(): void {
    for (const item of this.items) {
      if (this.map === undefined) {
        this.readHeader(item);
        continue;
      }
      this.counts.rowsRead++;
      const row = isBadRecord(item)
        ? new RowRejection(item.reason)
        : validateRow(item.fields, { map: this.map, vocabulary: this.rules.vocabulary, defaultOffset: this.rules.defaultOffset });
      if (row instanceof RowRejection) {
        this.counts.rowsRejected++;
        this.rejects.add(`${this.fileColumn.slice(1)}${item.line}\t${escapeCopy(item.raw)}\t${escapeCopy(row.reason)}\t${this.batchId}\n`);
      } else {
        this.counts.rowsValid++;
        if (row.defaulted !== 0) this.countDefaults(row.defaulted);
        if (!Number.isNaN(row.eventTime.seconds)) this.eventTimes.add(row.eventTime.seconds + row.eventTime.micros / 1e6);
        if (this.binary) writeEventRow(this.out, row, item.line);
        else this.out.writeString(eventText(row) + this.fileColumn + item.line + this.rowEnd + (this.withRaw ? `${escapeCopy(item.raw)}\n` : ''));
      }
    }
    this.items.length = 0;
  }

  private countDefaults(bits: number): void {
    for (const c of OPTIONAL) if (bits & DEFAULTED[c]) this.counts.defaulted[c]++;
  }

  private readHeader(item: SplitItem): void {
    // A record csv-parse could not read with commas may still be a header delimited otherwise.
    if (isBadRecord(item) && !item.reason.startsWith('malformed CSV')) throw new FileRejectedError(`the header (line ${item.line}) ${item.reason.replace(/^line /, '')}`);
    const mapped = readHeader(item.raw, this.rules);
    if ('error' in mapped) throw new FileRejectedError(mapped.error);
    this.map = mapped;
    this.assembler.setDelimiter(mapped.delimiter);
    this.counts.ignoredColumns = mapped.ignored;
    this.counts.layout = mapped.report;
    this.counts.header = item.raw;
    const fast = new FastRows(mapped, this.rules.vocabulary, this.eventTimes, this.rules.defaultOffset);
    if (fast.usable && this.binary) this.fast = fast;
  }
}
