import pg from 'pg';
import type { Logger } from '../../../lib/log.ts';
import { crashPoint } from '../crashPoint.ts';
import { describeLayout } from '../reader/contract/layout.ts';
import { FileChangedError, FileReader, FileRejectedError, type ReadRules, type SourceFile } from '../reader/fileReader.ts';
import { BINARY_COLUMNS } from '../reader/copyBinary.ts';
import { RejectSpool } from '../reader/rejectSpool.ts';
import { withClient } from '../db/pool.ts';
import { classifyError, describeDatabaseError, type Retry } from '../retry.ts';
import { copyInto } from './copyInto.ts';
import { sha256 } from './fingerprint.ts';
import { emptyResult, loadedFilesOfSize, loadedFileWithFingerprint, recordFile, recordLayout, type FileLayout, type FileResult } from './ledger.ts';
import { quarantine } from './quarantine.ts';

export interface SinkContext {
  pool: pg.Pool;
  log: Logger;
  rules: ReadRules;
  quarantineDir: string;
  copyStallMs: number;
  /** Waits out transient errors of steps that must not be redone with the whole file (setting it aside). */
  retry: Retry;
}

const ROW_COLUMNS = 'event_id, user_id, event_type, product_id, price, quantity, event_time, source_event_id, attributes, source_file, source_line, batch_id';
const COPY_ROWS = `COPY user_activity (${ROW_COLUMNS}) FROM STDIN`;
const COPY_BINARY_ROWS = `COPY user_activity (${BINARY_COLUMNS}) FROM STDIN (FORMAT binary)`;
/**
 * What the server fills in the source_file and batch_id that COPY binary leaves out with, for the
 * rest of the transaction: a statement of its own, so that it goes in one round trip with the BEGIN.
 */
export const setRowDefaults = (fileName: string, batchId: number) =>
  `SELECT set_config('dropstream.source_file', ${pg.escapeLiteral(fileName)}, true), set_config('dropstream.batch_id', '${batchId}', true)`;
export const COPY_STAGE = `COPY dropstream_stage (${ROW_COLUMNS}, raw) FROM STDIN`;
const COPY_REJECTS = 'COPY user_activity_rejects (source_file, source_line, raw, reason, batch_id) FROM STDIN';
// Rows of a file that repeats event ids land here first. The first occurrence of an id is stored;
// a later one with the same content counts as a duplicate, with other content it is rejected.
export const CREATE_STAGE = 'CREATE TEMP TABLE IF NOT EXISTS dropstream_stage (LIKE user_activity INCLUDING DEFAULTS, raw text) ON COMMIT DELETE ROWS';
export const MERGE_STAGE = `INSERT INTO user_activity (${ROW_COLUMNS}) SELECT ${ROW_COLUMNS} FROM dropstream_stage ORDER BY source_line ON CONFLICT (event_id) DO NOTHING`;
/** The reason STAGED_CONFLICTS gives, as a LIKE pattern: a row rejected so was valid. */
export const CONFLICT_REASON_LIKE = 'event\\_id % was already loaded with different content (from %';
/** The staged rows whose event_id is stored with other content, as rows of user_activity_rejects. */
export const STAGED_CONFLICTS = `
  SELECT s.source_file, s.source_line, s.raw,
         format('event_id %s was already loaded with different content (from %s line %s)', s.event_id, u.source_file, u.source_line),
         s.batch_id
    FROM dropstream_stage s JOIN user_activity u USING (event_id)
   WHERE (u.source_file, u.source_line, u.batch_id) IS DISTINCT FROM (s.source_file, s.source_line, s.batch_id)
     AND (u.user_id, u.event_type, u.product_id, u.price, u.quantity, u.event_time)
         IS DISTINCT FROM (s.user_id, s.event_type, s.product_id, s.price, s.quantity, s.event_time)`;
const REJECT_CONFLICTS = `INSERT INTO user_activity_rejects (source_file, source_line, raw, reason, batch_id) ${STAGED_CONFLICTS}`;

function isUniqueViolationOnEventId(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string };
  return e.code === '23505' && e.constraint === 'user_activity_pkey';
}

/**
 * Loads one file in one transaction: its valid rows, its rejected rows and its ledger row commit
 * together or not at all. The common case copies straight into user_activity; a file that turns
 * out to repeat an event id already stored is copied again through a staging table that skips them.
 */
export async function loadFile(ctx: SinkContext, file: SourceFile, batchId: number): Promise<FileResult> {
  try {
    // Same size as a loaded file is the only way to have the same content: then compare fingerprints first.
    const sameSize = await loadedFilesOfSize(ctx.pool, file.size);
    if (sameSize.length > 0) {
      const fingerprint = await sha256(file.path);
      const twin = sameSize.find((f) => f.fingerprint === fingerprint);
      if (twin) return await recordDuplicate(ctx, file, fingerprint, twin.name, batchId);
    }
    try {
      return await loadInTransaction(ctx, file, batchId, 'direct');
    } catch (err) {
      if (!isUniqueViolationOnEventId(err)) throw err;
      return await loadInTransaction(ctx, file, batchId, 'staged');
    }
  } catch (err) {
    if (err instanceof FileChangedError) {
      ctx.log.warn({ file: file.name }, `${err.message}; it will be read again once it is stable`);
      return emptyResult(file, 'changed', err.message);
    }
    if (err instanceof FileRejectedError) return setAside(ctx, file, err.message, batchId);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return emptyResult(file, 'changed', 'the file disappeared before it was read');
    if (code === 'EACCES' || code === 'EPERM') return setAside(ctx, file, 'the file cannot be read (permission denied)', batchId);
    // Only what the rows cause sets a file aside; the retry around the batch handles the rest.
    if (classifyError(err) === 'content') return setAside(ctx, file, `the database refused the file: ${describeDatabaseError(err)}`, batchId);
    throw err;
  }
}

