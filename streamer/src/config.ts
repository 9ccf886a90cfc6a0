import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import bytes from 'bytes';
import { z } from 'zod';
import { MAX_TIMER_MS } from '../../lib/maxTimer.ts';
import { COLUMNS, DEFAULT_ALIASES, type Column } from './reader/contract/columns.ts';
import { parseEventTypes, withSynonyms } from './reader/contract/vocabulary.ts';
import type { ReadRules } from './reader/fileReader.ts';
import type { CleanSource } from './source/retireFile.ts';

/** Every setting of the streamer: flag, environment variable, default, and what a wrong value means. */
const SETTINGS = {
  'data-dir': { env: 'DROPSTREAM_DATA_DIR', default: './data', help: 'working directory: input/, checkpoint/, quarantine/, postgres/' },
  'trigger-interval-ms': { env: 'DROPSTREAM_TRIGGER_INTERVAL_MS', default: '1000', help: 'start a micro-batch at most this often; 0 = as soon as files are ready' },
  'max-files-per-batch': { env: 'DROPSTREAM_MAX_FILES_PER_BATCH', default: '100', help: 'cap on files in one micro-batch' },
  'max-bytes-per-batch': { env: 'DROPSTREAM_MAX_BYTES_PER_BATCH', default: '256MB', help: 'cap on bytes in one micro-batch (a larger file goes alone); e.g. 64MB, 1GB' },
  'file-concurrency': { env: 'DROPSTREAM_FILE_CONCURRENCY', default: '2', help: 'files loaded at once, each on its own connection and transaction' },
  'file-stable-ms': { env: 'DROPSTREAM_FILE_STABLE_MS', default: '500', help: 'a file is read only once its size and mtime have not changed for this long' },
  'rescan-interval-ms': { env: 'DROPSTREAM_RESCAN_INTERVAL_MS', default: '30000', help: 'list input again this often, in case a file event was missed (new names, names that came back with new content)' },
  poll: { env: 'DROPSTREAM_POLL', default: 'false', help: 'watch by polling (Docker bind mounts, network filesystems)' },
  'available-now': { env: 'DROPSTREAM_AVAILABLE_NOW', default: 'false', help: 'process the files present at start, then exit' },
  'clean-source': { env: 'DROPSTREAM_CLEAN_SOURCE', default: 'off', help: 'after its batch commits, a file is left (off), moved to <data-dir>/archive (archive) or deleted (delete)' },
  'copy-stall-timeout-ms': { env: 'DROPSTREAM_COPY_STALL_TIMEOUT_MS', default: '60000', help: 'a COPY that makes no progress this long is cut off and retried' },
  'rebuild-checkpoint': { env: 'DROPSTREAM_REBUILD_CHECKPOINT', default: 'false', help: 'set a damaged checkpoint aside and rebuild it from the database ledger' },
  recursive: { env: 'DROPSTREAM_RECURSIVE', default: 'false', help: 'also read files in subdirectories of input (named by their relative path)' },
  'event-types': { env: 'DROPSTREAM_EVENT_TYPES', default: '', help: "event types accepted: empty = the built-in vocabulary (view, purchase, add_to_cart, …, with their synonyms); '+a,b' adds to it; 'a,b' replaces it; '*' accepts any value" },
  'event-synonyms': { env: 'DROPSTREAM_EVENT_SYNONYMS', default: '', help: "more names for event types, e.g. 'purchase=bought,paid;add_to_cart=basket'" },
  'extra-columns': { env: 'DROPSTREAM_EXTRA_COLUMNS', default: 'attributes', help: 'columns that map to no field: kept in user_activity.attributes (attributes) or dropped (ignore)' },
  'column-aliases': { env: 'DROPSTREAM_COLUMN_ALIASES', default: '', help: "more header names per column, e.g. 'event_time=when,at;user_id=shopper'" },
  'default-time-zone': { env: 'DROPSTREAM_DEFAULT_TIME_ZONE', default: 'UTC', help: 'zone of timestamps written without one: UTC, an IANA name (Europe/Paris) or an offset (+02:00)' },
  'pg-port': { env: 'DROPSTREAM_PG_PORT', default: '54329', help: 'port of the embedded PostgreSQL (used when DATABASE_URL is not set)' },
  'http-port': { env: 'DROPSTREAM_HTTP_PORT', default: '8181', help: 'port of the HTTP server: /livez, /readyz, /api/status, /api/progress, /api/rejects, /metrics; 0 = no server' },
  'http-host': { env: 'DROPSTREAM_HTTP_HOST', default: '127.0.0.1', help: 'address the HTTP server listens on (0.0.0.0: every interface, as in a container)' },
} as const;
type SettingName = keyof typeof SETTINGS;
const BOOLEAN_FLAGS: ReadonlySet<string> = new Set(['poll', 'available-now', 'rebuild-checkpoint', 'recursive']);

