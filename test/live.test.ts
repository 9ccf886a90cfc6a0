import { describe, expect, it } from 'vitest';
import { copyFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { finished, generate, startStreamer, streamAvailableNow, tableState, waitForOutput } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

const HEADER = 'event_id,user_id,event_type,product_id,price,quantity,event_time\n';
const row = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')},user_${i},purchase,SKU-${i},1.25,2,2026-05-01T10:00:00Z\n`;

describe('continuous mode', () => {
  const ws = useWorkspace({ input: true });

  async function waitForRows(n: number, timeoutMs: number): Promise<number> {
    const start = Date.now();
    while (Date.now() - start < timeoutMs) {
      const { rows } = await ws.db.query<{ n: string }>('SELECT count(*) AS n FROM user_activity');
      if (Number(rows[0]!.n) >= n) return Date.now() - start;
      await sleep(25);
    }
    throw new Error(`fewer than ${n} rows after ${timeoutMs} ms`);
  }

  it('a file dropped while the streamer runs is queryable within two trigger intervals; SIGTERM exits cleanly', async () => {
    const interval = 1500;
    const streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', String(interval), '--file-stable-ms', '200']);
    while (!streamer.output().includes('watching for files')) await sleep(50);

    for (let i = 1; i <= 3; i++) {
      const temp = join(ws.data.dir, `drop-${i}.tmp`);
      await writeFile(temp, HEADER + row(i));
      await rename(temp, join(ws.data.input, `drop-${i}.csv`));
      const latency = await waitForRows(i, 4 * interval);
      expect(latency, `file ${i} became queryable after ${latency} ms`).toBeLessThanOrEqual(2 * interval);
    }
    // A plain copy of an existing file under another name: same content, not loaded twice.
    await copyFile(join(ws.data.input, 'drop-1.csv'), join(ws.data.input, 'copy-of-drop-1.csv'));
    await sleep(2.5 * interval);

    streamer.kill('SIGTERM');
    const run = await finished(streamer);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain('"msg":"stopped: nothing was in flight"');
    const { rows } = await ws.db.query<{ name: string; status: string }>('SELECT name, status FROM ingest_files ORDER BY name');
    expect(rows).toEqual([
      { name: 'copy-of-drop-1.csv', status: 'duplicate' },
      { name: 'drop-1.csv', status: 'loaded' },
      { name: 'drop-2.csv', status: 'loaded' },
      { name: 'drop-3.csv', status: 'loaded' },
    ]);
    expect(Number((await ws.db.query('SELECT count(*) AS n FROM user_activity')).rows[0]!.n)).toBe(3);
  });

  it('a file set aside, fixed and dropped again under the same name, is loaded in the same run', async () => {
    const streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100']);
    while (!streamer.output().includes('watching for files')) await sleep(50);
    await writeFile(join(ws.data.input, 'fixme.csv'), 'event,who\nview,me\n');
    while (!streamer.output().includes('file set aside')) await sleep(50);
    await writeFile(join(ws.data.input, 'fixme.csv'), HEADER + row(7));
    await waitForRows(1, 10_000);
    streamer.kill('SIGTERM');
    expect((await finished(streamer)).code).toBe(0);
    const { rows } = await ws.db.query<{ status: string }>('SELECT status FROM ingest_files WHERE name = $1 ORDER BY id', ['fixme.csv']);
    expect(rows.map((r) => r.status)).toEqual(['quarantined', 'loaded']);
  });

  it('SIGTERM in the middle of a batch exits promptly with 0; the next start loads the file exactly once', async () => {
    await generate(ws.data.dir, { files: 1, rows: 150_000, seed: 61 });
    const streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '0']);
    await waitForOutput(streamer, 'watching for files');
    await sleep(300); // into the COPY of the file
    streamer.kill('SIGTERM');
    const stopped = Date.now();
    const run = await finished(streamer);
    expect(run.code, run.output).toBe(0);
    expect(Date.now() - stopped, 'seconds to stop').toBeLessThan(10_000);
    const again = await streamAvailableNow(ws.data.dir, ws.db);
    expect(again.code, again.output).toBe(0);
    expect((await tableState(ws.db)).count).toBe(150_000);
  });
});
