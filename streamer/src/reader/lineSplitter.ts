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
 * BOM at the start is dropped; a last line without a line break still counts. Lines are given in
 * place and what is kept between chunks is a copy: the caller may reuse a chunk once push returns.
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
    let data = chunk;
    if (this.carry) {
      const nl = this.atStart ? -1 : chunk.indexOf(NEWLINE);
      if (nl === -1) {
        data = Buffer.concat([this.carry, chunk]);
        this.carry = undefined;
      } else {
        // Only the line cut at the last chunk's end is joined: the rest is read in place.
        const head = Buffer.concat([this.carry, chunk.subarray(0, nl + 1)]);
        this.carry = undefined;
        this.lines(head, onLine, false);
        data = chunk.subarray(nl + 1);
        if (data.length === 0) return;
      }
    }
    if (this.atStart && data.length < 3) {
      this.carry = Buffer.from(data); // too short yet to tell whether it starts with a BOM
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
      this.carry = Buffer.from(data.subarray(start));
    }
  }

  private emit(data: Buffer, start: number, end: number, onLine: OnLine): void {
    if (end - start > MAX_LINE_BYTES) return onLine(data, start, start + PREVIEW_BYTES, ++this.lineNo, true);
    onLine(data, start, end > start && data[end - 1] === CR ? end - 1 : end, ++this.lineNo, false);
  }
}
