import bytes from 'bytes';
import type { StreamSnapshot } from '../observe/streamState.ts';
import { describeLayout } from '../reader/contract/layout.ts';
import type { BatchFigures, CheckpointStatus, StreamStatus } from './readStatus.ts';

/**
 * The status as text for a terminal: a summary block, then tables of recent batches, the layouts
 * seen and files set aside. With `stream` (a running streamer answered), its live state comes first.
 */
export function formatStatus(s: StreamStatus & { stream?: StreamSnapshot }): string {
  const now = Date.parse(s.at);
  const out: string[] = [];
  out.push(`dropstream status · ${s.dataDir} · ${time(s.at)}`);
  out.push('');
  if (!s.schema) out.push("  (the streamer's tables are not in this database yet: it has not run against it)", '');

  const summary: Array<[string, string]> = [
    ...(s.stream ? streamer(s.stream, now) : []),
    ['Last batch', lastBatch(s.lastBatch, now)],
    ['Checkpoint', checkpoint(s.checkpoint, s.lastBatch)],
    ['Pending', pending(s)],
    ['Set aside', setAside(s)],
    ['Loaded', `${count(s.totals.events, 'event')}, ${count(s.totals.rejects, 'row')} rejected`],
    [
      'Ledger',
      `${count(s.totals.files.loaded, 'file')} loaded, ${num(s.totals.files.empty)} empty, ${num(s.totals.files.duplicate)} duplicate, ` +
        `${num(s.totals.files.quarantined)} set aside, in ${count(s.totals.batches, 'batch', 'batches')}`,
    ],
  ];
  const labelWidth = Math.max(...summary.map(([label]) => label.length)) + 2;
  for (const [label, text] of summary) out.push(`  ${label.padEnd(labelWidth)}${text}`);

  out.push('', `Recent batches${s.recentBatches.length > 0 ? ` (last ${s.recentBatches.length}, newest first)` : ''}`);
  if (s.recentBatches.length === 0) out.push('  none yet');
  else
    out.push(
      ...table(
        ['batch', 'finished (UTC)', 'files', 'bytes', 'rows read', 'loaded', 'rejected', 'duplicate', 'duration'],
        'rlrrrrrrr',
        s.recentBatches.map((b) => [
          String(b.id),
          b.finishedAt ? time(b.finishedAt, false) : 'not finished',
          num(b.files),
          size(b.bytes),
          num(b.rowsRead),
          num(b.rowsLoaded),
          num(b.rowsRejected),
          num(b.rowsDuplicate),
          b.durationMs === null ? '-' : duration(b.durationMs),
        ]),
      ),
    );

  if (s.layouts.length > 0) {
    out.push('', `Layouts seen (${s.layouts.length}, the most used first)`);
    for (const l of s.layouts) out.push(`  #${l.id}  ${count(l.files, 'file')}, first met in ${l.firstFile}: ${describeLayout(l.layout)}`);
  }

  if (s.quarantine.total > 0) {
    const shown = s.quarantine.entries.length;
    out.push('', `Files set aside${s.quarantine.total > shown ? ` (newest ${shown} of ${num(s.quarantine.total)})` : ''}`);
    out.push(
      ...table(
        ['file', 'when (UTC)', 'batch', 'reason'],
        'llrl',
        s.quarantine.entries.map((q) => [
          q.name,
          time(q.at, false),
          String(q.batchId),
          clip((q.reason ?? '').replace(/\s+/g, ' ').trim(), 72) + (q.reloaded ? ' (loaded again since)' : ''),
        ]),
      ),
    );
  }
  return `${out.join('\n')}\n`;
}

