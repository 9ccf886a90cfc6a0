/**
 * Pieces are taken from one slab, which is written again from its start once the database has
 * been handed every piece taken from it. Fresh memory per piece, or per file, made the garbage
 * collector run full collections for the external memory alone.
 */
const SLAB_BYTES = 1 << 21;
const TWO_32 = 4294967296;
/** Slabs of COPYs that have ended, for the next files (one per file loaded at once, a few more). */
const freeSlabs: Buffer[] = [];
const FREE_SLABS_KEPT = 8;

/** COPY data being built for PostgreSQL: bytes appended in place, handed over in large pieces. */
export class CopyBuffer {
  private buf: Buffer = freeSlabs.pop() ?? Buffer.allocUnsafe(SLAB_BYTES);
  /** Where the bytes not taken yet begin in `buf`: those before it belong to the socket. */
  private start = 0;
  /** Where the next byte goes in `buf`. */
  private at = 0;

  /** Bytes written and not taken yet. */
  get length(): number {
    return this.at - this.start;
  }

  /** Room for `n` more bytes; returns the buffer to write into at `at`. */
  private reserve(n: number): Buffer {
    if (this.at + n > this.buf.length) {
      const pending = this.at - this.start;
      const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, 2 * (pending + n)));
      this.buf.copy(next, 0, this.start, this.at);
      this.buf = next;
      this.start = 0;
      this.at = pending;
    }
    return this.buf;
  }

  writeString(text: string): void {
    const n = Buffer.byteLength(text);
    this.reserve(n).write(text, this.at);
    this.at += n;
  }

  writeBytes(src: Buffer, start: number, end: number): void {
    const buf = this.reserve(end - start);
    // A native copy costs more than a loop for the short pieces most rows are made of.
    if (end - start > 64) src.copy(buf, this.at, start, end);
    else for (let i = start, j = this.at; i < end; ) buf[j++] = src[i++]!;
    this.at += end - start;
  }

  /** A whole buffer: TypedArray#set, which costs the same for any size, where a byte loop grows with it. */
  writeAll(src: Buffer): void {
    this.reserve(src.length).set(src, this.at);
    this.at += src.length;
  }

  uint8(v: number): void {
    this.reserve(1)[this.at++] = v;
  }

  /** Big-endian, as COPY binary wants its integers. */
  int16(v: number): void {
    const buf = this.reserve(2);
    buf[this.at++] = (v >>> 8) & 255;
    buf[this.at++] = v & 255;
  }

  int32(v: number): void {
    const buf = this.reserve(4);
    buf[this.at++] = v >>> 24;
    buf[this.at++] = (v >>> 16) & 255;
    buf[this.at++] = (v >>> 8) & 255;
    buf[this.at++] = v & 255;
  }

  /** A safe integer (|v| < 2^53) as a signed 64-bit one. */
  int64(v: number): void {
    const high = Math.floor(v / TWO_32);
    this.int32(high);
    this.int32(v - high * TWO_32);
  }

  bigInt64(v: bigint): void {
    this.reserve(8).writeBigInt64BE(v, this.at);
    this.at += 8;
  }

  /** The bytes written since the last take; they are not written over until reuse() says they may be. */
  take(): Buffer {
    const out = this.buf.subarray(this.start, this.at);
    this.start = this.at;
    return out;
  }

  /** Every piece taken so far has been handed over (the socket holds none): write from the start again. */
  reuse(): void {
    this.buf.copyWithin(0, this.start, this.at);
    this.at -= this.start;
    this.start = 0;
  }

  /** The COPY has ended and holds no piece: the slab goes to the next CopyBuffer. */
  release(): void {
    if (this.buf.length === SLAB_BYTES && freeSlabs.length < FREE_SLABS_KEPT) freeSlabs.push(this.buf);
    this.buf = Buffer.alloc(0);
    this.start = this.at = 0;
  }
}
