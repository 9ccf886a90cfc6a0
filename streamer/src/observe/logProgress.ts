import bytes from 'bytes';
import { figures, type Logger } from '../../../lib/log.ts';
import type { StreamState } from './streamState.ts';

/** While the backlog keeps growing, the warning is said again at most this often. */
const WARN_AGAIN_MS = 60_000;

const size = (n: number) => bytes.format(n, { unitSeparator: ' ', decimalPlaces: 1 }) ?? `${n} B`;

/**
 * The log's view of the stream: one line per batch, its figures in the message (the fields, for
 * JSON and LOG_LEVEL=debug, carry the whole progress record), and a warning while the backlog grows.
 */
export function logProgress(state: StreamState, log: Logger): void {
  let warnedAt: number | undefined;
  state.onBatch(({ progress: p, files }) => {
    const notLoaded = files.filter((f) => f.status !== 'loaded').map((f) => ({ file: f.name, status: f.status, reason: f.reason }));
    const source = p.sources[0]!;
    const waiting = source.metrics.numFilesOutstanding;
    const ms = p.durationMs.triggerExecution;
    log.info(
      figures({
        batch: p.batchId,
        files: source.numFiles,
        bytes: source.numBytes,
        rowsRead: p.numInputRows,
        rowsLoaded: p.sink.numOutputRows,
        rowsRejected: p.sink.numRejectedRows,
        rowsDuplicate: p.sink.numDuplicateRows,
        durationMs: ms,
        rowsPerSec: Math.round(p.processedRowsPerSecond),
        ...(notLoaded.length > 0 && { notLoaded }),
        progress: p,
      }),
      `batch ${p.batchId}: ${source.numFiles} files, ${p.sink.numOutputRows} rows loaded, ${p.sink.numRejectedRows} rejected, ${p.sink.numDuplicateRows} duplicate in ${ms} ms` +
        (waiting > 0 ? `; ${waiting} files (${size(source.metrics.numBytesOutstanding)}) waiting` : ''),
    );

    const growth = state.backlogGrowth();
    if (!growth) {
      warnedAt = undefined;
      return;
    }
    if (warnedAt !== undefined && Date.now() - warnedAt < WARN_AGAIN_MS) return;
    warnedAt = Date.now();
    log.warn(
      figures({ backlogFiles: waiting, backlogBytes: source.metrics.numBytesOutstanding, ...growth }),
      `the backlog has grown over the last ${growth.batches} batches, to ${waiting} files (${size(source.metrics.numBytesOutstanding)}): ` +
        `files arrive at ${growth.filesArrivingPerSecond}/s and are loaded at ${growth.filesLoadedPerSecond}/s (${Math.round(growth.rowsLoadedPerSecond).toLocaleString('en-US')} rows/s); ` +
        'processing is slower than input (more --file-concurrency, larger --max-files-per-batch, or a faster database)',
    );
  });
}
