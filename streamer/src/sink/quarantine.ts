import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { fsyncDir } from '../../../lib/durableFs.ts';

/** A name under `dir` that no file has yet: name.csv, name.1.csv, name.2.csv, … */
function freePath(dir: string, name: string): string {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  let candidate = join(dir, name);
  for (let i = 1; existsSync(candidate) || existsSync(`${candidate}.reason`); i++) candidate = join(dir, `${stem}.${i}${ext}`);
  return candidate;
}

/** Sets a file aside, with a `.reason` file beside it saying why. Returns where it went. */
export async function quarantine(path: string, name: string, quarantineDir: string, reason: string): Promise<string> {
  const target = freePath(quarantineDir, name);
  await mkdir(dirname(target), { recursive: true });
  await writeFile(`${target}.reason`, `${basename(name)}: ${reason}\nset aside at ${new Date().toISOString()}\n`);
  await rename(path, target);
  await fsyncDir(dirname(target));
  return target;
}
