// `npm run status`: where the stream stands. A streamer running on this data directory answers
// itself (its /api/status: the same figures, plus its live state); otherwise this reads the
// database's ledger, the checkpoint and the input and quarantine directories. Changes nothing.
// Takes the streamer's flags and variables (--data-dir, DATABASE_URL, --pg-port, --http-port, …) plus --json.
import pg from 'pg';
import type { EmbeddedDatabase } from '../lib/embeddedPostgres.ts';
import { ConfigError, loadConfig, usage, type StreamerConfig } from '../streamer/src/config.ts';
import { openDatabase } from '../streamer/src/db/openDatabase.ts';
import type { LiveStatus } from '../streamer/src/observe/httpServer.ts';
import { localUrl } from '../streamer/src/observe/localUrl.ts';
import { formatStatus } from '../streamer/src/status/formatStatus.ts';
import { readStatus } from '../streamer/src/status/readStatus.ts';

const HELP = `Usage: npm run status -- [--json] [streamer options]

Prints where the stream stands: the last committed batch and whether the checkpoint agrees,
files pending in input/, recent batches, files set aside, and totals. While a streamer runs on
this data directory (its HTTP server at --http-host:--http-port), it is asked instead, and its
live state is shown too: heartbeat, last error, backlog growth, figures since it started.

  --json                   print the status as JSON
  -h, --help               print this help

It reads the same settings as the streamer (only --data-dir, --pg-port, --http-host and --http-port matter here):

${usage()}`;

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP);
    return 0;
  }
  const json = argv.includes('--json');
  let cfg;
  try {
    cfg = loadConfig(argv.filter((a) => a !== '--json'));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    return 2;
  }

  const live = await askStreamer(cfg);
  if (live) {
    process.stdout.write(json ? `${JSON.stringify(live, null, 2)}\n` : formatStatus(live));
    return 0;
  }

  let database: EmbeddedDatabase;
  try {
    // Joins the server a running streamer started; otherwise starts it, and stop() stops it again.
    database = await openDatabase(cfg, undefined, true);
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }

  const client = new pg.Client({ connectionString: database.url, connectionTimeoutMillis: 10_000, application_name: 'dropstream-status' });
  try {
    await client.connect();
    const status = await readStatus({ db: client, dataDir: cfg.dataDir, recursive: cfg.recursive });
    process.stdout.write(json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    return 0;
  } catch (err) {
    console.error(`Could not read the status: ${(err as Error).message}`);
    return 1;
  } finally {
    await client.end().catch(() => undefined);
    await database.stop();
  }
}

/** The running streamer's own status, when one serves this data directory; undefined otherwise. */
async function askStreamer(cfg: StreamerConfig): Promise<LiveStatus | undefined> {
  if (cfg.httpPort === 0) return undefined;
  try {
    const res = await fetch(new URL('api/status', localUrl(cfg.httpHost, cfg.httpPort)), { signal: AbortSignal.timeout(3000) });
    if (!res.ok) return undefined;
    const status = (await res.json()) as LiveStatus;
    return status.dataDir === cfg.dataDir && status.stream ? status : undefined;
  } catch {
    return undefined; // no streamer there, or not one of ours
  }
}

process.exitCode = await main(process.argv.slice(2));
