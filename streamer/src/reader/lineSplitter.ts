/** A line is bounded, so that a file without line breaks cannot fill the memory. */
export const MAX_LINE_BYTES = 1 << 20;

const NEWLINE = 0x0a;
const CR = 0x0d;

/**
 * Receives each physical line: bytes [start, end) of `buf`, without its CR/LF, and its 1-based
 * number. `tooLong`: the line passed MAX_LINE_BYTES; only its start is given, the rest is skipped.
 */
export type OnLine = (buf: Buffer, start: number, end: number, line: number, tooLong: boolean) => void;

/**
 * Cuts a byte stream into physical lines, counting them exactly. LF or CRLF ends a line; a UTF-8
 * BOM at the start is dropped; a last line without a line break still counts.
 */
export class LineSplitter {
  private carry: Buffer | undefined;
  private lineNo = 0;
  private atStart = true;
  private skipping = false;

  push(chunk: Buffer, onLine: OnLine): void {
    if (this.skipping) {
      const end = chunk.indexOf(NEWLINE);
      if (end === -1) return;
      this.skipping = false;
      chunk = chunk.subarray(end + 1);
    }
    let data = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = undefined;
    if (this.atStart) {
      if (data.length < 3) {
        this.carry = data;
        return;
      }
      this.atStart = false;
      if (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3);
    }
    let start = 0;
    for (let nl = data.indexOf(NEWLINE); nl !== -1; nl = data.indexOf(NEWLINE, start)) {
      this.emit(data, start, nl, onLine);
      start = nl + 1;
    }
    if (start < data.length) {
      if (data.length - start > MAX_LINE_BYTES) {
        onLine(data, start, start + 10_000, ++this.lineNo, true);
        this.skipping = true;
      } else {
        this.carry = data.subarray(start);
      }
    }
  }

  end(onLine: OnLine): void {
    this.skipping = false;
    if (this.carry?.length) this.emit(this.carry, 0, this.carry.length, onLine);
    this.carry = undefined;
  }

  private emit(data: Buffer, start: number, end: number, onLine: OnLine): void {
    onLine(data, start, end > start && data[end - 1] === CR ? end - 1 : end, ++this.lineNo, false);
  }
}
