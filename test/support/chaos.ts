// Chaos rounds: start the streamer, SIGKILL it anywhere (at a random moment, or at one of its
// crash points), drop more files while it is down (new names, and names that come back with new
// content), again and again, with or without --clean-source delete; then let it finish and check
// that every event ever dropped is stored exactly once. Used by scripts/chaos.ts and test/chaos.test.ts.
import { copyFile, lstat, readdir, readFile, rename, rm, utimes } from 'node:fs/promises';
import { basename, join } from 'node:path';
import pg from 'pg';
import { processedVersions } from '../../streamer/src/sink/ledger.ts';
import { sameVersion } from '../../streamer/src/source/fileVersion.ts';
import { readStatus } from '../../streamer/src/status/readStatus.ts';
import { DropLog, readLedger, type DropHow, type DropKind, type DropSummary, type LedgerRow } from './chaosDrops.ts';
import { finished, generate, spawnProgram, type Run } from './pipeline.ts';

/** The streamer's crash points (streamer/src/crashPoint.ts). mid-copy fires only for files whose COPY text passes 64 KiB. */
export const CRASH_POINTS = ['after-offsets', 'mid-copy', 'before-file-commit', 'after-db-commit', 'mid-checkpoint-write'] as const;
export type CrashPointName = (typeof CRASH_POINTS)[number];

/** Rows per "big" file: its COPY text passes 64 KiB, so that mid-copy can fire. */
export const BIG_ROWS = 600;

/** --clean-source of the runs: off, delete, or mixed (rounds alternate, the final run deletes). */
export const CLEAN_SOURCE_MODES = ['off', 'delete', 'mixed'] as const;
export type CleanSourceMode = (typeof CLEAN_SOURCE_MODES)[number];
type CleanSource = 'off' | 'delete';

export interface ChaosOptions {
  dataDir: string;
  databaseUrl: string;
  rounds: number;
  /** Files in input/ before the first round (default 200). */
  files?: number;
  /** Rows per file (default 50). */
  rows?: number;
  seed: number;
  /** Big files (BIG_ROWS rows): 2 in the first drop, the others held back for mid-copy rounds (default 12). */
  bigFiles?: number;
  /** Small files held back and dropped into input/ between rounds (default: files, at least 8 per round). */
  reserveFiles?: number;
  maxFilesPerBatch?: number;
  /** Default: drawn from the seed. */
  cleanSource?: CleanSourceMode;
  /** A round that is still running after this is a hang (default 30 s). */
  roundTimeoutMs?: number;
  /** Progress lines, one per round. */
  log?: (line: string) => void;
}

export type RoundOutcome =
  /** The streamer killed itself at its crash point. */
  | 'crash-point'
  /** We killed it. */
  | 'killed'
  /** It finished everything (exit 0) before a kill. */
  | 'exited'
  /** It exited with an error, or hung: a bug. */
  | 'failed'
  | 'hung';

export interface RoundRecord {
  round: number;
  kind: 'delay' | 'crash-point';
  /** DROPSTREAM_CRASH_AT of a crash-point round. */
  crashAt?: string;
  /** Delay rounds: when we kill it, in ms, counted from the spawn ('early') or from its first log line. */
  killAfterMs: number;
  killFrom: 'spawn' | 'first-line';
  /** Files moved into input/ (and copies of files already there, names that came back, torn empty copies) while the streamer was down, before this round. */
  dropped: number;
  copied: number;
  cameBack: number;
  torn: number;
  cleanSource: CleanSource;
  /** Files --clean-source deleted from input/ in this round. */
  deleted: number;
  outcome: RoundOutcome;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether the round started by resuming a batch without a commit record. */
  resumed: boolean;
  /** Files the ledger counted as processed after the round, and how many this round added. */
  processed: number;
  progress: number;
  ms: number;
  /** Broken invariants seen right after this round. */
  violations: string[];
}

