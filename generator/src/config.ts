import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { MAX_TIMER_MS } from '../../lib/maxTimer.ts';
import { LAYOUT_NAMES, type LayoutName } from './layouts.ts';

export interface GeneratorConfig {
  /** Absolute; files are written to <dataDir>/temp, then renamed into <dataDir>/input. */
  dataDir: string;
  /** Stop after this many files; undefined runs until stopped. */
  files: number | undefined;
  rows: number;
  /** Pause between two files; 0 writes them back to back. */
  intervalMs: number;
  /** undefined draws a random seed per run. */
  seed: number | undefined;
  purchaseRatio: number;
  /** Epoch milliseconds of the first event. */
  startTime: number;
  layout: LayoutName;
  /** Share of rows spoiled so that a loader must reject them, 0..1; above 0, a manifest goes beside each file. */
  badRows: number;
}

export type CliRequest = { help: true } | { help: false; config: GeneratorConfig };

/** A wrong flag or value; its message is one line meant for the person at the terminal. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const SEEDED_START_TIME = '2026-01-01T00:00:00Z';
const MAX_SEED = 0xffff_ffff;

export const USAGE = `Usage: generator [options]

Writes CSV files of fake e-commerce events into <data-dir>/input, each one written
in <data-dir>/temp first and renamed in when complete.

Options:
  --files N            stop after N files (default: run until SIGINT/SIGTERM)
  --rows N             data rows per file (default: 1000)
  --interval-ms N      pause between files in ms, 0 = as fast as possible (default: 1000)
  --seed S             whole number 0..${MAX_SEED}; the same seed writes the same bytes
                       (default: random)
  --purchase-ratio R   share of purchases among events, 0..1 (default: 0.2)
  --start-time ISO     time of the first event, e.g. ${SEEDED_START_TIME}
                       (default: ${SEEDED_START_TIME} with --seed, now without)
  --layout NAME        ${LAYOUT_NAMES.join(', ')}: the columns and formats of
                       the files (default: canonical; see the README)
  --bad-rows R         share of rows, 0..1, spoiled in ways a loader must reject (bad
                       timestamp, negative price, invalid UTF-8, …); each file's lines
                       and kinds go to input/<file>.injected.json (default: 0)
  --data-dir DIR       data directory (default: $DROPSTREAM_DATA_DIR, else ./data)
  -h, --help           print this help
`;

/** A flag's string value turned into T, or one message naming the flag, what it takes and what it got. */
function flag<T>(name: string, expected: string, parse: (raw: string) => T | undefined) {
  return z.string().transform((raw, ctx) => {
    const value = parse(raw);
    if (value !== undefined) return value;
    ctx.addIssue({ code: 'custom', message: `${name} must be ${expected}, got '${raw}'` });
    return z.NEVER;
  });
}

function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number | undefined => {
    // Number() alone would accept '', ' 1', '1e3' and '0x10'.
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    return Number.isSafeInteger(value) && value >= min && value <= max ? value : undefined;
  };
}

function ratio(raw: string): number | undefined {
  const value = /^(\d+(\.\d*)?|\.\d+)$/.test(raw) ? Number(raw) : Number.NaN;
  return value >= 0 && value <= 1 ? value : undefined;
}

const schema = z.object({
  files: flag('--files', 'a whole number ≥ 1', wholeNumber(1)).optional(),
  rows: flag('--rows', 'a whole number ≥ 1', wholeNumber(1)).default(1000),
  'interval-ms': flag('--interval-ms', `a whole number from 0 to ${MAX_TIMER_MS}`, wholeNumber(0, MAX_TIMER_MS)).default(1000),
  seed: flag('--seed', `a whole number from 0 to ${MAX_SEED}`, wholeNumber(0, MAX_SEED)).optional(),
  'purchase-ratio': flag('--purchase-ratio', 'a number from 0 to 1', ratio).default(0.2),
  'start-time': z.iso
    .datetime({
      offset: true,
      error: (issue) =>
        `--start-time must be an ISO-8601 date-time with a zone, e.g. ${SEEDED_START_TIME}, got '${String(issue.input)}'`,
    })
    .optional(),
  layout: flag('--layout', `one of ${LAYOUT_NAMES.join(', ')}`, (raw) => LAYOUT_NAMES.find((name) => name === raw)).default('canonical'),
  'bad-rows': flag('--bad-rows', 'a number from 0 to 1', ratio).default(0),
  'data-dir': flag('--data-dir', 'a directory path', (raw) => (raw === '' ? undefined : raw)),
});

const OPTIONS = {
  files: { type: 'string' },
  rows: { type: 'string' },
  'interval-ms': { type: 'string' },
  seed: { type: 'string' },
  'purchase-ratio': { type: 'string' },
  'start-time': { type: 'string' },
  layout: { type: 'string' },
  'bad-rows': { type: 'string' },
  'data-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

function readFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    // parseArgs explains some mistakes over several lines; the first one names the flag.
    const message = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
    throw new ConfigError(message);
  }
}

/**
 * Reads the generator's flags. Throws ConfigError on an unknown flag or a wrong value.
 * `now` is the start time of an unseeded run without --start-time.
 */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env, now = Date.now()): CliRequest {
  const values = readFlags(argv);
  if (values.help) return { help: true };

  // The flag wins over the environment; an empty variable counts as unset.
  const parsed = schema.safeParse({
    ...values,
    'data-dir': values['data-dir'] ?? (env.DROPSTREAM_DATA_DIR || './data'),
  });
  if (!parsed.success) throw new ConfigError(parsed.error.issues[0]?.message ?? 'invalid options');

  const options = parsed.data;
  const startTime = options['start-time'] ?? (options.seed === undefined ? undefined : SEEDED_START_TIME);
  return {
    help: false,
    config: {
      dataDir: resolve(options['data-dir']),
      files: options.files,
      rows: options.rows,
      intervalMs: options['interval-ms'],
      seed: options.seed,
      purchaseRatio: options['purchase-ratio'],
      startTime: startTime === undefined ? now : Date.parse(startTime),
      layout: options.layout,
      badRows: options['bad-rows'],
    },
  };
}
