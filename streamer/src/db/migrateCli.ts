import pg from 'pg';
import { createLogger } from '../../../lib/log.ts';
import { retryTransient } from '../retry.ts';
import { migrate } from './migrate.ts';

// `npm run migrate`: applies the pending migrations of sql/ to DATABASE_URL and exits. For a
// streamer that connects as a role which may not change the schema (docker-compose.yml's migrate
// service runs this as the owner first).

const log = createLogger('migrate');
const url = process.env.DATABASE_URL?.trim();
if (!url) {
  log.fatal('DATABASE_URL is not set: give the connection string of the schema owner');
  process.exit(2);
}
const stop = new AbortController();
process.on('SIGINT', () => stop.abort()).on('SIGTERM', () => stop.abort());

try {
  const applied = await retryTransient(
    async () => {
      const client = new pg.Client({ connectionString: url, application_name: 'dropstream-migrate' });
      client.on('error', () => undefined); // a dead connection also fails the query in flight
      await client.connect();
      try {
        return await migrate(client);
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    { signal: stop.signal, log, what: 'migrating the schema' },
  );
  log.info({ applied }, applied.length ? `applied ${applied.length} migrations` : 'the schema is up to date');
} catch (err) {
  log.fatal({ err }, `migration failed: ${(err as Error).message}`);
  process.exitCode = 1;
}
