import { randomBytes, randomInt } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../lib/log.ts';
import type { GeneratorConfig } from './config.ts';
import { createBadRowPicker } from './badRows.ts';
import { createEventSource } from './events.ts';
import { createLayout } from './layouts.ts';
import { writeEventFile } from './writeEventFile.ts';

export interface RunContext {
  log: Logger;
  /** Stops the run; the file being written is discarded, never left half-written in input. */
  signal?: AbortSignal;
}

export interface RunResult {
  /** Paths of the finished files in the input directory, in the order they were written. */
  files: string[];
}

/**
 * File names that sort lexically in creation order: the timestamp never goes back, even when
 * the clock does, and the sequence orders files written within the same millisecond.
 */
export function createFileNamer(now: () => number = Date.now): () => string {
  let last = 0;
  let sequence = 0;
  return () => {
    last = Math.max(last, now());
    sequence++;
    // 2026-11-21T10:15:30.123Z → 20261121T101530123Z
    const stamp = new Date(last).toISOString().replace(/[-:.]/g, '');
    // The random suffix keeps two generators sharing a data directory from colliding.
    return `events-${stamp}-${String(sequence).padStart(6, '0')}-${randomBytes(2).toString('hex')}.csv`;
  };
}

/** Writes files of fake events until config.files are done or the signal stops it. */
export async function runGenerator(config: GeneratorConfig, { log, signal }: RunContext): Promise<RunResult> {
  const tempDir = join(config.dataDir, 'temp');
  const inputDir = join(config.dataDir, 'input');
  await mkdir(tempDir, { recursive: true });
  await mkdir(inputDir, { recursive: true });

  // An unseeded run still gets a seed, logged, so that its events can be reproduced.
  const seed = config.seed ?? randomInt(2 ** 32);
  const nextEvent = createEventSource({ seed, purchaseRatio: config.purchaseRatio, startTime: config.startTime });
  const layout = createLayout(config.layout, seed);
  const badRows = config.badRows > 0 ? { pick: createBadRowPicker(config.badRows, seed, layout), seed } : undefined;
  const nextName = createFileNamer();
  log.info(
    {
      dataDir: config.dataDir,
      files: config.files ?? 'until stopped',
      rows: config.rows,
      intervalMs: config.intervalMs,
      purchaseRatio: config.purchaseRatio,
      seed,
      startTime: new Date(config.startTime).toISOString(),
      layout: config.layout,
      badRows: config.badRows,
    },
    'generator started',
  );

  const files: string[] = [];
  const totals = { rows: 0, bytes: 0, badRows: 0, purchases: 0, revenueCents: 0 };
  const started = performance.now();
  while ((config.files === undefined || files.length < config.files) && !signal?.aborted) {
    if (files.length > 0 && config.intervalMs > 0) {
      try {
        await sleep(config.intervalMs, undefined, { signal });
      } catch (err) {
        if (signal?.aborted) break;
        throw err;
      }
    }
    const name = nextName();
    const stats = await writeEventFile({ tempDir, inputDir, name, rows: config.rows, nextEvent, layout, badRows, signal });
    if (!stats) {
      log.info({ file: name }, 'file discarded, stopped while writing it');
      break;
    }
    files.push(stats.path);
    totals.rows += stats.rows;
    totals.bytes += stats.bytes;
    totals.badRows += stats.badRows;
    totals.purchases += stats.purchases;
    totals.revenueCents += stats.revenueCents;
    log.info(
      {
        file: stats.name,
        rows: stats.rows,
        bytes: stats.bytes,
        badRows: stats.badRows,
        purchases: stats.purchases,
        revenue: stats.revenueCents / 100,
      },
      'file written',
    );
  }

  const elapsedMs = Math.round(performance.now() - started);
  log.info(
    {
      files: files.length,
      rows: totals.rows,
      bytes: totals.bytes,
      badRows: totals.badRows,
      purchases: totals.purchases,
      revenue: totals.revenueCents / 100,
      elapsedMs,
      rowsPerSecond: elapsedMs > 0 ? Math.round((totals.rows * 1000) / elapsedMs) : undefined,
      stopped: signal?.aborted ?? false,
    },
    'generator finished',
  );
  return { files };
}
