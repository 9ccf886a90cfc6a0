import { describe, expect, it } from 'vitest';
import { appendFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expectedFromFiles, generate, streamAvailableNow, tableState } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

describe('a checkpoint that can be trusted', () => {
  const ws = useWorkspace();
  const offsets = () => join(ws.data.dir, 'checkpoint', 'offsets');

  /** Invariant: the table holds exactly the events of the files in input, each once. */
  async function expectExact(): Promise<void> {
    const expected = await expectedFromFiles([ws.data.input]);
    const table = await tableState(ws.db);
    expect(table.count).toBe(expected.ids.size);
    expect(table.ids).toEqual(expected.ids);
  }

  it('deleting the checkpoint directory loses nothing and loads nothing twice', async () => {
    await generate(ws.data.dir, { files: 4, rows: 100, seed: 41 });
    expect((await streamAvailableNow(ws.data.dir, ws.db, ['--max-files-per-batch', '2'])).code).toBe(0);
    await rm(join(ws.data.dir, 'checkpoint'), { recursive: true });
    await generate(ws.data.dir, { files: 2, rows: 100, seed: 42 });
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);
    await expectExact();
    // Batch ids go on from the database's ledger.
    expect((await ws.db.query('SELECT id FROM ingest_batches ORDER BY id')).rows.map((r) => Number(r.id))).toEqual([1, 2, 3]);
  });

  it('a torn record of a batch the database finished is rebuilt from the ledger by itself', async () => {
    await generate(ws.data.dir, { files: 3, rows: 100, seed: 43 });
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    await writeFile(join(offsets(), '1.json'), '{"id": 1, "files": [{"na');
    await generate(ws.data.dir, { files: 1, rows: 100, seed: 44 });
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain('checkpoint rebuilt from the database ledger');
    await expectExact();
    // The rebuilt record lists the batch's files as the ledger has them; the damaged one is kept aside.
    const rebuilt = JSON.parse(await readFile(join(offsets(), '1.json'), 'utf8'));
    expect(rebuilt.files.map((f: { name: string }) => f.name).sort()).toEqual(
      (await ws.db.query('SELECT name FROM ingest_files WHERE batch_id = 1 ORDER BY name')).rows.map((r) => r.name),
    );
    expect((await readdir(ws.data.dir)).filter((d) => d.startsWith('checkpoint.damaged-'))).toHaveLength(1);
  });

  it('a torn record of a batch the database did not finish stops the start with a message naming the file; --rebuild-checkpoint recovers exactly', async () => {
    await generate(ws.data.dir, { files: 4, rows: 100, seed: 45 });
    const crashed = await streamAvailableNow(ws.data.dir, ws.db, ['--max-files-per-batch', '2'], { DROPSTREAM_CRASH_AT: 'after-offsets@2' });
    expect(crashed.signal).toBe('SIGKILL');
    await appendFile(join(offsets(), '2.json'), '\u0000garbage');

    const refused = await streamAvailableNow(ws.data.dir, ws.db);
    expect(refused.code).toBe(1);
    expect(refused.output).toContain(`checkpoint file ${join(offsets(), '2.json')} cannot be read`);
    expect(refused.output).toContain('--rebuild-checkpoint');

    const rebuilt = await streamAvailableNow(ws.data.dir, ws.db, ['--rebuild-checkpoint']);
    expect(rebuilt.code, rebuilt.output).toBe(0);
    await expectExact();
  });

  it('keeps the last 100 batches of history, however long the stream runs', async () => {
    await generate(ws.data.dir, { files: 105, rows: 1, seed: 46 });
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--max-files-per-batch', '1', '--trigger-interval-ms', '0']);
    expect(run.code, run.output).toBe(0);
    const kept = (await readdir(offsets())).map((f) => Number(f.replace('.json', ''))).sort((a, b) => a - b);
    expect(kept).toHaveLength(100);
    expect(kept[0]).toBe(6);
    expect(await readdir(join(ws.data.dir, 'checkpoint', 'commits'))).toHaveLength(100);
  });
});
