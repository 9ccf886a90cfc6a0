import { EventEmitter, once } from 'node:events';
import { watch as fsWatch, type FSWatcher as NodeFSWatcher, type Stats } from 'node:fs';
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../../../lib/log.ts';
import type { SourceFile } from '../reader/fileReader.ts';
import type { FileStatus } from '../sink/ledger.ts';
import { acceptsName } from './acceptsName.ts';
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
  /** Names already processed: never offered again. */
  processed: Set<string>;
  log: Logger;
}

const EMPTY_FILE_STABLE_MS = 2000;

interface Observation {
  size: number;
  mtimeMs: number;
  /** Since when size and mtime have been what they are. */
  since: number;
}

/**
 * Says which files in the input directory are new and ready to read. Readiness is checked here
 * (size and mtime stable for `stableMs`) rather than left to chokidar: its awaitWriteFinish misses
 * files present at start and does nothing in polling mode.
 */
export class FileSource {
  private readonly pending = new Map<string, Observation | undefined>();
  private readonly inFlight = new Set<string>();
  private readonly changedInFlight = new Set<string>();
  private readonly changes = new EventEmitter();
  private watcher: FSWatcher | undefined;
  private processedWatch: NodeFSWatcher | undefined;
  private readonly warned = new Set<string>();

  constructor(private readonly opts: SourceOptions) {}

  async start(): Promise<void> {
    await mkdir(this.opts.inputDir, { recursive: true });
    for (const name of await listInput(this.opts.inputDir, this.opts.recursive)) this.offer(name);
    if (this.opts.availableNow) return;
    this.watcher = watch(this.opts.inputDir, {
      depth: this.opts.recursive ? undefined : 0,
      ignoreInitial: true,
      usePolling: this.opts.poll,
      interval: 250,
      followSymlinks: false,
      // chokidar keeps a watcher per file it tracks: it tracks only files still to be read, so
      // that 100,000 processed files in input cost nothing (see settle for the ones done later).
      ignored: (path: string, stats?: Stats) => {
        if (path === this.opts.inputDir) return false;
        const name = this.nameOf(path);
        return this.opts.processed.has(name) || (stats?.isFile() === true && !acceptsName(name));
      },
    });
    // One directory watch (no per-file cost) notices processed files being changed; not when polling.
    if (!this.opts.poll) {
      this.processedWatch = fsWatch(this.opts.inputDir, { recursive: this.opts.recursive }, (event, name) => {
        if (event === 'change' && name && this.opts.processed.has(name)) this.warnChanged(name);
      });
      this.processedWatch.on('error', () => undefined);
    }
    // A file that disappears is dropped by readyFiles; an unlink event may come after a new file's add.
    this.watcher.on('add', (path) => this.onChange(this.nameOf(path)));
    this.watcher.on('change', (path) => this.onChange(this.nameOf(path)));
    this.watcher.on('error', (err) => this.opts.log.error({ err }, 'watching the input directory failed'));
    // Not awaited: chokidar stats every entry before it is ready, seconds with 100,000 processed
    // files in input, and the listing above already found everything present. A file that
    // arrived between that listing and chokidar's own is picked up by a second listing then.
    this.watcher.once('ready', () => {
      void listInput(this.opts.inputDir, this.opts.recursive).then(
        (names) => names.forEach((name) => this.offer(name)),
        (err) => this.opts.log.error({ err }, 'listing the input directory failed'),
      );
    });
  }

  async close(): Promise<void> {
    this.processedWatch?.close();
    await this.watcher?.close();
    this.changes.emit('change');
  }

  /** Nothing left to do: with availableNow, the run is over. */
  get drained(): boolean {
    return this.pending.size === 0 && this.inFlight.size === 0;
  }

  get hasPending(): boolean {
    return this.pending.size > 0;
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
    for (const [name, seen] of this.pending) {
      if (this.inFlight.has(name)) continue;
      const path = join(this.opts.inputDir, name);
      let stats;
      try {
        stats = await lstat(path);
      } catch {
        this.pending.delete(name); // gone before it was read
        continue;
      }
      if (!stats.isFile()) {
        this.pending.delete(name);
        continue;
      }
      // An empty file is most often one whose writer has not started yet: give it longer.
      const stableMs = stats.size === 0 ? Math.max(this.opts.stableMs, EMPTY_FILE_STABLE_MS) : this.opts.stableMs;
      if (!seen || seen.size !== stats.size || seen.mtimeMs !== stats.mtimeMs) {
        // A file written before we saw it has been stable since its mtime (if that is not in the future).
        this.pending.set(name, { size: stats.size, mtimeMs: stats.mtimeMs, since: seen ? now : Math.min(now, stats.mtimeMs) });
        if (seen || now - Math.min(now, stats.mtimeMs) < stableMs) continue;
      } else if (now - seen.since < stableMs) {
        continue;
      }
      ready.push({ name, path, size: stats.size, mtimeMs: stats.mtimeMs });
    }
    return ready;
  }

  /** The files of a batch are being processed: do not offer them again meanwhile. */
  take(files: SourceFile[]): void {
    for (const f of files) this.inFlight.add(f.name);
  }

  /**
   * A batch is over. A processed file is dropped from chokidar's care; one set aside is forgotten
   * (a fixed file may come back under its name); one that changed while read is watched again.
   */
  settle(files: SourceFile[], status: (name: string) => FileStatus | undefined): void {
    for (const f of files) {
      const s = status(f.name);
      this.inFlight.delete(f.name);
      if (s === 'changed') {
        this.changedInFlight.delete(f.name);
        this.pending.set(f.name, undefined);
        continue;
      }
      this.pending.delete(f.name);
      const changed = this.changedInFlight.delete(f.name);
      if (s === 'quarantined') {
        // The fixed file may have arrived while the bad one was being set aside.
        if (changed) this.offer(f.name);
        continue;
      }
      this.opts.processed.add(f.name);
      this.watcher?.unwatch(f.path);
      if (changed) this.warnChanged(f.name);
    }
  }

  private nameOf(path: string): string {
    return path.slice(this.opts.inputDir.length + 1);
  }

  private offer(name: string): void {
    if (this.opts.processed.has(name) || this.pending.has(name) || !acceptsName(name)) return;
    this.pending.set(name, undefined);
    this.changes.emit('change');
  }

  /** A file added or changed. chokidar reports only files still to read (processed ones are ignored): see processedWatch. */
  private onChange(name: string): void {
    if (this.inFlight.has(name)) this.changedInFlight.add(name); // its batch says what became of it
    else this.offer(name);
    this.changes.emit('change');
  }

  private warnChanged(name: string): void {
    if (this.warned.has(name)) return;
    this.warned.add(name);
    this.opts.log.warn({ file: name }, 'a processed file was changed; changes to processed files are not loaded (drop the new content under a new name)');
  }
}
