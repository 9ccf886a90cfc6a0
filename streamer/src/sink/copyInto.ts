import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** COPY made no progress for too long (a lock it waits on, a server that stopped answering). */
export class CopyStalledError extends Error {
  readonly code = 'COPY_STALLED';
}

/** Data that writes its pieces again once told that the connection holds none of them (FileReader.copyData). */
export type ReusingSource = (handedOver: () => boolean) => AsyncIterable<Buffer>;

/**
 * Streams COPY text into PostgreSQL with backpressure and returns the rows copied. A COPY that
 * makes no progress for `stallMs` is cut off: pg-copy-streams can wait forever on some error
 * paths. On any error the caller must destroy the client, never reuse it.
 */
export async function copyInto(client: pg.PoolClient, sql: string, data: Readable | AsyncIterable<string | Buffer> | ReusingSource, stallMs: number): Promise<number> {
  const target = client.query(copyFrom(sql));
  // Neither the COPY stream nor the socket under it (pg's connection.stream, which pg-copy-streams
  // writes to) holds a piece once both have written out everything.
  const socket = (client as unknown as { connection: { stream: Writable } }).connection.stream;
  const source = typeof data === 'function' ? data(() => target.writableLength === 0 && socket.writableLength === 0) : data;
  let lastProgress = Date.now();
  let watchdog: NodeJS.Timeout | undefined;
  // Not target.destroy(): its clean-up waits for the server, which is what does not answer.
  const stalled = new Promise<never>((_, reject) => {
    watchdog = setInterval(() => {
      if (Date.now() - lastProgress > stallMs) reject(new CopyStalledError(`COPY made no progress for ${Math.round(stallMs / 1000)} s`));
    }, Math.min(1000, stallMs));
  });
  const progress = async function* () {
    for await (const chunk of source) {
      lastProgress = Date.now();
      yield chunk;
    }
    lastProgress = Date.now();
  };
  try {
    const copied = pipeline(progress, target);
    copied.catch(() => undefined); // after a stall it may still fail later, with nobody waiting
    await Promise.race([copied, stalled]);
  } finally {
    clearInterval(watchdog);
  }
  return target.rowCount;
}
