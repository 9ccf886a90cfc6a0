// Smoke test of `npm run bench`: every measurement runs in quick mode on a tiny corpus, so that the
// script cannot rot. It checks the report's shape and the rows each variant stored, never timings.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BEGIN, END, writeReport, type BenchReport } from '../scripts/bench/report.ts';
import { MEASUREMENTS, runBench } from '../scripts/bench/run.ts';
import { findPsql } from '../scripts/bench/support.ts';
import type { VariantId } from '../scripts/bench/throughput.ts';

describe('npm run bench --quick', () => {
  let dir: string;
  let report: BenchReport;
  const psql = findPsql();
  // psql's \copy when psql is installed, and always the fallback used when it is not.
  const variants: VariantId[] = [...(psql ? (['psql-copy'] as const) : []), 'node-copy', 'insert', 'streamer', 'streamer-unobserved', 'streamer-no-rollups'];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dropstream-bench-test-'));
    report = await runBench({
      adminUrl: inject('adminUrl'),
      postgresSource: 'test server',
      cacheDir: join(dir, 'cache'),
      quick: true,
      only: MEASUREMENTS,
      repeat: 1,
      variants,
      psql,
      streamerArgs: [],
      log: () => undefined,
    });
  }, 300_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('measures every variant, and each stored exactly the rows of its files', () => {
    const t = report.throughput!;
    expect(t.variants.map((v) => v.id)).toEqual(variants);
    expect(t.baseline).toBe(variants[0]);
    expect(t.corpus.rows).toBe(t.corpus.files * t.corpus.rowsPerFile);
    for (const v of t.variants) {
      expect(v.runs).toHaveLength(1);
      expect(v.runs.map((r) => r.rowsLoaded), v.id).toEqual([t.corpus.rows]);
      expect(v.rowsOk).toBe(true);
      expect(v.rowsPerSec.median).toBeGreaterThan(0);
    }
    expect(t.ratio).toBeGreaterThan(0);
    expect(t.observedRatio).toBeGreaterThan(0);
    expect(t.variants.find((v) => v.id === 'streamer-unobserved')!.runs[0]!.scrapes).toBeUndefined();
    expect(t.variants.find((v) => v.id === 'streamer')!.peakRssBytes!.max).toBeGreaterThan(0);

    // The same events in 12 columns separated by ';'. A streamer that sets such files aside cannot
    // read the layout: the measurement then says so instead of measuring; otherwise it stores every row.
    const w = report.throughputWide!;
    expect(w.corpus).toMatchObject({ layout: 'semicolon', files: t.corpus.files, rows: t.corpus.rows });
    expect(w.corpus.bytes).toBeGreaterThan(t.corpus.bytes);
    if (w.skipped !== undefined) {
      expect(w.skipped).toMatch(new RegExp(`^the streamer set \\d+ of ${w.corpus.files} files aside: .+`));
      expect(w.streamer).toBeUndefined();
    } else {
      expect(w.streamer!.runs.map((r) => r.rowsLoaded)).toEqual([w.corpus.rows]);
      expect(w.streamer!.rowsOk).toBe(true);
    }

    const m = report.memory!;
    expect(m.corpus.files).toBe(1);
    expect(m.variants.map((v) => v.id)).toEqual([variants[0], 'streamer']);
    for (const v of m.variants) expect(v.runs.map((r) => r.rowsLoaded), v.id).toEqual([m.corpus.rows]);
    expect(m.peakRssBytes!.max).toBeGreaterThan(0);

    expect(report.latency!.map((l) => l.filesPerSec)).toEqual([10, 1]);
    for (const l of report.latency!) {
      expect(l.filesCommitted).toBe(l.filesWritten);
      expect(l.rowsLoaded).toBe(l.rowsExpected);
      expect(l.latencyMs.p50).toBeGreaterThan(0);
      expect(l.latencyMs.p99).toBeGreaterThanOrEqual(l.latencyMs.p50);
    }

    const s = report.startup!;
    expect(s.historyFiles).toBe(1000);
    expect(s.runs).toHaveLength(1);
    expect(s.rowsOk).toBe(true);
    expect(s.firstBatchMs.median).toBeGreaterThanOrEqual(s.watchingMs.median);

    // Growth: preloaded to each size, then the streamer on top, each run paired with one on an
    // empty table; the views equal their raw aggregates.
    const g = report.growth!;
    expect(g.points.map((p) => p.tableRows)).toEqual([3000]);
    const [p] = g.points;
    expect(p!.rowsPerSec.median).toBeGreaterThan(0);
    expect(p!.emptyRowsPerSec.median).toBeGreaterThan(0);
    expect(p!.indexBytes).toBeGreaterThan(0);
    // The preload and the runs on top, not the empty pair's rows: 3,000 + 400 rows of ≈ 100 bytes.
    expect(p!.tableBytes).toBeGreaterThan(3000 * 100);
    expect(g.ratio).toBe(p!.ratio);
    expect(g.ratio).toBeGreaterThan(0);
    expect(g.preloadRowsPerSec).toBeGreaterThan(0);
    expect(g.views.map((v) => v.view)).toEqual(['revenue_by_day', 'revenue_by_product', 'revenue_by_user']);
    for (const v of g.views) {
      expect(v.tableRows).toBeGreaterThanOrEqual(2000);
      expect(v.rowsEqual, v.view).toBe(true);
      expect(v.viewMs.median).toBeGreaterThan(0);
    }

    expect(report.rowsOk).toBe(true);
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(report.machine.postgres).toMatch(/^\d+/);
    expect(report.commit).not.toBe('');
    // The streamer's CPU is a target wherever /proc shows the server's (and so the client's) CPU.
    const streamerCpu = report.throughput!.variants.find((v) => v.id === 'streamer')!.cpuPerMillionRows;
    const cpuTarget = report.targets.find((c) => c.what.startsWith("the streamer process's CPU"));
    if (streamerCpu) {
      // The streamer's own process, reaped by the bench: never nothing.
      expect(streamerCpu.client).toBeGreaterThan(0);
      expect(cpuTarget?.measured).toBe(`${streamerCpu.client.toFixed(2)} s`);
    }
    else expect(cpuTarget).toBeUndefined();
    expect(report.targets.map((c) => c.what)).toHaveLength(7 + 1 + 3 + (streamerCpu ? 1 : 0));
  });

  it('writes the JSON and only the generated part of the Markdown', async () => {
    const md = join(dir, 'performance.md');
    await writeFile(md, `# Performance\n\nHand-written method.\n\n${BEGIN}\nold figures\n${END}\n\nHand-written footer.\n`);
    const written = await writeReport(report, md);
    const text = await readFile(md, 'utf8');
    expect(text.startsWith('# Performance\n\nHand-written method.\n\n')).toBe(true);
    expect(text.endsWith(`${END}\n\nHand-written footer.\n`)).toBe(true);
    expect(text).not.toContain('old figures');
    expect(text).toContain('### Throughput');
    expect(text).toContain('### Throughput, 12 columns separated by `;` (semicolon layout)');
    expect(text).toContain('### Start-up with 1,000 files in history');
    expect(JSON.parse(await readFile(written.json, 'utf8'))).toEqual(JSON.parse(JSON.stringify(report)));

    await writeReport(report, md); // again: still one generated part
    expect((await readFile(md, 'utf8')).split(END)).toHaveLength(2);
  });
});
