import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { readdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { compiled } from '../lib/paths.ts';
import { DataDirLockedError, lockDataDir, type LockHolder } from '../streamer/src/dataDirLock.ts';
import { logLines } from './fixtures/checks.ts';
import { finished, generate, makeDataDir, startStreamer, waitForOutput, type DataDir } from './support/pipeline.ts';
import { useWorkspace } from './support/workspace.ts';

const BOOT_ID = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const procStart = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
};
const lockOf = async (dir: string) => JSON.parse(await readFile(join(dir, 'streamer.lock'), 'utf8')) as LockHolder;
/** What the lock machinery leaves in a data directory: the lock, its temp files, guards and sockets. */
const lockFiles = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith('streamer.')).sort();

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('one streamer per data directory', () => {
  const ws = useWorkspace({ input: true });
  const loaded = async () => (await ws.db.query<{ name: string; batch_id: string }>(`SELECT name, batch_id FROM ingest_files WHERE status = 'loaded' ORDER BY batch_id`)).rows;

  it('a second streamer exits 1 at once naming the first, which keeps working; after a SIGKILL of the first, a new one starts at once', async () => {
    const args = ['--trigger-interval-ms', '100'];
    const first = startStreamer(ws.data.dir, ws.db, args);
    await waitForOutput(first, 'watching for files');
    const holder = await lockOf(ws.data.dir);
    expect(holder).toMatchObject({ pid: first.pid, host: hostname() });

    const second = await finished(startStreamer(ws.data.dir, ws.db, args));
    expect(second.code, second.output).toBe(1);
    // Its one line: it never opened the database.
    expect(logLines(second.output).map((l) => [l.level, l.msg])).toEqual([
      [
        60,
        `Another streamer is already running on data directory ${ws.data.dir}: pid ${first.pid} on host ${hostname()}, running since ${holder.startedAt} ` +
          `(lock ${join(ws.data.dir, 'streamer.lock')}). Stop it first (kill -TERM ${first.pid}: it finishes its batch and exits), or give this one another --data-dir.`,
      ],
    ]);
    expect(await lockOf(ws.data.dir)).toEqual(holder);

    await generate(ws.data.dir, { files: 1, rows: 100, seed: 81 });
    await waitFor('the first streamer to load the file', async () => (await loaded()).length === 1);
    first.kill('SIGKILL');
    await finished(first);

    const spawned = Date.now();
    const third = startStreamer(ws.data.dir, ws.db, args);
    await waitForOutput(third, 'watching for files');
    // A start takes 1-3 s on a busy 2-core machine; a lock judged stale by its age would keep it out for 60 s.
    expect(Date.now() - spawned, 'ms from spawn to watching').toBeLessThan(20_000);
    expect(await lockOf(ws.data.dir)).toMatchObject({ pid: third.pid });
    await generate(ws.data.dir, { files: 1, rows: 100, seed: 82 });
    await waitFor('the new streamer to load the second file', async () => (await loaded()).length === 2);
    expect((await loaded()).map((r) => r.batch_id)).toEqual(['1', '2']);

    third.kill('SIGTERM');
    expect((await finished(third)).code).toBe(0);
    // The lock and its socket are gone with a clean stop, and the dead holder's socket was removed with its lock.
    expect(await lockFiles(ws.data.dir)).toEqual([]);
  });

  it('a streamer whose lock was taken over stops after its batch, exit 1, naming who took it', async () => {
    const first = startStreamer(ws.data.dir, ws.db, ['--trigger-interval-ms', '100']);
    await waitForOutput(first, 'watching for files');
    const other: LockHolder = { pid: 4242, host: 'elsewhere', startedAt: '2026-01-01T00:00:00.000Z', token: 'other' };
    await writeFile(join(ws.data.dir, 'taken.tmp'), JSON.stringify(other));
    await rename(join(ws.data.dir, 'taken.tmp'), join(ws.data.dir, 'streamer.lock'));
    const run = await finished(first); // it checks its lock every 10 s
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain(`the lock ${join(ws.data.dir, 'streamer.lock')} was taken over by pid 4242 on host elsewhere, running since 2026-01-01T00:00:00.000Z`);
    expect(await lockOf(ws.data.dir), 'the other one keeps its lock').toEqual(other);
  });
});

