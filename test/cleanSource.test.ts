import { describe, expect, it } from 'vitest';
import { appendFile, copyFile, mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { finished, generate, startStreamer, streamAvailableNow, tableState, waitForOutput } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

describe('--clean-source and processed files', () => {
  const ws = useWorkspace();

  it('archive moves each file out of input once committed, never over another archived file', async () => {
    await generate(ws.data.dir, { files: 3, rows: 50, seed: 51 });
    const names = (await readdir(ws.data.input)).sort();
    await mkdir(join(ws.data.dir, 'archive'));
    await copyFile(join(ws.data.input, names[0]!), join(ws.data.dir, 'archive', names[0]!)); // already taken
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--clean-source', 'archive']);
    expect(run.code, run.output).toBe(0);
    expect(await readdir(ws.data.input)).toEqual([]);
    expect((await readdir(join(ws.data.dir, 'archive'))).sort()).toEqual([...names, names[0]!.replace(/\.csv$/, '.1.csv')].sort());
    expect((await tableState(ws.db)).count).toBe(150);
  });

  it('delete removes committed files; a crash between commit and clean-up is finished at the next start', async () => {
    await generate(ws.data.dir, { files: 4, rows: 50, seed: 52 });
    const crashed = await streamAvailableNow(ws.data.dir, ws.db, ['--clean-source', 'delete', '--max-files-per-batch', '2'], {
      DROPSTREAM_CRASH_AT: 'after-db-commit@1',
    });
    expect(crashed.signal).toBe('SIGKILL');
    expect(await readdir(ws.data.input)).toHaveLength(4); // committed in the database, not yet cleaned
    const run = await streamAvailableNow(ws.data.dir, ws.db, ['--clean-source', 'delete']);
    expect(run.code, run.output).toBe(0);
    expect(await readdir(ws.data.input)).toEqual([]);
    expect((await tableState(ws.db)).count).toBe(200);
  });

  it('a processed file appended to afterwards is loaded as a new version (only its new row); one deleted afterwards causes no error', async () => {
    await generate(ws.data.dir, { files: 2, rows: 50, seed: 53 });
    const [first, second] = (await readdir(ws.data.input)).sort();
    const streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '200']);
    await waitForOutput(streamer, '"batch":1,');
    await appendFile(join(ws.data.input, first!), '00000000-0000-4000-8000-000000000001,u,view,p,1.00,1,2026-01-01T00:00:00Z\n');
    await unlink(join(ws.data.input, second!));
    await waitForOutput(streamer, `${first} came back with new content; loaded as version 2: 1 new rows, 50 already stored`);
    streamer.kill('SIGTERM');
    const run = await finished(streamer);
    expect(run.code, run.output).toBe(0);
    expect((await tableState(ws.db)).count).toBe(101);
  });
});