export interface ChaosReport {
  seed: number;
  rounds: RoundRecord[];
  kills: {
    delay: number;
    /** Per crash point: rounds that asked for it, and how many died there. */
    crashPoints: Record<CrashPointName, { planned: number; fired: number }>;
    /** Crash-point rounds whose point was not reached in time: killed by us instead. */
    fallback: number;
    /** Rounds in which the streamer finished before any kill. */
    exited: number;
    total: number;
  };
  files: { initial: number; dropped: number; copies: number; inInput: number };
  cleanSource: { mode: CleanSourceMode; deleteRounds: number; final: CleanSource };
  /** Names, versions, deletions, as dropped and as the ledger has them at the end. */
  drops: DropSummary;
  /** The record of every version dropped: what checkExactlyOnce checks against. */
  dropLog: DropLog;
  rows: { inFiles: number; distinctEvents: number; stored: number; lost: number; unexpected: number; duplicated: number };
  revenueCents: { expected: number; stored: number };
  batches: number;
  finalRun: { code: number | null; signal: NodeJS.Signals | null; ms: number; output: string };
  wallMs: number;
  /** Every broken invariant; empty means exactly once held. */
  violations: string[];
}

/** mulberry32: a small seeded generator, so that a seed replays the same plan of rounds. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const started = performance.now();
  const files = opts.files ?? 200;
  const rows = opts.rows ?? 50;
  const bigFiles = opts.bigFiles ?? 12;
  const bigFirst = Math.min(2, bigFiles);
  const reserveFiles = opts.reserveFiles ?? Math.max(files, opts.rounds * 8);
  const maxFiles = opts.maxFilesPerBatch ?? 5;
  const roundTimeoutMs = opts.roundTimeoutMs ?? 30_000;
  const log = opts.log ?? (() => undefined);
  const random = seededRandom(opts.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const between = (min: number, max: number) => Math.round(min + random() * (max - min));

  const drawnMode = pick(CLEAN_SOURCE_MODES);
  const mode = opts.cleanSource ?? drawnMode;
  const finalCleanSource: CleanSource = mode === 'off' ? 'off' : 'delete';

  const input = join(opts.dataDir, 'input');
  const reserveDir = join(opts.dataDir, 'reserve');
  const bigDir = join(opts.dataDir, 'reserve-big');
  const freshDir = join(opts.dataDir, 'reserve-rows');
  const seed = (k: number) => (opts.seed + k) >>> 0;
  // The first drop in input/, and files held back (reserve*/input) to drop between rounds, and
  // rows for names that come back; five seeds, so that no two files share an event unless meant
  // to. Two or three generators at a time on a 2-core machine.
  await Promise.all([
    generate(opts.dataDir, { files, rows, seed: seed(1) }),
    bigFirst > 0 ? generate(opts.dataDir, { files: bigFirst, rows: BIG_ROWS, seed: seed(2) }) : undefined,
  ]);
  await Promise.all([
    reserveFiles > 0 ? generate(reserveDir, { files: reserveFiles, rows, seed: seed(3) }) : undefined,
    bigFiles > bigFirst ? generate(bigDir, { files: bigFiles - bigFirst, rows: BIG_ROWS, seed: seed(4) }) : undefined,
    generate(freshDir, { files: Math.ceil((opts.rounds * FRESH_ROWS_PER_ROUND) / 500), rows: 500, seed: seed(5) }),
  ]);
  const drops = new DropLog(input, join(opts.dataDir, 'staging'));
  for (const name of (await readdir(input)).sort()) await drops.record(name, 1, 'mv', 'new');
  const initial = drops.names().length;
  const held = async (dir: string) => (await readdir(join(dir, 'input')).catch(() => [] as string[])).sort().map((name) => join(dir, 'input', name));
  const reserve = await held(reserveDir);
  const reserveBig = await held(bigDir);
  // New rows for names that come back, taken in order: each is dropped once as new, then may repeat.
  const fresh: string[] = [];
  for (const path of await held(freshDir)) fresh.push(...(await readFile(path, 'utf8')).split(/(?<=\n)/).slice(1));
  /** Torn copies (empty files) waiting for their complete copy: name → the complete file. */
  const torn = new Map<string, string>();
  let comebackCount = 0;
  const nextHow = (): DropHow => (comebackCount++ % 2 === 0 ? 'cp' : 'mv');
  log(`seed ${opts.seed}: ${initial} files in input/, ${reserve.length + reserveBig.length} held back; ${opts.rounds} rounds; --clean-source ${mode}`);

  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 2 });
  pool.on('error', () => undefined);
  const streamerArgs = ['--data-dir', opts.dataDir, '--available-now', '--trigger-interval-ms', '0', '--max-files-per-batch', String(maxFiles), '--file-stable-ms', '0'];
  const startStreamer = (cleanSource: CleanSource, env: NodeJS.ProcessEnv = {}) =>
    spawnProgram('streamer/src/main.ts', [...streamerArgs, '--clean-source', cleanSource], { DATABASE_URL: opts.databaseUrl, DROPSTREAM_CRASH_AT: '', ...env });
  const ledgerNow = async (): Promise<LedgerRow[]> => ((await hasSchema(pool)) ? readLedger(pool) : []);

  const records: RoundRecord[] = [];
  let dropped = 0;
  let copies = 0;
  let deleteRounds = 0;
  let processedBefore = 0;
  let startupMs = 1500; // spawn to first log line; measured as rounds go
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      const roundStart = performance.now();
      // How this round ends: a kill at a random moment, or a crash point (at the first batch that
      // reaches it, or at a chosen batch: the one to resume, the next, or one after).
      const kind: RoundRecord['kind'] = random() < 0.5 ? 'delay' : 'crash-point';
      // Mixed: every other round deletes, so that both kinds certainly occur.
      const cleanSource: CleanSource = mode === 'mixed' ? (round % 2 === 0 ? 'delete' : 'off') : finalCleanSource;
      const point = kind === 'crash-point' ? pick(CRASH_POINTS) : undefined;
      const targeted = random() >= 0.4;
      const targetDraw = random();
      let killFrom: RoundRecord['killFrom'] = 'first-line';
      let killAfterMs: number;
      if (kind === 'crash-point') {
        // If the point is not reached by then (no such batch, no big file for mid-copy), we kill it.
        killAfterMs = between(800, 2500);
      } else if (random() < 0.25) {
        killFrom = 'spawn'; // during start-up: connecting, migrating, resuming
        killAfterMs = between(100, Math.round(startupMs * 1.2));
      } else {
        killAfterMs = between(0, 400);
      }

      // Files arriving while the streamer is down. First, names that come back (one to three each
      // round, cp in place and mv over it in turn): a torn empty copy gets its complete copy; other
      // names, in input/ or deleted by --clean-source, the same bytes again, or grown, or (once
      // their version is committed) the next day's export, half of its rows again and new ones. A
      // version not committed yet only grows or stays: its rows must stay in input/ to be loaded.
      let droppedNow = 0;
      let copiedNow = 0;
      let cameBackNow = 0;
      let tornNow = 0;
      const before = await standing(pool, opts.dataDir);
      if (round > 1) {
        for (const [name, complete] of torn) {
          await drops.put(name, await readFile(complete, 'utf8'), round, nextHow(), 'complete');
          await rm(complete);
          cameBackNow++;
        }
        const ledger = await ledgerNow();
        const names = drops.names().filter((n) => !torn.has(n));
        torn.clear();
        // The first, when there is one, a name whose version is committed: a new version of a loaded name.
        const committed = names.filter((n) => drops.committed(drops.current(n)!, ledger));
        const comebacks = between(1, 3);
        for (let k = 0; k < comebacks && names.length > 0; k++) {
          const name = pick(k === 0 && committed.length > 0 ? committed : names);
          names.splice(names.indexOf(name), 1);
          const v = drops.current(name)!;
          const draw = random();
          const more = between(5, 40);
          const add = draw < 0.2 ? [] : fresh.splice(0, more);
          const comeback: DropKind = draw < 0.2 || add.length === 0 ? 'same' : draw < 0.6 || !drops.committed(v, ledger) ? 'grew' : 'next-day';
          const kept = comeback === 'next-day' ? v.lines.slice(Math.floor(v.lines.length / 2)) : v.lines;
          const content = comeback === 'same' ? drops.contentOf(v) : drops.headerFor(v) + kept.join('') + add.join('');
          await drops.put(v.name, content, round, nextHow(), comeback);
          cameBackNow++;
        }
      }
      // New names moved in from the reserve (mtime kept, as mv does) now and then, and whenever
      // few are left, so that every round finds work.
      if (round > 1 && reserve.length > 0 && (before.pending < 40 || random() < 0.3)) {
        for (let n = between(10, 25); n > 0 && reserve.length > 0; n--) {
          const from = reserve.splice(Math.floor(random() * reserve.length), 1)[0]!;
          await rename(from, join(input, basename(from)));
          await drops.record(basename(from), round, 'mv', 'new');
          droppedNow++;
        }
      }
      // Now and then a torn copy: an empty file, its complete copy over it before the next round.
      if (round > 1 && round < opts.rounds && reserve.length > 0 && random() < 0.3) {
        const complete = reserve.splice(Math.floor(random() * reserve.length), 1)[0]!;
        await drops.put(basename(complete), '', round, 'cp', 'torn');
        torn.set(basename(complete), complete);
        tornNow++;
      }
      // Now and then a copy of a file under a new name (same content: one of the two is a duplicate).
      if (round > 1 && random() < 0.2) {
        // Mostly of a pending file, with its mtime: the two sort side by side and usually load in
        // the same batch, at once (the second one hits the first one's event ids mid-transaction).
        const twin = before.pendingNames.length > 0 && random() < 0.7;
        const candidates = twin ? before.pendingNames : (await readdir(input)).filter((n) => n.endsWith('.csv') && !torn.has(n)).sort();
        if (candidates.length > 0) {
          const original = pick(candidates);
          const copy = `copy-r${round}-${original}`;
          await copyFile(join(input, original), join(input, copy));
          if (twin) {
            const { atime, mtime } = await lstat(join(input, original));
            await utimes(join(input, copy), atime, mtime);
          }
          await drops.record(copy, round, 'cp', 'copy');
          copiedNow++;
        }
      }
      // Before a mid-copy round, a big file if none is pending.
      if (point === 'mid-copy' && before.pendingBig === 0 && reserveBig.length > 0) {
        // Its mtime is set a day back (as cp -p or rsync -t keep an old one): the oldest file goes first.
        const from = reserveBig.shift()!;
        const dayAgo = new Date(Date.now() - 86_400_000);
        await utimes(from, dayAgo, dayAgo);
        await rename(from, join(input, basename(from)));
        await drops.record(basename(from), round, 'mv', 'new');
        droppedNow++;
      }
      dropped += droppedNow;
      copies += copiedNow;
      if (cleanSource === 'delete') deleteRounds++;
      /** What this run finds in input/: if it exits 0, it has processed each of them. */
      const present = drops.inInput();

      let crashAt: string | undefined;
      if (point) {
        const { next, resume } = before;
        // mid-copy: the next batch holds the oldest pending file, the big one when it was just dropped.
        const target = point === 'mid-copy' ? next : resume !== null && targetDraw < 0.3 ? resume : next + Math.floor(targetDraw * 3);
        crashAt = targeted ? `${point}@${target}` : point;
      }

      const child = startStreamer(cleanSource, crashAt ? { DROPSTREAM_CRASH_AT: crashAt } : {});
      const spawnedAt = performance.now();
      let weKilled = false;
      let hung = false;
      const kill = () => {
        if (child.exitCode === null && child.signalCode === null) weKilled = child.kill('SIGKILL');
      };
      const timers: NodeJS.Timeout[] = [];
      timers.push(setTimeout(() => ((hung = true), kill()), roundTimeoutMs));
      if (killFrom === 'spawn') timers.push(setTimeout(kill, killAfterMs));
      child.stdout!.once('data', () => {
        startupMs = Math.round(0.7 * startupMs + 0.3 * (performance.now() - spawnedAt));
        if (killFrom === 'first-line') timers.push(setTimeout(kill, killAfterMs));
      });
      const run = await finished(child);
      timers.forEach(clearTimeout);

      const outcome: RoundOutcome = hung
        ? 'hung'
        : run.signal === 'SIGKILL'
          ? weKilled
            ? 'killed'
            : kind === 'crash-point'
              ? 'crash-point'
              : 'failed'
          : run.code === 0
            ? 'exited'
            : 'failed';
      const violations: string[] = [];
      const gone = await drops.noteDeletions(await ledgerNow(), cleanSource);
      violations.push(...gone.violations.map((v) => `round ${round}: ${v}`));
      if (outcome === 'exited') for (const v of present) v.mustBeRead = true;
      if (outcome === 'failed') violations.push(`round ${round}: the streamer failed (code ${run.code}, signal ${run.signal}):\n${tail(run.output)}`);
      if (outcome === 'hung') violations.push(`round ${round}: the streamer did not stop within ${roundTimeoutMs} ms:\n${tail(run.output)}`);
      violations.push(...(await ledgerAgreesWithTable(pool)).map((v) => `round ${round} (${crashAt ?? `kill after ${killAfterMs} ms`}): ${v}`));
      const processed = await processedCount(pool);
      const record: RoundRecord = {
        round,
        kind,
        crashAt,
        killAfterMs,
        killFrom,
        dropped: droppedNow,
        copied: copiedNow,
        cameBack: cameBackNow,
        torn: tornNow,
        cleanSource,
        deleted: gone.deleted,
        outcome,
        code: run.code,
        signal: run.signal,
        resumed: run.output.includes('resuming a batch that was not committed'),
        processed,
        progress: processed - processedBefore,
        ms: Math.round(performance.now() - roundStart),
        violations,
      };
      processedBefore = processed;
      records.push(record);
      log(formatRound(record));
    }

    // Then the streamer runs to the end, undisturbed.
    const finalStart = performance.now();
    for (const v of drops.inInput()) v.mustBeRead = true;
    const last = startStreamer(finalCleanSource);
    let hung = false;
    const timer = setTimeout(() => ((hung = true), last.kill('SIGKILL')), 120_000);
    const final: Run = await finished(last);
    clearTimeout(timer);
    const finalMs = Math.round(performance.now() - finalStart);
    log(`final run: ${final.code === 0 ? 'exit 0' : `code ${final.code}, signal ${final.signal}`} in ${finalMs} ms`);

    const violations = records.flatMap((r) => r.violations);
    if (hung) violations.push(`the final run did not finish within 120 s:\n${tail(final.output)}`);
    else if (final.code !== 0) violations.push(`the final run failed (code ${final.code}, signal ${final.signal}):\n${tail(final.output)}`);
    const check = await checkExactlyOnce(pool, opts.dataDir, drops, finalCleanSource);
    violations.push(...check.violations);

    const crashPoints = Object.fromEntries(CRASH_POINTS.map((p) => [p, { planned: 0, fired: 0 }])) as ChaosReport['kills']['crashPoints'];
    for (const r of records.filter((r) => r.crashAt)) {
      const point = r.crashAt!.split('@')[0] as CrashPointName;
      crashPoints[point].planned++;
      if (r.outcome === 'crash-point') crashPoints[point].fired++;
    }
    const kills = {
      delay: records.filter((r) => r.kind === 'delay' && r.outcome === 'killed').length,
      crashPoints,
      fallback: records.filter((r) => r.kind === 'crash-point' && r.outcome === 'killed').length,
      exited: records.filter((r) => r.outcome === 'exited').length,
      total: records.filter((r) => r.outcome === 'killed' || r.outcome === 'crash-point').length,
    };
    return {
      seed: opts.seed,
      rounds: records,
      kills,
      files: { initial, dropped, copies, inInput: check.filesInInput },
      cleanSource: { mode, deleteRounds, final: finalCleanSource },
      drops: drops.summary(await readLedger(pool)),
      dropLog: drops,
      rows: check.rows,
      revenueCents: check.revenueCents,
      batches: check.batches,
      finalRun: { code: final.code, signal: final.signal, ms: finalMs, output: final.output },
      wallMs: Math.round(performance.now() - started),
      violations,
    };
  } finally {
    await pool.end();
  }
}

