// Memory: peak RSS of the streamer while it loads one file of about 1 GB (the baseline loads the
// same file, for rows/s). A file larger than --max-bytes-per-batch goes alone in its batch, so this
// is the streamer's worst case for buffering.
import type { Corpus } from './corpus.ts';
import type { Stat } from './support.ts';
import { measureThroughput, type ThroughputOptions, type ThroughputResult } from './throughput.ts';

export interface MemoryResult extends ThroughputResult {
  /** The streamer's peak RSS over its runs. */
  peakRssBytes: Stat | null;
}

export async function measureMemory(bigFile: Corpus, opts: ThroughputOptions): Promise<MemoryResult> {
  const baseline = opts.variants[0] ?? 'streamer';
  const result = await measureThroughput(bigFile, { ...opts, variants: [...new Set([baseline, 'streamer' as const])] });
  return { ...result, peakRssBytes: result.variants.find((v) => v.id === 'streamer')?.peakRssBytes ?? null };
}
