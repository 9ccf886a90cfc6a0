import type pg from 'pg';
import type { PlannedBatch } from '../planner.ts';
import type { EventTimes } from '../reader/eventTimes.ts';
import type { OptionalColumn } from '../reader/contract/defaults.ts';
import type { LayoutReport } from '../reader/contract/layout.ts';
import type { SourceFile } from '../reader/fileReader.ts';

/** What became of a file. 'changed': it changed while being read, and is left for a later batch. */
export type FileStatus = 'loaded' | 'empty' | 'duplicate' | 'quarantined' | 'changed';

export interface FileResult {
  name: string;
  status: FileStatus;
  bytes: number;
  rowsRead: number;
  rowsLoaded: number;
  rowsRejected: number;
  rowsDuplicate: number;
  reason?: string;
  /** n for the n-th processed version of the name (see ProcessedVersion); unset for a file set aside. */
  version?: number;
  /** Of the rows read in this run (unset for a file not read, or committed by an earlier run). */
  eventTimes?: EventTimes;
}

export interface BatchTotals {
  files: number;
  bytes: number;
  rowsRead: number;
  rowsLoaded: number;
  rowsRejected: number;
  rowsDuplicate: number;
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The count columns of an ingest_batches row (bigints arrive as text). */
export function batchTotals(r: Record<string, unknown>): BatchTotals {
  return {
    files: Number(r.files),
    bytes: Number(r.bytes),
    rowsRead: Number(r.rows_read),
    rowsLoaded: Number(r.rows_loaded),
    rowsRejected: Number(r.rows_rejected),
    rowsDuplicate: Number(r.rows_duplicate),
  };
}

export function emptyResult(file: SourceFile, status: FileStatus, reason?: string): FileResult {
  return { name: file.name, status, bytes: file.size, rowsRead: 0, rowsLoaded: 0, rowsRejected: 0, rowsDuplicate: 0, reason };
}

const PROCESSED_STATUSES = `('loaded', 'empty', 'duplicate')`;

/** How a loaded file's header was read (ingest_layouts), and the rows that took each default. */
export interface FileLayout {
  id: number;
  report: LayoutReport;
  defaulted: Record<OptionalColumn, number>;
  /** The header as written: what replay-rejects reads the file's rejects with. */
  header: string;
}

/**
 * The layout's row in ingest_layouts, added if it is new: `isNew` only for the transaction that
 * added it, so that a layout is announced once, when that transaction commits.
 */
export async function recordLayout(db: Queryable, report: LayoutReport, fileName: string): Promise<{ id: number; isNew: boolean }> {
  const layout = JSON.stringify(report);
  // Most files have a layout met before; a new statement also sees one that another transaction just committed.
  const find = () => db.query<{ id: string }>('SELECT id FROM ingest_layouts WHERE md5(layout::text) = md5($1::jsonb::text)', [layout]);
  const known = await find();
  if (known.rows.length === 1) return { id: Number(known.rows[0]!.id), isNew: false };
  const inserted = await db.query<{ id: string }>(
    'INSERT INTO ingest_layouts (layout, first_file) VALUES ($1, $2) ON CONFLICT ((md5(layout::text))) DO NOTHING RETURNING id',
    [layout, fileName],
  );
  if (inserted.rows.length === 1) return { id: Number(inserted.rows[0]!.id), isNew: true };
  return { id: Number((await find()).rows[0]!.id), isNew: false };
}

/**
 * Writes the file-done marker. Inside the file's transaction this is what makes its rows count
 * as committed exactly once. Returns the version of the name it recorded (unset for a file set
 * aside), or false when the same content is already loaded under some name (a unique index says no).
 */
export async function recordFile(
  db: Queryable,
  file: SourceFile,
  fingerprint: string | null,
  result: FileResult,
  batchId: number,
  layout?: FileLayout,
): Promise<number | undefined | false> {
  const { rows } = await db.query<{ version: number | null }>(
    `INSERT INTO ingest_files (name, fingerprint, size, mtime, status, reason, rows_read, rows_loaded, rows_rejected, rows_duplicate, batch_id, version,
                               layout_id, layout, rows_defaulted, header)
     SELECT $1, $2, $3, to_timestamp($4::double precision / 1000), $5, $6, $7, $8, $9, $10, $11,
            CASE WHEN $5 IN ${PROCESSED_STATUSES}
                 THEN (SELECT count(*) + 1 FROM ingest_files WHERE name = $1 AND status IN ${PROCESSED_STATUSES}) END,
            $12, $13, $14, $15
     ON CONFLICT DO NOTHING
     RETURNING version`,
    [
      file.name, fingerprint, file.size, file.mtimeMs, result.status, result.reason ?? null, result.rowsRead, result.rowsLoaded, result.rowsRejected, result.rowsDuplicate, batchId,
      layout?.id ?? null, layout ? JSON.stringify(layout.report) : null, layout ? JSON.stringify(layout.defaulted) : null, layout?.header ?? null,
    ],
  );
  return rows.length === 1 ? (rows[0]!.version ?? undefined) : false;
}

/**
 * Rows of a loaded file version read again by replay-rejects: `moved` left its rejects, `loaded` of
 * them now stored, the rest found stored already; rows_read stays, and the batch's totals follow, as
 * finishBatch sums them. `defaulted`: the file's rows_defaulted now.
 */
export async function recordReplayed(db: Queryable, file: { id: number; batchId: number }, moved: number, loaded: number, defaulted: Record<OptionalColumn, number>): Promise<void> {
  const counts = 'rows_loaded = rows_loaded + $2::bigint, rows_rejected = rows_rejected - $3::bigint, rows_duplicate = rows_duplicate + ($3::bigint - $2::bigint)';
  await db.query(`UPDATE ingest_files SET ${counts}, rows_defaulted = $4 WHERE id = $1`, [file.id, loaded, moved, JSON.stringify(defaulted)]);
  await db.query(`UPDATE ingest_batches SET ${counts} WHERE id = $1`, [file.batchId, loaded, moved]);
}

/** Loaded files of this size: only these can have the same content as a file of that size. */
export async function loadedFilesOfSize(db: Queryable, size: number): Promise<Array<{ name: string; fingerprint: string }>> {
  const { rows } = await db.query('SELECT name, fingerprint FROM ingest_files WHERE size = $1 AND status = $2', [size, 'loaded']);
  return rows;
}

export async function loadedFileWithFingerprint(db: Queryable, fingerprint: string): Promise<string | undefined> {
  const { rows } = await db.query(`SELECT name FROM ingest_files WHERE fingerprint = $1 AND status = 'loaded'`, [fingerprint]);
  return rows[0]?.name;
}

/** What the ledger knows of the newest processed version of a name: enough to tell a new version from it. */
export interface ProcessedVersion {
  size: number;
  mtimeMs: number;
}

/**
 * The newest processed version of every name. A file in input that still has this size and mtime
 * is that version; any other is a new version (see sameVersion).
 */
export async function processedVersions(db: Queryable): Promise<Map<string, ProcessedVersion>> {
  // In id order, so that the newest version of a name is the one that stays in the map.
  const { rows } = await db.query<{ name: string; size: string; mtime_ms: number }>(
    `SELECT name, size, extract(epoch FROM mtime) * 1000 AS mtime_ms FROM ingest_files WHERE status IN ${PROCESSED_STATUSES} ORDER BY id`,
  );
  return new Map(rows.map((r) => [r.name, { size: Number(r.size), mtimeMs: Number(r.mtime_ms) }]));
}

/** The fingerprint of each name's newest processed version. */
export async function latestFingerprints(db: Queryable, names: string[]): Promise<Map<string, string | null>> {
  const { rows } = await db.query<{ name: string; fingerprint: string | null }>(
    `SELECT DISTINCT ON (name) name, fingerprint FROM ingest_files
      WHERE name = ANY($1::text[]) AND status IN ${PROCESSED_STATUSES} ORDER BY name, id DESC`,
    [names],
  );
  return new Map(rows.map((r) => [r.name, r.fingerprint]));
}

/** Files of a batch the database has already committed: on a replay they are not read again. */
export async function committedFilesOfBatch(db: Queryable, batchId: number): Promise<Map<string, FileResult>> {
  const { rows } = await db.query(
    `SELECT name, status, size, rows_read, rows_loaded, rows_rejected, rows_duplicate, reason, version FROM ingest_files WHERE batch_id = $1`,
    [batchId],
  );
  return new Map(
    rows.map((r) => [
      r.name,
      {
        name: r.name,
        status: r.status,
        bytes: Number(r.size),
        rowsRead: Number(r.rows_read),
        rowsLoaded: Number(r.rows_loaded),
        rowsRejected: Number(r.rows_rejected),
        rowsDuplicate: Number(r.rows_duplicate),
        reason: r.reason ?? undefined,
        version: r.version ?? undefined,
      },
    ]),
  );
}

export async function lastBatchId(db: Queryable): Promise<number> {
  const { rows } = await db.query('SELECT coalesce(max(id), 0) AS id FROM ingest_batches');
  return Number(rows[0].id);
}

export async function beginBatch(db: Queryable, batchId: number, files: number, bytes: number): Promise<void> {
  await db.query('INSERT INTO ingest_batches (id, files, bytes) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [batchId, files, bytes]);
}

/**
 * Totals come from the file ledger, so a batch replayed after a crash still counts each file once,
 * and none it did not record (changed or gone before it was read: a later batch loads the new version).
 */
export async function finishBatch(db: Queryable, batchId: number): Promise<BatchTotals> {
  const { rows } = await db.query(
    `UPDATE ingest_batches b SET
        files = t.files, bytes = t.bytes, rows_read = t.rows_read, rows_loaded = t.rows_loaded, rows_rejected = t.rows_rejected,
        rows_duplicate = t.rows_duplicate, finished_at = now()
       FROM (SELECT count(*) AS files, coalesce(sum(size), 0) AS bytes,
                    coalesce(sum(rows_read), 0) AS rows_read, coalesce(sum(rows_loaded), 0) AS rows_loaded,
                    coalesce(sum(rows_rejected), 0) AS rows_rejected, coalesce(sum(rows_duplicate), 0) AS rows_duplicate
               FROM ingest_files WHERE batch_id = $1) t
      WHERE b.id = $1
      RETURNING b.files, b.bytes, b.rows_read, b.rows_loaded, b.rows_rejected, b.rows_duplicate`,
    [batchId],
  );
  return batchTotals(rows[0]);
}

export async function isBatchFinished(db: Queryable, batchId: number): Promise<boolean> {
  const { rows } = await db.query('SELECT finished_at IS NOT NULL AS finished FROM ingest_batches WHERE id = $1', [batchId]);
  return rows[0]?.finished === true;
}

/** The newest finished batch as the ledger knows it: what a lost checkpoint is rebuilt from. */
export async function lastFinishedBatch(db: Queryable): Promise<{ batch: PlannedBatch; totals: BatchTotals } | undefined> {
  const { rows } = await db.query(
    `SELECT id, started_at, files, bytes, rows_read, rows_loaded, rows_rejected, rows_duplicate
       FROM ingest_batches WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1`,
  );
  const b = rows[0];
  if (!b) return undefined;
  const files = await db.query<{ name: string; size: string; mtime_ms: number }>(
    'SELECT name, size, extract(epoch FROM mtime) * 1000 AS mtime_ms FROM ingest_files WHERE batch_id = $1 ORDER BY id',
    [b.id],
  );
  return {
    batch: {
      id: Number(b.id),
      plannedAt: new Date(b.started_at).toISOString(),
      files: files.rows.map((f) => ({ name: f.name, path: '', size: Number(f.size), mtimeMs: Number(f.mtime_ms) })),
    },
    totals: batchTotals(b),
  };
}
