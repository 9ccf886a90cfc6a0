// `npm run status`: where the stream stands. Reads the database's ledger, the checkpoint and the
// input and quarantine directories; changes nothing. Takes the streamer's flags and variables
// (--data-dir, DATABASE_URL, --pg-port, …) plus --json.
import pg from 'pg';
import type { EmbeddedDatabase } from '../lib/embeddedPostgres.ts';
import { ConfigError, loadConfig, usage } from '../streamer/src/config.ts';
import { openDatabase } from '../streamer/src/db/openDatabase.ts';
import { formatStatus } from '../streamer/src/status/formatStatus.ts';
import { readStatus } from '../streamer/src/status/readStatus.ts';

const HELP = `Usage: npm run status -- [--json] [streamer options]

Prints where the stream stands: the last committed batch and whether the checkpoint agrees,
files pending in input/, recent batches, files set aside, and totals.

  --json                   print the status as JSON
  -h, --help               print this help

It reads the same settings as the streamer (only --data-dir and --pg-port matter here):

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

process.exitCode = await main(process.argv.slice(2));
