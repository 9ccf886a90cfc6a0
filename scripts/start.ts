// `npm start`: the whole pipeline on this machine. Starts the embedded PostgreSQL (unless
// DATABASE_URL is set), then the streamer and the generator as child processes, as docker compose
// would. Ctrl-C stops the generator and the streamer cleanly, then the database.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createLogger } from '../lib/log.ts';
import type { EmbeddedDatabase } from '../lib/embeddedPostgres.ts';
import { compiled } from '../lib/paths.ts';
import { ConfigError, loadConfig } from '../streamer/src/config.ts';
import { openDatabase } from '../streamer/src/db/openDatabase.ts';
import { localUrl } from '../streamer/src/observe/localUrl.ts';

const log = createLogger('dropstream');

let cfg;
try {
  cfg = loadConfig(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(2);
}

let database: EmbeddedDatabase;
try {
  database = await openDatabase(cfg, log);
} catch (err) {
  log.fatal((err as Error).message);
  process.exit(1);
}
log.info(`query the data with: psql ${database.url}`);
if (cfg.httpPort !== 0) log.info(`watch the stream at: ${localUrl(cfg.httpHost, cfg.httpPort)} (status, progress, rejects, metrics)`);

// Each child gets its own process group, so that a Ctrl-C reaches it once: from us.
const run = (script: string, args: string[]): ChildProcess =>
  spawn(process.execPath, [compiled(script), ...args], {
    stdio: 'inherit',
    detached: true,
    env: { ...process.env, DATABASE_URL: database.url },
  });
const streamer = run('streamer/src/main.ts', process.argv.slice(2));
const generator = run('generator/src/main.ts', ['--data-dir', cfg.dataDir]);
const children = [generator, streamer];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));

let stopping = false;
async function stopAll(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info(`${reason}: stopping the generator and the streamer`);
  // The generator first, so that the streamer is not handed new files while it stops.
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  await database.stop();
  log.info('stopped; the data stays for the next start');
}

process.on('SIGINT', () => void stopAll('interrupted'));
process.on('SIGTERM', () => void stopAll('terminated'));
for (const child of children) {
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.exitCode = code || 1;
      void stopAll(`${child === streamer ? 'the streamer' : 'the generator'} exited (${signal ?? code})`);
    }
  });
}
