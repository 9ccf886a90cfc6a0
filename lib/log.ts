import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * JSON lines for machines; pretty, synchronous output when a person watches a terminal.
 * LOG_FORMAT=json|pretty overrides the guess, LOG_LEVEL sets the level (default info).
 */
export function createLogger(name: string): Logger {
  const level = process.env.LOG_LEVEL ?? 'info';
  const format = process.env.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json');
  if (format === 'pretty') {
    return pino(
      { name, level },
      pretty({ sync: true, colorize: process.stdout.isTTY, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }),
    );
  }
  // Synchronous writes: a line logged just before a crash is on disk, not in a buffer.
  return pino({ name, level }, pino.destination({ dest: 1, sync: true }));
}
