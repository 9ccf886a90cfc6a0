import { unlink } from 'node:fs/promises';
import { moveAside } from './moveAside.ts';

export type CleanSource = 'off' | 'archive' | 'delete';

/**
 * What --clean-source does with a file once its batch is committed (never before: until then the
 * file is the only copy of rows not yet in the database). A file already gone is fine.
 */
export async function retireFile(path: string | Buffer, name: string, mode: CleanSource, archiveDir: string): Promise<void> {
  try {
    if (mode === 'archive') await moveAside(path, name, archiveDir);
    else if (mode === 'delete') await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
