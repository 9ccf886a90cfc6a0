// `npm run replay-rejects`: reads rejected rows again under the settings of now (a vocabulary
// widened with --event-types, a synonym added, …), without the files: from each row's raw text
// and its file's recorded header. Rows that now pass are loaded exactly once; the others keep
// their row in user_activity_rejects, with their new reason.
import { parseArgs } from 'node:util';
import { createLogger } from '../../../lib/log.ts';
import { ConfigError, loadConfig, usage } from '../config.ts';
import { DataDirLockedError, lockDataDir, type DataDirLock } from '../dataDirLock.ts';
import { withCommandDatabase } from '../db/commandDatabase.ts';
import { rejectedFiles, replayRejects, type RejectSelection, type ReplayResult } from '../sink/replayRejects.ts';
import { compactRollups } from '../sink/rollups.ts';

const HELP = `Usage: npm run replay-rejects -- [--file PATTERN] [--reason PATTERN] [--dry-run] [streamer options]

Reads the rows of user_activity_rejects again, with the streamer's settings as given now (an
event vocabulary widened with --event-types +share, --event-synonyms, …), each from its raw text
after its file's recorded header. A row that now passes is loaded, exactly once, and leaves the
rejects in the same transaction; the others stay, with their reason as it is now. Each file's
ledger counts are kept true. Running it again changes nothing more.

  --file PATTERN           only rows of files whose name matches (* any characters, ? one)
  --reason PATTERN         only rows whose reason matches, ignoring case (e.g. '*vocabulary*')
  --dry-run                say what it would do, and change nothing
  -h, --help               print this help

It takes the data directory for itself, as a streamer does: stop the streamer of --data-dir first.
The streamer's settings (flags, environment variables, DATABASE_URL):

${usage()}`;

const OPTIONS = { file: { type: 'string' }, reason: { type: 'string' }, 'dry-run': { type: 'boolean' } } as const;

/** A glob (* any characters, ? one) as a LIKE pattern. */
function likePattern(glob: string): string {
  return glob.replace(/[\\%_]/g, (c) => `\\${c}`).replaceAll('*', '%').replaceAll('?', '_');
}

/** This command's own flags, and the rest of the arguments: the streamer's settings. */
function splitArgs(argv: string[]): { file: string; reason: string; dryRun: boolean; rest: string[] } {
  const { values, tokens } = parseArgs({ args: argv, options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
  for (const name of ['file', 'reason'] as const) {
    if (values[name] === true) throw new ConfigError(`--${name} needs a PATTERN`);
  }
  const own = new Set<number>();
  for (const t of tokens) {
    if (t.kind !== 'option' || !(t.name in OPTIONS)) continue;
    own.add(t.index);
    if (t.value !== undefined && !t.inlineValue) own.add(t.index + 1);
  }
  const text = (v: unknown) => (typeof v === 'string' ? v : '*');
  return { file: text(values.file), reason: text(values.reason), dryRun: values['dry-run'] === true, rest: argv.filter((_, i) => !own.has(i)) };
}

type Figures = Pick<ReplayResult, 'replayed' | 'loaded' | 'duplicate' | 'rejected' | 'newReason' | 'kept'>;

/** `why`: why the rows kept were not read again, when one reason holds for all. */
function describe(r: Figures, dryRun: boolean, why?: string): string {
  const figures = `${r.replayed} replayed: ${r.loaded} ${dryRun ? 'would be loaded' : 'now loaded'}, ${r.duplicate} duplicate, ${r.rejected} still rejected (${r.newReason} with a new reason)`;
  return r.kept > 0 ? `${figures}; ${r.kept} left as they are${why ? ` (${why})` : ''}` : figures;
}

let lock: DataDirLock | undefined;

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP);
    return 0;
  }
  let args;
  let cfg;
  try {
    args = splitArgs(argv);
    cfg = loadConfig(args.rest);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    return 2;
  }
  const log = createLogger('replay-rejects');
  const stop = new AbortController();
  const onSignal = () => {
    log.info('stopping after the file in flight (its transaction commits whole or not at all)');
    stop.abort();
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);

  // The streamer's lock: a replay never runs beside a streamer of this data directory (nor beside another replay).
  try {
    lock = await lockDataDir(cfg.dataDir, (message) => {
      log.fatal(`${message}; stopping after the file in flight`);
      stop.abort();
    });
  } catch (err) {
    console.error(err instanceof DataDirLockedError ? `replay-rejects needs the data directory to itself. ${err.message}` : `cannot lock the data directory ${cfg.dataDir}: ${(err as Error).message}`);
    return 1;
  }

  const failed = (message: string) => `replay-rejects failed: ${message}; what was committed stays, run it again for the rest`;
  return withCommandDatabase(cfg, log, failed, async (pool) => {
    const selection: RejectSelection = { fileLike: likePattern(args.file), reasonLike: likePattern(args.reason) };
    const files = await rejectedFiles(pool, selection);
    const out = (line: string) => process.stdout.write(`${line}\n`);
    const rows = files.reduce((n, f) => n + f.rejects, 0);
    out(`${args.dryRun ? 'dry run, nothing is changed: ' : ''}${rows} rejected rows in ${files.length} files match --file '${args.file}' --reason '${args.reason}'`);
    const total = { replayed: 0, loaded: 0, duplicate: 0, rejected: 0, newReason: 0, kept: 0 };
    let done = 0;
    const ctx = { pool, rules: cfg.rules, inputDir: cfg.inputDir, copyStallMs: cfg.copyStallMs, dryRun: args.dryRun, signal: stop.signal };
    await replayRejects(ctx, files, selection, (r) => {
      for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += r[k];
      done++;
      out(`${r.name} (batch ${r.batchId}): ${describe(r, args.dryRun, r.skipped ?? 'their stored text is not the line as read')}`);
    });
    if (!args.dryRun) await compactRollups(pool);
    out(`total${done < files.length ? ` (stopped after ${done} of ${files.length} files)` : ''}: ${describe(total, args.dryRun)}${args.dryRun ? '; nothing was changed' : ''}`);
    return done < files.length ? 1 : 0;
  });
}

const code = await main(process.argv.slice(2));
await lock?.release();
process.exit(code);