/** New rows available to names that come back, per round (each takes 5 to 40). */
const FRESH_ROWS_PER_ROUND = 60;

/** BIG_ROWS rows make a file of about 57 KB; small files are a few KB. */
const BIG_FILE_BYTES = 32 * 1024;

/** The batch a new run will plan next, the one it resumes (offsets without a commit record) if any, and the pending files. */
async function standing(
  db: pg.Pool,
  dataDir: string,
): Promise<{ next: number; resume: number | null; pending: number; pendingBig: number; pendingNames: string[] }> {
  const s = await readStatus({ db, dataDir });
  const resume = s.checkpoint.state === 'uncommitted' ? s.checkpoint.latestOffsetsId : null;
  const processed = s.schema ? await processedVersions(db) : new Map();
  let pendingBig = 0;
  const pendingNames: string[] = [];
  for (const name of (await readdir(join(dataDir, 'input'))).sort()) {
    if (!name.endsWith('.csv')) continue;
    const stats = await lstat(join(dataDir, 'input', name));
    const version = processed.get(name);
    if (version && sameVersion(stats, version)) continue;
    pendingNames.push(name);
    // A copy is not counted: its content may be loaded already, and then it is never read.
    if (!name.startsWith('copy-') && stats.size > BIG_FILE_BYTES) pendingBig++;
  }
  return { next: Math.max(s.recentBatches[0]?.id ?? 0, s.checkpoint.latestOffsetsId ?? 0) + 1, resume, pending: s.pending.count, pendingBig, pendingNames };
}

