import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project root: the nearest directory above this module with a package.json. The same answer
 * whether this runs from lib/ (the sources, under vitest) or from dist/lib/ (compiled).
 */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    if (dirname(dir) === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = dirname(dir);
  }
  return dir;
}

export const ROOT = findRoot();

/**
 * The compiled JavaScript of a source file given from the root ('streamer/src/main.ts' →
 * <root>/dist/streamer/src/main.js): what a child process runs, as the npm scripts do.
 */
export function compiled(source: string): string {
  const path = join(ROOT, 'dist', source.replace(/\.ts$/, '.js'));
  if (!existsSync(path)) throw new Error(`${relative(ROOT, path)} is missing: run \`npm run build\` first`);
  return path;
}
