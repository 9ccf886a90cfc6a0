import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chmod, lchown, lstat, mkdir, readdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiled, ROOT } from '../lib/paths.ts';
import { accountingViolations, logLines } from './fixtures/checks.ts';
import { RUNS, type FixtureFile, type FixtureRun, type Reject, type StoredValues } from './fixtures/expected.ts';
import { finished, streamAvailableNow, type Run } from './support/pipeline.ts';
import type { TestDatabase } from './support/db.ts';
import { useWorkspace } from './support/workspace.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const IGNORED_COLUMNS_MSG = 'columns not used by dropstream are ignored';
const NEW_LAYOUT_MSG = /^new layout #(\d+), first met in /;
const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Every file under a directory, as paths relative to it. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

/** Copies a run's fixtures into input/ under their names; all get the same mtime, a minute ago, so that they are read in name order. */
async function dropFiles(run: FixtureRun, dataDir: string, input: string): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  for (const file of run.files) {
    const target = join(input, file.name);
    await mkdir(dirname(target), { recursive: true });
    const content = file.make ? file.make() : await readFile(join(FIXTURES, run.dir, file.from ?? file.name));
    if (file.symlink) {
      const outsideDir = join(dataDir, 'outside', file.symlink === 'directory' ? file.name : '');
      const outside = join(outsideDir, basename(file.from ?? file.name));
      await mkdir(outsideDir, { recursive: true });
      await writeFile(outside, content);
      await symlink(file.symlink === 'directory' ? outsideDir : outside, target);
      continue;
    }
    await writeFile(target, content);
    await utimes(target, past, past);
    if (file.mode !== undefined) await chmod(target, file.mode);
  }
}