async function hasSchema(db: pg.Pool): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>(`SELECT to_regclass('ingest_files') IS NOT NULL AND to_regclass('user_activity') IS NOT NULL AS ok`);
  return rows[0]!.ok;
}

async function processedCount(db: pg.Pool): Promise<number> {
  if (!(await hasSchema(db))) return 0;
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ingest_files WHERE status IN ('loaded', 'empty', 'duplicate')`);
  return Number(rows[0]!.n);
}

/**
 * Checked after every kill: a version's rows and its ledger row commit together, so the rows
 * stored are exactly the rows the ledger says were loaded, each from a version (name and batch)
 * marked loaded, as many as that version's rows_loaded; a name's processed versions are numbered 1, 2, …
 */
async function ledgerAgreesWithTable(db: pg.Pool): Promise<string[]> {
  if (!(await hasSchema(db))) return [];
  const { rows } = await db.query<{ events: string; ledger_rows: string; orphans: string; miscounted: string; misnumbered: string }>(
    `WITH stored AS (SELECT source_file, batch_id, count(*) AS n FROM user_activity GROUP BY source_file, batch_id)
     SELECT (SELECT coalesce(sum(n), 0) FROM stored) AS events,
            (SELECT coalesce(sum(rows_loaded), 0) FROM ingest_files WHERE status = 'loaded') AS ledger_rows,
            (SELECT coalesce(sum(s.n), 0) FROM stored s
              WHERE NOT EXISTS (SELECT 1 FROM ingest_files f WHERE f.name = s.source_file AND f.batch_id = s.batch_id AND f.status = 'loaded')) AS orphans,
            (SELECT count(*) FROM ingest_files f LEFT JOIN stored s ON s.source_file = f.name AND s.batch_id = f.batch_id
              WHERE f.status = 'loaded' AND coalesce(s.n, 0) <> f.rows_loaded) AS miscounted,
            (SELECT count(*) FROM (SELECT version, row_number() OVER (PARTITION BY name ORDER BY id) AS n
                                     FROM ingest_files WHERE status IN ('loaded', 'empty', 'duplicate')) v
              WHERE v.version IS DISTINCT FROM v.n) AS misnumbered`,
  );
  const r = rows[0]!;
  const out: string[] = [];
  if (r.events !== r.ledger_rows) out.push(`user_activity holds ${r.events} rows but the ledger says ${r.ledger_rows} were loaded`);
  if (r.orphans !== '0') out.push(`${r.orphans} stored events come from a version (name and batch) the ledger does not mark loaded`);
  if (r.miscounted !== '0') out.push(`${r.miscounted} loaded versions have other than their rows_loaded rows in user_activity`);
  if (r.misnumbered !== '0') out.push(`${r.misnumbered} processed ledger rows do not have their place among their name's versions as version number`);
  return out;
}

