import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { freePort } from '../lib/freePort.ts';
import {
  BASE_FILE,
  DEV_FILE,
  ENV_EXAMPLE,
  environment,
  imageConfig,
  interpolate,
  interpolateTree,
  mergeCompose,
  mounts,
  rawBase,
  rawDev,
  rawMerged,
  readText,
  service,
  strings,
  withEnv,
  type Compose,
  type Reference,
  type Service,
} from './support/compose.ts';

// No Docker engine is needed: the files are checked the way `docker compose config` would read
// them, against the Compose Specification's own JSON schema.

/** The compose-spec schema as dclint ships it (refreshed from the compose-spec repository). */
function composeSchema(): Record<string, unknown> {
  const dir = dirname(createRequire(import.meta.url).resolve('dclint/package.json'));
  const schema = JSON.parse(readFileSync(join(dir, 'schemas/compose.schema.json'), 'utf8'));
  // The file names draft-07 by its https address; Ajv registers draft-07 under the canonical http one.
  return { ...schema, $schema: 'http://json-schema.org/draft-07/schema#' };
}

function compileComposeSchema() {
  // Union types ("type": ["string", "number"]) are all over the schema; strictTypes would only
  // nag about them. Unknown keywords still fail (strict), so every rule in it is enforced.
  return new Ajv({ allErrors: true, allowUnionTypes: true, strictTypes: false }).compile(composeSchema());
}

/** An environment in which every variable is set, to a marker of its own name: __NAME__. */
const MARKERS = new Proxy({}, { get: (_t, name) => `__${String(name)}__` }) as Record<string, string>;
const MARKER = /^__[_a-zA-Z][_a-zA-Z0-9]*__$/;

const FILES = [
  { file: BASE_FILE, raw: rawBase },
  { file: DEV_FILE, raw: rawDev },
];
/** Every ${VAR} of both files (interpolating with MARKERS never fails). */
const refs: Reference[] = [];
for (const { raw } of FILES) interpolateTree(raw, MARKERS, refs);

const base = withEnv(rawBase);
const merged = withEnv(rawMerged);
const configs = [
  { name: BASE_FILE, compose: base },
  { name: `${BASE_FILE} + ${DEV_FILE}`, compose: merged },
];

/** Services that others wait on to finish (condition service_completed_successfully): one-shots. */
function oneShots(compose: Compose): Set<string> {
  return new Set(
    Object.values(compose.services).flatMap((s) =>
      Array.isArray(s.depends_on) ? [] : Object.entries(s.depends_on ?? {}).filter(([, d]) => d.condition === 'service_completed_successfully').map(([n]) => n),
    ),
  );
}

const testArgs = (s: Service): string[] => {
  const test = s.healthcheck?.test;
  return Array.isArray(test) ? test : ['CMD-SHELL', test ?? ''];
};

