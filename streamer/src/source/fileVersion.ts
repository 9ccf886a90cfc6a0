import { lstat } from 'node:fs/promises';
import type { SourceFile } from '../reader/fileReader.ts';
import type { ProcessedVersion } from '../sink/ledger.ts';

/**
 * Whether a file with these stats is still the processed version of its name. The ledger keeps
 * mtimes to the microsecond, hence the tolerance. A file with other content but the same size and
 * mtime is taken for the same version: only a tool that forges mtimes writes one.
 */
export function sameVersion(stats: { size: number; mtimeMs: number }, version: ProcessedVersion): boolean {
  return stats.size === version.size && Math.abs(stats.mtimeMs - version.mtimeMs) < 0.002;
}

/** Whether the file at the path is still exactly the one that was read (not rewritten, not renamed over). */
export async function isUnchanged(file: SourceFile): Promise<boolean> {
  const now = await lstat(file.path).catch(() => undefined);
  return now !== undefined && now.size === file.size && now.mtimeMs === file.mtimeMs && (file.ino === undefined || now.ino === file.ino);
}