interface ExactlyOnce {
  filesInInput: number;
  rows: ChaosReport['rows'];
  revenueCents: ChaosReport['revenueCents'];
  batches: number;
  violations: string[];
}

/**
 * The invariants once the streamer has run to the end, against everything ever dropped:
 * - user_activity holds exactly the events of all versions dropped: same count, same event_ids,
 *   same revenue (0 lost, 0 duplicated, 0 that no dropped file held); nothing rejected or set aside;
 * - each processed ledger row is a version dropped under its name, once; each version that a
 *   finished run saw, that --clean-source deleted, or that is still in input/ has its row;
 * - input/ holds only the newest processed version of each name, and with --clean-source delete
 *   none that is committed; no file left input/ without its version committed;
 * - the ledger's counts agree with the table, and each batch's totals with its files' rows;
 * - every batch is finished, and the checkpoint's newest batch has its commit record.
 */
export async function checkExactlyOnce(db: pg.Pool, dataDir: string, drops: DropLog, cleanSource: CleanSource): Promise<ExactlyOnce> {
  const violations: string[] = [];
  const expected = drops.expected;

  const { rows: idRows } = await db.query<{ event_id: string }>('SELECT event_id FROM user_activity');
  const stored = new Set(idRows.map((r) => r.event_id));
  const agg = (
    await db.query<{ count: string; distinct_ids: string; revenue_cents: string | null; rejects: string }>(
      `SELECT count(*) AS count, count(DISTINCT event_id) AS distinct_ids,
              sum(price * quantity * 100) FILTER (WHERE event_type = 'purchase') AS revenue_cents,
              (SELECT count(*) FROM user_activity_rejects) AS rejects
         FROM user_activity`,
    )
  ).rows[0]!;
  const count = Number(agg.count);
  const lost = [...expected.ids].filter((id) => !stored.has(id));
  const unexpected = [...stored].filter((id) => !expected.ids.has(id));
  const duplicated = count - Number(agg.distinct_ids);
  const revenue = Number(agg.revenue_cents ?? 0);
  if (lost.length > 0) violations.push(`${lost.length} events lost, e.g. ${lost.slice(0, 3).join(', ')}`);
  if (unexpected.length > 0) violations.push(`${unexpected.length} events stored that no dropped file held, e.g. ${unexpected.slice(0, 3).join(', ')}`);
  if (duplicated !== 0) violations.push(`${duplicated} events stored twice`);
  if (count !== expected.ids.size) violations.push(`user_activity holds ${count} rows, the dropped files ${expected.ids.size} distinct events`);
  if (revenue !== expected.revenueCents) violations.push(`revenue is ${revenue} cents, the dropped files say ${expected.revenueCents}`);
  if (agg.rejects !== '0') violations.push(`${agg.rejects} rows rejected, the generated files have no bad row`);

  const ledger = await readLedger(db);
  for (const r of ledger.filter((r) => r.status === 'quarantined')) violations.push(`${r.name} was set aside`);
  violations.push(...(await drops.noteDeletions(ledger, cleanSource)).violations);
  violations.push(...drops.ledgerViolations(ledger));
  const inInput = await drops.inputViolations(ledger, cleanSource);
  violations.push(...inInput.violations);

  violations.push(...(await ledgerAgreesWithTable(db)));
  const badFiles = (
    await db.query<{ name: string }>(`SELECT name FROM ingest_files WHERE status = 'loaded' AND rows_read <> rows_loaded + rows_rejected + rows_duplicate`)
  ).rows;
  if (badFiles.length > 0) violations.push(`${badFiles.length} loaded files whose rows_read ≠ loaded + rejected + duplicate, e.g. ${badFiles[0]!.name}`);
  const badBatches = (
    await db.query<{ id: string; files: number; ledger_files: string; finished: boolean; rows_loaded: string; ledger_loaded: string }>(
      `SELECT b.id, b.files, coalesce(f.files, 0) AS ledger_files, b.finished_at IS NOT NULL AS finished, b.rows_loaded, coalesce(f.rows_loaded, 0) AS ledger_loaded
         FROM ingest_batches b
         LEFT JOIN (SELECT batch_id, count(*) AS files, sum(rows_loaded) AS rows_loaded FROM ingest_files GROUP BY batch_id) f ON f.batch_id = b.id
        WHERE b.finished_at IS NULL OR b.files <> coalesce(f.files, 0) OR b.rows_loaded <> coalesce(f.rows_loaded, 0)
        ORDER BY b.id`,
    )
  ).rows;
  for (const b of badBatches) {
    violations.push(
      b.finished
        ? `batch ${b.id}: ingest_batches says ${b.files} files, ${b.rows_loaded} rows loaded; its ledger rows say ${b.ledger_files} files, ${b.ledger_loaded} rows`
        : `batch ${b.id} is not finished`,
    );
  }
  const orphanFiles = (await db.query<{ n: string }>('SELECT count(*) AS n FROM ingest_files f WHERE NOT EXISTS (SELECT 1 FROM ingest_batches b WHERE b.id = f.batch_id)')).rows[0]!;
  if (orphanFiles.n !== '0') violations.push(`${orphanFiles.n} ledger rows name a batch that ingest_batches does not have`);

  const status = await readStatus({ db, dataDir });
  if (status.checkpoint.state !== 'agrees') violations.push(`the checkpoint does not agree with the database at the end: ${JSON.stringify(status.checkpoint)}`);
  if (status.pending.count !== 0) violations.push(`${status.pending.count} files still pending at the end`);
  return {
    filesInInput: inInput.files,
    rows: { inFiles: expected.rows, distinctEvents: expected.ids.size, stored: count, lost: lost.length, unexpected: unexpected.length, duplicated },
    revenueCents: { expected: expected.revenueCents, stored: revenue },
    batches: status.totals.batches,
    violations,
  };
}

