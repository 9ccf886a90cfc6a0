import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../lib/log.ts';
import { reportUnwritableDirs } from '../../lib/writableDirs.ts';
import { ConfigError, loadConfig, usage } from './config.ts';
import { DataDirLockedError, lockDataDir, type DataDirLock } from './dataDirLock.ts';
import { migrate } from './db/migrate.ts';
import { openDatabase } from './db/openDatabase.ts';
import { createPool, withClient } from './db/pool.ts';
import { InFlight } from './inFlight.ts';
import { runStreamer } from './loop.ts';
import type { HttpServer } from './observe/httpServer.ts';
import { logProgress } from './observe/logProgress.ts';
import { StreamState } from './observe/streamState.ts';
import { retryTransient } from './retry.ts';

let lock: DataDirLock | undefined;

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage());
    return 0;
  }
  let cfg;
  try {
    cfg = loadConfig(argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    return 2;
  }
  const log = createLogger('streamer');
  const stop = new AbortController();
  const inFlight = new InFlight(stop.signal);
  const onSignal = (signal: string) => {
    if (stop.signal.aborted) {
      // A second Ctrl-C: stop now; the database rolls back what is not committed.
      log.warn({ signal }, `stopping at once: ${inFlight.describe()}`);
      process.exit(130);
    }
    log.info({ signal }, 'stopping after the batch in flight (press Ctrl-C again to stop at once)');
    stop.abort();
  };
  // SIGHUP: an ssh session that ends under nohup.
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal).on('SIGHUP', onSignal);

  if (await reportUnwritableDirs(log, [cfg.dataDir, cfg.inputDir, cfg.checkpointDir, cfg.quarantineDir, cfg.archiveDir])) return 1;

  // Before the database: the embedded PostgreSQL lives under the data directory too.
  try {
    lock = await lockDataDir(cfg.dataDir, (message) => {
      log.fatal(`${message}; stopping after the batch in flight`);
      stop.abort();
    });
  } catch (err) {
    log.fatal(err instanceof DataDirLockedError ? err.message : `cannot lock the data directory ${cfg.dataDir}: ${(err as Error).message}`);
    return 1;
  }

  let database;
  try {
    database = await openDatabase(cfg, log);
  } catch (err) {
    log.fatal((err as Error).message);
    return 1;
  }
  if (!cfg.databaseUrl) log.info(`connect with: psql ${database.url}`);

  const pool = createPool(database.url, cfg.fileConcurrency, log);
  const state = new StreamState(cfg.availableNow ? 'available-now' : 'continuous');
  logProgress(state, log);
  let http: HttpServer | undefined;
  try {
    // Loaded only when served: the server and its metrics cost start-up CPU a run without them never repays.
    if (cfg.httpPort !== 0) http = await (await import('./observe/httpServer.ts')).startHttpServer({ cfg, pool, state, log });
    await retryTransient(() => withClient(pool, migrate), { signal: stop.signal, log, what: 'migrating the schema', onRetry: state.retried });
    await runStreamer({ cfg, pool, log, signal: stop.signal, state, inFlight });
    log.info(stop.signal.aborted ? `stopped: ${inFlight.describe()}` : 'stopped');
    return 0;
  } catch (err) {
    if (stop.signal.aborted) {
      log.info(`stopped: ${inFlight.describe()}`);
      return 0;
    }
    log.fatal({ err }, `the streamer stopped: ${(err as Error).message}; ${inFlight.describe()}`);
    return 1;
  } finally {
    await http?.close();
    // A load cut short by the stop may still hold a connection: its transaction dies with us.
    await Promise.race([pool.end(), sleep(5_000)]);
    await database.stop();
  }
}

// Exit explicitly: a handle left open by a stop mid-batch must not keep the process alive.
const code = await main();
await lock?.release();
process.exit(lock?.lost ? 1 : code);
