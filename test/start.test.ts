import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { embeddedUrl } from '../lib/embeddedPostgres.ts';
import { freePort } from '../lib/freePort.ts';
import { finished, makeDataDir, spawnProgram, waitForOutput } from './support/pipeline.ts';

/** `npm start` as a user runs it: no DATABASE_URL, so the embedded PostgreSQL under the data directory. */
const start = (dataDir: string, port: number, args: string[] = []) =>
  spawnProgram('scripts/start.ts', ['--data-dir', dataDir, '--pg-port', String(port), '--file-stable-ms', '0', ...args], { DATABASE_URL: '' });

async function countEvents(port: number): Promise<number> {
  const client = new pg.Client({ connectionString: embeddedUrl(port, 'dropstream') });
  await client.connect();
  try {
    return Number((await client.query('SELECT count(*) AS n FROM user_activity')).rows[0].n);
  } finally {
    await client.end();
  }
}

async function finishedWithin(child: ReturnType<typeof start>, ms: number) {
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const run = await finished(child);
  clearTimeout(timer);
  if (run.signal === 'SIGKILL') throw new Error(`did not stop within ${ms} ms:\n${run.output}`);
  return run;
}

describe('npm start', () => {
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  beforeEach(async () => {
    data = await makeDataDir();
  });
  afterEach(async () => data.remove());

  it('runs database, streamer and generator; Ctrl-C stops them cleanly and the data is there at the next start', async () => {
    const port = await freePort();
    const httpPort = await freePort();
    const first = start(data.dir, port, ['--http-port', String(httpPort)]);
    await waitForOutput(first, '"batch":2,');
    expect(first.output()).toContain(`psql ${embeddedUrl(port, 'dropstream')}`);
    expect(first.output()).toContain(`watch the stream at: http://127.0.0.1:${httpPort}/`);
    const status = await fetch(`http://127.0.0.1:${httpPort}/api/status`);
    expect(status.status).toBe(200);
    expect(((await status.json()) as { stream: { lastSuccess: { batchId: number } } }).stream.lastSuccess.batchId).toBeGreaterThanOrEqual(2);
    first.kill('SIGINT');
    const run = await finishedWithin(first, 30_000);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain('stopped; the data stays for the next start');
    // Nothing half-written was handed over, and nothing is left running on the port.
    expect(await readdir(join(data.dir, 'temp'))).toEqual([]);
    await expect(countEvents(port)).rejects.toThrow();

    const second = start(data.dir, port);
    await waitForOutput(second, 'watching for files');
    expect(await countEvents(port)).toBeGreaterThanOrEqual(2000);
    second.kill('SIGINT');
    expect((await finishedWithin(second, 30_000)).code).toBe(0);
  });

  it('a database that cannot start gets a clear message, not a stack trace', async () => {
    const port = await freePort();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const run = await finished(start(data.dir, port));
      expect(run.code).toBe(1);
      expect(run.output).toContain(`Could not start the embedded PostgreSQL in ${join(data.dir, 'postgres')} on port ${port}`);
      expect(run.output).toContain('set DROPSTREAM_PG_PORT');
      expect(run.output).not.toMatch(/^\s+at /m);
    } finally {
      squatter.close();
    }
  });
});