function tail(output: string, lines = 15): string {
  return output.trimEnd().split('\n').slice(-lines).join('\n');
}

export function formatRound(r: RoundRecord): string {
  const how = r.crashAt ? `crash at ${r.crashAt}` : `kill ${r.killAfterMs} ms after ${r.killFrom === 'spawn' ? 'spawn' : 'first line'}`;
  const ended = { 'crash-point': 'died at its crash point', killed: 'killed (SIGKILL)', exited: 'finished before the kill', failed: 'FAILED', hung: 'HUNG' }[r.outcome];
  const drops = [r.dropped && `${r.dropped} dropped`, r.cameBack && `${r.cameBack} came back`, r.torn && `${r.torn} torn`, r.copied && `${r.copied} copy`].filter(Boolean).join(', ');
  return (
    `round ${String(r.round).padStart(3)}  ${how.padEnd(36)} ${ended.padEnd(25)} ${r.resumed ? 'resumed, ' : ''}+${r.progress} versions (${r.processed} done)` +
    `${r.cleanSource === 'delete' ? `, ${r.deleted} deleted` : ''}${drops ? `  [${drops} before]` : ''}  ${(r.ms / 1000).toFixed(1)} s${r.violations.length ? `  ✗ ${r.violations.length} violation(s)` : ''}`
  );
}

