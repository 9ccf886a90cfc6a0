import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** The streamer that holds a data directory, as written into <data-dir>/streamer.lock. */
export interface LockHolder {
  pid: number;
  host: string;
  /** When it took the lock (ISO 8601). */
  startedAt: string;
  /** Linux boot id, shared by the containers of one machine: another one means another boot or machine. */
  bootId?: string;
  /** Start of the process in clock ticks after boot (/proc/<pid>/stat): a pid reused by another process has another. */
  procStart?: string;
  /** A Unix socket the holder listens on (relative to the data directory): on its machine it answers while the holder lives, from any container. */
  socket?: string;
  /** Makes each lock's content unique: a lock is recognised by its content. */
  token: string;
}

/** The running streamer's hold on its data directory. Kept behind this interface: several workers on one input would share it differently. */
export interface DataDirLock {
  /** Another streamer took the data directory over (it judged this one gone). */
  readonly lost: boolean;
  release(): Promise<void>;
}

export class DataDirLockedError extends Error {}

const LOCK_FILE = 'streamer.lock';
/** The holder touches its lock this often. A holder on another machine is taken to be gone once its lock is STALE_MS old. */
const REFRESH_MS = 10_000;
const STALE_MS = 60_000;
/** sun_path holds 108 bytes on Linux, 104 on macOS. */
const MAX_SOCKET_PATH = 100;
/** A lock that cannot be read is being written by a starter that has no link() (see claim) for at most this long. */
const WRITING_MS = 2_000;

const HOST = hostname();
const BOOT_ID = readProc('/proc/sys/kernel/random/boot_id')?.trim();

/**
 * Takes <data-dir>/streamer.lock for this process, or throws DataDirLockedError naming the live
 * holder and what to do. A lock left by a holder that is gone (SIGKILL, power cut, a container
 * restarted with the same pid) is taken over at once: on the same machine, liveness is known, not
 * guessed from the lock's age. `onLost` is called if another streamer takes the lock over later.
 */
export async function lockDataDir(dataDir: string, onLost: (message: string) => void): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  const token = randomBytes(8).toString('hex');
  const listener = await listen(dataDir, `streamer.${token}.sock`);
  const me: LockHolder = { pid: process.pid, host: HOST, startedAt: new Date().toISOString(), bootId: BOOT_ID, procStart: procStat(process.pid)?.start, socket: listener?.name, token };
  const content = JSON.stringify(me);
  try {
    await claim(path, content, dataDir);
  } catch (err) {
    await listener?.close();
    throw err instanceof Held ? new DataDirLockedError(lockedMessage(dataDir, path, err)) : err;
  }

  let lost = false;
  const check = async () => {
    let now: string | undefined;
    try {
      now = await readFile(path, 'utf8');
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') return; // unreadable for now: check again next time
    }
    if (now === content) return void (await utimes(path, new Date(), new Date()).catch(() => undefined));
    lost = true;
    clearInterval(refresh);
    const other = parseHolder(now);
    onLost(`the lock ${path} was ${other ? `taken over by ${describe(other)}` : 'removed'}: another streamer may be working in ${dataDir}`);
  };
  const refresh = setInterval(() => void check(), REFRESH_MS).unref();
  return {
    get lost() {
      return lost;
    },
    async release() {
      clearInterval(refresh);
      if (!lost) await removeIf(path, content, content, dataDir).catch(() => undefined);
      await listener?.close();
    },
  };
}

/** The lock (or a guard) is held by a live process; holder undefined: one is writing it right now. */
class Held extends Error {
  constructor(
    readonly path: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(`${path} is held`);
  }
}

/**
 * Creates `path` holding `content`, taking it over from a holder that is gone; throws Held for a
 * live one. The content is written whole into a temp file and link()ed into place, which fails if
 * `path` exists: no two starters both create it, and nobody reads a half-written lock.
 */
