import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { mapHeader, type ColumnMap } from './columns.ts';
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

  constructor(
    private readonly file: SourceFile,
    private readonly batchId: number,
    private readonly eventTypes: ReadonlySet<string>,
    private readonly rejects: RejectSpool,
  ) {}

  async *copyText(): AsyncGenerator<string> {
    const hash = createHash('sha256');
    const splitter = new RecordSplitter();
    const fileColumn = `\t${escapeCopy(this.file.name)}\t`;
    const batchColumn = `\t${this.batchId}\n`;
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
        hash.update(chunk);
        this.counts.bytes += chunk.length;
        items = splitter.push(chunk);
      } else {
        items = splitter.end();
      }
      for (const item of items) {
        if (map === undefined) {
          if (isBadRecord(item)) throw new FileRejectedError(`the header (line ${item.line}) ${item.reason.replace(/^line /, '')}`);
          const mapped = mapHeader(item.fields);
          if ('error' in mapped) throw new FileRejectedError(mapped.error);
          map = mapped;
          this.counts.ignoredColumns = mapped.ignored;
          continue;
        }
        this.counts.rowsRead++;
        const row = isBadRecord(item) ? new RowRejection(item.reason) : validateRow(item.fields, { map, eventTypes: this.eventTypes });
        if (row instanceof RowRejection) {
          this.counts.rowsRejected++;
          await this.rejects.add(`${fileColumn.slice(1)}${item.line}\t${escapeCopy(item.raw)}\t${escapeCopy(row.reason)}${batchColumn}`);
          continue;
        }
        this.counts.rowsValid++;
        out += row + fileColumn + item.line + batchColumn;
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