describe('docker-compose.yml and docker-compose.dev.yml', () => {
  it.each(configs)('$name is valid under the Compose Specification once .env.example is interpolated', ({ compose }) => {
    const validate = compileComposeSchema();
    const valid = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('the schema check has teeth: it rejects a wrong condition and an unknown key', () => {
    const validate = compileComposeSchema();
    type Loose = { services: Record<string, Record<string, unknown>> };
    const broken = structuredClone(base) as unknown as Loose;
    broken.services.streamer!.depends_on = { postgres: { condition: 'service_ready' } };
    expect(validate(broken)).toBe(false);
    const typo = structuredClone(base) as unknown as Loose;
    typo.services.postgres!.healthcheck = { ...(typo.services.postgres!.healthcheck as object), retry: 3 };
    expect(validate(typo)).toBe(false);
  });

  it('the merge follows the spec: maps merge, volumes by target, command replaced', () => {
    const a = { services: { s: { command: ['a'], volumes: ['./x:/x', './y:/y'], environment: { A: '1' } } } };
    const b = { services: { s: { command: ['b'], volumes: ['./z:/y', '/n'], environment: { B: '2' } } } };
    expect(mergeCompose(a, b)).toEqual({
      services: { s: { command: ['b'], volumes: ['./x:/x', './z:/y', '/n'], environment: { A: '1', B: '2' } } },
    });
  });

  it('has the services, pgAdmin only under the ui profile', () => {
    expect(Object.keys(base.services).sort()).toEqual(['generator', 'migrate', 'pgadmin', 'postgres', 'streamer']);
    const withoutProfile = Object.entries(base.services).filter(([, s]) => !s.profiles).map(([n]) => n);
    expect(withoutProfile.sort()).toEqual(['generator', 'migrate', 'postgres', 'streamer']);
    expect(service(base, 'pgadmin').profiles).toEqual(['ui']);
  });

  it.each(configs)('$name: every service has a health check (one-shots excepted) and CPU and memory limits', ({ compose }) => {
    const once = oneShots(compose);
    expect([...once]).toEqual(['migrate']);
    for (const [name, s] of Object.entries(compose.services)) {
      if (!once.has(name)) {
        expect(s.healthcheck?.disable, name).not.toBe(true);
        expect(testArgs(s)[0], `${name} has no health check`).toMatch(/^CMD(-SHELL)?$/);
        expect(testArgs(s).slice(1).join(' '), name).toMatch(/\S/);
      } else {
        expect(s.restart, `${name} runs once`).toBe('no');
      }
      const limits = s.deploy?.resources?.limits;
      expect(Number(limits?.cpus), `${name} cpus`).toBeGreaterThan(0);
      expect(limits?.memory, `${name} memory`).toMatch(/^\d+[MG]$/);
    }
  });

  it('every variable they require (:?) is defined, non-empty, in .env.example', () => {
    const required = [...new Set(refs.filter((r) => r.op === ':?' || r.op === '?').map((r) => r.name))].sort();
    expect(required).toEqual(
      expect.arrayContaining(['DROPSTREAM_DB_PASSWORD', 'PGADMIN_DEFAULT_EMAIL', 'PGADMIN_DEFAULT_PASSWORD', 'POSTGRES_DB', 'POSTGRES_PASSWORD', 'POSTGRES_USER']),
    );
    for (const name of required) expect(ENV_EXAMPLE[name], name).toMatch(/\S/);
    // Any other variable has a default, or compose would warn and use a blank string.
    for (const { name, op } of refs) {
      if (!(name in ENV_EXAMPLE)) expect([':-', '-'], `\${${name}} has no default and no sample`).toContain(op);
    }
  });

  it('refuses to start without a .env, with a message that says what to do', () => {
    expect(() => interpolateTree(rawBase, {})).toThrow(/POSTGRES_\w+ .*\.env/);
    for (const secret of ['POSTGRES_PASSWORD', 'DROPSTREAM_DB_PASSWORD', 'PGADMIN_DEFAULT_PASSWORD']) {
      const { [secret]: _omitted, ...without } = ENV_EXAMPLE;
      expect(() => interpolateTree(rawBase, without)).toThrow(new RegExp(`${secret} .*\\.env`));
    }
  });

  it.each(FILES)('$file has no secret written in it: only ${VAR:?…} references', ({ file, raw }) => {
    const text = readText(file);
    for (const [name, value] of Object.entries(ENV_EXAMPLE)) {
      if (/PASSWORD|SECRET|TOKEN/.test(name)) expect(text, name).not.toContain(value);
    }
    // With every variable set to a marker, a secret that is not a marker was written in the file.
    const marked = interpolateTree(raw, MARKERS) as Compose;
    for (const [name, s] of Object.entries(marked.services)) {
      for (const [key, value] of Object.entries(environment(s))) {
        if (/PASSWORD|SECRET|TOKEN|KEY/i.test(key)) expect(value, `${name}.environment.${key}`).toMatch(MARKER);
      }
    }
    let withPassword = 0;
    for (const { path, value } of strings(marked)) {
      for (const [candidate] of value.matchAll(/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"`]+/gi)) {
        const url = new URL(candidate);
        if (url.password) expect(url.password, `${path}: ${value}`).toMatch(MARKER);
        if (url.password) withPassword += 1;
      }
    }
    // The DATABASE_URLs were seen.
    expect(withPassword).toBe(file === BASE_FILE ? 2 : 0);
  });

  it('each secret is a ${VAR:?…} reference, never one with a default', () => {
    const secrets = refs.filter((r) => /PASSWORD|SECRET|TOKEN/.test(r.name));
    expect(secrets.length).toBeGreaterThan(0);
    // A default (:-) would put a secret in the file after all, used whenever .env lacks one.
    for (const { name, op } of secrets) expect(op, name).toBe(':?');
  });

  it('postgres: official image, init script mounted, health checked over TCP, port off 5432, on loopback', () => {
    const pg = service(base, 'postgres');
    expect(pg.image).toBe('postgres:15');
    // Unescaped ($$ → $): the container's shell, not compose, expands the variables.
    expect(rawBase.services.postgres!.healthcheck?.test).toContain('pg_isready -h 127.0.0.1 -U $${POSTGRES_USER} -d $${POSTGRES_DB}');
    expect(pg.healthcheck?.retries).toBeGreaterThan(0);

    const data = mounts(pg).find((m) => m.target === '/var/lib/postgresql/data');
    expect(data?.type).toBe('volume');
    expect(Object.keys(base.volumes ?? {})).toContain(data?.source);
    expect(mounts(pg)).toContainEqual({ type: 'bind', source: './docker/postgres/initdb.d', target: '/docker-entrypoint-initdb.d' });
    expect(environment(pg)).toMatchObject({ DROPSTREAM_DB_USER: ENV_EXAMPLE.DROPSTREAM_DB_USER, DROPSTREAM_DB_PASSWORD: ENV_EXAMPLE.DROPSTREAM_DB_PASSWORD });

    expect(ENV_EXAMPLE.POSTGRES_PORT).toBe('54320');
    expect(pg.ports).toEqual(['127.0.0.1:54320:5432']);
    expect(rawBase.services.postgres!.ports).toEqual(['127.0.0.1:${POSTGRES_PORT:-54320}:5432']);
  });

  it('only the streamer builds the image (pull_policy build); the others never pull it', () => {
    for (const compose of [base, merged]) {
      const builders = Object.entries(compose.services).filter(([, s]) => s.build);
      expect(builders.map(([n]) => n)).toEqual(['streamer']);
      const streamer = service(compose, 'streamer');
      expect(streamer.pull_policy).toBe('build');
      for (const [name, s] of Object.entries(compose.services)) {
        if (name !== 'streamer' && s.image === streamer.image) expect(s.pull_policy, name).toBe('never');
      }
    }
    expect(service(merged, 'streamer').build).toMatchObject({ context: '.', target: 'build' });
  });

  it('migrate runs once as the owner; the streamer waits for it and connects as its own role', () => {
    const m = service(base, 'migrate');
    expect(m.command).toEqual(['node', 'dist/streamer/src/db/migrateCli.js']);
    expect(m.depends_on).toMatchObject({ postgres: { condition: 'service_healthy' } });
    const owner = new URL(environment(m).DATABASE_URL!);
    expect([owner.username, owner.password, owner.hostname, owner.pathname]).toEqual([
      ENV_EXAMPLE.POSTGRES_USER,
      ENV_EXAMPLE.POSTGRES_PASSWORD,
      'postgres',
      `/${ENV_EXAMPLE.POSTGRES_DB}`,
    ]);

    const s = service(base, 'streamer');
    expect(s.depends_on).toMatchObject({
      postgres: { condition: 'service_healthy' },
      migrate: { condition: 'service_completed_successfully' },
    });
    const role = new URL(environment(s).DATABASE_URL!);
    expect([role.username, role.password, role.hostname, role.pathname]).toEqual([
      ENV_EXAMPLE.DROPSTREAM_DB_USER,
      ENV_EXAMPLE.DROPSTREAM_DB_PASSWORD,
      'postgres',
      `/${ENV_EXAMPLE.POSTGRES_DB}`,
    ]);
    expect(ENV_EXAMPLE.DROPSTREAM_DB_USER).not.toBe(ENV_EXAMPLE.POSTGRES_USER);
  });

  it('the app containers run node itself under an init, as the host user; the image too', () => {
    for (const name of ['migrate', 'streamer', 'generator']) {
      const s = service(base, name);
      expect(Array.isArray(s.command) && s.command[0], name).toBe('node');
      expect(s.init, name).toBe(true);
      expect(rawBase.services[name]!.user, name).toBe('${DROPSTREAM_UID:-1000}:${DROPSTREAM_GID:-1000}');
    }
    expect(service(base, 'streamer').stop_grace_period).toBe('30s');
    expect(imageConfig().cmd).toEqual(['node', 'dist/streamer/src/main.js']);
  });

  it('streamer: cleans its input, publishes its page on loopback, restarts', () => {
    const s = service(base, 'streamer');
    expect(s.restart).toBe('unless-stopped');
    expect(environment(s)).toMatchObject({ DROPSTREAM_CLEAN_SOURCE: 'archive', DROPSTREAM_HTTP_HOST: '0.0.0.0', DROPSTREAM_HTTP_PORT: '8181' });
    expect(rawBase.services.streamer!.ports).toEqual(['127.0.0.1:${DROPSTREAM_HTTP_PORT:-8181}:8181']);
    expect(withEnv(rawBase, { DROPSTREAM_CLEAN_SOURCE: 'delete' }).services.streamer!.environment).toMatchObject({ DROPSTREAM_CLEAN_SOURCE: 'delete' });
  });

  it('generator: a gentle rate by default, set from .env, restarts', () => {
    const g = service(base, 'generator');
    expect(g.command).toEqual(['node', 'dist/generator/src/main.js', '--data-dir', '/data', '--rows', '100', '--interval-ms', '10000']);
    expect(withEnv(rawBase, { DROPSTREAM_GENERATOR_ROWS: '7', DROPSTREAM_GENERATOR_INTERVAL_MS: '50' }).services.generator!.command).toEqual(
      ['node', 'dist/generator/src/main.js', '--data-dir', '/data', '--rows', '7', '--interval-ms', '50'],
    );
    expect(g.restart).toBe('unless-stopped');
    expect(g.depends_on).toMatchObject({ streamer: { condition: 'service_started' } });
  });

  it.each(['streamer', 'generator'])('%s bind-mounts ./data at /data', (name) => {
    expect(mounts(service(base, name))).toContainEqual({ type: 'bind', source: './data', target: '/data' });
  });

  it('pgAdmin: loopback port 8080, the dropstream server registered, credentials from .env, /misc/ping', () => {
    const p = service(base, 'pgadmin');
    expect(p.image).toMatch(/^dpage\/pgadmin4:\d+$/);
    expect(p.ports).toEqual(['127.0.0.1:8080:80']);
    expect(environment(p)).toMatchObject({
      PGADMIN_DEFAULT_EMAIL: ENV_EXAMPLE.PGADMIN_DEFAULT_EMAIL,
      PGADMIN_DEFAULT_PASSWORD: ENV_EXAMPLE.PGADMIN_DEFAULT_PASSWORD,
    });
    expect(testArgs(p).join(' ')).toContain('http://localhost:80/misc/ping');
    const servers = mounts(p).find((m) => m.target === '/pgadmin4/servers.json');
    expect(servers?.type).toBe('bind');
    const registered = JSON.parse(readText(servers!.source)) as { Servers: Record<string, Record<string, unknown>> };
    expect(Object.values(registered.Servers)).toEqual([
      expect.objectContaining({ Host: 'postgres', Port: 5432, Username: ENV_EXAMPLE.POSTGRES_USER, MaintenanceDB: ENV_EXAMPLE.POSTGRES_DB }),
    ]);
  });

  it('dev override: sources mounted over the build stage, recompiled, polling, debug logs', () => {
    for (const name of ['tsc', 'migrate', 'streamer', 'generator']) {
      const s = service(merged, name);
      expect(s.image, name).toBe('dropstream:dev');
      expect(mounts(s), name).toEqual(expect.arrayContaining([{ type: 'bind', source: '.', target: '/app' }, { type: 'volume', source: '', target: '/app/node_modules' }]));
    }
    expect(service(merged, 'streamer').command).toEqual(['node', '--watch', 'dist/streamer/src/main.js', '--data-dir', '/data']);
    expect(environment(service(merged, 'streamer'))).toMatchObject({ DROPSTREAM_POLL: 'true', LOG_LEVEL: 'debug' });
    expect(environment(service(merged, 'generator'))).toMatchObject({ LOG_LEVEL: 'debug' });
    for (const name of ['migrate', 'streamer']) expect(service(merged, name).depends_on).toMatchObject({ tsc: { condition: 'service_healthy' } });
    // Kept from the base file: the data mount, the role, the limits.
    expect(mounts(service(merged, 'streamer'))).toContainEqual({ type: 'bind', source: './data', target: '/data' });
    expect(environment(service(merged, 'streamer')).DATABASE_URL).toBe(environment(service(base, 'streamer')).DATABASE_URL);
  });
});

/** Runs a CMD health check as the container would, with node for node and `/data` at `dataDir`. */
async function runHealthCheck(s: Service, env: Record<string, string>, dataDir = '/data'): Promise<number | null> {
  const [kind, program, ...args] = testArgs(s);
  expect(kind).toBe('CMD');
  expect(program).toBe('node');
  const child = spawn(process.execPath, args.map((a) => a.replaceAll('/data/', `${dataDir}/`)), { env: { PATH: process.env.PATH, ...env }, stdio: 'ignore' });
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

describe('the health checks', () => {
  it('streamer: healthy on a 200 from /readyz, not on a 503, nor with nothing listening', async () => {
    const streamer = service(base, 'streamer');
    let status = 200;
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(status).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = String((server.address() as { port: number }).port);
    // The port as the container has it: its environment's DROPSTREAM_HTTP_PORT.
    const env = { ...environment(streamer), DROPSTREAM_HTTP_PORT: port };
    try {
      expect(await runHealthCheck(streamer, env)).toBe(0);
      status = 503;
      expect(await runHealthCheck(streamer, env)).toBe(1);
      expect(seen).toEqual(['/readyz', '/readyz']);
    } finally {
      server.close();
    }
    expect(await runHealthCheck(streamer, { ...env, DROPSTREAM_HTTP_PORT: String(await freePort()) })).toBe(1);
  });

  it('generator: healthy while files go through /data/temp, not once it stalls', async () => {
    const generator = service(base, 'generator');
    const dataDir = await mkdtemp(join(tmpdir(), 'dropstream-health-'));
    try {
      expect(await runHealthCheck(generator, {}, dataDir)).toBe(1); // no temp/ yet
      await mkdir(join(dataDir, 'temp'));
      expect(await runHealthCheck(generator, {}, dataDir)).toBe(0);
      const interval = Number(ENV_EXAMPLE.DROPSTREAM_GENERATOR_INTERVAL_MS);
      const stalled = new Date(Date.now() - 3 * interval - 20_000);
      await utimes(join(dataDir, 'temp'), stalled, stalled);
      expect(await runHealthCheck(generator, {}, dataDir)).toBe(1);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('interpolate (the test helper)', () => {
  it('follows the compose-spec rules', () => {
    const env = { A: 'a', EMPTY: '' };
    expect(interpolate('$$A ${A} $A ${B:-b} ${EMPTY:-e} ${EMPTY-e} ${A:+x} ${B+x} ${B:-${A}}', env)).toBe(
      '$A a a b e  x  a',
    );
    expect(() => interpolate('${EMPTY:?needed}', env)).toThrow(/EMPTY.*needed/);
    expect(interpolate('${EMPTY?needed}', env)).toBe('');
  });
});