const wholeNumber = (min: number) =>
  z.string().trim().regex(/^\d+$/, `must be a whole number ≥ ${min}`).transform(Number).refine((n) => n >= min, `must be ≥ ${min}`);
const milliseconds = (min: number) => wholeNumber(min).refine((n) => n <= MAX_TIMER_MS, `must be ≤ ${MAX_TIMER_MS} (about 24.8 days, the longest timer Node.js keeps)`);
const boolean = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no', ''].includes(v), 'must be true or false')
  .transform((v) => ['true', '1', 'yes', ''].includes(v));
const byteSize = z
  .string()
  .trim()
  .transform((v, ctx) => {
    // bytes.parse alone reads '1.5.5GB' as 1 and '12abc' as 12.
    const n = /^\d+(\.\d+)?\s*([kmgtp]?b)?$/i.test(v) ? bytes.parse(v) : null;
    if (n === null || !Number.isFinite(n) || n < 1) {
      ctx.addIssue({ code: 'custom', message: 'must be a size such as 1048576, 64MB or 1GB' });
      return z.NEVER;
    }
    return n;
  });

const schema = z.object({
  'data-dir': z.string().min(1, 'must not be empty').transform((d) => resolve(d)),
  'trigger-interval-ms': milliseconds(0),
  'max-files-per-batch': wholeNumber(1),
  'max-bytes-per-batch': byteSize,
  'file-concurrency': wholeNumber(1).refine((n) => n <= 32, 'must be ≤ 32'),
  'file-stable-ms': milliseconds(0),
  'rescan-interval-ms': milliseconds(1000),
  poll: boolean,
  'available-now': boolean,
  'clean-source': z.enum(['off', 'archive', 'delete'], { error: 'must be off, archive or delete' }),
  'copy-stall-timeout-ms': milliseconds(1000),
  'rebuild-checkpoint': boolean,
  'pg-port': wholeNumber(1).refine((n) => n <= 65535, 'must be ≤ 65535'),
  'http-port': wholeNumber(0).refine((n) => n <= 65535, 'must be ≤ 65535'),
  'http-host': z.string().trim().min(1, 'must not be empty'),
  recursive: boolean,
  'event-types': z.string().transform((v, ctx) => {
    const vocabulary = parseEventTypes(v);
    if (typeof vocabulary === 'string') {
      ctx.addIssue({ code: 'custom', message: vocabulary });
      return z.NEVER;
    }
    return vocabulary;
  }),
  'event-synonyms': z.string(),
  'extra-columns': z.enum(['attributes', 'ignore'], { error: 'must be attributes or ignore' }),
  'column-aliases': z.string().transform((v, ctx) => {
    const aliases = parseAliases(v);
    if (typeof aliases === 'string') {
      ctx.addIssue({ code: 'custom', message: aliases });
      return z.NEVER;
    }
    return aliases;
  }),
  'default-time-zone': z.string().trim().refine(isTimeZone, 'must be UTC, an IANA time zone such as Europe/Paris, or an offset such as +02:00'),
});

const OFFSET = /^[+-](0\d|1[0-4]):?[0-5]\d$/;

