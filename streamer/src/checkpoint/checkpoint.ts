import { mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../lib/durableFs.ts';
import { crashPoint } from '../crashPoint.ts';
import type { PlannedBatch } from '../planner.ts';
import type { BatchTotals } from '../sink/ledger.ts';

/** How many batches of history the checkpoint keeps; the database's ledger keeps all of it. */
const KEEP_BATCHES = 100;

export class CorruptCheckpointError extends Error {
  constructor(
    message: string,
    readonly batchId: number,
  ) {
    super(message);
  }
}

/**
 * The write-ahead log of micro-batches, one small JSON file per record:
 *   offsets/<id>.json  what batch <id> will process, written before it starts
 *   commits/<id>.json  written after every file of the batch is committed in the database
 * A batch with offsets and no commit was cut short: it is run again with the same files.
 * The database's ledger (ingest_files) stays the source of truth for which files are done.
 */
export class Checkpoint {
  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<Checkpoint> {
    for (const kind of ['offsets', 'commits']) {
      await mkdir(join(dir, kind), { recursive: true });
      // A temp file left by a crash mid-write was never the record: the rename is.
      for (const f of await readdir(join(dir, kind))) if (f.endsWith('.tmp')) await unlink(join(dir, kind, f));
    }
    return new Checkpoint(dir);
  }

  async writeOffsets(batch: PlannedBatch): Promise<void> {
    await writeFileAtomic(this.path('offsets', batch.id), `${JSON.stringify(batch, null, 1)}\n`);
  }

  async writeCommit(batchId: number, totals: BatchTotals): Promise<void> {
    await writeFileAtomic(this.path('commits', batchId), `${JSON.stringify({ id: batchId, committedAt: new Date().toISOString(), ...totals })}\n`, () =>
      crashPoint('mid-checkpoint-write', batchId),
    );
    await this.compact(batchId);
  }

  /** The newest batch planned, and whether it was committed. */
  async latest(): Promise<{ batch: PlannedBatch; committed: boolean } | undefined> {
    const id = (await this.ids('offsets')).at(-1);
    if (id === undefined) return undefined;
    const batch = await this.read<PlannedBatch>('offsets', id);
    if (batch?.id !== id || !Array.isArray(batch.files)) throw new CorruptCheckpointError(`checkpoint file ${this.path('offsets', id)} is not a batch record`, id);
    const committed = (await this.ids('commits')).includes(id);
    return { batch, committed };
  }

  /**
   * Moves a damaged checkpoint aside (kept for inspection) and starts a new one that records
   * `last`, the newest batch the database ledger knows, as planned and committed.
   */
  async rebuild(last: { batch: PlannedBatch; totals: BatchTotals } | undefined): Promise<string> {
    const damaged = `${this.dir}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(this.dir, damaged);
    await Checkpoint.open(this.dir);
    if (last) {
      await this.writeOffsets(last.batch);
      await this.writeCommit(last.batch.id, last.totals);
    }
    return damaged;
  }

  private path(kind: 'offsets' | 'commits', id: number): string {
    return join(this.dir, kind, `${id}.json`);
  }

  private async ids(kind: 'offsets' | 'commits'): Promise<number[]> {
    return (await readdir(join(this.dir, kind)))
      .filter((f) => /^\d+\.json$/.test(f))
      .map((f) => Number(f.slice(0, -5)))
      .sort((a, b) => a - b);
  }

  private async read<T>(kind: 'offsets' | 'commits', id: number): Promise<T> {
    const path = this.path(kind, id);
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch (err) {
      throw new CorruptCheckpointError(`checkpoint file ${path} cannot be read: ${(err as Error).message}`, id);
    }
  }

  private async compact(latestId: number): Promise<void> {
    for (const kind of ['offsets', 'commits'] as const) {
      for (const id of await this.ids(kind)) {
        if (id <= latestId - KEEP_BATCHES) await unlink(this.path(kind, id)).catch(() => undefined);
      }
    }
  }
}