type TransactionOutcome =
  | { kind: 'committed'; result: FileResult; newLayout: FileLayout | undefined }
  | { kind: 'empty'; fingerprint: string }
  | { kind: 'not-recorded'; fingerprint: string };

async function loadInTransaction(ctx: SinkContext, file: SourceFile, batchId: number, mode: 'direct' | 'staged'): Promise<FileResult> {
  const outcome = await withClient(ctx.pool, async (client): Promise<TransactionOutcome> => {
    const rejects = new RejectSpool();
    try {
      const reader = new FileReader(file, batchId, ctx.rules, rejects, mode === 'staged');
      // One round trip (each costs the client ≈ 0.3 ms of CPU): the transaction and its settings.
      const begin = ['BEGIN'];
      // Timestamps without a zone are read in this zone by PostgreSQL, which knows its daylight saving.
      if (ctx.rules.namedTimeZone) begin.push(`SELECT set_config('TimeZone', ${pg.escapeLiteral(ctx.rules.namedTimeZone)}, true)`);
      if (reader.binary) begin.push(setRowDefaults(file.name, batchId));
      await client.query(begin.join('; '));
      let rowsLoaded: number;
      let conflicting = 0;
      if (mode === 'direct') {
        rowsLoaded = await copyInto(client, reader.binary ? COPY_BINARY_ROWS : COPY_ROWS, (handedOver) => reader.copyData(handedOver), ctx.copyStallMs);
      } else {
        await client.query(CREATE_STAGE);
        await copyInto(client, COPY_STAGE, (handedOver) => reader.copyData(handedOver), ctx.copyStallMs);
        rowsLoaded = (await client.query(MERGE_STAGE)).rowCount ?? 0;
        conflicting = (await client.query(REJECT_CONFLICTS)).rowCount ?? 0;
      }
      // Only after a COPY that ended: one cut off may still have pieces in the socket.
      reader.release();
      const counts = reader.counts;
      if (counts.empty) {
        await client.query('ROLLBACK');
        return { kind: 'empty', fingerprint: counts.fingerprint };
      }
      if (rejects.count > 0) await copyInto(client, COPY_REJECTS, await rejects.stream(), ctx.copyStallMs);
      if (counts.ignoredColumns.length > 0) ctx.log.warn({ file: file.name, columns: counts.ignoredColumns }, 'columns not used by dropstream are ignored');

      const result: FileResult = {
        name: file.name,
        status: 'loaded',
        bytes: counts.bytes,
        rowsRead: counts.rowsRead,
        rowsLoaded,
        rowsRejected: counts.rowsRejected + conflicting,
        rowsDuplicate: counts.rowsValid - rowsLoaded - conflicting,
        eventTimes: reader.eventTimes,
      };
      const layout = counts.layout && (await recordLayout(client, counts.layout, file.name));
      const fileLayout = layout && { id: layout.id, report: counts.layout!, defaulted: counts.defaulted, header: counts.header! };
      const version = await recordFile(client, file, counts.fingerprint, result, batchId, fileLayout);
      if (version === false) {
        await client.query('ROLLBACK');
        return { kind: 'not-recorded', fingerprint: counts.fingerprint };
      }
      crashPoint('before-file-commit', batchId);
      await client.query('COMMIT');
      return { kind: 'committed', result: { ...result, version }, newLayout: layout?.isNew ? fileLayout : undefined };
    } finally {
      await rejects.dispose();
    }
  });

  switch (outcome.kind) {
    case 'committed':
      if (outcome.newLayout) ctx.log.info({ file: file.name, layoutId: outcome.newLayout.id, layout: outcome.newLayout.report }, `new layout #${outcome.newLayout.id}, first met in ${file.name}: ${describeLayout(outcome.newLayout.report)}`);
      return outcome.result;
    case 'empty':
      return recordOutcome(ctx, file, outcome.fingerprint, emptyResult(file, 'empty', 'the file holds no header and no rows'), batchId);
    case 'not-recorded': {
      // Another file with this content committed first (two copies in one batch).
      const twin = await loadedFileWithFingerprint(ctx.pool, outcome.fingerprint);
      if (twin) return recordDuplicate(ctx, file, outcome.fingerprint, twin, batchId);
      throw new Error(`${file.name} could not be recorded in the ledger, and no loaded file has its content`);
    }
  }
}

async function recordDuplicate(ctx: SinkContext, file: SourceFile, fingerprint: string, twin: string, batchId: number): Promise<FileResult> {
  const reason = twin === file.name ? 'same content as an earlier version of this name, already loaded' : `same content as ${twin}, already loaded`;
  return recordOutcome(ctx, file, fingerprint, emptyResult(file, 'duplicate', reason), batchId);
}

/** A file that loads no rows still gets its ledger row, so that every file is accounted for. */
async function recordOutcome(ctx: SinkContext, file: SourceFile, fingerprint: string | null, result: FileResult, batchId: number): Promise<FileResult> {
  const version = await recordFile(ctx.pool, file, fingerprint, result, batchId);
  return version === false ? result : { ...result, version };
}

async function setAside(ctx: SinkContext, file: SourceFile, reason: string, batchId: number): Promise<FileResult> {
  const fingerprint = await sha256(file.path).catch(() => null);
  const result = await recordOutcome(ctx, file, fingerprint, emptyResult(file, 'quarantined', reason), batchId);
  crashPoint('before-quarantine-move', batchId);
  const target = await quarantine(file.path, file.name, ctx.quarantineDir, reason, ctx.retry);
  ctx.log.warn({ file: file.name, movedTo: target, reason }, 'file set aside');
  return result;
}
