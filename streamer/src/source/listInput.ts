import { readdir } from 'node:fs/promises';
import { inputName, type InputName } from './inputName.ts';

const SLASH = Buffer.from('/');

/**
 * The entries of the input directory, named relative to it; with `recursive`, the files in its
 * subdirectories too. Read as bytes, so that a name that is not UTF-8 still opens (see InputName).
 * A symbolic link to a directory is not entered (readdir's own recursive mode would follow it out
 * of the input directory).
 */
export async function listInput(dir: string, recursive: boolean): Promise<InputName[]> {
  const names: InputName[] = [];
  await walk(Buffer.from(dir), undefined, recursive, names);
  return names;
}

async function walk(dir: Buffer, prefix: Buffer | undefined, recursive: boolean, out: InputName[]): Promise<void> {
  const here = prefix ? Buffer.concat([dir, SLASH, prefix]) : dir;
  for (const entry of await readdir(here, { withFileTypes: true, encoding: 'buffer' })) {
    const relative = prefix ? Buffer.concat([prefix, SLASH, entry.name]) : entry.name;
    if (recursive && entry.isDirectory()) await walk(dir, relative, true, out);
    else out.push(inputName(relative));
  }
}