async function claim(path: string, content: string, dataDir: string): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, content, { flag: 'wx' });
  try {
    for (;;) {
      try {
        await link(temp, path).catch(async (err) => {
          // A file system without hard links (exFAT, some FUSE mounts): O_EXCL, written just after.
          if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(errorCode(err) ?? '')) throw err;
          await writeFile(path, content, { flag: 'wx' });
        });
        return;
      } catch (err) {
        if (errorCode(err) !== 'EEXIST') throw err;
      }
      const found = await readFile(path, 'utf8').catch((err) => {
        if (errorCode(err) === 'ENOENT') return undefined; // released meanwhile: try again
        throw err;
      });
      if (found === undefined) continue;
      const holder = parseHolder(found);
      if (holder ? !(await isGone(holder, path, dataDir)) : Date.now() - (await mtimeMs(path)) < WRITING_MS) throw new Held(path, holder);
      await removeIf(path, found, content, dataDir);
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/**
 * Removes `path` if it still holds `expected` (and the socket of its holder, who is gone). The
 * remover of a given content first claims a guard named after it, so between the check and the
 * unlink nobody else can remove it, and nobody can create `path` while it exists.
 */
async function removeIf(path: string, expected: string, content: string, dataDir: string): Promise<void> {
  const guard = `${path}.${createHash('sha256').update(expected).digest('hex').slice(0, 16)}.removing`;
  await claim(guard, content, dataDir);
  try {
    if ((await readFile(path, 'utf8').catch(() => undefined)) !== expected) return;
    await unlink(path);
    const socket = parseHolder(expected)?.socket;
    if (socket) await unlink(join(dataDir, socket)).catch(() => undefined);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

async function isGone(holder: LockHolder, path: string, dataDir: string): Promise<boolean> {
  const sameBoot = BOOT_ID !== undefined && holder.bootId === BOOT_ID;
  if (holder.host === HOST && BOOT_ID && holder.bootId && !sameBoot) return true; // this machine restarted since
  if (sameBoot && holder.socket) {
    const answers = await knock(join(dataDir, holder.socket));
    if (answers !== undefined) return !answers;
  }
  if (holder.host === HOST) return !isRunning(holder);
  return Date.now() - (await mtimeMs(path)) > STALE_MS;
}

function isRunning(holder: LockHolder): boolean {
  if (holder.pid === process.pid) return false; // an earlier process with our pid: a container restarted
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if (errorCode(err) === 'ESRCH') return false; // EPERM: it runs, as another user
  }
  const stat = procStat(holder.pid);
  if (stat?.state === 'Z') return false; // killed, not yet reaped by its parent
  return holder.procStart === undefined || stat === undefined || stat.start === holder.procStart;
}

/** Whether something listens on a Unix socket: true, false (nobody: its process is gone), or undefined (cannot tell). */
function knock(path: string): Promise<boolean | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    const done = (answer: boolean | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), 1000);
    socket.once('connect', () => done(true));
    socket.once('error', (err) => done(['ECONNREFUSED', 'ENOENT'].includes(errorCode(err) ?? '') ? false : undefined));
  });
}

/** Listens on a Unix socket in the data directory, if it can and another process could reach it there. */
async function listen(dataDir: string, name: string): Promise<{ name: string; close: () => Promise<void> } | undefined> {
  const path = join(dataDir, name);
  if (!BOOT_ID || Buffer.byteLength(path) > MAX_SOCKET_PATH) return undefined;
  const server = createServer((connection) => connection.destroy());
  const close = async () => {
    await new Promise((resolve) => server.close(resolve));
    await unlink(path).catch(() => undefined);
  };
  // The listener stays: an error after listening (EMFILE on accept) must not crash the streamer.
  const listening = await new Promise<boolean>((resolve) => server.on('error', () => resolve(false)).listen(path, () => resolve(true)));
  // Some file systems make socket files nobody can connect to: then liveness is judged by pid.
  if (!listening || !(await knock(path))) {
    await close();
    return undefined;
  }
  server.unref();
  return { name, close };
}

function parseHolder(text: string | undefined): LockHolder | undefined {
  try {
    const h = JSON.parse(text ?? '') as LockHolder;
    const valid = Number.isSafeInteger(h.pid) && h.pid > 0 && typeof h.host === 'string' && typeof h.startedAt === 'string' && typeof h.token === 'string';
    return valid ? h : undefined;
  } catch {
    return undefined;
  }
}

function describe(holder: LockHolder): string {
  return `pid ${holder.pid} on host ${holder.host}, running since ${holder.startedAt}`;
}

function lockedMessage(dataDir: string, path: string, held: Held): string {
  const once = 'Run one streamer per data directory.';
  if (!held.holder) return `Another streamer is starting in data directory ${dataDir} right now (${held.path}). ${once}`;
  if (held.path !== path) return `Another streamer (${describe(held.holder)}) is taking data directory ${dataDir} over right now, from one that is gone. ${once}`;
  const { pid, host, bootId, socket } = held.holder;
  const remote = host !== HOST;
  const byAge = remote && !(bootId === BOOT_ID && socket); // see isGone
  return (
    `Another streamer is already running on data directory ${dataDir}: ${describe(held.holder)} (lock ${path}). ` +
    `Stop it first (kill -TERM ${pid}${remote ? ` on ${host}` : ''}: it finishes its batch and exits), or give this one another --data-dir.` +
    (byAge ? ` If ${host} is down, its lock counts as free ${STALE_MS / 1000} s after its last refresh.` : '')
  );
}

/** Fields 3 (state) and 22 (start time) of /proc/<pid>/stat, counted after the command name, which may hold spaces and parentheses. */
function procStat(pid: number): { state: string; start: string } | undefined {
  const text = readProc(`/proc/${pid}/stat`);
  const fields = text?.slice(text.lastIndexOf(')') + 2).split(' ');
  return fields && fields.length > 19 ? { state: fields[0]!, start: fields[19]! } : undefined;
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function mtimeMs(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.mtimeMs ?? 0;
}

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
