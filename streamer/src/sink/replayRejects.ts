import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type pg from 'pg';
import { crashPoint } from '../crashPoint.ts';
import { withClient } from '../db/pool.ts';
import type { OptionalColumn } from '../reader/contract/defaults.ts';
import { describeLayout, type LayoutReport } from '../reader/contract/layout.ts';
import { FileReader, FileRejectedError, type ReadRules } from '../reader/fileReader.ts';
import { rawIsRecord } from '../reader/recordAssembler.ts';
import { RejectSpool } from '../reader/rejectSpool.ts';
import { copyInto } from './copyInto.ts';
import { recordReplayed } from './ledger.ts';
import { CONFLICT_REASON_LIKE, COPY_STAGE, CREATE_STAGE, MERGE_STAGE, STAGED_CONFLICTS } from './loadFile.ts';

/** Which rejected rows to read again: LIKE patterns over their file's name and (ignoring case) their reason. */
export interface RejectSelection {
  fileLike: string;
  reasonLike: string;
}

/** A loaded file version that the selection picks rejected rows of. */
export interface RejectedFile {
  id: number;
  name: string;
  batchId: number;
  size: number;
  mtimeMs: number;
  /** Null for a file loaded before headers were recorded. */
  header: string | null;
  layout: LayoutReport;
  rowsDefaulted: Record<OptionalColumn, number>;
  /** Its rejected rows that the selection picks. */
  rejects: number;
}

export interface ReplayContext {
  pool: pg.Pool;
  rules: ReadRules;
  inputDir: string;
  copyStallMs: number;
  /** Everything is done, then rolled back: the figures are what a replay would do now. */
  dryRun: boolean;
  /** Stops before the next file. */
  signal: AbortSignal;
}

export interface ReplayResult {
  name: string;
  batchId: number;
  /** Rows read again. */
  replayed: number;
  /** Of those: stored now, found stored already, still rejected (those keep their row)… */
  loaded: number;
  duplicate: number;
  rejected: number;
  /** …of which with another reason than before. */
  newReason: number;
  /** Rows not read again, left as they are: their text is not the line as read (see rawIsRecord), or the file's header cannot be used. */
  kept: number;
  /** Why no row of the file was read again. */
  skipped?: string;
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Rejected rows are fetched and staged this many at a time, so that a file of them fits in memory. */
const CHUNK_ROWS = 10_000;
const CREATE_REREJECTS =
  'CREATE TEMP TABLE IF NOT EXISTS dropstream_rereject (source_file text, source_line bigint, raw text, reason text, batch_id bigint) ON COMMIT DELETE ROWS';
const COPY_REREJECTS = 'COPY dropstream_rereject (source_file, source_line, raw, reason, batch_id) FROM STDIN';

/** The loaded file versions with rejected rows the selection picks, oldest first. */
export async function rejectedFiles(db: Queryable, selection: RejectSelection): Promise<RejectedFile[]> {
  const { rows } = await db.query(
    `SELECT f.id, f.name, f.batch_id, f.size, extract(epoch FROM f.mtime) * 1000 AS mtime_ms, f.header, f.layout, f.rows_defaulted, count(*) AS rejects
       FROM user_activity_rejects r JOIN ingest_files f ON f.name = r.source_file AND f.batch_id = r.batch_id AND f.status = 'loaded'
      WHERE r.source_file LIKE $1 AND r.reason ILIKE $2
      GROUP BY f.id ORDER BY f.id`,
    [selection.fileLike, selection.reasonLike],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    name: r.name,
    batchId: Number(r.batch_id),
    size: Number(r.size),
    mtimeMs: Number(r.mtime_ms),
    header: r.header,
    layout: r.layout,
    rowsDefaulted: r.rows_defaulted ?? { event_id: 0, product_id: 0, price: 0, quantity: 0 },
    rejects: Number(r.rejects),
  }));
}

/**
 * Replays the selected rows of each file in turn, on one connection: each file in a transaction of
 * its own (a stop or a crash keeps the files committed, and loses nothing of the others), or, in a
 * dry run, all in one that is rolled back at the end, so that each file's figures take account of
 * what the files before it would have loaded.
 */
export async function replayRejects(ctx: ReplayContext, files: RejectedFile[], selection: RejectSelection, onFile: (result: ReplayResult) => void): Promise<void> {
  await withClient(ctx.pool, async (client) => {
    if (ctx.dryRun) await client.query('BEGIN');
    for (const file of files) {
      if (ctx.signal.aborted) break;
      if (!ctx.dryRun) await client.query('BEGIN');
      const result = await replayFile(client, ctx, file, selection);
      if (!ctx.dryRun) {
        crashPoint('before-replay-commit', file.batchId);
        await client.query('COMMIT');
      }
      onFile(result);
    }
    if (ctx.dryRun) await client.query('ROLLBACK');
  });
}

/**
 * Reads the selected rejected rows of one file version again, in the caller's transaction, under the
 * reader's rules of now, from their raw text after the file's recorded header; see loadReplayed.
 */
