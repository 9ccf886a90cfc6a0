// The live page: reads the streamer's JSON endpoints every POLL_MS and draws the last WINDOW_S
// seconds with uPlot (index.html loads it as the global uPlot). Every figure comes from the
// streamer's model or the database; the page only arranges them.
/* global uPlot */

const POLL_MS = 2000;
const WINDOW_S = 10 * 60;
const REVENUE_MINUTES = 15;
const REJECTS_SHOWN = 20;
const BATCHES_SHOWN = 15;
/** The first read fills the window; later ones only fetch what is new (and more if they missed some). */
const PROGRESS_FIRST = 1000;
const PROGRESS_NEXT = 50;

/** The phases of durationMs, bottom of the stack first (jsonb keeps no key order). */
const PHASE_LABELS = {
  latestOffset: 'discovery',
  queryPlanning: 'planning',
  walCommit: 'offsets',
  addBatch: 'read + copy',
  ledgerCommit: 'ledger commit',
  commitOffsets: 'commit record',
};
const PHASE_COLOURS = ['#8e6bbf', '#e0a030', '#8d6e63', '#2f7fc1', '#3aa46f', '#c0504d', '#7f8c8d'];

const $ = (id) => document.getElementById(id);
const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const dec = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
const money = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const fmtInt = (n) => (n == null ? '–' : int.format(n));
const fmtCents = (cents) => money.format(cents / 100);
const fmtMs = (ms) => (ms == null ? '–' : ms < 1000 ? `${int.format(ms)} ms` : `${dec.format(ms / 1000)} s`);
const fmtRate = (n) => (n == null ? '–' : n >= 10_000 ? `${dec.format(n / 1000)}k` : int.format(n));