/** The streamer as user nobody (for whom a file of mode 000 is unreadable); DATABASE_URL as the other runs. */
async function streamAsNobody(dataDir: string, db: TestDatabase, args: string[]): Promise<Run> {
  for (const path of [dataDir, ...(await readdir(dataDir, { recursive: true })).map((p) => join(dataDir, p))]) await lchown(path, NOBODY.uid, NOBODY.gid);
  const child = spawn(process.execPath, [compiled('streamer/src/main.ts'), '--data-dir', dataDir, '--file-stable-ms', '0', '--available-now', ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_FORMAT: 'json', DATABASE_URL: db.url },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...NOBODY,
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  return finished(Object.assign(child, { output: () => output }));
}

interface Observed {
  ledger: Array<{ status: string; reason: string | null; rows_read: number; rows_loaded: number; rows_rejected: number; rows_duplicate: number }>;
  rows: Array<[number, string]> | { lines: number[] };
  rejected: Array<[number, string, unknown]>;
  values?: Record<number, Record<string, unknown> | undefined>;
  layout?: unknown;
  defaulted?: unknown;
  warnings: number;
  place: 'input' | 'quarantine' | 'missing' | 'both';
  reasonFileHoldsReason?: boolean;
}

/** What the manifest says, in the shape of what is observed. */
function expectedOf(file: FixtureFile, physicalLine: (line: number) => string): Observed {
  const e = file.expect;
  const zero = { rows_read: 0, rows_loaded: 0, rows_rejected: 0, rows_duplicate: 0 };
  switch (e.status) {
    case 'ignored':
      return { ledger: [], rows: [], rejected: [], warnings: 0, place: 'input' };
    case 'empty':
      return { ledger: [{ status: 'empty', reason: e.reason, ...zero }], rows: [], rejected: [], warnings: 0, place: 'input' };
    case 'quarantined':
      return {
        ledger: [{ status: 'quarantined', reason: typeof e.reason === 'string' ? e.reason : (expect.stringMatching(e.reason) as unknown as string), ...zero }],
        rows: [],
        rejected: [],
        warnings: 0,
        place: 'quarantine',
        reasonFileHoldsReason: true,
      };
    case 'loaded': {
      const stored = Array.isArray(e.rows) ? e.rows.length : e.rows.lines.length;
      const rejected = (e.rejected ?? []).map(([line, reason, raw]: Reject): [number, string, unknown] => [
        line,
        reason,
        raw === null ? expect.any(String) : (raw ?? physicalLine(line)),
      ]);
      const duplicate = e.duplicate ?? 0;
      return {
        ledger: [{ status: 'loaded', reason: null, rows_read: stored + rejected.length + duplicate, rows_loaded: stored, rows_rejected: rejected.length, rows_duplicate: duplicate }],
        rows: e.rows,
        rejected,
        ...(e.values && { values: e.values }),
        ...(e.layout && { layout: e.layout }),
        ...(e.defaulted && { defaulted: { event_id: 0, product_id: 0, price: 0, quantity: 0, ...e.defaulted } }),
        warnings: e.ignoredColumns ? 1 : 0,
        place: 'input',
      };
    }
  }
}

async function observe(db: TestDatabase, file: FixtureFile, dataDir: string, output: string): Promise<Observed> {
  const ledger = await db.query(
    `SELECT status, reason, rows_read::int, rows_loaded::int, rows_rejected::int, rows_duplicate::int, layout, rows_defaulted FROM ingest_files WHERE name = $1 ORDER BY id`,
    [file.name],
  );
  const stored = await db.query<{ line: number; event_id: string } & StoredValues>(
    `SELECT source_line::int AS line, event_id::text, user_id, event_type, product_id, price::text, quantity,
            to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS event_time, source_event_id, attributes
       FROM user_activity WHERE source_file = $1 ORDER BY source_line`,
    [file.name],
  );
  const rejects = await db.query<{ line: number; reason: string; raw: string }>(
    'SELECT source_line::int AS line, reason, raw FROM user_activity_rejects WHERE source_file = $1 ORDER BY source_line, id',
    [file.name],
  );
  const e = file.expect;
  const rows: Observed['rows'] =
    e.status === 'loaded' && !Array.isArray(e.rows) ? { lines: stored.rows.map((r) => r.line) } : stored.rows.map((r) => [r.line, r.event_id]);
  let values: Observed['values'];
  if (e.status === 'loaded' && e.values) {
    values = {};
    for (const [line, wanted] of Object.entries(e.values)) {
      const r = stored.rows.find((s) => s.line === Number(line)) as Record<string, unknown> | undefined;
      values[Number(line)] = r && Object.fromEntries(Object.keys(wanted).map((k) => [k, r[k]]));
    }
  }
  const warnings = logLines(output).filter((l) => l.msg === IGNORED_COLUMNS_MSG && l.file === file.name).length;
  const inInput = await exists(join(dataDir, 'input', file.name));
  const quarantined = join(dataDir, 'quarantine', file.name);
  const inQuarantine = await exists(quarantined);
  const observed: Observed = {
    ledger: ledger.rows.map(({ layout: _, rows_defaulted: __, ...r }) => r) as Observed['ledger'],
    ...(e.status === 'loaded' && e.layout && { layout: ledger.rows[0]?.layout }),
    ...(e.status === 'loaded' && e.defaulted && { defaulted: ledger.rows[0]?.rows_defaulted }),
    rows,
    rejected: rejects.rows.map((r) => [r.line, r.reason, r.raw]),
    ...(values && { values }),
    warnings,
    place: inInput && inQuarantine ? 'both' : inInput ? 'input' : inQuarantine ? 'quarantine' : 'missing',
  };
  if (e.status === 'quarantined') {
    const reasonFile = await readFile(`${quarantined}.reason`, 'utf8').catch(() => '');
    const reason = ledger.rows[0]?.reason as string | undefined;
    observed.reasonFileHoldsReason = reason !== undefined && reason !== null && reasonFile.includes(reason);
  }
  return observed;
}

describe('the fixture corpus (test/fixtures/expected.ts)', () => {
  const ws = useWorkspace({ input: true });

  it('every file of the corpus has an expected outcome, and every expected file exists', async () => {
    const dirs = [...new Set(Object.values(RUNS).map((r) => r.dir))];
    for (const dir of dirs) {
      const inManifest = new Set(Object.values(RUNS).filter((r) => r.dir === dir).flatMap((r) => r.files.filter((f) => !f.make).map((f) => f.from ?? f.name)));
      expect((await listFiles(join(FIXTURES, dir))).sort(), dir).toEqual([...inManifest].sort());
    }
    const all = (await readdir(FIXTURES, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(all.sort()).toEqual(dirs.sort());
  });

  it.each(Object.entries(RUNS))('%s run: every file ends as expected; the accounting holds', async (_label, run) => {
    await dropFiles(run, ws.data.dir, ws.data.input);
    const asNobody = run.asNobody === true && isRoot;
    const result = asNobody ? await streamAsNobody(ws.data.dir, ws.db, run.args) : await streamAvailableNow(ws.data.dir, ws.db, run.args);
    // Soft: the outcome of each file below says more than the exit code alone.
    expect.soft(result.code, result.output).toBe(0);

    for (const file of run.files) {
      const text = file.make || file.symlink ? '' : await readFile(join(FIXTURES, run.dir, file.from ?? file.name), 'latin1');
      const physicalLine = (n: number) => Buffer.from(text.split('\n')[n - 1] ?? '', 'latin1').toString('utf8').replace(/\r$/, '');
      expect.soft(await observe(ws.db, file, ws.data.dir, result.output), JSON.stringify(file.name)).toEqual(expectedOf(file, physicalLine));
    }
    // Nothing else was recorded.
    const { rows } = await ws.db.query<{ name: string }>('SELECT DISTINCT name FROM ingest_files');
    const recorded = run.files.filter((f) => f.expect.status !== 'ignored').map((f) => f.name);
    expect.soft(rows.map((r) => r.name).sort()).toEqual(recorded.sort());
    expect.soft(await accountingViolations(ws.db)).toEqual([]);
    // Each layout met is said once, naming the file it was first met in; every loaded file has one.
    const { rows: layouts } = await ws.db.query<{ id: string; first_file: string }>('SELECT id, first_file FROM ingest_layouts ORDER BY id');
    const announced = logLines(result.output).filter((l) => NEW_LAYOUT_MSG.test(String(l.msg)));
    // In id order: files loaded at once may commit, and log, in another order than they recorded their layouts.
    const byId = (p: [string, unknown], q: [string, unknown]) => Number(p[0]) - Number(q[0]);
    expect.soft(announced.map((l): [string, unknown] => [String(l.layoutId), l.file]).sort(byId)).toEqual(layouts.map((l) => [l.id, l.first_file]));
    const { rows: without } = await ws.db.query(`SELECT name FROM ingest_files WHERE status = 'loaded' AND (layout_id IS NULL OR layout IS NULL)`);
    expect.soft(without).toEqual([]);
  });
});
