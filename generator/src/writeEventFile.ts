import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { durableRename } from '../../lib/durableFs.ts';
import { CSV_HEADER, formatCsvLine, revenueCents, type Event } from './events.ts';

export interface EventFileRequest {
  tempDir: string;
  inputDir: string;
  name: string;
  rows: number;
  nextEvent: () => Event;
  /** Aborting discards the file being written: it is removed from temp and never reaches input. */
  signal?: AbortSignal;
}

export interface EventFileStats {
  name: string;
  /** Where the file is now, in the input directory. */
  path: string;
  rows: number;
  bytes: number;
  purchases: number;
  revenueCents: number;
}

// Big enough that a write costs little per row, small enough that memory stays flat for any --rows.
const CHUNK_CHARS = 64 * 1024;

/**
 * Writes one CSV file in temp, then moves it into input with durableRename, so that a reader
 * of input sees the whole file or nothing. Returns undefined when the signal discarded it.
 */
export async function writeEventFile(request: EventFileRequest): Promise<EventFileStats | undefined> {
  const { tempDir, inputDir, name, rows, nextEvent, signal } = request;
  const tempPath = join(tempDir, name);
  const path = join(inputDir, name);
  // 'wx': never write into someone else's file.
  const stream = createWriteStream(tempPath, { flags: 'wx' });
  const done = finished(stream);
  // Awaited below; this only keeps a failure that comes before then from being unhandled.
  done.catch(() => undefined);

  let purchases = 0;
  let revenue = 0;
  try {
    let chunk = `${CSV_HEADER}\n`;
    for (let row = 0; row < rows; row++) {
      const event = nextEvent();
      chunk += formatCsvLine(event);
      if (event.eventType === 'purchase') {
        purchases++;
        revenue += revenueCents(event);
      }
      if (chunk.length >= CHUNK_CHARS) {
        signal?.throwIfAborted();
        // Racing `done` stops the wait when the stream fails instead of draining.
        if (!stream.write(chunk)) await Promise.race([once(stream, 'drain'), done]);
        chunk = '';
      }
    }
    stream.end(chunk);
    await done;
    await durableRename(tempPath, path);
  } catch (err) {
    stream.destroy();
    await done.catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    if (signal?.aborted && err === signal.reason) return undefined;
    throw err;
  }
  return { name, path, rows, bytes: stream.bytesWritten, purchases, revenueCents: revenue };
}