/** The running streamer's own lines: how it runs, its last error, a growing backlog. */
function streamer(st: StreamSnapshot, now: number): Array<[string, string]> {
  const beat = st.heartbeatAgeMs === null ? 'no trigger yet' : `last trigger ${age(st.heartbeatAgeMs)} ago`;
  const lines: Array<[string, string]> = [
    [
      'Streamer',
      `${st.state} (${st.mode}) since ${time(st.startedAt)}, ${beat}; ${count(st.sinceStart.batches, 'batch', 'batches')}, ` +
        `${count(st.sinceStart.rows.loaded, 'row')} loaded since start (run ${st.runId.slice(0, 8)})`,
    ],
  ];
  if (st.lastFailure) lines.push(['Last error', `${time(st.lastFailure.at)} (${age(now - Date.parse(st.lastFailure.at))} ago), ${st.lastFailure.what}: ${clip(st.lastFailure.reason, 100)}`]);
  const g = st.backlogGrowth;
  if (g) lines.push(['Backlog', `growing for ${g.batches} batches: files arrive at ${g.filesArrivingPerSecond}/s, loaded at ${g.filesLoadedPerSecond}/s`]);
  return lines;
}

function lastBatch(b: BatchFigures | null, now: number): string {
  if (!b) return 'none finished yet';
  return (
    `#${b.id}, finished ${time(b.finishedAt!)} (${age(now - Date.parse(b.finishedAt!))} ago): ` +
    `${count(b.files, 'file')}, ${count(b.rowsLoaded, 'row')} loaded` +
    (b.rowsRejected > 0 ? `, ${num(b.rowsRejected)} rejected` : '') +
    (b.rowsDuplicate > 0 ? `, ${num(b.rowsDuplicate)} duplicate` : '')
  );
}

function checkpoint(c: CheckpointStatus, last: BatchFigures | null): string {
  const id = c.latestOffsetsId;
  switch (c.state) {
    case 'none':
      return 'no batch planned yet';
    case 'agrees':
      return `agrees: offsets/${id} has its commit record`;
    case 'uncommitted': {
      const planned = c.plannedFiles === null ? '' : ` (${count(c.plannedFiles, 'file')})`;
      let db = '';
      if (c.finishedInDatabase) db = '; the database finished it, only the commit record is missing';
      else if (c.filesCommittedInDatabase && c.plannedFiles !== null)
        db = `; the database has committed ${num(c.filesCommittedInDatabase)} of its ${num(c.plannedFiles)} files`;
      return `batch ${id}${planned} has no commit record: in flight, or cut short (it runs again at the next start)${db}`;
    }
    case 'behind':
      return id === null
        ? `no offsets record, while the database finished batches up to #${last?.id} (checkpoint/ deleted? harmless: the database knows what is done)`
        : `behind the database: offsets/${id} is the newest record, the database finished #${last?.id} (harmless: the database knows what is done)`;
    case 'ahead':
      return `ahead of the database: batch ${id} has a commit record, but the database's last finished batch is ${last ? `#${last.id}` : 'none'} (is this the database this data dir was loaded into?)`;
  }
}

function pending(s: StreamStatus): string {
  const p = s.pending;
  if (!p.inputExists) return 'no input/ directory yet';
  if (p.count === 0) return 'none: every file in input/ is processed';
  const oldest = p.oldest ? `; the oldest is ${age(p.oldest.ageMs)} old (${p.oldest.name})` : '';
  return `${count(p.count, 'file')}, ${size(p.bytes)} waiting in input/${oldest}`;
}

function setAside(s: StreamStatus): string {
  const q = s.quarantine;
  return `${count(q.total, 'file')} in the ledger, ${count(q.filesInDirectory, 'file')} in quarantine/`;
}

/** Columns padded to their widest cell; `align` has one letter per column, l or r. */
function table(headers: string[], align: string, rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `  ${cells
      .map((c, i) => (align[i] === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()}`;
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

const num = (n: number) => n.toLocaleString('en-US');
const count = (n: number, one: string, many = `${one}s`) => `${num(n)} ${n === 1 ? one : many}`;
const size = (n: number) => bytes.format(n, { unitSeparator: ' ', decimalPlaces: 1 }) ?? `${n} B`;
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** 2026-11-21 10:15:30 UTC (or without the zone, in tables whose header says UTC). */
function time(iso: string, zone = true): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${zone ? ' UTC' : ''}`;
}

/** How long ago: 850 ms, 42 s, 3 min 5 s, 2 h 10 min, 3 d 4 h. */
export function age(ms: number): string {
  ms = Math.max(0, ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** A batch's duration: 82 ms, 1.4 s, 2 min 3 s. */
function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return age(ms);
}
