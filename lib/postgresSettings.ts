import { statfsSync } from 'node:fs';
import { constrainedMemory } from 'node:process';
import { totalmem } from 'node:os';
import { dirname } from 'node:path';

const MB = 2 ** 20;
const GB = 2 ** 30;

/** What the embedded PostgreSQL is started with, and why each value. */
export interface SizedSettings {
  memoryBytes: number;
  /** Free space where the server keeps its data (and its WAL). */
  diskBytes: number;
  settings: Record<string, string>;
}

const clamp = (n: number, min: number, max: number) => Math.min(max, Math.max(min, n));
const mb = (bytes: number) => `${Math.floor(bytes / MB)}MB`;

/** The machine's memory, or the container's limit when it has a smaller one (cgroup). */
export function availableMemory(): number {
  const limit = constrainedMemory?.() ?? 0;
  return limit > 0 && limit < totalmem() ? limit : totalmem();
}

/** Free space on the filesystem that holds `dir` (or would: the nearest directory that exists). */
export function freeDisk(dir: string): number {
  for (let d = dir; ; d = dirname(d)) {
    try {
      const fs = statfsSync(d);
      return fs.bavail * fs.bsize;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(d) === d) throw err;
    }
  }
}

/**
 * Settings for a server that has the machine mostly to itself, sized from its memory and disk. PostgreSQL's
 * defaults (128 MB of shared buffers, a checkpoint every 1 GB of WAL) are made for a machine of
 * 2005: once user_activity's primary key outgrows the buffers, every COPY reads and writes back
 * random index pages, and every checkpoint makes the next write of each page log its full image.
 * Durability is untouched: fsync, full_page_writes and synchronous_commit keep their defaults.
 * `diskBytes`: free space under the data directory (unknown: 4 GB, which keeps PostgreSQL's 1 GB of WAL).
 */
export function sizedSettings(memoryBytes = availableMemory(), diskBytes = 4 * GB): SizedSettings {
  return {
    memoryBytes,
    diskBytes,
    settings: {
      // A quarter of memory, as PostgreSQL's documentation advises; the rest stays page cache.
      shared_buffers: mb(clamp(memoryBytes / 4, 128 * MB, 8 * GB)),
      effective_cache_size: mb(clamp(memoryBytes / 2, 256 * MB, 64 * GB)),
      maintenance_work_mem: mb(clamp(memoryBytes / 16, 64 * MB, 1 * GB)),
      // Checkpoints by time, not by WAL volume: after each one the first change to a page logs the
      // whole page, and random event ids change every leaf of the primary key. At 20M rows, a
      // checkpoint every few GB made most of the WAL page images. A crash replays up to this much.
      max_wal_size: mb(clamp(diskBytes / 4, 1 * GB, 32 * GB)),
      min_wal_size: mb(clamp(memoryBytes / 16, 80 * MB, 1 * GB)),
      checkpoint_timeout: '15min',
      checkpoint_completion_target: '0.9',
      // The full-page images that remain are compressed (cheap next to the 8 kB each one costs).
      wal_compression: 'on',
    },
  };
}

export function describeSettings(s: SizedSettings): string {
  return `${Object.entries(s.settings).map(([k, v]) => `${k}=${v}`).join(' ')} (sized from ${(s.memoryBytes / GB).toFixed(1)} GiB of memory, ${(s.diskBytes / GB).toFixed(1)} GiB of free disk)`;
}

/** Whether the server's shared memory sits in huge pages, and how many it takes (PostgreSQL 17 and later say both). */
export interface HugePages {
  status: 'on' | 'off' | 'unknown';
  /** Huge pages (of the kernel's size) that hold the server's shared memory; null when the server does not say. */
  needed: number | null;
}

export const HUGE_PAGES_QUERY = `SELECT current_setting('huge_pages_status', true) AS status, current_setting('shared_memory_size_in_huge_pages', true) AS needed`;

export function hugePagesFrom(row: { status: string | null; needed: string | null }): HugePages {
  const needed = Number(row.needed);
  return {
    status: row.status === 'on' || row.status === 'off' ? row.status : 'unknown',
    needed: row.needed !== null && Number.isInteger(needed) && needed > 0 ? needed : null,
  };
}

/**
 * Random event ids send each insert to a random page of the primary key, far beyond what 4 kB pages
 * let the processor's TLB cover once the key is large. With huge pages the server's CPU per row grew
 * by 3.0–3.4 s per million rows from an empty table to 20M rows, against 4.3–5.3 without (docs/performance.md).
 * The kernel gives them only once root has reserved them.
 */
export function describeHugePages(h: HugePages): string {
  if (h.status === 'on') return 'huge pages: on';
  if (h.status === 'off' && h.needed !== null) {
    return `huge pages: off, the kernel has too few reserved (as root, \`sysctl -w vm.nr_hugepages=${h.needed}\` and a restart of the server make inserts into a table of tens of millions of rows cheaper)`;
  }
  return 'huge pages: not reported by this server';
}
