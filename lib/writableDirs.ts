import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from './log.ts';

/** The directory itself, or while it does not exist the nearest one above it, in which it will be made. */
async function nearestExisting(dir: string): Promise<string> {
  for (let d = dir; ; d = dirname(d)) {
    try {
      await stat(d);
      return d;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(d) === d) throw err;
    }
  }
}

/** Why this process cannot write into `dir` and how to fix it, in one line; undefined when it can. */
async function unwritable(dir: string): Promise<string | undefined> {
  const target = await nearestExisting(dir);
  try {
    await access(target, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw err;
    const what = target === dir ? `cannot write to ${dir}` : `cannot create ${dir}: ${target} is not writable`;
    if (code === 'EROFS') return `${what} (EROFS): it is on a read-only file system; mount it read-write`;
    const uid = process.getuid?.();
    const gid = process.getgid?.();
    const owner = await stat(target);
    const mode = (owner.mode & 0o7777).toString(8).padStart(4, '0');
    return (
      `${what} (${code}): this process runs as uid ${uid}, gid ${gid}; ${target} belongs to uid ${owner.uid}, gid ${owner.gid} ` +
      `(mode ${mode}). Fix: give the data directory to uid ${uid} (sudo chown -R ${uid}:${gid} on it; under docker compose, ` +
      'on ./data on the host), or run as a user who may write it (docker compose: DROPSTREAM_UID and DROPSTREAM_GID in .env, ' +
      '`id -u` and `id -g` of the owner of ./data)'
    );
  }
}

/**
 * Checks at start that this process can write every directory it will write (each, or the one it
 * will be made in), so that a data directory of another user stops it with what to do about it
 * rather than an EACCES deep in its work. Logs the first problem (fatal) and returns true if any.
 */
export async function reportUnwritableDirs(log: Logger, dirs: string[]): Promise<boolean> {
  for (const dir of dirs) {
    const problem = await unwritable(dir);
    if (problem) {
      log.fatal(problem);
      return true;
    }
  }
  return false;
}
