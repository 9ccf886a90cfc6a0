import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { BatchProgress } from './progress.ts';
import type { StreamHistory } from './streamState.ts';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** A row of user_activity_rejects, for /api/rejects. */
export interface RejectedRow {
  file: string;
  line: number;
  reason: string;
  raw: string;
  batchId: number;
  rejectedAt: string;
}

export async function saveProgress(db: Queryable, progress: BatchProgress): Promise<void> {
  await db.query('UPDATE ingest_batches SET progress = $2::jsonb WHERE id = $1', [progress.batchId, JSON.stringify(progress)]);
}

/** The newest progress records, newest first. */
export async function recentProgress(db: Queryable, limit: number): Promise<BatchProgress[]> {
  const { rows } = await db.query<{ progress: BatchProgress }>('SELECT progress FROM ingest_batches WHERE progress IS NOT NULL ORDER BY id DESC LIMIT $1', [limit]);
  return rows.map((r) => r.progress);
}

/** The newest rejected rows, newest first. */
export async function recentRejects(db: Queryable, limit: number): Promise<RejectedRow[]> {
  const { rows } = await db.query<{ source_file: string; source_line: string; reason: string; raw: string; batch_id: string; rejected_at: Date }>(
    'SELECT source_file, source_line, reason, raw, batch_id, rejected_at FROM user_activity_rejects ORDER BY id DESC LIMIT $1',
    [limit],
  );
  return rows.map((r) => ({ file: r.source_file, line: Number(r.source_line), reason: r.reason, raw: r.raw, batchId: Number(r.batch_id), rejectedAt: r.rejected_at.toISOString() }));
}

/** The stream's id (made by the first streamer that finds none), its last progress record and its last finished batch. */
export async function streamHistory(db: Queryable): Promise<StreamHistory> {
  await db.query('INSERT INTO ingest_stream (id) VALUES ($1) ON CONFLICT DO NOTHING', [randomUUID()]);
  const { rows } = await db.query<{ id: string }>('SELECT id FROM ingest_stream');
  const last = await db.query<{ id: string; finished_at: Date }>('SELECT id, finished_at FROM ingest_batches WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1');
  const finished = last.rows[0];
  return {
    id: rows[0]!.id,
    lastProgress: (await recentProgress(db, 1))[0] ?? null,
    lastSuccess: finished ? { batchId: Number(finished.id), at: finished.finished_at.toISOString() } : null,
  };
}
