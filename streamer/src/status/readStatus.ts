import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { LayoutReport } from '../reader/contract/layout.ts';
import { batchTotals, processedVersions, type BatchTotals, type ProcessedVersion } from '../sink/ledger.ts';
import { sameVersion } from '../source/fileVersion.ts';
import { inputPath, type InputName } from '../source/inputName.ts';
import { listInput } from '../source/listInput.ts';
import { acceptsName } from '../source/acceptsName.ts';

/**
 * Where the stream stands, read without changing anything: the database's ledger (ingest_batches,
 * ingest_files), the checkpoint directory and the input and quarantine directories.
 * Times are ISO-8601 strings and sizes plain numbers, so that the whole object is its own JSON.
 */
export interface StreamStatus {
  /** When this was read. */
  at: string;
  dataDir: string;
  /** false: the streamer's tables do not exist in this database yet (it never ran against it). */
  schema: boolean;
  /** The newest batch the database finished (ingest_batches.finished_at set); null if none. */
  lastBatch: BatchFigures | null;
  checkpoint: CheckpointStatus;
  /** Served by a running streamer (/api/status): its own backlog, files seen and not taken by a batch yet. */
  pending: PendingFiles;
  /** The last batches by id, newest first (at most RECENT_BATCHES), finished or not. */
  recentBatches: BatchFigures[];
  quarantine: QuarantineStatus;
  /** Every layout met (ingest_layouts), the most used first. */
  layouts: LayoutSeen[];
  totals: Totals;
}

/** A way a header was read, and how many files were read that way. */
export interface LayoutSeen {
  id: number;
  layout: LayoutReport;
  /** ingest_files rows with this layout: loaded files (each version counts). */
  files: number;
  firstFile: string;
  firstSeen: string;
}

export interface BatchFigures extends BatchTotals {
  id: number;
  startedAt: string;
  /** null: not finished (in flight, or cut short and to be run again at the next start). */
  finishedAt: string | null;
  /** finishedAt − startedAt; a batch replayed after a crash counts from its first start. */
  durationMs: number | null;
}

/**
 * How the checkpoint compares with the database:
 * - none: no offsets record (the streamer never planned a batch here, or checkpoint/ was deleted)
 * - agrees: the newest offsets record has its commit record and is the database's last batch
 * - uncommitted: the newest offsets record has no commit record: a batch in flight, or cut short
 *   by a stop or a crash (it is run again, with the same files, at the next start)
 * - behind: the database finished batches after the checkpoint's newest (checkpoint/ was deleted
 *   or restored from an older copy): harmless, the database decides what is done
 * - ahead: the checkpoint committed a batch the database does not know (another database?)
 */
export type CheckpointState = 'none' | 'agrees' | 'uncommitted' | 'behind' | 'ahead';

export interface CheckpointStatus {
  state: CheckpointState;
  /** Id of the newest offsets/<id>.json, null if none. */
  latestOffsetsId: number | null;
  /** Whether commits/<latestOffsetsId>.json exists; null without offsets. */
  hasCommitRecord: boolean | null;
  /** Files planned in the newest offsets record; null without one, or if it cannot be read. */
  plannedFiles: number | null;
  /** For the newest offsets batch: whether the database finished it (a crash between the database commit and the checkpoint write leaves it so). */
  finishedInDatabase: boolean | null;
  /** For the newest offsets batch: how many of its files the database has committed. */
  filesCommittedInDatabase: number | null;
}

export interface PendingFiles {
  /** Accepted names (see acceptsName) of regular files in input/ that the ledger has not processed. */
  count: number;
  bytes: number;
  /** The pending file with the oldest modification time. */
  oldest: { name: string; mtime: string; ageMs: number } | null;
  /** false: <data-dir>/input does not exist. */
  inputExists: boolean;
}

export interface QuarantineEntry {
  name: string;
  reason: string | null;
  at: string;
  batchId: number;
  /** The same name was processed later (fixed and dropped again). */
  reloaded: boolean;
}

export interface QuarantineStatus {
  /** ingest_files rows with status 'quarantined'. */
  total: number;
  /** The newest of them, newest first (at most RECENT_QUARANTINED). */
  entries: QuarantineEntry[];
  /** Files in <data-dir>/quarantine, not counting their `.reason` companions. */
  filesInDirectory: number;
}

export interface Totals {
  /**
   * Rows loaded into user_activity, from the ledger (what count(*) gives, unless rows were deleted by
   * hand, without scanning the table: the live page asks every 2 s).
   */
  events: number;
  /** Rows rejected into user_activity_rejects, from the ledger likewise. */
  rejects: number;
  batches: number;
  /** ingest_files rows by status. */
  files: { loaded: number; empty: number; duplicate: number; quarantined: number };
}

export const RECENT_BATCHES = 10;
export const RECENT_QUARANTINED = 20;

/** A pg.Pool or a connected pg.Client. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface ReadStatusOptions {
  db: Queryable;
  dataDir: string;
  /** The time ages are measured against (tests); default now. */
  now?: Date;
  /** As the streamer's --recursive: pending files in subdirectories count too. */
  recursive?: boolean;
  /** The running streamer's own backlog (its StreamState): then input/ is not listed. */
  pending?: PendingFiles;
}

