import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Names of the entries in the input directory, relative to it; with `recursive`, of the files in
 * its subdirectories too. A symbolic link to a directory is not entered (readdir's own recursive
 * mode would follow it out of the input directory).
 */
export async function listInput(dir: string, recursive: boolean, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const name = prefix ? join(prefix, entry.name) : entry.name;
    if (recursive && entry.isDirectory()) names.push(...(await listInput(dir, true, name)));
    else names.push(name);
  }
  return names;
}
