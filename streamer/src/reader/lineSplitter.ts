/** A line is bounded, so that a file without line breaks cannot fill the memory. */
export const MAX_LINE_BYTES = 1 << 20;
/** What is kept of a line over the bound, to show in its reject. */
const PREVIEW_BYTES = 10_000;

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
    const data = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = undefined;
    if (this.atStart && data.length < 3) {
      this.carry = data; // too short yet to tell whether it starts with a BOM
      return;
    }
    this.lines(data, onLine, false);
  }

  end(onLine: OnLine): void {
    this.skipping = false;
    const data = this.carry;
    this.carry = undefined;
    if (data?.length) this.lines(data, onLine, true);
  }

  private lines(data: Buffer, onLine: OnLine, final: boolean): void {
    if (this.atStart) {
      this.atStart = false;
      if (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3);
    }
    let start = 0;
    for (let nl = data.indexOf(NEWLINE); nl !== -1; nl = data.indexOf(NEWLINE, start)) {
      this.emit(data, start, nl, onLine);
      start = nl + 1;
    }
    if (start === data.length) return;
    if (final) {
      this.emit(data, start, data.length, onLine);
    } else if (data.length - start > MAX_LINE_BYTES) {
      onLine(data, start, start + PREVIEW_BYTES, ++this.lineNo, true);
      this.skipping = true;
    } else {
      this.carry = data.subarray(start);
    }
  }

  private emit(data: Buffer, start: number, end: number, onLine: OnLine): void {
    if (end - start > MAX_LINE_BYTES) return onLine(data, start, start + PREVIEW_BYTES, ++this.lineNo, true);
    onLine(data, start, end > start && data[end - 1] === CR ? end - 1 : end, ++this.lineNo, false);
  }
}