export async function readStatus({ db, dataDir, now = new Date(), recursive = false, pending: known }: ReadStatusOptions): Promise<StreamStatus> {
  const schema = await hasSchema(db);
  const processed = schema && !known ? await processedVersions(db) : new Map<string, ProcessedVersion>();
  const [pending, quarantineFiles, offsets] = await Promise.all([
    known ?? pendingFiles(join(dataDir, 'input'), processed, now, recursive),
    countQuarantineFiles(join(dataDir, 'quarantine')),
    readCheckpoint(join(dataDir, 'checkpoint')),
  ]);

  const empty: StreamStatus = {
    at: now.toISOString(),
    dataDir,
    schema,
    lastBatch: null,
    checkpoint: compareCheckpoint(offsets, null, null),
    pending,
    recentBatches: [],
    quarantine: { total: 0, entries: [], filesInDirectory: quarantineFiles },
    layouts: [],
    totals: { events: 0, rejects: 0, batches: 0, files: { loaded: 0, empty: 0, duplicate: 0, quarantined: 0 } },
  };
  if (!schema) return empty;

  const lastBatch = await batches(db, 'WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1').then((b) => b[0] ?? null);
  const recentBatches = await batches(db, `ORDER BY id DESC LIMIT ${RECENT_BATCHES}`);
  const ofLatest = offsets.latestId === null ? null : await batchInDatabase(db, offsets.latestId);

  const quarantined = await db.query<{ name: string; reason: string | null; committed_at: Date; batch_id: string; reloaded: boolean }>(
    `SELECT q.name, q.reason, q.committed_at, q.batch_id,
            EXISTS (SELECT 1 FROM ingest_files p WHERE p.name = q.name AND p.id > q.id AND p.status IN ('loaded', 'empty', 'duplicate')) AS reloaded
       FROM ingest_files q WHERE q.status = 'quarantined'
      ORDER BY q.committed_at DESC, q.id DESC LIMIT ${RECENT_QUARANTINED}`,
  );
  const totals = await db.query<{ events: string; rejects: string; batches: string; loaded: string; empty: string; duplicate: string; quarantined: string }>(
    `SELECT coalesce(sum(rows_loaded), 0) AS events,
            coalesce(sum(rows_rejected), 0) AS rejects,
            (SELECT count(*) FROM ingest_batches) AS batches,
            count(*) FILTER (WHERE status = 'loaded') AS loaded,
            count(*) FILTER (WHERE status = 'empty') AS empty,
            count(*) FILTER (WHERE status = 'duplicate') AS duplicate,
            count(*) FILTER (WHERE status = 'quarantined') AS quarantined
       FROM ingest_files`,
  );
  const t = totals.rows[0]!;
  const layouts = await layoutsSeen(db);

  return {
    ...empty,
    lastBatch,
    checkpoint: compareCheckpoint(offsets, lastBatch?.id ?? null, ofLatest),
    recentBatches,
    quarantine: {
      total: Number(t.quarantined),
      entries: quarantined.rows.map((r) => ({
        name: r.name,
        reason: r.reason,
        at: r.committed_at.toISOString(),
        batchId: Number(r.batch_id),
        reloaded: r.reloaded,
      })),
      filesInDirectory: quarantineFiles,
    },
    layouts,
    totals: {
      events: Number(t.events),
      rejects: Number(t.rejects),
      batches: Number(t.batches),
      files: { loaded: Number(t.loaded), empty: Number(t.empty), duplicate: Number(t.duplicate), quarantined: Number(t.quarantined) },
    },
  };
}

async function hasSchema(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>(
    `SELECT to_regclass('ingest_batches') IS NOT NULL AND to_regclass('ingest_files') IS NOT NULL
        AND to_regclass('user_activity') IS NOT NULL AND to_regclass('user_activity_rejects') IS NOT NULL AS ok`,
  );
  return rows[0]!.ok;
}

/** A database the streamer last migrated before layouts were recorded has none. */
async function layoutsSeen(db: Queryable): Promise<LayoutSeen[]> {
  const exists = await db.query<{ ok: boolean }>(`SELECT to_regclass('ingest_layouts') IS NOT NULL AS ok`);
  if (!exists.rows[0]!.ok) return [];
  const { rows } = await db.query<{ id: string; layout: LayoutReport; first_file: string; first_seen_at: Date; files: string }>(
    `SELECT l.id, l.layout, l.first_file, l.first_seen_at, count(f.id) AS files
       FROM ingest_layouts l LEFT JOIN ingest_files f ON f.layout_id = l.id
      GROUP BY l.id ORDER BY files DESC, l.id`,
  );
  return rows.map((r) => ({ id: Number(r.id), layout: r.layout, files: Number(r.files), firstFile: r.first_file, firstSeen: r.first_seen_at.toISOString() }));
}

