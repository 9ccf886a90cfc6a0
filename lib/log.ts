import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

const require = createRequire(import.meta.url);

export type { Logger };

const FIGURES = Symbol('figures');

/**
 * Marks a log call's fields as figures its message already tells: a person at a terminal sees the
 * message alone, while JSON lines, and pretty output at LOG_LEVEL=debug, keep every field.
 */
export function figures<T extends object>(fields: T): T {
  return Object.assign(fields, { [FIGURES]: true });
}

/**
 * JSON lines for machines; pretty, synchronous output when a person watches a terminal.
 * LOG_FORMAT=json|pretty overrides the guess, LOG_LEVEL sets the level (default info).
 */
export function createLogger(name: string): Logger {
  const level = process.env.LOG_LEVEL ?? 'info';
  const format = process.env.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json');
  if (format === 'pretty') {
    // Required here, not imported: JSON logging (services, benches) never pays for loading it.
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    const detailed = (pino.levels.values[level] ?? Number.POSITIVE_INFINITY) <= pino.levels.values.debug!;
    return pino(
      { name, level, ...(!detailed && { formatters: { log: (fields: Record<string | symbol, unknown>) => (FIGURES in fields ? {} : fields) } }) },
      pretty({ sync: true, colorize: process.stdout.isTTY, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }),
    );
  }
  // Synchronous writes: a line logged just before a crash is on disk, not in a buffer.
  return pino({ name, level }, pino.destination({ dest: 1, sync: true }));
}