export function formatReport(r: ChaosReport): string {
  const d = r.drops;
  const points = CRASH_POINTS.map((p) => `${p} ${r.kills.crashPoints[p].fired}/${r.kills.crashPoints[p].planned}`).join(', ');
  const lines = [
    `rounds          ${r.rounds.length} (seed ${r.seed})`,
    `kills           ${r.kills.total}: ${r.kills.delay} at a random moment, ${r.rounds.filter((x) => x.outcome === 'crash-point').length} at a crash point, ${r.kills.fallback} crash-point rounds killed at the fallback delay; ${r.kills.exited} rounds finished first`,
    `crash points    fired/planned: ${points}`,
    `resumed         ${r.rounds.filter((x) => x.resumed).length} rounds began by resuming a batch without a commit record`,
    `files           ${r.files.initial} at the start, ${r.files.dropped} dropped between rounds, ${r.files.copies} copies of files already there, ${d.torn} torn empty copies; ${r.files.inInput} in input/ at the end`,
    `names reused    ${d.reused} of ${d.names} names came back ${d.comebacks} times (${d.byHow.cp} cp in place, ${d.byHow.mv} mv over): ` +
      `${d.byKind.grew} grew, ${d.byKind['next-day']} next day's export, ${d.byKind.same} same bytes, ${d.byKind.complete} complete after a torn copy`,
    `versions        ${d.versions} dropped; ${d.inLedger} in the ledger, ${d.laterInLedger} of them a name's 2nd or later version; ${d.replacedUnread} replaced before a run read them`,
    `clean-source    ${r.cleanSource.mode}: ${r.cleanSource.deleteRounds} of ${r.rounds.length} rounds with delete, the final run ${r.cleanSource.final}; ` +
      `${d.deleted} files deleted (${d.retiredByContent} of them leftovers retired by content)`,
    `rows            ${r.rows.inFiles} in the dropped files, ${r.rows.distinctEvents} distinct events; ${r.rows.stored} stored`,
    `lost            ${r.rows.lost}`,
    `duplicated      ${r.rows.duplicated} (and ${r.rows.unexpected} stored that no file holds)`,
    `revenue         ${(r.revenueCents.stored / 100).toFixed(2)} stored, ${(r.revenueCents.expected / 100).toFixed(2)} in the dropped files`,
    `batches         ${r.batches}`,
    `final run       ${r.finalRun.code === 0 ? 'exit 0' : `code ${r.finalRun.code}, signal ${r.finalRun.signal}`} in ${(r.finalRun.ms / 1000).toFixed(1)} s`,
    `wall time       ${(r.wallMs / 1000).toFixed(1)} s`,
    r.violations.length === 0 ? 'invariants      all hold: exactly once' : `INVARIANTS BROKEN (${r.violations.length}):\n  ${r.violations.join('\n  ')}`,
  ];
  return lines.join('\n');
}
