import { mkdir } from 'node:fs/promises';
import { afterEach, beforeEach } from 'vitest';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { killLeftovers, makeDataDir, type DataDir } from './pipeline.ts';

export interface Workspace {
  db: TestDatabase;
  data: DataDir;
}

/**
 * A fresh database and data directory for every test of the calling describe block, dropped and
 * removed after it. `input`: create the input directory too (for tests that write files into it).
 */
export function useWorkspace(opts: { input?: boolean } = {}): Workspace {
  const ws = {} as Workspace;
  beforeEach(async () => {
    ws.db = await createTestDatabase();
    ws.data = await makeDataDir();
    if (opts.input) await mkdir(ws.data.input, { recursive: true });
  });
  afterEach(async () => {
    killLeftovers();
    await ws.db.drop();
    await ws.data.remove();
  });
  return ws;
}
