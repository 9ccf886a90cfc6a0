import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { moveAside } from '../source/moveAside.ts';

/** Sets a file aside, with a `.reason` file beside it saying why. Returns where it went. */
export async function quarantine(path: string | Buffer, name: string, quarantineDir: string, reason: string): Promise<string> {
  const target = await moveAside(path, name, quarantineDir);
  await writeFile(`${target}.reason`, `${basename(name)}: ${reason}\nset aside at ${new Date().toISOString()}\n`);
  return target;
}
