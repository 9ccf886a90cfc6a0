import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { writingTo } from '../../../lib/durableFs.ts';

const MEMORY_LIMIT = 1 << 20;

/**
 * Rejected rows, as COPY text, kept until the file's valid rows have been copied (one COPY at a
 * time per connection). Past 1 MiB they go to a temporary file, so a file of bad rows cannot
 * fill the memory.
 */
export class RejectSpool {
  count = 0;
  private buffered = '';
  private spillDir: string | undefined;

  add(copyLine: string): void {
    this.count++;
    this.buffered += copyLine;
  }

  /** Called between chunks of input: moves what is buffered to disk once it passes the limit. */
  async settle(): Promise<void> {
    if (this.buffered.length >= MEMORY_LIMIT) await this.spill();
  }

  /** The rejected rows in the order they were added. */
  async stream(): Promise<Readable> {
    if (!this.spillDir) return Readable.from([this.buffered]);
    await this.spill();
    return createReadStream(this.file());
  }

  async dispose(): Promise<void> {
    this.count = 0;
    this.buffered = '';
    if (this.spillDir) await rm(this.spillDir, { recursive: true, force: true });
    this.spillDir = undefined;
  }

  private file(): string {
    return join(this.spillDir!, 'rejects.copy');
  }

  private async spill(): Promise<void> {
    this.spillDir ??= await mkdtemp(join(tmpdir(), 'dropstream-rejects-'));
    await writingTo(this.file(), () => appendFile(this.file(), this.buffered));
    this.buffered = '';
  }
}
