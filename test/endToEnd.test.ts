import { describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expectedFromFiles, generate, streamAvailableNow, tableState } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

describe('generator → input → streamer --available-now → user_activity', () => {
  const ws = useWorkspace();

  it('stores exactly the generated events: count, ids and revenue equal the files', async () => {
    await generate(ws.data.dir, { files: 12, rows: 400, seed: 7 });
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--max-files-per-batch', '5']);
    expect(run.code, run.output).toBe(0);

    const expected = await expectedFromFiles([ws.data.input]);
    const table = await tableState(ws.db);
    expect(table.count).toBe(12 * 400);
    expect(table.count).toBe(expected.ids.size);
    expect(table.ids).toEqual(expected.ids);
    expect(table.revenueCents).toBe(expected.revenueCents);

    // Micro-batches of at most 5 files; every file has its ledger row, with rows read = loaded.
    const batches = await ws.db.query<{ id: string; files: number }>('SELECT id, files FROM ingest_batches ORDER BY id');
    expect(batches.rows.map((b) => b.files)).toEqual([5, 5, 2]);
    const ledger = await ws.db.query<{ name: string; status: string; rows_read: string; rows_loaded: string }>(
      'SELECT name, status, rows_read, rows_loaded FROM ingest_files ORDER BY name',
    );
    expect(ledger.rows.map((r) => r.name)).toEqual((await readdir(ws.data.input)).sort());
    for (const r of ledger.rows) expect([r.status, Number(r.rows_read), Number(r.rows_loaded)]).toEqual(['loaded', 400, 400]);

    // Each row knows where it came from.
    const sources = await ws.db.query<{ source_file: string; lines: string; min: string; max: string }>(
      'SELECT source_file, count(*) AS lines, min(source_line) AS min, max(source_line) AS max FROM user_activity GROUP BY 1',
    );
    expect(sources.rows).toHaveLength(12);
    for (const s of sources.rows) expect([Number(s.lines), Number(s.min), Number(s.max)]).toEqual([400, 2, 401]);

    // The checkpoint has a commit for every batch it planned.
    const offsets = (await readdir(join(ws.data.dir, 'checkpoint', 'offsets'))).sort();
    expect(await readdir(join(ws.data.dir, 'checkpoint', 'commits'))).toEqual(expect.arrayContaining(offsets));
    expect(run.output).toMatch(/"batch":3,.*"rowsLoaded":800/);
  });

  it('a second run over the same directory loads nothing again', async () => {
    await generate(ws.data.dir, { files: 3, rows: 100, seed: 11 });
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    const second = await streamAvailableNow(ws.data.dir, ws.db);
    expect(second.code, second.output).toBe(0);
    expect((await tableState(ws.db)).count).toBe(300);
    expect((await ws.db.query('SELECT 1 FROM ingest_batches')).rowCount).toBe(1);
  });
});
