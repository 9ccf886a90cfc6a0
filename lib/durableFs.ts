import { copyFile, open, rename, writeFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsync a directory so that a rename or create inside it survives a power cut. */
export async function fsyncDir(dir: string | Buffer): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync a file's content to disk (read-only is enough: the file may be one a user made read-only). */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Runs `work`, which writes `path`. A failed write does not say which file it was writing
 * ("ENOSPC: no space left on device, write"): the error is given `path`, so that it can say where.
 */
export async function writingTo<T>(path: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Error && !('path' in err)) Object.assign(err, { path });
    throw err;
  }
}

/**
 * Move a finished file into place so that a reader sees all of it or none of it:
 * its content is synced first, then the rename, then both directories.
 */
export async function durableRename(from: string, to: string): Promise<void> {
  await fsyncFile(from);
  await rename(from, to);
  await fsyncDir(dirname(to));
  if (dirname(from) !== dirname(to)) await fsyncDir(dirname(from));
}

/**
 * Move a file, also to another filesystem (an NFS share, a bind mount, a tmpfs), where rename
 * fails with EXDEV: there it is copied beside `to` under a temporary name, synced, renamed into
 * place, and only then removed from `from`. `to` never holds part of the file; a crash leaves at
 * worst the whole file in both places.
 */
export async function moveFile(from: string | Buffer, to: string): Promise<void> {
  try {
    await rename(from, to);
    await fsyncDir(dirname(to));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyAcross(from, to);
  }
}

async function copyAcross(from: string | Buffer, to: string): Promise<void> {
  const temp = `${to}.${process.pid}.tmp`;
  try {
    await copyFile(from, temp);
    await durableRename(temp, to);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await unlink(from);
  await fsyncDir(parentDir(from));
}

/** dirname, also of a path given as bytes (a name that is not UTF-8). */
function parentDir(path: string | Buffer): string | Buffer {
  return typeof path === 'string' ? dirname(path) : path.subarray(0, Math.max(1, path.lastIndexOf(0x2f)));
}

/**
 * Replace a file atomically: temp file, fsync, rename, fsync of the directory.
 * `beforeRename` runs between the temp file and the rename (the crash tests stop there).
 */
export async function writeFileAtomic(path: string, content: string, beforeRename?: () => void): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await writingTo(temp, () => writeFile(temp, content, { flush: true }));
    beforeRename?.();
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(path));
}
