import { describe, expect, it } from 'vitest';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate, streamAvailableNow, tableState } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

const HEADER = 'event_id,user_id,event_type,product_id,price,quantity,event_time\n';
const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const row = (i: number) => `${id(i)},user_${i},view,SKU-${i},3.00,1,2026-05-01T10:00:00Z\n`;

describe('exactly once across files', () => {
  const ws = useWorkspace({ input: true });

  it('a file dropped again under another name is recognised by its content and not loaded twice', async () => {
    await generate(ws.data.dir, { files: 2, rows: 300, seed: 21 });
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    const before = await tableState(ws.db);

    const { rows: files } = await ws.db.query<{ name: string }>('SELECT name FROM ingest_files ORDER BY name');
    await copyFile(join(ws.data.input, files[0]!.name), join(ws.data.input, 'renamed-copy.csv'));
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);

    expect(await tableState(ws.db)).toEqual(before);
    const { rows } = await ws.db.query('SELECT status, reason, rows_loaded FROM ingest_files WHERE name = $1', ['renamed-copy.csv']);
    expect(rows).toEqual([{ status: 'duplicate', reason: `same content as ${files[0]!.name}, already loaded`, rows_loaded: '0' }]);
  });

  it('an event_id seen before, in another file or twice in one file, is stored once and counted as duplicate', async () => {
    await writeFile(join(ws.data.input, 'a.csv'), HEADER + row(1) + row(2) + row(3));
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    // b.csv repeats 2 and 3 from a.csv, and 4 twice within itself.
    await writeFile(join(ws.data.input, 'b.csv'), HEADER + row(2) + row(4) + row(3) + row(4) + row(5));
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);

    const table = await tableState(ws.db);
    expect([...table.ids].sort()).toEqual([1, 2, 3, 4, 5].map(id));
    expect(table.count).toBe(5);
    const { rows } = await ws.db.query(
      'SELECT name, rows_read, rows_loaded, rows_rejected, rows_duplicate FROM ingest_files ORDER BY name',
    );
    expect(rows).toEqual([
      { name: 'a.csv', rows_read: '3', rows_loaded: '3', rows_rejected: '0', rows_duplicate: '0' },
      { name: 'b.csv', rows_read: '5', rows_loaded: '2', rows_rejected: '0', rows_duplicate: '3' },
    ]);
    // The first occurrence stays: id 4 comes from b.csv line 3, not line 5.
    const four = await ws.db.query('SELECT source_file, source_line FROM user_activity WHERE event_id = $1', [id(4)]);
    expect(four.rows).toEqual([{ source_file: 'b.csv', source_line: '3' }]);
  });

  it('the same event_id with different content: the first stays, the later one is rejected saying so', async () => {
    const changed = (i: number) => `${id(i)},user_${i},purchase,SKU-${i},3.00,1,2026-05-01T10:00:00Z\n`;
    await writeFile(join(ws.data.input, 'a.csv'), HEADER + row(1) + row(2));
    expect((await streamAvailableNow(ws.data.dir, ws.db)).code).toBe(0);
    // b.csv: 1 again as it was (duplicate), 2 changed (rejected), 3 new, then 3 changed within the file.
    await writeFile(join(ws.data.input, 'b.csv'), HEADER + row(1) + changed(2) + row(3) + changed(3));
    const run = await streamAvailableNow(ws.data.dir, ws.db);
    expect(run.code, run.output).toBe(0);

    const { rows } = await ws.db.query('SELECT rows_read, rows_loaded, rows_rejected, rows_duplicate FROM ingest_files WHERE name = $1', ['b.csv']);
    expect(rows).toEqual([{ rows_read: '4', rows_loaded: '1', rows_rejected: '2', rows_duplicate: '1' }]);
    const rejects = await ws.db.query('SELECT source_line, raw, reason FROM user_activity_rejects ORDER BY source_line');
    expect(rejects.rows).toEqual([
      { source_line: '3', raw: changed(2).trimEnd(), reason: `event_id ${id(2)} was already loaded with different content (from a.csv line 3)` },
      { source_line: '5', raw: changed(3).trimEnd(), reason: `event_id ${id(3)} was already loaded with different content (from b.csv line 4)` },
    ]);
    const kept = await ws.db.query('SELECT event_type FROM user_activity WHERE event_id = $1', [id(2)]);
    expect(kept.rows).toEqual([{ event_type: 'view' }]);
  });

  it('two identical files in the same batch: one is loaded, the other recorded as its duplicate', async () => {
    await writeFile(join(ws.data.input, 'one.csv'), HEADER + row(7) + row(8));
    await writeFile(join(ws.data.input, 'two.csv'), HEADER + row(7) + row(8));
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--file-concurrency', '2']);
    expect(run.code, run.output).toBe(0);
    expect((await tableState(ws.db)).count).toBe(2);
    const { rows } = await ws.db.query<{ status: string }>('SELECT status FROM ingest_files ORDER BY status');
    expect(rows.map((r) => r.status)).toEqual(['duplicate', 'loaded']);
  });
});
