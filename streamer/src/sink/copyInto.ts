import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/**
 * Streams COPY text into PostgreSQL with backpressure and returns the rows copied. On any error
 * the caller must destroy the client (pg-copy-streams can leave a connection unusable).
 */
export async function copyInto(
  client: pg.PoolClient,
  sql: string,
  source: Readable | AsyncIterable<string> | (() => AsyncIterable<string>),
): Promise<number> {
  const target = client.query(copyFrom(sql));
  await pipeline(source as Readable, target);
  return target.rowCount;
}
