// Where a streamer run spends its CPU: self time per function and per package, from the V8 CPU
// profiles that `--cpu-prof DIR` makes the throughput runs write.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Self time by function, then by package / project directory; the largest first. */
  functions: Array<{ name: string; ms: number; share: number }>;
  packages: Array<{ name: string; ms: number; share: number }>;
}

function owner(url: string): string {
  if (!url) return '(native, GC, idle)';
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/(streamer|lib|generator)\/(?:src\/)?([^/]+)/.exec(url);
  return own ? `${own[1]}/${own[2]}` : url;
}

export async function summarizeProfile(file: string, top = 15): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const fns = new Map<string, number>();
  const pkgs = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const f = byId.get(id)!;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|streamer|lib)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
    pkgs.set(owner(f.url), (pkgs.get(owner(f.url)) ?? 0) + us);
    total += us;
  });
  const rank = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, ms: us / 1000, share: us / total }));
  return { file, totalMs: total / 1000, functions: rank(fns), packages: rank(pkgs) };
}

export async function summarizeProfiles(dir: string, top = 15): Promise<ProfileSummary[]> {
  // CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile: thread 0 is the main thread (any other, a worker's).
  const files = (await readdir(dir)).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f)).sort();
  return Promise.all(files.map((f) => summarizeProfile(join(dir, f), top)));
}

export function formatSummary(s: ProfileSummary): string {
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)} %`;
  return [
    `${s.file}: ${Math.round(s.totalMs)} ms sampled`,
    '  by package:',
    ...s.packages.map((p) => `    ${pct(p.share)}  ${p.name}`),
    '  by function (self time):',
    ...s.functions.map((f) => `    ${pct(f.share)}  ${f.name}`),
  ].join('\n');
}
