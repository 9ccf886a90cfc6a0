import { open, rename, writeFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsync a directory so that a rename or create inside it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync a file's content to disk. */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
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
 * Replace a file atomically: temp file, fsync, rename, fsync of the directory.
 * `beforeRename` runs between the temp file and the rename (the crash tests stop there).
 */
export async function writeFileAtomic(path: string, content: string, beforeRename?: () => void): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temp, content, { flush: true });
    beforeRename?.();
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(path));
}
