import type { SourceFile } from './reader/fileReader.ts';

export interface PlannedBatch {
  id: number;
  plannedAt: string;
  files: SourceFile[];
}

export interface BatchLimits {
  maxFiles: number;
  maxBytes: number;
}

/** Oldest first, then by name: the order files arrived in, and the same order on every replay. */
export function arrivalOrder(a: SourceFile, b: SourceFile): number {
  return a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Takes the next micro-batch from the ready files: in arrival order, up to the caps on files and
 * bytes. A file larger than the byte cap goes alone, so that no file waits forever.
 */
export function planBatch(id: number, ready: SourceFile[], limits: BatchLimits): PlannedBatch {
  const files: SourceFile[] = [];
  let bytes = 0;
  for (const file of [...ready].sort(arrivalOrder)) {
    if (files.length >= limits.maxFiles) break;
    if (files.length > 0 && bytes + file.size > limits.maxBytes) break;
    files.push(file);
    bytes += file.size;
  }
  return { id, plannedAt: new Date().toISOString(), files };
}