function fmtBytes(n) {
  if (n == null) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i === 0 ? n : dec.format(n)} ${units[i]}`;
}
// Local times, written the one unambiguous way: 2026-03-02 14:05:09.
const fmtTime = (t) => (t == null ? '–' : new Date(t).toLocaleTimeString('sv-SE'));
const fmtDateTime = (t) => (t == null ? '–' : new Date(t).toLocaleString('sv-SE'));
function fmtAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

// ——— charts ———

/** A uPlot chart in one of the page's figures, sized to it; `set` gives it new data. */
function chart(id, { series, axes, scales = {} }) {
  const figure = $(id);
  const plot = figure.querySelector('.plot');
  let range = [0, 1];
  const opts = {
    width: plot.clientWidth || 400,
    height: 200,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, range: () => range }, ...scales },
    series: [{ label: 'at', value: (u, v) => (v == null ? '–' : fmtTime(v * 1000)) }, ...series],
    // Seconds only when the ticks are less than a minute apart.
    axes: [{ space: 70, values: (u, splits, i, space, incr) => splits.map((v) => fmtTime(v * 1000).slice(0, incr < 60 ? 8 : 5)) }, ...axes],
  };
  const u = new uPlot(opts, [[], ...series.map(() => [])], plot);
  const resize = new ResizeObserver(() => u.setSize({ width: plot.clientWidth, height: 200 }));
  resize.observe(plot);
  return {
    destroy() {
      resize.disconnect();
      u.destroy();
    },
    /** The x scale spans xRange, whatever the data's own span (charts of the last minutes scroll). */
    set(data, xRange) {
      range = xRange;
      u.setData(data);
      // Away from the cursor, the legend gives the newest values.
      if (u.cursor.left == null || u.cursor.left < 0) u.setLegend({ idx: data[0].length > 0 ? data[0].length - 1 : null });
      figure.dataset.points = String(data[0].length);
    },
  };
}

const bars = (opts) => uPlot.paths.bars({ size: [0.7, 14, 4], ...opts });
const axis = (label, values, side) => ({ label, values: (u, splits) => splits.map(values), size: 60, ...(side && { side, grid: { show: false } }) });
const compactInt = (v) => (v < 10_000 ? int.format(v) : compact.format(v));
/** Ticks for counts: whole numbers only; for sizes: 1, 2, 5, 10… of B, KB, MB… */
const STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500];
const WHOLE = [0, 1, 2, 3].flatMap((p) => STEPS.map((m) => m * 1000 ** p));
const BYTE_INCRS = [0, 1, 2, 3, 4].flatMap((p) => STEPS.map((m) => m * 1024 ** p));
const countAxis = (label, side) => ({ ...axis(label, compactInt, side), incrs: WHOLE });
const fromZero = { range: (u, min, max) => [0, Math.max(1, max)] };

const charts = {
  rates: chart('chart-rates', {
    series: [
      { label: 'input', stroke: '#2f7fc1', width: 2, points: { size: 5 }, value: (u, v) => fmtRate(v), spanGaps: true },
      { label: 'processing', stroke: '#3aa46f', width: 2, points: { size: 5 }, value: (u, v) => fmtRate(v) },
    ],
    axes: [axis('rows/s', compactInt)],
  }),
  backlog: chart('chart-backlog', {
    scales: { files: fromZero, bytes: fromZero },
    series: [
      { label: 'files', scale: 'files', stroke: '#c0504d', width: 2, points: { size: 5 }, value: (u, v) => fmtInt(v) },
      { label: 'bytes', scale: 'bytes', stroke: '#e0a030', width: 2, dash: [6, 4], points: { size: 5 }, value: (u, v) => fmtBytes(v) },
    ],
    axes: [{ ...countAxis('files'), scale: 'files' }, { ...axis('', fmtBytes, 1), scale: 'bytes', incrs: BYTE_INCRS }],
  }),
  latency: chart('chart-latency', {
    series: [
      { label: 'p50', stroke: '#2f7fc1', width: 2, points: { size: 5 }, value: (u, v) => (v == null ? '–' : `${dec.format(v)} s`) },
      { label: 'max', stroke: '#c0504d', width: 2, points: { size: 5 }, value: (u, v) => (v == null ? '–' : `${dec.format(v)} s`) },
    ],
    scales: { y: fromZero },
    axes: [axis('seconds', (v) => dec.format(v))],
  }),
  rejects: chart('chart-rejects', {
    series: [{ label: 'rejected', stroke: '#c0504d', fill: '#c0504d99', paths: bars(), points: { show: false }, value: (u, v) => fmtInt(v) }],
    scales: { y: fromZero },
    axes: [countAxis('rows')],
  }),
  revenue: chart('chart-revenue', {
    scales: { money: fromZero, count: fromZero },
    series: [
      { label: 'revenue', scale: 'money', stroke: '#3aa46f', fill: '#3aa46f88', paths: bars({ size: [0.8, 40, 4], align: 1 }), points: { show: false }, value: (u, v) => (v == null ? '–' : money.format(v)) },
      { label: 'purchases', scale: 'count', stroke: '#2f7fc1', width: 2, points: { size: 5 }, value: (u, v) => fmtInt(v) },
    ],
    axes: [{ ...axis('revenue', compactInt), scale: 'money' }, { ...countAxis('purchases', 1), scale: 'count' }],
  }),
};
// Made again should the progress records name other phases.
charts.durations = durationChart(Object.keys(PHASE_LABELS));

/**
 * Stacked bars: each series is drawn from 0 to the sum of its phase and the phases below it,
 * the tallest first, so that each phase shows as its own band; the legend gives its own value.
 */
function durationChart(phases) {
  const own = []; // own[i]: the phase's own durations, for the legend
  const top = [...phases].reverse();
  const c = chart('chart-durations', {
    series: top.map((phase, i) => ({
      label: PHASE_LABELS[phase] ?? phase,
      stroke: PHASE_COLOURS[phases.indexOf(phase) % PHASE_COLOURS.length],
      fill: PHASE_COLOURS[phases.indexOf(phase) % PHASE_COLOURS.length],
      paths: bars(),
      points: { show: false },
      value: (u, v, si, idx) => (idx == null ? '–' : fmtMs(own[i]?.[idx])),
    })),
    scales: { y: fromZero },
    axes: [countAxis('ms')],
  });
  return {
    phases,
    destroy: c.destroy,
    set(records, xRange) {
      const perPhase = phases.map((phase) => records.map((p) => p.durationMs[phase] ?? 0));
      const stacked = perPhase.map((_, i) => records.map((_, r) => perPhase.slice(0, i + 1).reduce((sum, d) => sum + d[r], 0)));
      own.splice(0, own.length, ...[...perPhase].reverse());
      c.set([records.map(x), ...[...stacked].reverse()], xRange);
    },
  };
}

// ——— data ———

/** Progress records by batch id: the last WINDOW_S seconds of them, and at least the newest BATCHES_SHOWN. */
const progress = new Map();
let polls = 0;

const x = (p) => Date.parse(p.timestamp) / 1000;

async function getJson(path) {
  const res = await fetch(path, { cache: 'no-store' });
  return { ok: res.ok, body: await res.json().catch(() => null) };
}

async function readProgress() {
  const newest = Math.max(0, ...progress.keys());
  const first = progress.size === 0;
  let reply = await getJson(`/api/progress?limit=${first ? PROGRESS_FIRST : PROGRESS_NEXT}`);
  // More batches than PROGRESS_NEXT since the last read: read the window again.
  if (!first && reply.ok && reply.body.progress.length === PROGRESS_NEXT && reply.body.progress.at(-1).batchId > newest + 1) {
    reply = await getJson(`/api/progress?limit=${PROGRESS_FIRST}`);
  }
  if (!reply.ok) return reply;
  for (const p of reply.body.progress) progress.set(p.batchId, p);
  return reply;
}

async function poll() {
  const [status, ready, prog, rejects, revenue] = await Promise.allSettled([
    getJson('/api/status'),
    getJson('/readyz?verbose'),
    readProgress(),
    getJson(`/api/rejects?limit=${REJECTS_SHOWN}`),
    getJson(`/api/revenue?limit=${REVENUE_MINUTES}`),
  ]);
  const value = (r) => (r.status === 'fulfilled' ? r.value : undefined);
  const now = Date.now();
  showHeader(value(status)?.body?.stream, value(ready), now);
  // While the database cannot be read, the figures shown are the last read: dimmed.
  document.querySelector('main').classList.toggle('stale', !value(status)?.ok);
  if (value(status)?.ok) showStatus(value(status).body);
  if (value(prog)?.ok) showProgress(now);
  if (value(rejects)?.ok) showRejects(value(rejects).body.rejects);
  if (value(revenue)?.ok) showRevenue(value(revenue).body.minutes);
  $('updated').textContent = fmtTime(now);
  document.body.dataset.polls = String(++polls);
}

// ——— views ———

function showHeader(stream, ready, now) {
  const state = $('state');
  const failing = ready?.body?.checks?.filter((c) => !c.ok) ?? [];
  let shown;
  if (!stream && !ready) shown = { state: 'unreachable', text: 'unreachable', title: 'the streamer does not answer' };
  else if (failing.some((c) => c.name === 'database')) {
    const db = failing.find((c) => c.name === 'database');
    shown = { state: 'outage', text: 'database outage', title: db.detail };
  } else shown = { state: stream?.state ?? 'unknown', text: stream?.state ?? 'unknown', title: failing.map((c) => `${c.name}: ${c.detail}`).join('; ') };
  state.dataset.state = shown.state;
  state.textContent = shown.text;
  state.title = shown.title;

  if (stream) {
    $('stream-id').textContent = stream.id ?? '–';
    $('run-id').textContent = stream.runId;
    $('started-at').textContent = fmtDateTime(stream.startedAt);
    $('uptime').textContent = fmtAge(now - Date.parse(stream.startedAt));
  }
  const error = $('last-error');
  const f = stream?.lastFailure;
  if (shown.state === 'outage' || shown.state === 'unreachable') {
    error.hidden = false;
    error.classList.remove('past');
    error.textContent = `${shown.text}: ${shown.title}${f ? ` — last error at ${fmtTime(f.at)}, ${f.what}: ${f.reason}` : ''}`;
  } else if (f) {
    error.hidden = false;
    error.classList.add('past');
    error.textContent = `last error ${fmtAge(now - Date.parse(f.at))} ago, at ${fmtTime(f.at)}, ${f.what}: ${f.reason}`;
  } else if (stream) error.hidden = true;
}

function showStatus(s) {
  $('total-events').textContent = fmtInt(s.totals.events);
  $('total-rejects').textContent = fmtInt(s.totals.rejects);
  $('total-batches').textContent = fmtInt(s.totals.batches);
  $('total-files').textContent = fmtInt(s.totals.files.loaded);
  $('total-quarantined').textContent = fmtInt(s.totals.files.quarantined);
  $('backlog-now').textContent = `${fmtInt(s.pending.count)} · ${fmtBytes(s.pending.bytes)}`;

  const q = s.quarantine;
  $('quarantine-count').textContent = q.total > q.entries.length ? `newest ${q.entries.length} of ${fmtInt(q.total)}` : '';
  fill('quarantine', q.entries, 'no file set aside', (e) => [
    cell(fmtDateTime(e.at), 'when'),
    cell(e.name, 'file'),
    cell(e.reason ?? '–'),
    cell(e.batchId, 'num'),
    cell(e.reloaded ? 'yes, fixed' : 'no'),
  ]);
  // Layouts are recorded by streamers that know them; an older one's status has none.
  fill('layouts', s.layouts ?? [], s.layouts ? 'no layout recorded yet' : 'this streamer records no layouts', (l) => [
    cell(l.id, 'num'),
    cell(fmtInt(l.files), 'num'),
    cell(JSON.stringify(l.layout.delimiter)),
    cell(describeColumns(l.layout)),
    cell(Object.entries(l.layout.defaults ?? {}).map(([field, v]) => `${field} = ${v}`).join(', ') || '–'),
    cell(l.firstFile, 'file'),
  ]);
}

/** "user_id ← shopper, …; kept as attributes: category; ignored: notes" (a header column a field was read from, when named otherwise). */
function describeColumns({ fields, attributes = {}, ignored = [] }) {
  const mapped = (map) => Object.entries(map).map(([key, column]) => (key === column ? key : `${key} ← ${column}`)).join(', ');
  const parts = [mapped(fields)];
  if (Object.keys(attributes).length > 0) parts.push(`kept as attributes: ${mapped(attributes)}`);
  if (ignored.length > 0) parts.push(`ignored: ${ignored.join(', ')}`);
  return parts.join('; ');
}

function showProgress(now) {
  const since = now / 1000 - WINDOW_S;
  const all = [...progress.values()].sort((a, b) => a.batchId - b.batchId);
  for (const p of all.slice(0, -BATCHES_SHOWN)) if (x(p) < since) progress.delete(p.batchId);
  const records = all.filter((p) => x(p) >= since);
  const xs = records.map(x);
  // The last WINDOW_S seconds, or less while the points span less: a young stream fills its charts.
  const xRange = [Math.max(now / 1000 - WINDOW_S, (xs[0] ?? now / 1000) - 10), now / 1000];
  const backlog = (p) => p.sources[0]?.metrics;

  charts.rates.set([xs, records.map((p) => p.inputRowsPerSecond), records.map((p) => p.processedRowsPerSecond)], xRange);
  if (records.length > 0) {
    const keys = Object.keys(records.at(-1).durationMs).filter((k) => k !== 'triggerExecution');
    const phases = [...Object.keys(PHASE_LABELS).filter((k) => keys.includes(k)), ...keys.filter((k) => !(k in PHASE_LABELS)).sort()];
    if (charts.durations.phases.join() !== phases.join()) {
      charts.durations.destroy();
      charts.durations = durationChart(phases);
    }
  }
  charts.durations.set(records, xRange);
  charts.backlog.set([xs, records.map((p) => backlog(p)?.numFilesOutstanding ?? null), records.map((p) => backlog(p)?.numBytesOutstanding ?? null)], xRange);
  const seconds = (ms) => (ms == null ? null : ms / 1000);
  charts.latency.set([xs, records.map((p) => seconds(p.latency.p50Ms)), records.map((p) => seconds(p.latency.maxMs))], xRange);
  charts.rejects.set([xs, records.map((p) => p.sink.numRejectedRows)], xRange);

  fill('batches', all.slice(-BATCHES_SHOWN).reverse(), 'no batch yet', (p) => [
    cell(p.batchId, 'num'),
    cell(fmtTime(p.timestamp)),
    cell(fmtInt(p.sources[0]?.numFiles), 'num'),
    cell(fmtInt(p.numInputRows), 'num'),
    cell(fmtInt(p.sink.numOutputRows), 'num'),
    cell(fmtInt(p.sink.numRejectedRows), 'num'),
    cell(fmtInt(p.sink.numDuplicateRows), 'num'),
    cell(fmtMs(p.durationMs.triggerExecution), 'num'),
    cell(fmtRate(p.processedRowsPerSecond), 'num'),
    cell(fmtMs(p.latency.p50Ms), 'num'),
    cell(fmtInt(backlog(p)?.numFilesOutstanding), 'num'),
  ], (tr, p) => {
    tr.dataset.batchId = String(p.batchId);
    if (p.replay) tr.classList.add('replay');
  });
}

function showRejects(rows) {
  fill('rejects', rows, 'no row rejected', (r) => [cell(fmtDateTime(r.rejectedAt), 'when'), cell(r.file, 'file'), cell(r.line, 'num'), cell(r.reason), cell(r.raw, 'raw')]);
}

function showRevenue(minutes) {
  const xs = minutes.map((m) => Date.parse(m.minute) / 1000);
  charts.revenue.set([xs, minutes.map((m) => m.revenueCents / 100), minutes.map((m) => m.purchases)], [xs[0] ?? 0, (xs.at(-1) ?? 0) + 60]);
  $('revenue-label').textContent = `revenue · ${minutes.length} min`;
  $('purchases-label').textContent = `purchases · ${minutes.length} min`;
  $('revenue-window').textContent = fmtCents(minutes.reduce((sum, m) => sum + m.revenueCents, 0));
  $('purchases-window').textContent = fmtInt(minutes.reduce((sum, m) => sum + m.purchases, 0));
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (className) td.className = className;
  return td;
}

/** Replaces a table's rows; a table with none says so. */
function fill(id, items, none, cells, decorate) {
  const table = $(id);
  const rows = items.map((item) => {
    const tr = document.createElement('tr');
    tr.append(...cells(item));
    decorate?.(tr, item);
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const td = cell(none);
    td.colSpan = table.tHead.rows[0].cells.length;
    tr.append(td);
    rows.push(tr);
  }
  table.tBodies[0].replaceChildren(...rows);
}

async function loop() {
  try {
    await poll();
  } finally {
    setTimeout(loop, POLL_MS);
  }
}
loop();