function isTimeZone(zone: string): boolean {
  // The default needs no check: a first Intl.DateTimeFormat loads the zone data (≈ 40 ms of CPU).
  if (zone === 'UTC' || OFFSET.test(zone)) return true;
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** 'event_time=when,at;user_id=shopper' → each column's extra names, or what is wrong with it. */
function parseAliases(text: string): Record<Column, string[]> | string {
  const aliases = Object.fromEntries(COLUMNS.map((c) => [c, [...DEFAULT_ALIASES[c]]])) as Record<Column, string[]>;
  for (const part of text.split(';').map((p) => p.trim()).filter(Boolean)) {
    const [column, names] = part.split('=').map((x) => x.trim());
    if (!COLUMNS.includes(column as Column)) return `names an unknown column '${column}' (columns: ${COLUMNS.join(', ')})`;
    if (!names) return `gives no names for ${column} (write ${column}=name1,name2)`;
    aliases[column as Column].push(...names.split(',').map((n) => n.trim()).filter(Boolean));
  }
  return aliases;
}

export interface StreamerConfig {
  dataDir: string;
  inputDir: string;
  checkpointDir: string;
  quarantineDir: string;
  archiveDir: string;
  /** Unset: the embedded PostgreSQL under dataDir is used. */
  databaseUrl: string | undefined;
  embeddedPgPort: number;
  /** 0: no HTTP server. */
  httpPort: number;
  httpHost: string;
  triggerIntervalMs: number;
  maxFilesPerBatch: number;
  maxBytesPerBatch: number;
  fileConcurrency: number;
  fileStableMs: number;
  rescanIntervalMs: number;
  poll: boolean;
  availableNow: boolean;
  cleanSource: CleanSource;
  copyStallMs: number;
  rebuildCheckpoint: boolean;
  recursive: boolean;
  /** How rows are read: event vocabulary, header aliases, extra columns, default time zone. */
  rules: ReadRules;
}

export class ConfigError extends Error {}

export function usage(): string {
  const lines = Object.entries(SETTINGS).map(
    ([flag, s]) => `  --${flag.padEnd(22)} ${s.help}\n  ${' '.repeat(24)} env ${s.env}, default ${s.default}`,
  );
  return `Usage: npm run stream -- [options]\n\n${lines.join('\n')}\n\n  DATABASE_URL             PostgreSQL to load into; unset = embedded PostgreSQL under --data-dir`;
}

/** Flags win over environment variables, which win over defaults. Throws ConfigError naming every wrong value. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): StreamerConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.keys(SETTINGS).map((k) => [k, { type: BOOLEAN_FLAGS.has(k) ? 'boolean' : 'string' }]),
      ) as Record<SettingName, { type: 'string' | 'boolean' }>,
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n\n${usage()}`);
  }
  const raw: Record<string, string> = {};
  for (const [name, setting] of Object.entries(SETTINGS)) {
    const flag = (parsed.values as Record<string, string | boolean | undefined>)[name];
    raw[name] = flag !== undefined ? String(flag) : (env[setting.env] ?? setting.default);
  }
  const invalid = (issues: Array<{ name: SettingName; message: string }>) =>
    new ConfigError(`Invalid configuration:\n  ${issues.map(({ name, message }) => `--${name} (${SETTINGS[name].env}) ${message}, got '${raw[name]}'`).join('\n  ')}`);
  const result = schema.safeParse(raw);
  if (!result.success) throw invalid(result.error.issues.map((issue) => ({ name: String(issue.path[0]) as SettingName, message: issue.message })));
  const v = result.data;
  const vocabulary = withSynonyms(v['event-types'], v['event-synonyms']);
  if (typeof vocabulary === 'string') throw invalid([{ name: 'event-synonyms', message: vocabulary }]);
  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError(`Invalid configuration:\n  DATABASE_URL must start with postgres:// or postgresql://, got '${databaseUrl}'`);
  }
  return {
    dataDir: v['data-dir'],
    inputDir: `${v['data-dir']}/input`,
    checkpointDir: `${v['data-dir']}/checkpoint`,
    quarantineDir: `${v['data-dir']}/quarantine`,
    archiveDir: `${v['data-dir']}/archive`,
    databaseUrl,
    embeddedPgPort: v['pg-port'],
    httpPort: v['http-port'],
    httpHost: v['http-host'],
    triggerIntervalMs: v['trigger-interval-ms'],
    maxFilesPerBatch: v['max-files-per-batch'],
    maxBytesPerBatch: v['max-bytes-per-batch'],
    fileConcurrency: v['file-concurrency'],
    fileStableMs: v['file-stable-ms'],
    rescanIntervalMs: v['rescan-interval-ms'],
    poll: v.poll,
    availableNow: v['available-now'],
    cleanSource: v['clean-source'],
    copyStallMs: v['copy-stall-timeout-ms'],
    rebuildCheckpoint: v['rebuild-checkpoint'],
    recursive: v.recursive,
    rules: {
      vocabulary,
      aliases: v['column-aliases'],
      attributes: v['extra-columns'] === 'attributes',
      ...timeZoneRule(v['default-time-zone']),
    },
  };
}

/** An offset (and UTC) is written into each timestamp; a named zone is left to PostgreSQL, which knows its daylight saving. */
function timeZoneRule(zone: string): Pick<ReadRules, 'defaultOffset' | 'namedTimeZone'> {
  if (zone.toUpperCase() === 'UTC' || zone === 'Etc/UTC') return { defaultOffset: '+00:00', namedTimeZone: undefined };
  if (OFFSET.test(zone)) return { defaultOffset: zone, namedTimeZone: undefined };
  return { defaultOffset: undefined, namedTimeZone: zone };
}
