// Input files for the measurements, written once by the project's own generator and cached, so
// that repeated bench runs read the same bytes (fixed seed) without paying to write them again.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CSV_HEADER, createEventSource, formatCsvLine } from '../../generator/src/events.ts';
import type { LayoutName } from '../../generator/src/layouts.ts';
import { compiled, ROOT } from '../../lib/paths.ts';
import type { Log } from './support.ts';

export interface CorpusSpec {
  files: number;
  rowsPerFile: number;
  seed: number;
  /** The generator's --layout; absent: canonical. */
  layout?: LayoutName;
}

export interface Corpus extends CorpusSpec {
  /** Absolute paths of the CSV files, in name (= creation) order. */
  paths: string[];
  rows: number;
  bytes: number;
}

/** What the report says about a corpus. */
export type CorpusInfo = Omit<Corpus, 'paths'>;

export const corpusInfo = ({ paths: _paths, ...info }: Corpus): CorpusInfo => info;

async function readManifest<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Files that are all still there with their recorded sizes (a cache can be damaged by hand). */
async function intact(files: Array<{ path: string; size: number }>): Promise<boolean> {
  try {
    for (const f of files) if ((await stat(f.path)).size !== f.size) return false;
    return true;
  } catch {
    return false;
  }
}

/** The generator CLI, flat out, with a fixed seed: `spec.files` files of `spec.rowsPerFile` rows. */
export async function ensureCorpus(cacheDir: string, spec: CorpusSpec, log: Log): Promise<Corpus> {
  const layout = spec.layout ?? 'canonical';
  const dir = join(cacheDir, `corpus-${spec.files}x${spec.rowsPerFile}-seed${spec.seed}${layout === 'canonical' ? '' : `-${layout}`}`);
  const manifestPath = join(dir, 'corpus.json');
  const cached = await readManifest<{ files: Array<{ path: string; size: number }> } & CorpusSpec>(manifestPath);
  const toCorpus = (files: Array<{ path: string; size: number }>): Corpus => ({
    ...spec,
    paths: files.map((f) => f.path),
    rows: spec.files * spec.rowsPerFile,
    bytes: files.reduce((sum, f) => sum + f.size, 0),
  });
  if (cached && (await intact(cached.files))) return toCorpus(cached.files);

  log(`writing corpus ${dir} (${spec.files} files × ${spec.rowsPerFile} rows, seed ${spec.seed}, layout ${layout})`);
  await rm(dir, { recursive: true, force: true });
  const args = ['--data-dir', dir, '--files', String(spec.files), '--rows', String(spec.rowsPerFile), '--seed', String(spec.seed), '--layout', layout, '--interval-ms', '0'];
  const child = spawn(process.execPath, [compiled('generator/src/main.ts'), ...args], { cwd: ROOT, env: { ...process.env, LOG_FORMAT: 'json' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`the generator failed (${code}): ${stderr}`);

  const input = join(dir, 'input');
  const names = (await readdir(input)).filter((n) => n.endsWith('.csv')).sort();
  const files = await Promise.all(names.map(async (n) => ({ path: join(input, n), size: (await stat(join(input, n))).size })));
  await writeFile(manifestPath, JSON.stringify({ ...spec, files }, null, 1));
  return toCorpus(files);
}

/** Rows for one file of about `targetBytes`, from the bytes per row of a corpus already written. */
export function rowsForBytes(sample: Corpus, targetBytes: number): number {
  const header = CSV_HEADER.length + 1;
  return Math.round((targetBytes - header) / ((sample.bytes - sample.files * header) / sample.rows));
}

export interface HistoryFile {
  name: string;
  size: number;
  mtimeMs: number;
}

export interface History {
  input: string;
  files: HistoryFile[];
}

/**
 * `count` small files named as the generator names them, for the start-up measurement: the
 * streamer never reads a processed file again, so their content can be one row each.
 */
export async function ensureHistory(cacheDir: string, count: number, log: Log): Promise<History> {
  const dir = join(cacheDir, `history-${count}`);
  const input = join(dir, 'input');
  const manifestPath = join(dir, 'history.json');
  const cached = await readManifest<{ files: HistoryFile[] }>(manifestPath);
  if (cached?.files.length === count) {
    const sample = cached.files.filter((_, i) => i % 97 === 0).map((f) => ({ path: join(input, f.name), size: f.size }));
    if (await intact(sample)) return { input, files: cached.files };
  }

  log(`writing ${count} history files into ${input}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(input, { recursive: true });
  const next = createEventSource({ seed: 7, purchaseRatio: 0.2, startTime: Date.parse('2025-01-01T00:00:00Z') });
  const start = Date.parse('2025-01-01T00:00:00Z');
  const entries = Array.from({ length: count }, (_, i) => {
    const stamp = new Date(start + i * 1000).toISOString().replace(/[-:.]/g, '');
    return { name: `events-${stamp}-${String(i + 1).padStart(6, '0')}-${(i & 0xffff).toString(16).padStart(4, '0')}.csv`, content: `${CSV_HEADER}\n${formatCsvLine(next())}` };
  });
  let i = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      for (let e = entries[i++]; e; e = entries[i++]) await writeFile(join(input, e.name), e.content);
    }),
  );
  const files = await Promise.all(
    entries.map(async (e) => {
      const s = await stat(join(input, e.name));
      return { name: e.name, size: s.size, mtimeMs: s.mtimeMs };
    }),
  );
  await writeFile(manifestPath, JSON.stringify({ files }));
  return { input, files };
}
