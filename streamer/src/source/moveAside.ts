import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { moveFile } from '../../../lib/durableFs.ts';

/** A name under `dir` that no file has yet: name.csv, name.1.csv, name.2.csv, … */
function freePath(dir: string, name: string): string {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  let candidate = join(dir, name);
  for (let i = 1; existsSync(candidate) || existsSync(`${candidate}.reason`); i++) candidate = join(dir, `${stem}.${i}${ext}`);
  return candidate;
}

/** Moves a file out of the input directory into `dir` (on any filesystem), never over another file. Returns where it went. */
export async function moveAside(path: string | Buffer, name: string, dir: string): Promise<string> {
  const target = freePath(dir, name);
  await mkdir(dirname(target), { recursive: true });
  await moveFile(path, target);
  return target;
}
