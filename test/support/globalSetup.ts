import { execFileSync } from 'node:child_process';
import { mkdtemp, chmod } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../lib/embeddedPostgres.ts';
import { freePort } from '../../lib/freePort.ts';
import { ROOT } from '../../lib/paths.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A connection string to a server on which tests may create and drop databases. */
    adminUrl: string;
  }
}

let embedded: EmbeddedDatabase | undefined;

/**
 * `npm run build`: the tests run the programs compiled, as the npm scripts do, so that they never
 * test a stale dist/, however vitest was started (a build with nothing to do takes ~0.5 s).
 */
function build(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-b', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
}

/** Tests use DATABASE_URL when it is set; otherwise a throwaway embedded PostgreSQL. */
export async function setup(project: TestProject): Promise<void> {
  build();
  project.onTestsRerun(build); // watch mode
  if (process.env.DATABASE_URL) {
    project.provide('adminUrl', process.env.DATABASE_URL);
    return;
  }
  const parent = await mkdtemp(join(tmpdir(), 'dropstream-test-pg-'));
  await chmod(parent, 0o755);
  embedded = await startEmbeddedPostgres({
    dir: join(parent, 'db'),
    port: await freePort(),
    database: 'postgres',
    throwaway: true,
  });
  project.provide('adminUrl', embedded.url);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
}
