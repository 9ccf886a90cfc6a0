import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { durableRename, writeFileAtomic } from '../../lib/durableFs.ts';
import { MANIFEST_SUFFIX, spoilLine, type BadRowKind, type InjectedRow, type InjectionManifest } from './badRows.ts';
import type { Event } from './events.ts';
import { CANONICAL, type Layout } from './layouts.ts';

export interface EventFileRequest {
  tempDir: string;
  inputDir: string;
  name: string;
  rows: number;
  nextEvent: () => Event;
  /** Default: the canonical layout. */
  layout?: Layout;
  /** Given, a row it names a kind for is spoiled, and a manifest of them is written beside the file. */
  badRows?: { pick: () => BadRowKind | undefined; seed: number };
  /** Aborting discards the file being written: it is removed from temp and never reaches input. */
  signal?: AbortSignal;
}

export interface EventFileStats {
  name: string;
  /** Where the file is now, in the input directory. */
  path: string;
  rows: number;
  bytes: number;
  /** Of the rows, those spoiled: purchases and revenue count only the others. */
  badRows: number;
  purchases: number;
  revenueCents: number;
}

// Big enough that a write costs little per row, small enough that memory stays flat for any --rows.
const CHUNK_CHARS = 64 * 1024;

/**
 * Writes one CSV file in temp, then moves it into input with durableRename, so that a reader
 * of input sees the whole file or nothing; its manifest of bad rows, if any, is there before it.
 * Returns undefined when the signal discarded it.
 */
export async function writeEventFile(request: EventFileRequest): Promise<EventFileStats | undefined> {
  const { tempDir, inputDir, name, rows, nextEvent, layout = CANONICAL, badRows, signal } = request;
  const tempPath = join(tempDir, name);
  const path = join(inputDir, name);
  // 'wx': never write into someone else's file.
  const stream = createWriteStream(tempPath, { flags: 'wx' });
  const done = finished(stream);
  // Awaited below; this only keeps a failure that comes before then from being unhandled.
  done.catch(() => undefined);

  let purchases = 0;
  let revenue = 0;
  const injected: InjectedRow[] = [];
  const write = async (data: string | Buffer) => {
    signal?.throwIfAborted();
    // Racing `done` stops the wait when the stream fails instead of draining.
    if (!stream.write(data)) await Promise.race([once(stream, 'drain'), done]);
  };
  try {
    let chunk = `${layout.header.join(layout.delimiter)}\n`;
    for (let row = 0; row < rows; row++) {
      const event = nextEvent();
      const kind = badRows?.pick();
      if (kind === undefined) {
        chunk += layout.line(event);
        if (event.eventType === 'purchase') {
          purchases++;
          revenue += layout.revenueCents(event);
        }
      } else {
        injected.push({ line: row + 2, kind });
        const line = spoilLine(layout.line(event), layout, kind);
        if (typeof line === 'string') chunk += line;
        else {
          if (chunk) await write(chunk);
          await write(line);
          chunk = '';
        }
      }
      if (chunk.length >= CHUNK_CHARS) {
        await write(chunk);
        chunk = '';
      }
    }
    stream.end(chunk);
    await done;
    if (badRows) {
      const manifest: InjectionManifest = { file: name, layout: layout.name, seed: badRows.seed, rows, injected };
      await writeFileAtomic(join(inputDir, name + MANIFEST_SUFFIX), `${JSON.stringify(manifest)}\n`);
    }
    await durableRename(tempPath, path);
  } catch (err) {
    stream.destroy();
    await done.catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    if (signal?.aborted && err === signal.reason) return undefined;
    throw err;
  }
  return { name, path, rows, bytes: stream.bytesWritten, badRows: injected.length, purchases, revenueCents: revenue };
}