async function replayFile(client: pg.PoolClient, ctx: ReplayContext, file: RejectedFile, selection: RejectSelection): Promise<ReplayResult> {
  const result: ReplayResult = { name: file.name, batchId: file.batchId, replayed: 0, loaded: 0, duplicate: 0, rejected: 0, newReason: 0, kept: 0 };
  const rejects = new RejectSpool();
  // Staged, with each row's raw text: a row still rejected after the merge keeps it.
  const reader = new FileReader({ name: file.name, path: join(ctx.inputDir, file.name), size: file.size, mtimeMs: file.mtimeMs }, file.batchId, ctx.rules, rejects, true);
  const skipped = headerProblem(reader, file);
  if (skipped) return { ...result, kept: file.rejects, skipped };
  try {
    // The ledger row is the file's lock: two replays of one file version run one after the other.
    await client.query('SELECT 1 FROM ingest_files WHERE id = $1 FOR UPDATE', [file.id]);
    if (ctx.rules.namedTimeZone) await client.query(`SELECT set_config('TimeZone', $1, true)`, [ctx.rules.namedTimeZone]);
    await client.query(CREATE_STAGE);
    await client.query(CREATE_REREJECTS);
    // Emptied at each commit; a dry run's one transaction holds several files.
    await client.query('TRUNCATE dropstream_stage, dropstream_rereject');
    const stage = async (conflicts: boolean) => {
      for await (const chunk of selectedRejects(client, file, selection, conflicts)) {
        const records = chunk.filter((r) => rawIsRecord(r.reason));
        result.kept += chunk.length - records.length;
        result.replayed += records.length;
        if (records.length > 0) await copyInto(client, COPY_STAGE, reader.copyRecords(records), ctx.copyStallMs);
      }
    };
    // A row rejected as a conflict passed the reader at its load, and its defaults were counted
    // then: such rows are read last, so that the defaults counted before them are the new ones.
    await stage(false);
    const defaulted = { ...reader.counts.defaulted };
    await stage(true);
    return { ...result, ...(await loadReplayed(client, file, rejects, defaulted, ctx.copyStallMs)) };
  } finally {
    await rejects.dispose();
  }
}

/**
 * Stores what a replay staged from one file version, in its transaction: the rows that now pass go
 * into user_activity exactly once (the staging path's dedupe, as for a file that repeats ids), leave
 * user_activity_rejects and are counted in the file's ledger row; the others keep their row, with
 * their new reason. What a file's transaction maintains from its stored rows is maintained here too.
 */
async function loadReplayed(
  client: pg.PoolClient,
  file: RejectedFile,
  rejects: RejectSpool,
  defaulted: Record<OptionalColumn, number>,
  copyStallMs: number,
): Promise<Pick<ReplayResult, 'loaded' | 'duplicate' | 'rejected' | 'newReason'>> {
  if (rejects.count > 0) await copyInto(client, COPY_REREJECTS, await rejects.stream(), copyStallMs);
  const loaded = (await client.query(MERGE_STAGE)).rowCount ?? 0;
  const conflicting = (await client.query(`INSERT INTO dropstream_rereject ${STAGED_CONFLICTS}`)).rowCount ?? 0;
  const moved =
    (
      await client.query(
        // Joins, not IN (… EXCEPT …): without statistics on the temp tables, that can be planned as a subquery run per row.
        `DELETE FROM user_activity_rejects r USING dropstream_stage s
          WHERE r.source_file = $1 AND r.batch_id = $2 AND r.source_line = s.source_line
            AND NOT EXISTS (SELECT FROM dropstream_rereject t WHERE t.source_line = s.source_line)`,
        [file.name, file.batchId],
      )
    ).rowCount ?? 0;
  const newReason =
    (
      await client.query(
        `UPDATE user_activity_rejects r SET reason = t.reason FROM dropstream_rereject t
          WHERE r.source_file = $1 AND r.batch_id = $2 AND r.source_line = t.source_line AND r.reason IS DISTINCT FROM t.reason`,
        [file.name, file.batchId],
      )
    ).rowCount ?? 0;
  const rowsDefaulted = Object.fromEntries(Object.entries(file.rowsDefaulted).map(([c, n]) => [c, n + defaulted[c as OptionalColumn]])) as Record<OptionalColumn, number>;
  if (moved > 0 || !isDeepStrictEqual(rowsDefaulted, file.rowsDefaulted)) await recordReplayed(client, file, moved, loaded, rowsDefaulted);
  return { loaded, duplicate: moved - loaded, rejected: rejects.count + conflicting, newReason };
}

/** The file's selected rejected rows, locked, in line order: those rejected as conflicts, or the others. */
async function* selectedRejects(client: pg.PoolClient, file: RejectedFile, selection: RejectSelection, conflicts: boolean) {
  let after = [0, 0];
  for (;;) {
    const { rows } = await client.query<{ id: string; source_line: string; raw: string; reason: string }>(
      `SELECT id, source_line, raw, reason FROM user_activity_rejects
        WHERE source_file = $1 AND batch_id = $2 AND reason ILIKE $3 AND (reason LIKE $4) = $5 AND (source_line, id) > ($6::bigint, $7::bigint)
        ORDER BY source_line, id LIMIT ${CHUNK_ROWS} FOR UPDATE`,
      [file.name, file.batchId, selection.reasonLike, CONFLICT_REASON_LIKE, conflicts, ...after],
    );
    if (rows.length === 0) return;
    yield rows.map((r) => ({ line: Number(r.source_line), raw: r.raw, reason: r.reason }));
    const last = rows.at(-1)!;
    after = [Number(last.source_line), Number(last.id)];
  }
}

/** Why the file's rows cannot be read again as its rows were: its header is not recorded, or reads otherwise now. */
function headerProblem(reader: FileReader, file: RejectedFile): string | undefined {
  if (file.header === null) return 'it was loaded before headers were recorded';
  try {
    reader.readRecordedHeader(file.header);
  } catch (err) {
    if (!(err instanceof FileRejectedError)) throw err;
    return `its header cannot be read with these settings: ${err.message}`;
  }
  const now = reader.counts.layout!;
  if (isDeepStrictEqual(now, file.layout)) return undefined;
  return `its header reads otherwise with these settings (${describeLayout(now)}) than when it was loaded (${describeLayout(file.layout)}): give the column settings it was loaded with`;
}
