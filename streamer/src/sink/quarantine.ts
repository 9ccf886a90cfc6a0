import { basename } from 'node:path';
import { writeFileAtomic } from '../../../lib/durableFs.ts';
import type { Retry } from '../retry.ts';
import { moveAside } from '../source/moveAside.ts';

/**
 * Sets a file aside, with a `.reason` file beside it saying why. Returns where it went. Each step
 * waits out a full disk on its own: a retry of the whole would set the file aside a second time.
 */
export async function quarantine(path: string | Buffer, name: string, quarantineDir: string, reason: string, retry: Retry): Promise<string> {
  const target = await retry(`setting ${name} aside`, () => moveAside(path, name, quarantineDir));
  const text = `${basename(name)}: ${reason}\nset aside at ${new Date().toISOString()}\n`;
  await retry(`writing why ${name} was set aside`, () => writeFileAtomic(`${target}.reason`, text));
  return target;
}
