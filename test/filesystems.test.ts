import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestDatabase } from './support/db.ts';
import { expectedFromFiles, finished, generate, killLeftovers, startStreamer, streamAvailableNow, tableState, waitForOutput } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

/** Whether this machine lets the tests mount a tmpfs (root in a container that allows it). */
function mountingAllowed(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'dropstream-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmdirSync(dir);
  }
}
const canMount = mountingAllowed();
const needsMount = (name: string) => (canMount ? name : `${name} (skipped: mounting a tmpfs is not allowed on this machine)`);

const BAD_FILE = 'not-events.csv';
const BAD_CONTENT = 'colour,size\nred,12\n';
const FULL = 'disk full (no space left) at';

const sorted = async (dir: string) => (await readdir(dir)).sort();
const loadedFiles = async (db: TestDatabase) => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ingest_files WHERE status = 'loaded'`)).rows[0]!.n);

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The table holds exactly the events of the generated files in `dirs`, each once. */
async function expectExact(db: TestDatabase, dirs: string[]): Promise<void> {
  const expected = await expectedFromFiles(dirs);
  const table = await tableState(db);
  expect(table.count).toBe(expected.ids.size);
  expect(table.ids).toEqual(expected.ids);
  expect(table.revenueCents).toBe(expected.revenueCents);
}

async function contents(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of await sorted(dir)) files.set(name, await readFile(join(dir, name)));
  return files;
}

describe('data directories on other filesystems (tmpfs mounts)', () => {
  const ws = useWorkspace({ input: true });
  const mounted: string[] = [];
  // Registered after useWorkspace, so it runs before the workspace is removed (after-hooks run in reverse).
  afterEach(async () => {
    killLeftovers();
    for (const dir of mounted.splice(0).reverse()) {
      // A streamer just killed may still hold a file there for a moment: then detach the mount lazily.
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      }
      await rm(dir, { recursive: true, force: true });
    }
  });

  async function mountTmpfs(dir: string, size: string): Promise<string> {
    await mkdir(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
    mounted.push(dir);
    return dir;
  }

  /** Fills the filesystem of `dir` with a filler file; returns it. Checks that not one more byte fits. */
  async function fillUp(dir: string): Promise<string> {
    const filler = join(dir, 'filler');
    await expect(writeFile(filler, Buffer.alloc(64 << 20))).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(writeFile(join(dir, 'probe'), 'x')).rejects.toMatchObject({ code: 'ENOSPC' });
    await rm(join(dir, 'probe'), { force: true });
    return filler;
  }

  it.skipIf(!canMount)(
    needsMount('quarantine/ and archive/ on a tmpfs: files are moved across filesystems whole, with their reason, and a restart does nothing more'),
    async () => {
      const quarantineDir = await mountTmpfs(join(ws.data.dir, 'quarantine'), '16m');
      const archiveDir = await mountTmpfs(join(ws.data.dir, 'archive'), '16m');
      await generate(ws.data.dir, { files: 3, rows: 2000, seed: 81 });
      await writeFile(join(ws.data.input, BAD_FILE), BAD_CONTENT);
      const dropped = await contents(ws.data.input);

      const run = await streamAvailableNow(ws.data.dir, ws.db, ['--clean-source', 'archive']);
      expect(run.code, run.output).toBe(0);
      expect(run.output).not.toContain('EXDEV');
      expect(await readdir(ws.data.input)).toEqual([]);
      const archived = await contents(archiveDir);
      expect([...archived.keys()]).toEqual([...dropped.keys()].filter((n) => n !== BAD_FILE));
      for (const [name, bytes] of archived) expect(bytes.equals(dropped.get(name)!), `${name} archived byte for byte`).toBe(true);
      expect(await sorted(quarantineDir)).toEqual([BAD_FILE, `${BAD_FILE}.reason`]);
      expect(await readFile(join(quarantineDir, BAD_FILE), 'utf8')).toBe(BAD_CONTENT);
      expect(await readFile(join(quarantineDir, `${BAD_FILE}.reason`), 'utf8')).toMatch(new RegExp(`^${BAD_FILE}: .+\nset aside at `));
      await expectExact(ws.db, [archiveDir]);

      const again = await streamAvailableNow(ws.data.dir, ws.db, ['--clean-source', 'archive']);
      expect(again.code, again.output).toBe(0);
      expect(again.output).not.toContain('"batch":');
      expect(await contents(archiveDir)).toEqual(archived);
      expect(await sorted(quarantineDir)).toEqual([BAD_FILE, `${BAD_FILE}.reason`]);
      expect((await ws.db.query('SELECT 1 FROM ingest_files')).rowCount).toBe(4);
      await expectExact(ws.db, [archiveDir]);
    },
  );

  it.skipIf(!canMount)(
    needsMount('checkpoint/ on a tmpfs that fills up: the running streamer waits, says the disk is full and where, and loads the pending files exactly once when space is back'),
    async () => {
      const checkpointDir = await mountTmpfs(join(ws.data.dir, 'checkpoint'), '1m');
      await generate(ws.data.dir, { files: 2, rows: 500, seed: 82 });
      const streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100']);
      await waitForOutput(streamer, '"batch":1,');
      expect(await loadedFiles(ws.db)).toBe(2);

      const filler = await fillUp(checkpointDir);
      await generate(ws.data.dir, { files: 3, rows: 500, seed: 83 });
      await waitForOutput(streamer, `writing the offsets of batch 2 failed: ${FULL} ${checkpointDir}/offsets/2.json`);
      // Waited out, not fatal: it keeps trying, and nothing of the new files is committed meanwhile.
      await waitFor('a third attempt', async () => streamer.output().includes('"attempt":3'));
      expect(streamer.exitCode).toBeNull();
      expect(await loadedFiles(ws.db)).toBe(2);

      await rm(filler);
      await waitFor('every file', async () => (await loadedFiles(ws.db)) === 5);
      await waitForOutput(streamer, '"batch":2,');
      streamer.kill('SIGTERM');
      const run = await finished(streamer);
      expect(run.code, run.output).toBe(0);
      expect(run.output).not.toContain('database unavailable');
      await expectExact(ws.db, [ws.data.input]);

      const again = await streamAvailableNow(ws.data.dir, ws.db);
      expect(again.code, again.output).toBe(0);
      expect(again.output).not.toContain('"batch":');
      await expectExact(ws.db, [ws.data.input]);
    },
  );

  it.skipIf(!canMount)(
    needsMount('full quarantine/ and archive/ filesystems: setting aside and archiving wait for space, then finish whole'),
    async () => {
      const quarantineDir = await mountTmpfs(join(ws.data.dir, 'quarantine'), '1m');
      const archiveDir = await mountTmpfs(join(ws.data.dir, 'archive'), '1m');
      await generate(ws.data.dir, { files: 1, rows: 500, seed: 84 });
      const [good] = await readdir(ws.data.input);
      await writeFile(join(ws.data.input, BAD_FILE), BAD_CONTENT);
      const dropped = await contents(ws.data.input);
      const quarantineFiller = await fillUp(quarantineDir);
      const archiveFiller = await fillUp(archiveDir);

      const streamer = startStreamer(ws.data.dir, ws.db, ['--available-now', '--clean-source', 'archive']);
      await waitForOutput(streamer, `setting ${BAD_FILE} aside failed: ${FULL} ${quarantineDir}/${BAD_FILE}`);
      expect(await readdir(ws.data.input)).toContain(BAD_FILE);
      await rm(quarantineFiller);
      await waitForOutput(streamer, `--clean-source archive of ${good} failed: ${FULL} ${archiveDir}/${good}`);
      expect(await readdir(ws.data.input)).toEqual([good]);
      await rm(archiveFiller);
      const run = await finished(streamer);
      expect(run.code, run.output).toBe(0);

      expect(await readdir(ws.data.input)).toEqual([]);
      expect(await sorted(quarantineDir)).toEqual([BAD_FILE, `${BAD_FILE}.reason`]);
      expect(await readFile(join(quarantineDir, BAD_FILE), 'utf8')).toBe(BAD_CONTENT);
      expect(await sorted(archiveDir)).toEqual([good]);
      expect((await readFile(join(archiveDir, good!))).equals(dropped.get(good!)!)).toBe(true);
      await expectExact(ws.db, [archiveDir]);
    },
  );

  it.skipIf(!canMount)(
    needsMount('a full temporary directory while rejected rows spill to it: the file is loaded again once there is space, its rows and rejects once'),
    async () => {
      const spillDir = await mountTmpfs(await mkdtemp(join(tmpdir(), 'dropstream-spill-')), '8m');
      const filler = await fillUp(spillDir);
      const BAD_ROWS = 20_000;
      const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      let csv = 'event_id,user_id,event_type,product_id,price,quantity,event_time\n';
      // Every other row has an event type the streamer does not accept: over 1 MiB of rejects, which spill.
      for (let i = 0; i < 2 * BAD_ROWS; i++) csv += `${id(i)},user_${i},${i % 2 ? 'teleport' : 'view'},SKU-${i % 50},1.50,1,2026-05-01T10:00:00Z\n`;
      await writeFile(join(ws.data.input, 'many-rejects.csv'), csv);

      const streamer = startStreamer(ws.data.dir, ws.db, ['--available-now'], { TMPDIR: spillDir });
      await waitForOutput(streamer, `batch 1 failed: ${FULL} ${spillDir}/dropstream-rejects-`);
      await rm(filler);
      const run = await finished(streamer);
      expect(run.code, run.output).toBe(0);
      expect((await tableState(ws.db)).count).toBe(BAD_ROWS);
      const rejects = await ws.db.query<{ n: string }>('SELECT count(*) AS n FROM user_activity_rejects');
      expect(Number(rejects.rows[0]!.n)).toBe(BAD_ROWS);
      expect(await readdir(spillDir), 'the spill is cleaned up').toEqual([]);
    },
  );

  it.skipIf(!canMount)(
    needsMount('a cp that fails on a full disk leaves a torn or empty file; the complete copy made once space is back is loaded as its next version'),
    async () => {
      await generate(ws.data.dir, { files: 1, rows: 2000, seed: 71 });
      const [name] = await readdir(ws.data.input);
      const source = join(ws.data.dir, 'source.csv');
      await writeFile(source, await readFile(join(ws.data.input, name!)));
      await rm(join(ws.data.input, name!));
      const input = await mountTmpfs(ws.data.input, '256k');
      // Leave less room than the file needs: cp writes what fits, then fails.
      await writeFile(join(input, 'filler.bin'), Buffer.alloc(256 * 1024 - 64 * 1024));
      const streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100']);
      await waitForOutput(streamer, 'watching for files');
      expect(() => execFileSync('cp', [source, join(input, 'export.csv')], { stdio: 'pipe' })).toThrow(/No space left/);
      await waitFor('the torn copy recorded', async () => (await ws.db.query(`SELECT 1 FROM ingest_files WHERE name = 'export.csv'`)).rowCount === 1);
      await rm(join(input, 'filler.bin'));
      execFileSync('cp', [source, join(input, 'export.csv')]);
      await waitFor('the complete copy loaded', async () => (await ws.db.query(`SELECT 1 FROM ingest_files WHERE name = 'export.csv'`)).rowCount === 2);
      streamer.kill('SIGTERM');
      expect((await finished(streamer)).code).toBe(0);
      const { rows } = await ws.db.query<{ version: number; size: string }>(`SELECT version, size FROM ingest_files WHERE name = 'export.csv' ORDER BY id`);
      expect(rows.map((r) => r.version)).toEqual([1, 2]);
      expect(Number(rows[0]!.size)).toBeLessThan((await readFile(source)).length);
      const expected = await expectedFromFiles([input]);
      const table = await tableState(ws.db);
      expect(table.ids).toEqual(expected.ids);
      expect(table.count).toBe(2000);
    },
  );
});
