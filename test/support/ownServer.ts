import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../lib/embeddedPostgres.ts';
import { freePort } from '../../lib/freePort.ts';

/** A PostgreSQL server of the test's own, which it may stop and start (outage tests). */
export interface OwnServer {
  url: string;
  /** The settings it was started with. */
  settings: Record<string, string>;
  /** Whether it got huge pages, as it said at start. */
  hugePages: EmbeddedDatabase['hugePages'];
  start(): Promise<void>;
  stop(): Promise<void>;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  remove(): Promise<void>;
}

export async function ownServer(): Promise<OwnServer> {
  const parent = await mkdtemp(join(tmpdir(), 'dropstream-own-pg-'));
  await chmod(parent, 0o755);
  const options = { dir: join(parent, 'db'), port: await freePort(), database: 'dropstream' };
  let server: EmbeddedDatabase | undefined = await startEmbeddedPostgres(options);
  const url = server.url;
  return {
    url,
    settings: server.settings ?? {},
    hugePages: server.hugePages,
    async start() {
      server ??= await startEmbeddedPostgres(options);
    },
    async stop() {
      await server?.stop();
      server = undefined;
    },
    async query(sql, params) {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined); // the server may be stopped under it: the query rejects
      await client.connect();
      try {
        return await client.query(sql, params as unknown[]);
      } finally {
        await client.end();
      }
    },
    async remove() {
      await server?.stop();
      await rm(parent, { recursive: true, force: true });
    },
  };
}