async function batches(db: Queryable, tail: string): Promise<BatchFigures[]> {
  const { rows } = await db.query<{
    id: string;
    started_at: Date;
    finished_at: Date | null;
    files: number;
    bytes: string;
    rows_read: string;
    rows_loaded: string;
    rows_rejected: string;
    rows_duplicate: string;
  }>(`SELECT id, started_at, finished_at, files, bytes, rows_read, rows_loaded, rows_rejected, rows_duplicate FROM ingest_batches ${tail}`);
  return rows.map((r) => ({
    id: Number(r.id),
    startedAt: r.started_at.toISOString(),
    finishedAt: r.finished_at?.toISOString() ?? null,
    ...batchTotals(r),
    durationMs: r.finished_at ? Math.max(0, r.finished_at.getTime() - r.started_at.getTime()) : null,
  }));
}

interface BatchInDatabase {
  exists: boolean;
  finished: boolean;
  filesCommitted: number;
}

async function batchInDatabase(db: Queryable, id: number): Promise<BatchInDatabase> {
  const { rows } = await db.query<{ exists: boolean; finished: boolean; files: string }>(
    `SELECT EXISTS (SELECT 1 FROM ingest_batches WHERE id = $1) AS exists,
            EXISTS (SELECT 1 FROM ingest_batches WHERE id = $1 AND finished_at IS NOT NULL) AS finished,
            (SELECT count(*) FROM ingest_files WHERE batch_id = $1) AS files`,
    [id],
  );
  const r = rows[0]!;
  return { exists: r.exists, finished: r.finished, filesCommitted: Number(r.files) };
}

interface CheckpointFiles {
  latestId: number | null;
  hasCommit: boolean;
  plannedFiles: number | null;
}

/** Reads checkpoint/offsets and checkpoint/commits as they are: no directory is created, no temp file removed. */
async function readCheckpoint(dir: string): Promise<CheckpointFiles> {
  const ids = async (kind: string) =>
    (await readdir(join(dir, kind)).catch(() => [] as string[]))
      .filter((f) => /^\d+\.json$/.test(f))
      .map((f) => Number(f.slice(0, -5)))
      .sort((a, b) => a - b);
  const offsets = await ids('offsets');
  const latestId = offsets.at(-1) ?? null;
  if (latestId === null) return { latestId: null, hasCommit: false, plannedFiles: null };
  const commits = await ids('commits');
  let plannedFiles: number | null = null;
  try {
    const batch = JSON.parse(await readFile(join(dir, 'offsets', `${latestId}.json`), 'utf8')) as { files?: unknown[] };
    plannedFiles = Array.isArray(batch.files) ? batch.files.length : null;
  } catch {
    plannedFiles = null;
  }
  return { latestId, hasCommit: commits.includes(latestId), plannedFiles };
}

function compareCheckpoint(cp: CheckpointFiles, lastFinishedId: number | null, ofLatest: BatchInDatabase | null): CheckpointStatus {
  const base = {
    latestOffsetsId: cp.latestId,
    hasCommitRecord: cp.latestId === null ? null : cp.hasCommit,
    plannedFiles: cp.plannedFiles,
    finishedInDatabase: ofLatest ? ofLatest.finished : null,
    filesCommittedInDatabase: ofLatest ? ofLatest.filesCommitted : null,
  };
  let state: CheckpointState;
  if (cp.latestId === null) state = 'none';
  else if (!cp.hasCommit) state = 'uncommitted';
  else if (lastFinishedId !== null && lastFinishedId > cp.latestId) state = 'behind';
  else if (lastFinishedId === null || lastFinishedId < cp.latestId || (ofLatest !== null && !ofLatest.finished)) state = 'ahead';
  else state = 'agrees';
  // With no offsets at all, a database that finished batches means the checkpoint was deleted.
  if (state === 'none' && lastFinishedId !== null) state = 'behind';
  return { state, ...base };
}

async function pendingFiles(inputDir: string, processed: ReadonlyMap<string, ProcessedVersion>, now: Date, recursive: boolean): Promise<PendingFiles> {
  let names: InputName[];
  try {
    names = await listInput(inputDir, recursive);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { count: 0, bytes: 0, oldest: null, inputExists: false };
    throw err;
  }
  let count = 0;
  let bytes = 0;
  let oldest: { name: string; mtimeMs: number } | undefined;
  for (const input of names) {
    const { name } = input;
    if (!acceptsName(name)) continue;
    // Like the streamer: regular files only (no symbolic links, no directories), and a processed
    // name only when its file is another version than the one processed.
    const stats = await lstat(inputPath(inputDir, input)).catch(() => undefined);
    if (!stats?.isFile()) continue;
    const version = processed.get(name);
    if (version && sameVersion(stats, version)) continue;
    count++;
    bytes += stats.size;
    if (!oldest || stats.mtimeMs < oldest.mtimeMs || (stats.mtimeMs === oldest.mtimeMs && name < oldest.name)) oldest = { name, mtimeMs: stats.mtimeMs };
  }
  return {
    count,
    bytes,
    oldest: oldest ? { name: oldest.name, mtime: new Date(oldest.mtimeMs).toISOString(), ageMs: Math.max(0, Math.round(now.getTime() - oldest.mtimeMs)) } : null,
    inputExists: true,
  };
}

async function countQuarantineFiles(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile() && !e.name.endsWith('.reason')).length;
}
