import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import bytes from 'bytes';
import { z } from 'zod';
import type { CleanSource } from './source/retireFile.ts';

/** Every setting of the streamer: flag, environment variable, default, and what a wrong value means. */
const SETTINGS = {
  'data-dir': { env: 'DROPSTREAM_DATA_DIR', default: './data', help: 'working directory: input/, checkpoint/, quarantine/, postgres/' },
  'trigger-interval-ms': { env: 'DROPSTREAM_TRIGGER_INTERVAL_MS', default: '1000', help: 'start a micro-batch at most this often; 0 = as soon as files are ready' },
  'max-files-per-batch': { env: 'DROPSTREAM_MAX_FILES_PER_BATCH', default: '100', help: 'cap on files in one micro-batch' },
  'max-bytes-per-batch': { env: 'DROPSTREAM_MAX_BYTES_PER_BATCH', default: '256MB', help: 'cap on bytes in one micro-batch (a larger file goes alone); e.g. 64MB, 1GB' },
  'file-concurrency': { env: 'DROPSTREAM_FILE_CONCURRENCY', default: '2', help: 'files loaded at once, each on its own connection and transaction' },
  'file-stable-ms': { env: 'DROPSTREAM_FILE_STABLE_MS', default: '500', help: 'a file is read only once its size and mtime have not changed for this long' },
  poll: { env: 'DROPSTREAM_POLL', default: 'false', help: 'watch by polling (Docker bind mounts, network filesystems)' },
  'available-now': { env: 'DROPSTREAM_AVAILABLE_NOW', default: 'false', help: 'process the files present at start, then exit' },
  'clean-source': { env: 'DROPSTREAM_CLEAN_SOURCE', default: 'off', help: 'after its batch commits, a file is left (off), moved to <data-dir>/archive (archive) or deleted (delete)' },
  'copy-stall-timeout-ms': { env: 'DROPSTREAM_COPY_STALL_TIMEOUT_MS', default: '60000', help: 'a COPY that makes no progress this long is cut off and retried' },
  'rebuild-checkpoint': { env: 'DROPSTREAM_REBUILD_CHECKPOINT', default: 'false', help: 'set a damaged checkpoint aside and rebuild it from the database ledger' },
  'pg-port': { env: 'DROPSTREAM_PG_PORT', default: '54329', help: 'port of the embedded PostgreSQL (used when DATABASE_URL is not set)' },
} as const;
type SettingName = keyof typeof SETTINGS;
const BOOLEAN_FLAGS: ReadonlySet<string> = new Set(['poll', 'available-now', 'rebuild-checkpoint']);

const wholeNumber = (min: number) =>
  z.string().trim().regex(/^\d+$/, `must be a whole number ≥ ${min}`).transform(Number).refine((n) => n >= min, `must be ≥ ${min}`);
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
    const n = bytes.parse(v);
    if (n === null || !Number.isFinite(n) || n < 1) {
      ctx.addIssue({ code: 'custom', message: 'must be a size such as 1048576, 64MB or 1GB' });
      return z.NEVER;
    }
    return n;
  });

const schema = z.object({
  'data-dir': z.string().min(1, 'must not be empty').transform((d) => resolve(d)),
  'trigger-interval-ms': wholeNumber(0),
  'max-files-per-batch': wholeNumber(1),
  'max-bytes-per-batch': byteSize,
  'file-concurrency': wholeNumber(1).refine((n) => n <= 32, 'must be ≤ 32'),
  'file-stable-ms': wholeNumber(0),
  poll: boolean,
  'available-now': boolean,
  'clean-source': z.enum(['off', 'archive', 'delete'], { error: 'must be off, archive or delete' }),
  'copy-stall-timeout-ms': wholeNumber(1000),
  'rebuild-checkpoint': boolean,
  'pg-port': wholeNumber(1).refine((n) => n <= 65535, 'must be ≤ 65535'),
});

export interface StreamerConfig {
  dataDir: string;
  inputDir: string;
  checkpointDir: string;
  quarantineDir: string;
  archiveDir: string;
  /** Unset: the embedded PostgreSQL under dataDir is used. */
  databaseUrl: string | undefined;
  embeddedPgPort: number;
  triggerIntervalMs: number;
  maxFilesPerBatch: number;
  maxBytesPerBatch: number;
  fileConcurrency: number;
  fileStableMs: number;
  poll: boolean;
  availableNow: boolean;
  cleanSource: CleanSource;
  copyStallMs: number;
  rebuildCheckpoint: boolean;
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
  const result = schema.safeParse(raw);
  if (!result.success) {
    const messages = result.error.issues.map((issue) => {
      const name = String(issue.path[0]) as SettingName;
      return `--${name} (${SETTINGS[name].env}) ${issue.message}, got '${raw[name]}'`;
    });
    throw new ConfigError(`Invalid configuration:\n  ${messages.join('\n  ')}`);
  }
  const v = result.data;
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
    triggerIntervalMs: v['trigger-interval-ms'],
    maxFilesPerBatch: v['max-files-per-batch'],
    maxBytesPerBatch: v['max-bytes-per-batch'],
    fileConcurrency: v['file-concurrency'],
    fileStableMs: v['file-stable-ms'],
    poll: v.poll,
    availableNow: v['available-now'],
    cleanSource: v['clean-source'],
    copyStallMs: v['copy-stall-timeout-ms'],
    rebuildCheckpoint: v['rebuild-checkpoint'],
  };
}
