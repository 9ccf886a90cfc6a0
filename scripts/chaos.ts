// `npm run chaos -- --rounds N`: kill the streamer anywhere, many times, while files arrive and
// names come back with new content, then check that every event ever dropped was stored exactly once. Runs on a scratch database (on DATABASE_URL's server, or a
// throwaway embedded PostgreSQL) and a temp data directory; exits 1 if an invariant breaks.
import { randomBytes, randomInt } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../lib/embeddedPostgres.ts';
import { CLEAN_SOURCE_MODES, formatReport, runChaos, type CleanSourceMode } from '../test/support/chaos.ts';
import { freePort } from '../lib/freePort.ts';

const USAGE = `Usage: npm run chaos -- --rounds N [options]

Generates a drop of CSV files, then N times starts the streamer (--available-now) and SIGKILLs it,
at a random moment or at one of its crash points (DROPSTREAM_CRASH_AT). While it is down, more
files arrive, and names already dropped come back with new content (cp in place or mv over the
name: the file grown, the next day's export, the same bytes again, the complete copy after a torn
empty one); then it runs to the end, and every event ever dropped must be stored exactly once,
every version the ledger must have is there, and input/ holds only what it should.

  --rounds N               rounds of start-and-kill (required)
  --files N                files in the first drop (default 200)
  --rows N                 rows per file (default 50)
  --seed S                 seed of the files and of the plan of rounds (default: random, printed)
  --max-files-per-batch N  the streamer's batch cap (default 5)
  --clean-source MODE      off, delete (files leave input/ once committed) or mixed (each round
                           one or the other, the final run delete); default: drawn from the seed
  --keep                   keep the data directory and the database afterwards
  -h, --help               print this help

  DATABASE_URL             a server on which a scratch database is created (and dropped after);
                           unset: a throwaway embedded PostgreSQL in a temp directory`;

function wholeNumber(name: string, raw: string | undefined, fallback: number | undefined, min: number): number {
  if (raw === undefined) {
    if (fallback === undefined) throw new Error(`${name} is required`);
    return fallback;
  }
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) throw new Error(`${name} must be a whole number ≥ ${min}, got '${raw}'`);
  return Number(raw);
}


function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function main(): Promise<number> {
  let opts;
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      allowPositionals: false,
      options: {
        rounds: { type: 'string' },
        files: { type: 'string' },
        rows: { type: 'string' },
        seed: { type: 'string' },
        'max-files-per-batch': { type: 'string' },
        'clean-source': { type: 'string' },
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const cleanSource = values['clean-source'];
    if (cleanSource !== undefined && !(CLEAN_SOURCE_MODES as readonly string[]).includes(cleanSource)) {
      throw new Error(`--clean-source must be ${CLEAN_SOURCE_MODES.join(', ')}, got '${cleanSource}'`);
    }
    opts = {
      cleanSource: cleanSource as CleanSourceMode | undefined,
      rounds: wholeNumber('--rounds', values.rounds, undefined, 1),
      files: wholeNumber('--files', values.files, 200, 1),
      rows: wholeNumber('--rows', values.rows, 50, 1),
      seed: wholeNumber('--seed', values.seed, randomInt(2 ** 31), 0),
      maxFilesPerBatch: wholeNumber('--max-files-per-batch', values['max-files-per-batch'], 5, 1),
      keep: values.keep ?? false,
    };
  } catch (err) {
    console.error(`chaos: ${(err as Error).message.split('\n')[0]}\n\n${USAGE}`);
    return 2;
  }

  // The server runs as a 'postgres' user when we are root: it must be able to reach its directory.
  const parent = await mkdtemp(join(tmpdir(), 'dropstream-chaos-'));
  await chmod(parent, 0o755);
  const dataDir = join(parent, 'data');
  let embedded: EmbeddedDatabase | undefined;
  let adminUrl = process.env.DATABASE_URL?.trim();
  const database = `dropstream_chaos_${randomBytes(4).toString('hex')}`;
  let failed = true;
  try {
    if (!adminUrl) {
      console.log('starting a throwaway embedded PostgreSQL…');
      embedded = await startEmbeddedPostgres({ dir: join(parent, 'postgres'), port: await freePort(), database: 'postgres', throwaway: !opts.keep });
      adminUrl = embedded.url;
    }
    // A scratch database: the invariants need tables that hold the chaos files' events and nothing else.
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.end();
    const databaseUrl = withDatabase(adminUrl, database);
    console.log(`database ${database}, data directory ${dataDir}`);

    const report = await runChaos({ dataDir, databaseUrl, ...opts, log: (line) => console.log(line) });
    console.log(`\n${formatReport(report)}`);
    failed = report.violations.length > 0;
    if (failed) {
      const args = `--rounds ${opts.rounds} --files ${opts.files} --rows ${opts.rows} --seed ${opts.seed} --max-files-per-batch ${opts.maxFilesPerBatch} --clean-source ${report.cleanSource.mode}`;
      console.log(`\nreproduce with: npm run chaos -- ${args}`);
    }
    return failed ? 1 : 0;
  } catch (err) {
    console.error(`chaos: ${(err as Error).stack ?? err}`);
    return 1;
  } finally {
    const keep = opts.keep || failed;
    if (keep) {
      console.log(`kept for inspection: ${dataDir}${embedded ? ` (database files in ${join(parent, 'postgres')})` : ''}, database ${database}`);
    } else if (adminUrl) {
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin
        .connect()
        .then(() => admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
        .catch((err: Error) => console.error(`could not drop ${database}: ${err.message}`))
        .finally(() => admin.end().catch(() => undefined));
    }
    await embedded?.stop();
    if (!keep) await rm(parent, { recursive: true, force: true });
  }
}

process.exitCode = await main();
