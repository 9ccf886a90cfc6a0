// The record of everything the chaos rounds put into input/: every version of every name, as it
// was dropped. With --clean-source delete files leave input/ once committed, so the events and the
// versions to expect come from this record, never from what input/ holds at the end.
import { createHash } from 'node:crypto';
import { copyFile, lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { sha256 } from '../../streamer/src/sink/fingerprint.ts';
import { sameVersion } from '../../streamer/src/source/fileVersion.ts';
import { countEvents, type Expected } from './pipeline.ts';

/** mv: renamed into input/ (the generator's hand-off, the reserve, a temp file renamed over a name); cp: written into input/<name> in place. */
export type DropHow = 'mv' | 'cp';
/**
 * What a version holds: a new file; a copy of one under another name; or a name that comes back:
 * grown (all its rows and more), the next day's export (some of its rows again, some new), the
 * same bytes again, a torn copy (empty) or the complete copy after it.
 */
export type DropKind = 'new' | 'copy' | 'grew' | 'next-day' | 'same' | 'torn' | 'complete';
export const COMEBACK_KINDS = ['grew', 'next-day', 'same', 'complete'] as const satisfies readonly DropKind[];

export interface Version {
  name: string;
  /** n for the n-th version dropped under the name. */
  n: number;
  /** Dropped while the streamer was down, before this round (1: the first drop). */
  round: number;
  how: DropHow;
  kind: DropKind;
  sha256: string;
  size: number;
  mtimeMs: number;
  ino: number;
  /** The header line and the data lines, each with its newline: a later version may repeat some. */
  header: string;
  lines: string[];
  /** replaced: another version took the name; deleted: gone from input/ (by --clean-source, after a run). */
  state: 'in-input' | 'replaced' | 'deleted';
  /** It was in input/ when a run started that then exited 0: that run processed it. */
  mustBeRead: boolean;
  /** Deleted without a ledger row of its own: its bytes are those of its name's committed version (a leftover is retired by content). */
  retiredByContent: boolean;
}

/** An ingest_files row, with the mtime in epoch ms as the ledger keeps it (to the microsecond). */
export interface LedgerRow {
  id: number;
  name: string;
  status: string;
  fingerprint: string | null;
  size: number;
  mtimeMs: number;
  version: number | null;
}

const PROCESSED = new Set(['loaded', 'empty', 'duplicate']);

export async function readLedger(db: Pick<pg.Pool, 'query'>): Promise<LedgerRow[]> {
  const { rows } = await db.query<{ id: string; name: string; status: string; fingerprint: string | null; size: string; mtime_ms: number; version: number | null }>(
    `SELECT id, name, status, fingerprint, size, extract(epoch FROM mtime) * 1000 AS mtime_ms, version
       FROM ingest_files ORDER BY id`,
  );
  return rows.map((r) => ({ id: Number(r.id), name: r.name, status: r.status, fingerprint: r.fingerprint, size: Number(r.size), mtimeMs: Number(r.mtime_ms), version: r.version }));
}

/** Processed ledger rows by name, oldest first. */
function processedByName(ledger: LedgerRow[]): Map<string, LedgerRow[]> {
  const byName = new Map<string, LedgerRow[]>();
  for (const r of ledger.filter((r) => PROCESSED.has(r.status))) {
    if (!byName.has(r.name)) byName.set(r.name, []);
    byName.get(r.name)!.push(r);
  }
  return byName;
}

/** How a version is named in violations: which name, which drop. */
export function label(v: Version): string {
  return `${v.name} (version ${v.n}, ${v.kind} by ${v.how} before round ${v.round})`;
}

/** The ledger row is this version: same content, same size and mtime. */
function recordsVersion(row: LedgerRow, v: Version): boolean {
  return row.fingerprint === v.sha256 && sameVersion(v, row);
}

export interface DropSummary {
  names: number;
  /** Names dropped more than once, and how many times one came back (by how and by kind). */
  reused: number;
  comebacks: number;
  byHow: Record<DropHow, number>;
  byKind: Record<(typeof COMEBACK_KINDS)[number], number>;
  /** Empty files dropped as a torn copy (each gets its complete copy the round after). */
  torn: number;
  versions: number;
  /** Versions with their own processed ledger row; of them, a name's 2nd or later processed version. */
  inLedger: number;
  laterInLedger: number;
  /** Replaced before any run read them (their rows are all in the version that replaced them). */
  replacedUnread: number;
  deleted: number;
  retiredByContent: number;
}

export class DropLog {
  private readonly byName = new Map<string, Version[]>();
  /** Every event ever dropped, in any version of any name. */
  readonly expected: Expected = { ids: new Set(), rows: 0, revenueCents: 0 };
  private header = '';

  constructor(
    private readonly input: string,
    private readonly staging: string,
  ) {}

  names(): string[] {
    return [...this.byName.keys()];
  }

  current(name: string): Version | undefined {
    return this.byName.get(name)?.at(-1);
  }

  versions(): Version[] {
    return [...this.byName.values()].flat();
  }

  inInput(): Version[] {
    return this.versions().filter((v) => v.state === 'in-input');
  }

  contentOf(v: Version): string {
    return v.header + v.lines.join('');
  }

  /** A header for a version whose name's last version was empty. */
  headerFor(v: Version): string {
    return v.header || this.header;
  }

  /** Records the file now at input/<name> as that name's next version. */
  async record(name: string, round: number, how: DropHow, kind: DropKind): Promise<Version> {
    const path = join(this.input, name);
    const [content, stats] = await Promise.all([readFile(path), lstat(path)]);
    const [header = '', ...lines] = content.toString('utf8').split(/(?<=\n)/);
    this.header ||= header;
    if (!this.byName.has(name)) this.byName.set(name, []);
    const earlier = this.byName.get(name)!;
    const last = earlier.at(-1);
    if (last?.state === 'in-input') last.state = 'replaced';
    const v: Version = {
      name,
      n: earlier.length + 1,
      round,
      how,
      kind,
      sha256: createHash('sha256').update(content).digest('hex'),
      size: stats.size,
      mtimeMs: stats.mtimeMs,
      ino: stats.ino,
      header,
      lines,
      state: 'in-input',
      mustBeRead: false,
      retiredByContent: false,
    };
    earlier.push(v);
    countEvents(this.expected, content.toString('utf8'));
    return v;
  }

  /** Puts content under a name: cp writes into the file in place, as cp does; mv renames a file written aside over the name (the atomic hand-off). */
  async put(name: string, content: string, round: number, how: DropHow, kind: DropKind): Promise<Version> {
    await mkdir(this.staging, { recursive: true });
    const staged = join(this.staging, name);
    await writeFile(staged, content);
    if (how === 'mv') await rename(staged, join(this.input, name));
    else await copyFile(staged, join(this.input, name)).finally(() => rm(staged));
    return this.record(name, round, how, kind);
  }

  /** Whether this version's content is committed under its name: it has its ledger row, or --clean-source deleted it (noteDeletions checks that it was committed). */
  committed(v: Version, ledger: LedgerRow[]): boolean {
    return v.state === 'deleted' || ledger.some((r) => r.name === v.name && PROCESSED.has(r.status) && recordsVersion(r, v));
  }

  /**
   * After a run: a version gone from input/ was deleted by --clean-source, which may happen only
   * to a committed version (its own ledger row, or the bytes of its name's newest processed
   * version), and only in a run with --clean-source. Returns how many went, and what is wrong.
   */
  async noteDeletions(ledger: LedgerRow[], cleanSource: 'off' | 'delete'): Promise<{ deleted: number; violations: string[] }> {
    const processed = processedByName(ledger);
    const violations: string[] = [];
    let deleted = 0;
    for (const v of this.inInput()) {
      const stats = await lstat(join(this.input, v.name)).catch(() => undefined);
      if (stats) {
        if (stats.size !== v.size || stats.mtimeMs !== v.mtimeMs || stats.ino !== v.ino) violations.push(`${label(v)} was changed in input/ by the streamer`);
        continue;
      }
      v.state = 'deleted';
      deleted++;
      const rows = processed.get(v.name) ?? [];
      v.retiredByContent = !rows.some((r) => recordsVersion(r, v)) && rows.at(-1)?.fingerprint === v.sha256;
      if (!rows.some((r) => recordsVersion(r, v)) && !v.retiredByContent) violations.push(`${label(v)} was deleted from input/ without its version being committed`);
      else if (cleanSource === 'off') violations.push(`${label(v)} left input/ in a run without --clean-source`);
    }
    return { deleted, violations };
  }

  /**
   * The ledger against the drops: each processed row is a version dropped under its name, no
   * version has two rows, and each version that a finished run saw (or that --clean-source
   * deleted, or that is still in input/) has its row.
   */
  ledgerViolations(ledger: LedgerRow[]): string[] {
    const processed = processedByName(ledger);
    const out: string[] = [];
    const recorded = new Set<Version>();
    for (const [name, rows] of processed) {
      const versions = this.byName.get(name) ?? [];
      for (const r of rows) {
        const v = versions.find((v) => recordsVersion(r, v));
        if (!v) out.push(`ledger row ${r.id} (${name}, version ${r.version}, ${r.size} bytes) is no version dropped under that name`);
        else if (recorded.has(v)) out.push(`${label(v)} has two ledger rows (the second: ${r.id})`);
        else recorded.add(v);
      }
    }
    for (const v of this.versions()) {
      if (recorded.has(v)) continue;
      if (v.state === 'deleted') {
        if (!v.retiredByContent || !(processed.get(v.name) ?? []).some((r) => r.fingerprint === v.sha256))
          out.push(`${label(v)} was deleted from input/ but has no ledger row: deleted without its version being committed`);
      } else if (v.mustBeRead || v.state === 'in-input') {
        out.push(`${label(v)} was in input/ when a run finished, yet has no ledger row`);
      }
    }
    return out;
  }

  /**
   * What input/ holds at the end: each file is the version last dropped under its name and the
   * newest processed version of that name in the ledger; with --clean-source delete, no file is left
   * that is its name's committed version.
   */
  async inputViolations(ledger: LedgerRow[], cleanSource: 'off' | 'delete'): Promise<{ files: number; violations: string[] }> {
    const processed = processedByName(ledger);
    const out: string[] = [];
    const names = (await readdir(this.input)).sort();
    for (const name of names) {
      const path = join(this.input, name);
      const stats = await lstat(path);
      if (!stats.isFile()) {
        out.push(`${name} in input/ is not a regular file`);
        continue;
      }
      const fingerprint = await sha256(path);
      const v = this.current(name);
      if (!v || v.state !== 'in-input' || v.sha256 !== fingerprint || v.size !== stats.size || v.mtimeMs !== stats.mtimeMs) out.push(`${name} in input/ is not the version last dropped there`);
      const newest = processed.get(name)?.at(-1);
      if (!newest || newest.fingerprint !== fingerprint || !sameVersion(stats, newest)) out.push(`${name} in input/ is not the newest processed version of its name in the ledger`);
      else if (cleanSource === 'delete') out.push(`${name} remains in input/ though it is the committed version of its name (--clean-source delete)`);
    }
    return { files: names.length, violations: out };
  }

  summary(ledger: LedgerRow[]): DropSummary {
    const processed = processedByName(ledger);
    const versions = this.versions();
    const comebacks = versions.filter((v) => v.n > 1);
    const own = (v: Version) => (processed.get(v.name) ?? []).find((r) => recordsVersion(r, v));
    const count = <K extends string>(keys: readonly K[], of: (v: Version) => string) =>
      Object.fromEntries(keys.map((k) => [k, comebacks.filter((v) => of(v) === k).length])) as Record<K, number>;
    return {
      names: this.byName.size,
      reused: [...this.byName.values()].filter((vs) => vs.length > 1).length,
      comebacks: comebacks.length,
      byHow: count(['mv', 'cp'] as const, (v) => v.how),
      byKind: count(COMEBACK_KINDS, (v) => v.kind),
      torn: versions.filter((v) => v.kind === 'torn').length,
      versions: versions.length,
      inLedger: versions.filter((v) => own(v)).length,
      laterInLedger: versions.filter((v) => (own(v)?.version ?? 0) > 1).length,
      replacedUnread: versions.filter((v) => v.state === 'replaced' && !own(v)).length,
      deleted: versions.filter((v) => v.state === 'deleted').length,
      retiredByContent: versions.filter((v) => v.retiredByContent).length,
    };
  }
}
