const INITIAL_BYTES = 1 << 20;
const TWO_32 = 4294967296;

/** COPY data being built for PostgreSQL: bytes appended in place, handed over in large pieces. */
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

  /** A whole buffer: TypedArray#set, which costs the same for any size, where a byte loop grows with it. */
  writeAll(src: Buffer): void {
    this.reserve(src.length).set(src, this.length);
    this.length += src.length;
  }

  uint8(v: number): void {
    this.reserve(1)[this.length++] = v;
  }

  /** Big-endian, as COPY binary wants its integers. */
  int16(v: number): void {
    const buf = this.reserve(2);
    buf[this.length++] = (v >>> 8) & 255;
    buf[this.length++] = v & 255;
  }

  int32(v: number): void {
    const buf = this.reserve(4);
    buf[this.length++] = v >>> 24;
    buf[this.length++] = (v >>> 16) & 255;
    buf[this.length++] = (v >>> 8) & 255;
    buf[this.length++] = v & 255;
  }

  /** A safe integer (|v| < 2^53) as a signed 64-bit one. */
  int64(v: number): void {
    const high = Math.floor(v / TWO_32);
    this.int32(high);
    this.int32(v - high * TWO_32);
  }

  bigInt64(v: bigint): void {
    this.reserve(8).writeBigInt64BE(v, this.length);
    this.length += 8;
  }

  /** The bytes written so far; writing goes on in a fresh buffer (the old one now belongs to the socket). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.length);
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.length = 0;
    return out;
  }
}
