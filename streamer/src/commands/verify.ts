// `npm run verify`: counts the rollups again from user_activity, at one moment, and says where they
// differ (rows deleted or changed by hand, a rollup row edited, …). Exits 1 when they do; with
// --rebuild, counts them again (as the schema owner) and checks once more.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, usage } from '../config.ts';
import { withCommandDatabase } from '../db/commandDatabase.ts';
import { withClient } from '../db/pool.ts';
import { rollupDifferences, type RollupDifference } from '../sink/rollups.ts';
import { createLogger } from '../../../lib/log.ts';

const HELP = `Usage: npm run verify -- [--rebuild] [--limit N] [streamer options]

Recomputes every rollup behind the revenue views (revenue_by_minute/hour/day, revenue_by_product,
revenue_by_user, conversion_funnel) from user_activity, in one snapshot, and prints each key where
the rollups differ from it. Exits 0 when they agree, 1 when they do not. Read-only: it may run
beside a streamer.

  --rebuild     count the rollups again from user_activity (SELECT rollups_rebuild(); needs the
                schema owner; rows are not loaded meanwhile), then verify
  --limit N     print at most N differences (default 20); all are counted
  -h, --help    print this help

The database is the streamer's (DATABASE_URL, or the embedded one of --data-dir):

${usage()}`;

const OPTIONS = { rebuild: { type: 'boolean' }, limit: { type: 'string' } } as const;

function describe(d: RollupDifference): string {
  const key = Object.entries(d.key).map(([k, v]) => `${k}=${v === null ? 'null' : String(v)}`).join(' ');
  const side = (m: Record<string, unknown> | null) => (m === null ? 'no row' : JSON.stringify(m));
  return `${d.grain} ${key}: rollups ${side(d.rollups)}, user_activity ${side(d.recomputed)}`;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP);
    return 0;
  }
  let cfg;
  let rebuild: boolean;
  let limit: number;
  try {
    const { values, tokens } = parseArgs({ args: argv, options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
    rebuild = values.rebuild === true;
    limit = values.limit === undefined ? 20 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 0) throw new ConfigError(`--limit must be a whole number ≥ 0, got '${String(values.limit)}'`);
    const own = new Set<number>();
    for (const t of tokens) {
      if (t.kind !== 'option' || !(t.name in OPTIONS)) continue;
      own.add(t.index);
      if (t.value !== undefined && !t.inlineValue) own.add(t.index + 1);
    }
    cfg = loadConfig(argv.filter((_, i) => !own.has(i)));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    return 2;
  }
  const log = createLogger('verify');
  return withCommandDatabase(cfg, log, (message) => `verify failed: ${message}`, (pool) =>
    withClient(pool, async (client) => {
      if (rebuild) {
        await client.query('SELECT rollups_rebuild()');
        console.log('rollups counted again from user_activity');
      }
      const differences = await rollupDifferences(client);
      if (differences.length === 0) {
        console.log('the rollups agree with user_activity');
        return 0;
      }
      for (const d of differences.slice(0, limit)) console.log(describe(d));
      if (differences.length > limit) console.log(`… and ${differences.length - limit} more`);
      console.log(
        `${differences.length} keys differ between the rollups and user_activity. Rows deleted or updated in user_activity are not followed by the rollups: ` +
          'npm run verify -- --rebuild (as the schema owner) counts them again',
      );
      return 1;
    }),
  );
}

process.exit(await main(process.argv.slice(2)));
