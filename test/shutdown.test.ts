import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { logLines } from './fixtures/checks.ts';
import { finished, generate, startStreamer, streamAvailableNow, tableState, waitForOutput } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

/** The streamer's last word on a stop. */
const stopMessage = (output: string) => logLines(output).map((l) => String(l.msg)).filter((m) => /^(stopped|stopping at once)/.test(m)).at(-1);

describe('stopping: the message says what became of the batch in flight', () => {
  const ws = useWorkspace({ input: true });

  async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const start = Date.now();
    while (!(await check())) {
      if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  /** A small file, then a big one: the big one's COPY runs once the small one is committed (one file at a time). */
  async function startOnSmallThenBig() {
    await generate(ws.data.dir, { files: 1, rows: 200, seed: 91 });
    await generate(ws.data.dir, { files: 1, rows: 300_000, seed: 92 });
    const streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '0', '--file-concurrency', '1']);
    await waitFor('the COPY of the big file', async () => {
      const { rows } = await ws.db.query<{ copying: boolean; committed: string }>(
        `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dropstream'
                          AND state = 'active' AND query LIKE 'COPY user_activity %') AS copying,
                (SELECT count(*) FROM ingest_files) AS committed`,
      ).catch(() => ({ rows: [] })); // before the streamer has created its tables
      return rows[0]?.copying === true && rows[0].committed === '1';
    });
    return streamer;
  }

  const ledger = async () =>
    (
      await ws.db.query<{ files: string; finished: boolean | null }>(
        `SELECT (SELECT count(*) FROM ingest_files WHERE batch_id = 1) AS files, (SELECT finished_at IS NOT NULL FROM ingest_batches WHERE id = 1) AS finished`,
      )
    ).rows[0]!;

  it.each(['SIGTERM', 'SIGHUP', 'SIGINT'] as const)('%s when idle, after a batch: exit 0, "nothing was in flight", the lock released', async (signal) => {
    await generate(ws.data.dir, { files: 1, rows: 100, seed: 90 });
    const streamer = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100']);
    await waitForOutput(streamer, '"batch":1,');
    streamer.kill(signal);
    const run = await finished(streamer);
    expect(run.code, run.output).toBe(0);
    expect(stopMessage(run.output)).toBe('stopped: nothing was in flight');
    expect(existsSync(join(ws.data.dir, 'streamer.lock'))).toBe(false);
  });

  it('SIGTERM during a big COPY: the batch finishes, the message says it was committed, and so does the ledger', async () => {
    const streamer = await startOnSmallThenBig();
    streamer.kill('SIGTERM');
    const run = await finished(streamer);
    expect(run.code, run.output).toBe(0);
    expect(stopMessage(run.output)).toBe('stopped: batch 1 was committed');
    expect(await ledger()).toEqual({ files: '2', finished: true });
    expect(existsSync(join(ws.data.dir, 'checkpoint', 'commits', '1.json'))).toBe(true);
    expect((await tableState(ws.db)).count).toBe(300_200);
  });

  it('a second SIGTERM during a big COPY stops at once: the message counts the files committed as the ledger does; the rest loads at the next start', async () => {
    const streamer = await startOnSmallThenBig();
    streamer.kill('SIGTERM');
    await waitForOutput(streamer, 'stopping after the batch in flight');
    streamer.kill('SIGTERM');
    const run = await finished(streamer);
    expect(run.code, run.output).toBe(130);
    const { files, finished: batchFinished } = await ledger();
    expect(batchFinished).toBe(false);
    // The COPY runs for seconds: the big file is cut short in all but a very slow run, and the message agrees with the ledger either way.
    expect(stopMessage(run.output)).toBe(`stopping at once: batch 1 was cut short (${files} of 2 files committed, the rest resumes at the next start)`);

    const again = await streamAvailableNow(ws.data.dir, ws.db);
    expect(again.code, again.output).toBe(0);
    expect(again.output).toContain('resuming a batch that was not committed');
    expect(await ledger()).toEqual({ files: '2', finished: true });
    expect((await tableState(ws.db)).count).toBe(300_200);
  });
});
