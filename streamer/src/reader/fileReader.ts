import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { mapHeader, type Column, type ColumnMap } from './columns.ts';
import { crashPoint } from '../crashPoint.ts';
import { escapeCopy } from './copyText.ts';
import type { RejectSpool } from './rejectSpool.ts';
import { isBadRecord, RecordSplitter } from './splitRecords.ts';
import { RowRejection, validateRow } from './validateRow.ts';

/** A file the source found ready, as the planner saw it. */
export interface SourceFile {
  /** Path relative to the input directory: the file's name everywhere (ledger, rows, logs). */
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
}

export interface ReadCounts {
  bytes: number;
  rowsRead: number;
  rowsValid: number;
  rowsRejected: number;
  /** sha256 of the whole content; set once the file has been read to the end. */
  fingerprint: string;
  /** Header names that map to no column. */
  ignoredColumns: string[];
  /** Nothing but blank space in the file: no header, no rows. */
  empty: boolean;
}

/** How rows are read; set by configuration. */
export interface ReadRules {
  eventTypes: ReadonlySet<string>;
  aliases: Record<Column, readonly string[]>;
  /** Offset for timestamps without a zone (UTC: +00:00), or undefined when a named zone is used. */
  defaultOffset: string | undefined;
  /** A named zone (Europe/Paris) for timestamps without one: the loading session's TimeZone. */
  namedTimeZone: string | undefined;
}

/** The whole file cannot be loaded (no usable header, …): it is set aside with this reason. */
export class FileRejectedError extends Error {}

/** The file changed while it was read: the work is rolled back and the file read again later. */
export class FileChangedError extends Error {}

const CHUNK_CHARS = 1 << 16;

/**
 * Reads one file as a stream: bytes → records → validated rows. Valid rows come out as COPY text
 * for user_activity (with their source file, line and batch); rejected rows go to the spool.
 */
export class FileReader {
  readonly counts: ReadCounts = { bytes: 0, rowsRead: 0, rowsValid: 0, rowsRejected: 0, fingerprint: '', ignoredColumns: [], empty: false };

  /** `withRaw`: each row also carries its original text (for the staging table, to reject it later). */
  constructor(
    private readonly file: SourceFile,
    private readonly batchId: number,
    private readonly rules: ReadRules,
    private readonly rejects: RejectSpool,
    private readonly withRaw = false,
  ) {}

  async *copyText(): AsyncGenerator<string> {
    const hash = createHash('sha256');
    const splitter = new RecordSplitter();
    const fileColumn = `\t${escapeCopy(this.file.name)}\t`;
    const batchColumn = `\t${this.batchId}\n`;
    const rowEnd = this.withRaw ? `\t${this.batchId}\t` : batchColumn;
    let map: ColumnMap | undefined;
    let out = '';

    const input = createReadStream(this.file.path, { highWaterMark: 1 << 18 });
    const chunks = async function* () {
      for await (const chunk of input as AsyncIterable<Buffer>) yield chunk;
      yield undefined; // end of file
    };
    for await (const chunk of chunks()) {
      let items;
      if (chunk) {
        if (this.counts.bytes === 0 && chunk.length >= 2 && ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff))) {
          throw new FileRejectedError('the file is encoded as UTF-16, not UTF-8');
        }
        hash.update(chunk);
        this.counts.bytes += chunk.length;
        items = splitter.push(chunk);
      } else {
        items = splitter.end();
      }
      for (const item of items) {
        if (map === undefined) {
          if (isBadRecord(item)) throw new FileRejectedError(`the header (line ${item.line}) ${item.reason.replace(/^line /, '')}`);
          const mapped = mapHeader(item.fields, this.rules.aliases);
          if ('error' in mapped) throw new FileRejectedError(mapped.error);
          map = mapped;
          this.counts.ignoredColumns = mapped.ignored;
          continue;
        }
        this.counts.rowsRead++;
        const row = isBadRecord(item)
          ? new RowRejection(item.reason)
          : validateRow(item.fields, { map, eventTypes: this.rules.eventTypes, defaultOffset: this.rules.defaultOffset });
        if (row instanceof RowRejection) {
          this.counts.rowsRejected++;
          await this.rejects.add(`${fileColumn.slice(1)}${item.line}\t${escapeCopy(item.raw)}\t${escapeCopy(row.reason)}${batchColumn}`);
          continue;
        }
        this.counts.rowsValid++;
        out += row + fileColumn + item.line + rowEnd;
        if (this.withRaw) out += `${escapeCopy(item.raw)}\n`;
        if (out.length >= CHUNK_CHARS) {
          yield out;
          out = '';
          crashPoint('mid-copy', this.batchId);
        }
      }
    }
    if (out) yield out;
    this.counts.empty = map === undefined;
    this.counts.fingerprint = hash.digest('hex');

    const now = await stat(this.file.path);
    if (now.size !== this.counts.bytes || now.size !== this.file.size || now.mtimeMs !== this.file.mtimeMs) {
      throw new FileChangedError(`${this.file.name} changed while it was read (${this.file.size} → ${now.size} bytes)`);
    }
  }
}