describe('the data directory lock', () => {
  let data: DataDir;
  const children: ChildProcess[] = [];
  beforeEach(async () => {
    data = await makeDataDir();
  });
  afterEach(async () => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    await data.remove();
  });

  const spawnSleeper = () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(child);
    return child;
  };
  const writeLock = async (holder: Partial<LockHolder>, ageMs = 0) => {
    const path = join(data.dir, 'streamer.lock');
    await writeFile(path, JSON.stringify({ pid: 4242, host: hostname(), startedAt: '2026-01-01T00:00:00.000Z', bootId: BOOT_ID, token: 'old', ...holder }));
    const at = new Date(Date.now() - ageMs);
    await utimes(path, at, at);
  };
  const noop = () => undefined;

  it.each<[string, () => Promise<void>]>([
    ['its process is gone (SIGKILL, power cut)', async () => {
      const gone = spawn('true');
      await once(gone, 'exit');
      await writeLock({ pid: gone.pid });
    }],
    ['its process was killed and its parent has not reaped it (a zombie)', async () => {
      // The shell becomes `sleep 60`, which never waits for the child it inherits.
      const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
      children.push(parent);
      const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
      const pid = Number(line.toString().trim());
      await waitFor('the child to become a zombie', () => readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '));
      await writeLock({ pid, procStart: procStart(pid) });
    }],
    ['it names our own pid (a container restarted, its new process got the same pid)', () => writeLock({ pid: process.pid, procStart: '1' })],
    ['its pid belongs to another process now (its start time differs)', () => writeLock({ pid: spawnSleeper().pid, procStart: '1' })],
    ['this machine booted since (same host, another boot id), even if the pid is alive again', async () => {
      const pid = spawnSleeper().pid!;
      await writeLock({ pid, procStart: procStart(pid), bootId: 'another-boot' });
    }],
    ['its holder, in another container of this machine, no longer listens on its socket', () => writeLock({ host: 'container-1', socket: 'streamer.gone.sock' })],
    ['it comes from another host that has not refreshed it for over 60 s', () => writeLock({ host: 'elsewhere', bootId: 'theirs' }, 61_000)],
    ['it cannot be read (a torn write after a power cut)', async () => {
      await writeFile(join(data.dir, 'streamer.lock'), '\0\0\0');
      const past = new Date(Date.now() - 5_000);
      await utimes(join(data.dir, 'streamer.lock'), past, past);
    }],
  ])('a lock is taken over at once when %s', async (_case, setUp) => {
    await setUp();
    const lock = await lockDataDir(data.dir, noop);
    expect(await lockOf(data.dir)).toMatchObject({ pid: process.pid, host: hostname(), bootId: BOOT_ID, procStart: procStart(process.pid) });
    await lock.release();
    expect(await lockFiles(data.dir)).toEqual([]);
  });

  it('a live holder is never taken over: on this machine (by pid and start time), in another container (its socket answers), on another host (a fresh lock)', async () => {
    const pid = spawnSleeper().pid!;
    await writeLock({ pid, procStart: procStart(pid) });
    await expect(lockDataDir(data.dir, noop)).rejects.toThrow(new DataDirLockedError(
      `Another streamer is already running on data directory ${data.dir}: pid ${pid} on host ${hostname()}, running since 2026-01-01T00:00:00.000Z ` +
        `(lock ${join(data.dir, 'streamer.lock')}). Stop it first (kill -TERM ${pid}: it finishes its batch and exits), or give this one another --data-dir.`,
    ));

    const server = createServer((c) => c.destroy());
    await new Promise<void>((resolve) => server.listen(join(data.dir, 'streamer.live.sock'), resolve));
    try {
      // Pid 4242 means nothing here: its socket says it lives.
      await writeLock({ host: 'container-1', socket: 'streamer.live.sock' });
      await expect(lockDataDir(data.dir, noop)).rejects.toThrow(/pid 4242 on host container-1.*kill -TERM 4242 on container-1: it finishes its batch and exits\), or give this one another --data-dir\.$/);
    } finally {
      server.close();
    }

    await writeLock({ host: 'elsewhere', bootId: 'theirs' }, 30_000);
    await expect(lockDataDir(data.dir, noop)).rejects.toThrow(/pid 4242 on host elsewhere.*If elsewhere is down, its lock counts as free 60 s after its last refresh\.$/);
    expect(await lockOf(data.dir)).toMatchObject({ host: 'elsewhere' });
  });

  it('of starters racing over a stale lock exactly one wins, round after round (each winner then SIGKILLed)', async () => {
    const script = `
      const { lockDataDir } = await import(${JSON.stringify(pathToFileURL(compiled('streamer/src/dataDirLock.ts')).href)});
      try {
        await lockDataDir(${JSON.stringify(data.dir)}, () => undefined);
        console.log('won');
        setInterval(() => undefined, 60_000);
      } catch (err) {
        console.log(err.constructor.name + ': ' + err.message);
        process.exit(1);
      }`;
    for (let round = 1; round <= 4; round++) {
      const racers = Array.from({ length: 6 }, () => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        children.push(child);
        let output = '';
        child.stdout!.on('data', (d) => (output += d));
        return { child, output: () => output };
      });
      await waitFor(`every racer of round ${round} to answer`, () => racers.every((r) => r.output().includes('\n')));
      const winners = racers.filter((r) => r.output() === 'won\n');
      expect(winners, `round ${round}: ${racers.map((r) => r.output()).join('')}`).toHaveLength(1);
      for (const r of racers.filter((r) => r !== winners[0])) expect(r.output()).toMatch(/^DataDirLockedError: Another streamer .*(already running|taking data directory .* over right now)/);
      expect(await lockOf(data.dir)).toMatchObject({ pid: winners[0]!.child.pid });
      winners[0]!.child.kill('SIGKILL');
      await once(winners[0]!.child, 'exit');
    }
    const lock = await lockDataDir(data.dir, noop);
    await lock.release();
    expect(await lockFiles(data.dir), 'no temp file, guard or socket left behind').toEqual([]);
  });
});
