import { existsSync } from 'node:fs';
import { CorruptCheckpointError } from './checkpoint/checkpoint.ts';
import { runBatch, type BatchContext } from './runBatch.ts';
import { isBatchFinished, lastBatchId, lastFinishedBatch, latestFingerprints, type ProcessedVersion } from './sink/ledger.ts';
import { sha256 } from './sink/fingerprint.ts';
import { inputPath } from './source/inputName.ts';
import { listInput } from './source/listInput.ts';
import { retireFile } from './source/retireFile.ts';

/**
 * Picks up where the last run stopped: a batch with offsets and no commit record (a stop or a
 * crash cut it short) runs again with exactly the same files; committed files a crash left in
 * input before --clean-source could retire them are retired. Returns the next batch id.
 */
export async function recover(ctx: BatchContext, processed: ReadonlyMap<string, ProcessedVersion>): Promise<number> {
  const { cfg, log } = ctx;
  const latest = await readLatest(ctx);
  const nextId = Math.max(await ctx.retry('reading the batch ledger', () => lastBatchId(ctx.pool)), latest?.batch.id ?? 0) + 1;
  if (latest && !latest.committed) {
    log.info({ batch: latest.batch.id, files: latest.batch.files.length }, 'resuming a batch that was not committed');
    const files = latest.batch.files
      .map((f) => ({ ...f, path: inputPath(cfg.inputDir, f) }))
      .filter((f) => existsSync(f.path) || (log.warn({ file: f.name }, 'a file of the resumed batch is gone'), false));
    ctx.progress.startTrigger();
    await runBatch(ctx, { ...latest.batch, files }, true);
  }
  if (cfg.cleanSource !== 'off') await retireLeftovers(ctx, processed);
  return nextId;
}

/**
 * Files a crash left in input between their commit and --clean-source. Only a file with exactly
 * the content of its name's newest processed version goes: any other is a new version to load.
 */
async function retireLeftovers({ cfg, pool, retry }: BatchContext, processed: ReadonlyMap<string, ProcessedVersion>): Promise<void> {
  const candidates = (await listInput(cfg.inputDir, cfg.recursive).catch(() => [])).filter((f) => processed.has(f.name));
  if (candidates.length === 0) return;
  const fingerprints = await retry('reading the file ledger', () => latestFingerprints(pool, candidates.map((f) => f.name)));
  for (const f of candidates) {
    const path = inputPath(cfg.inputDir, f);
    const fingerprint = await sha256(path).catch(() => undefined);
    if (fingerprint !== undefined && fingerprint === fingerprints.get(f.name)) {
      await retry(`--clean-source ${cfg.cleanSource} of ${f.name}`, () => retireFile(path, f.name, cfg.cleanSource, cfg.archiveDir));
    }
  }
}

/**
 * The newest batch in the checkpoint. A damaged record is rebuilt from the database ledger when
 * the database shows that batch finished (nothing is lost: the ledger has every file), or when
 * --rebuild-checkpoint says so; otherwise the streamer stops and says what to do.
 */
async function readLatest({ cfg, pool, log, checkpoint }: BatchContext) {
  try {
    if (!cfg.rebuildCheckpoint) return await checkpoint.latest();
  } catch (err) {
    if (!(err instanceof CorruptCheckpointError)) throw err;
    if (!(await isBatchFinished(pool, err.batchId))) {
      throw new Error(
        `${err.message}. Batch ${err.batchId} is not finished in the database, so the checkpoint cannot be repaired by itself. ` +
          'Run the streamer once with --rebuild-checkpoint: the damaged checkpoint is kept aside, and the files of that batch ' +
          'that the database has not committed are picked up again as new files (nothing is lost or loaded twice).',
      );
    }
    log.warn({ err: err.message }, 'damaged checkpoint record of a batch the database has finished: rebuilding the checkpoint');
  }
  const damaged = await checkpoint.rebuild(await lastFinishedBatch(pool));
  log.warn({ movedTo: damaged }, 'checkpoint rebuilt from the database ledger; the old one is kept aside');
  return checkpoint.latest();
}
