import { EventEmitter, once } from 'node:events';
import { lstatSync, watch as fsWatch, type FSWatcher as NodeFSWatcher, type Stats } from 'node:fs';
import { lstat, mkdir, stat } from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { FSWatcher } from 'chokidar';
import type { Logger } from '../../../lib/log.ts';
import type { SourceFile } from '../reader/fileReader.ts';
import type { FileStatus, ProcessedVersion } from '../sink/ledger.ts';
import { acceptsName } from './acceptsName.ts';
import { sameVersion } from './fileVersion.ts';
import { inputName, inputPath, type InputName } from './inputName.ts';
import { listInput } from './listInput.ts';

export interface SourceOptions {
  inputDir: string;
  /** A file is ready once its size and mtime have stayed the same for this long. */
  stableMs: number;
  poll: boolean;
  /** Also files in subdirectories, named by their path relative to the input directory. */
  recursive: boolean;
  /** Only the files present at start (no watching). */
  availableNow: boolean;
  /** The newest processed version of each name: a file that is still that version is not offered again. */
  processed: Map<string, ProcessedVersion>;
  /** How often the whole input directory is listed again, in case a file event was missed. */
  rescanMs: number;
  log: Logger;
}

const EMPTY_FILE_STABLE_MS = 2000;
/** How often the input directory itself is checked: removed, or replaced by another. */
const HEAL_MS = 1000;
/** Processed files stat-ed per turn of the event loop during a rescan (about 2 ms of work). */
const STAT_SLICE = 500;

export interface Backlog {
  files: number;
  bytes: number;
  /** The file with the oldest modification time. */
  oldest: { name: string; mtimeMs: number } | undefined;
}

interface Observation {
  size: number;
  mtimeMs: number;
  /** Since when size and mtime have been what they are. */
  since: number;
}

interface Pending {
  input: InputName;
  seen: Observation | undefined;
}

/**
 * Says which files in the input directory are new and ready to read: new names, and new versions
 * of processed names (other size or mtime than the version the ledger has). Readiness is checked
 * here (size and mtime stable for `stableMs`) rather than left to chokidar: its awaitWriteFinish
 * misses files present at start and does nothing in polling mode. Events can be missed (a watch
 * dies with its directory, polling, a name chokidar cannot decode), so the directory is also
 * checked every second and listed again every `rescanMs`.
 */
export class FileSource {
  private readonly pending = new Map<string, Pending>();
  private readonly inFlight = new Set<string>();
  private readonly changedInFlight = new Set<string>();
  private readonly changes = new EventEmitter();
  private watcher: FSWatcher | undefined;
  private dirWatch: NodeFSWatcher | undefined;
  /** Which directory is watched: an inode number is reused at once by a directory made anew. */
  private watched: { dev: number; ino: number; birthtimeMs: number } | undefined;
  private timers: NodeJS.Timeout[] = [];
  private rescanning: Promise<void> | undefined;
  private started = false;
  private closed = false;

  constructor(private readonly opts: SourceOptions) {}

  async start(): Promise<void> {
    await mkdir(this.opts.inputDir, { recursive: true });
    this.started = true;
    if (this.opts.availableNow) return this.rescan();
    await this.startWatching();
    this.timers.push(setInterval(() => void this.heal(), HEAL_MS).unref());
    this.timers.push(setInterval(() => void this.rescanInBackground(), this.opts.rescanMs).unref());
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timers.forEach(clearInterval);
    await this.stopWatching();
    await this.rescanning;
    this.changes.emit('change');
  }

  /** Nothing left to do: with availableNow, the run is over. */
  get drained(): boolean {
    return this.pending.size === 0 && this.inFlight.size === 0;
  }

  get hasPending(): boolean {
    return this.pending.size > 0;
  }

  /** Started and not closed; watching input, unless only the files present at start are read. */
  get watching(): boolean {
    return this.started && !this.closed && (this.opts.availableNow || this.watcher !== undefined);
  }

  /**
   * Files seen and not taken by a batch yet: what is left to do, in memory (no system call).
   * Sizes and mtimes are as last looked at: a file found since the last trigger counts 0 bytes.
   */
  backlog(): Backlog {
    let files = 0;
    let bytes = 0;
    let oldest: Backlog['oldest'];
    for (const [name, { seen }] of this.pending) {
      if (this.inFlight.has(name)) continue;
      files++;
      if (!seen) continue;
      bytes += seen.size;
      if (!oldest || seen.mtimeMs < oldest.mtimeMs || (seen.mtimeMs === oldest.mtimeMs && name < oldest.name)) oldest = { name, mtimeMs: seen.mtimeMs };
    }
    return { files, bytes, oldest };
  }

