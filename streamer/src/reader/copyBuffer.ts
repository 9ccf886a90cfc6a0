const INITIAL_BYTES = 1 << 20;

/** COPY text being built for PostgreSQL: bytes appended in place, handed over in large pieces. */
export class CopyBuffer {
  private buf = Buffer.allocUnsafe(INITIAL_BYTES);
  length = 0;

  /** Room for `n` more bytes; returns the buffer to write into at `length`. */
  reserve(n: number): Buffer {
    if (this.length + n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(bigger, 0, 0, this.length);
      this.buf = bigger;
    }
    return this.buf;
  }

  writeString(text: string): void {
    const n = Buffer.byteLength(text);
    this.reserve(n).write(text, this.length);
    this.length += n;
  }

  writeBytes(src: Buffer, start: number, end: number): void {
    const buf = this.reserve(end - start);
    // A native copy costs more than a loop for the short pieces most rows are made of.
    if (end - start > 64) src.copy(buf, this.length, start, end);
    else for (let i = start, j = this.length; i < end; ) buf[j++] = src[i++]!;
    this.length += end - start;
  }

  writeUint(n: number): void {
    const buf = this.reserve(16);
    let digits = 1;
    for (let t = 10; t <= n; t *= 10) digits++;
    let pos = this.length + digits;
    this.length = pos;
    do {
      buf[--pos] = 48 + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
  }

  /** The bytes written so far; writing goes on in a fresh buffer (the old one now belongs to the socket). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.length);
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.length = 0;
    return out;
  }
}