  /** Resolves when a file arrives or changes, or after `ms`. */
  async waitForChange(ms: number, signal: AbortSignal): Promise<void> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), ms);
    const onAbort = () => ac.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await once(this.changes, 'change', { signal: ac.signal });
    } catch {
      // timed out or stopping
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Files whose size and mtime have been stable long enough, not yet taken by a batch. */
  async readyFiles(): Promise<SourceFile[]> {
    const now = Date.now();
    const ready: SourceFile[] = [];
    for (const [name, { input, seen }] of this.pending) {
      if (this.inFlight.has(name)) continue;
      const path = inputPath(this.opts.inputDir, input);
      const stats = await lstat(path).catch(() => undefined);
      // Gone before it was read, not a regular file, or put back as the version already processed.
      if (!stats?.isFile() || this.isProcessed(name, stats)) {
        this.pending.delete(name);
        continue;
      }
      // An empty file is most often one whose writer has not started yet: give it longer.
      const stableMs = stats.size === 0 ? Math.max(this.opts.stableMs, EMPTY_FILE_STABLE_MS) : this.opts.stableMs;
      if (!seen || seen.size !== stats.size || seen.mtimeMs !== stats.mtimeMs) {
        // A file written before we saw it has been stable since its mtime (if that is not in the future).
        this.pending.set(name, { input, seen: { size: stats.size, mtimeMs: stats.mtimeMs, since: seen ? now : Math.min(now, stats.mtimeMs) } });
        if (seen || now - Math.min(now, stats.mtimeMs) < stableMs) continue;
      } else if (now - seen.since < stableMs) {
        continue;
      }
      ready.push({ ...input, path, size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino });
    }
    return ready;
  }

  /** The files of a batch are being processed: do not offer them again meanwhile. */
  take(files: SourceFile[]): void {
    for (const f of files) this.inFlight.add(f.name);
  }

  /**
   * A batch is over. A processed file becomes the version its name is known by; one set aside is
   * forgotten (a fixed file may come back under its name); one that changed while read waits for
   * the next batch. A file that changed after its read is looked at again: it is a new version.
   */
  settle(files: SourceFile[], status: (name: string) => FileStatus | undefined): void {
    for (const f of files) {
      const s = status(f.name);
      this.inFlight.delete(f.name);
      const changed = this.changedInFlight.delete(f.name);
      if (s === 'changed') {
        this.pending.set(f.name, { input: f, seen: undefined });
        continue;
      }
      this.pending.delete(f.name);
      if (s !== 'quarantined') {
        this.opts.processed.set(f.name, { size: f.size, mtimeMs: f.mtimeMs });
        // chokidar's watcher of the file is no longer needed: dirWatch and the rescan see new versions.
        if (typeof f.path === 'string') this.watcher?.unwatch(f.path);
      }
      if (changed) this.recheck(f);
    }
  }

  /** Looks at a name again, now (e.g. a file --clean-source left in input because it changed). */
  recheck(input: InputName): void {
    void lstat(inputPath(this.opts.inputDir, input)).then(
      (stats) => this.consider(input, stats),
      () => undefined,
    );
  }

  private isProcessed(name: string, stats: Stats): boolean {
    const version = this.opts.processed.get(name);
    return version !== undefined && sameVersion(stats, version);
  }

  /** A name seen in input: pending unless it is the version already processed, in flight, or not data. */
  private consider(input: InputName, stats?: Stats): void {
    const { name } = input;
    if (!acceptsName(name)) return;
    // Before the pending check: a file in flight is still pending until its batch settles.
    if (this.inFlight.has(name)) {
      this.changedInFlight.add(name); // its batch says what became of it
      return;
    }
    if (this.pending.has(name)) return;
    if (this.opts.processed.has(name)) {
      if (!stats) return this.recheck(input);
      if (!stats.isFile() || this.isProcessed(name, stats)) return;
    }
    this.pending.set(name, { input, seen: undefined });
    this.changes.emit('change');
  }

  private async startWatching(): Promise<void> {
    const { inputDir } = this.opts;
    // Imported here, before the listing (no wait between listing and watching): --available-now never watches.
    const { watch } = await import('chokidar');
    const dir = await stat(inputDir);
    this.watched = { dev: dir.dev, ino: dir.ino, birthtimeMs: dir.birthtimeMs };
    for (const input of await listInput(inputDir, this.opts.recursive)) if (!this.opts.processed.has(input.name)) this.consider(input);
    this.watcher = watch(inputDir, {
      depth: this.opts.recursive ? undefined : 0,
      ignoreInitial: true,
      usePolling: this.opts.poll,
      interval: 250,
      followSymlinks: false,
      // chokidar keeps a watcher per file it tracks: processed names are left to dirWatch and the
      // rescan, so that 100,000 processed files in input cost nothing.
      ignored: (path: string, stats?: Stats) => {
        if (path === inputDir) return false;
        const name = this.nameOf(path);
        return this.opts.processed.has(name) || (stats?.isFile() === true && !acceptsName(name));
      },
    });
    this.watcher.on('add', (path) => this.onEvent(this.nameOf(path)));
    this.watcher.on('change', (path) => this.onEvent(this.nameOf(path)));
    this.watcher.on('error', (err) => this.opts.log.error({ err }, 'watching the input directory failed; it is listed again every second until the watch works'));
    // One directory watch (no per-file cost) sees processed names renamed over or rewritten, and
    // names as bytes (chokidar decodes a name that is not UTF-8 into one that does not exist).
    if (!this.opts.poll) {
      this.dirWatch = fsWatch(inputDir, { recursive: this.opts.recursive, encoding: 'buffer' }, (_event, raw) => {
        if (raw) this.consider(inputName(raw));
      });
      this.dirWatch.on('error', () => void this.heal());
    }
    // Not awaited: chokidar stats every entry before it is ready, seconds with 100,000 processed
    // files in input. Then a rescan finds a file that arrived between the listing above and
    // chokidar's own, and new versions of processed names (found after the first batch, not
    // before it: stat-ing 100,000 files would delay it).
    this.watcher.once('ready', () => void this.rescanInBackground());
  }

  private async stopWatching(): Promise<void> {
    this.dirWatch?.close();
    this.dirWatch = undefined;
    await this.watcher?.close();
    this.watcher = undefined;
  }

  /** A removed or replaced input directory is created again if need be, and watched again. */
  private async heal(): Promise<void> {
    if (this.closed) return;
    const dir = await stat(this.opts.inputDir).catch(() => undefined);
    if (dir && dir.dev === this.watched?.dev && dir.ino === this.watched.ino && dir.birthtimeMs === this.watched.birthtimeMs) return;
    this.opts.log.warn({ input: this.opts.inputDir }, dir ? 'the input directory was replaced: watching the new one' : 'the input directory was removed: creating it again and watching it');
    await this.stopWatching();
    if (this.closed) return;
    await mkdir(this.opts.inputDir, { recursive: true });
    await this.startWatching().catch((err) => this.opts.log.error({ err }, 'watching the input directory again failed; retrying'));
    void this.rescanInBackground(); // new versions of processed names, moved in with the directory
  }

  private onEvent(name: string): void {
    // chokidar decodes a name that is not UTF-8 lossily: find the real one by listing bytes.
    if (name.includes('\uFFFD')) void this.listNewNames();
    else this.consider({ name });
    this.changes.emit('change');
  }

  /** New names only: cheap, for when an event may have been mangled or missed. */
  private async listNewNames(): Promise<void> {
    try {
      for (const input of await listInput(this.opts.inputDir, this.opts.recursive)) if (!this.opts.processed.has(input.name)) this.consider(input);
    } catch (err) {
      this.opts.log.error({ err }, 'listing the input directory failed');
    }
  }

  private rescanInBackground(): Promise<void> {
    this.rescanning ??= this.rescan()
      .catch((err) => this.opts.log.error({ err }, 'listing the input directory failed'))
      .finally(() => (this.rescanning = undefined));
    return this.rescanning;
  }

  /**
   * Lists the input directory and offers what is new: new names, and processed names whose file
   * is now another version. Synchronous stats in small slices: at 100,000 files about 0.4 s of CPU
   * in all, where as many concurrent async stats cost five times that.
   */
  private async rescan(): Promise<void> {
    const names = await listInput(this.opts.inputDir, this.opts.recursive);
    for (let i = 0; i < names.length && !this.closed; i += STAT_SLICE) {
      for (const input of names.slice(i, i + STAT_SLICE)) {
        if (!this.opts.processed.has(input.name)) this.consider(input);
        else if (!this.pending.has(input.name) && acceptsName(input.name)) {
          const stats = statOrUndefined(inputPath(this.opts.inputDir, input));
          if (stats) this.consider(input, stats);
        }
      }
      await yieldToLoop();
    }
  }

  private nameOf(path: string): string {
    return path.slice(this.opts.inputDir.length + 1);
  }
}

function statOrUndefined(path: string | Buffer): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
