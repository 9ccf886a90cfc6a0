import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseEnv } from 'node:util';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../lib/paths.ts';

// No Docker engine is needed: the file is checked the way `docker compose config` would read it,
// against the Compose Specification's own JSON schema.

const COMPOSE_TEXT = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
const ENV_EXAMPLE = parseEnv(readFileSync(join(ROOT, '.env.example'), 'utf8')) as Record<string, string>;

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

interface Reference {
  name: string;
  /** '' for ${VAR} and $VAR, else the operator: ':-', '-', ':?', '?', ':+', '+'. */
  op: string;
}

const NAME = /^[_a-zA-Z][_a-zA-Z0-9]*/;

/** Compose-spec interpolation of one scalar: $$, $VAR, ${VAR}, and the :- - :? ? :+ + forms, nested. */
function interpolate(value: string, env: Record<string, string>, refs: Reference[] = []): string {
  let out = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    if (c !== '$') {
      out += c;
      i += 1;
    } else if (value[i + 1] === '$') {
      out += '$';
      i += 2;
    } else if (value[i + 1] === '{') {
      let depth = 1;
      let j = i + 2;
      for (; j < value.length && depth > 0; j++) {
        if (value[j] === '{') depth++;
        else if (value[j] === '}') depth--;
      }
      if (depth !== 0) throw new Error(`unclosed \${ in '${value}'`);
      const body = value.slice(i + 2, j - 1);
      const name = NAME.exec(body)?.[0];
      if (!name) throw new Error(`invalid interpolation '\${${body}}'`);
      const op = /^(:-|-|:\?|\?|:\+|\+)?/.exec(body.slice(name.length))![0];
      const arg = body.slice(name.length + op.length);
      if (!op && arg) throw new Error(`invalid interpolation '\${${body}}'`);
      refs.push({ name, op });
      const v = env[name];
      const set = v !== undefined;
      const nonEmpty = set && v !== '';
      if (op === ':-') out += nonEmpty ? v : interpolate(arg, env, refs);
      else if (op === '-') out += set ? v : interpolate(arg, env, refs);
      else if (op === ':+') out += nonEmpty ? interpolate(arg, env, refs) : '';
      else if (op === '+') out += set ? interpolate(arg, env, refs) : '';
      else if (op === ':?' && !nonEmpty) throw new Error(`required variable ${name} is missing a value: ${arg}`);
      else if (op === '?' && !set) throw new Error(`required variable ${name} is missing a value: ${arg}`);
      else out += v ?? '';
      i = j;
    } else {
      const name = NAME.exec(value.slice(i + 1))?.[0];
      if (!name) throw new Error(`invalid '$' in '${value}': write $$ for a literal dollar`);
      refs.push({ name, op: '' });
      out += env[name] ?? '';
      i += 1 + name.length;
    }
  }
  return out;
}

/** Compose interpolates values, not keys, after the YAML is parsed. */
function interpolateTree(node: unknown, env: Record<string, string>, refs: Reference[] = []): unknown {
  if (typeof node === 'string') return interpolate(node, env, refs);
  if (Array.isArray(node)) return node.map((n) => interpolateTree(n, env, refs));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env, refs)]));
  }
  return node;
}

function strings(node: unknown, path = ''): { path: string; value: string }[] {
  if (typeof node === 'string') return [{ path, value: node }];
  if (Array.isArray(node)) return node.flatMap((n, i) => strings(n, `${path}[${i}]`));
  if (node && typeof node === 'object') return Object.entries(node).flatMap(([k, v]) => strings(v, `${path}.${k}`));
  return [];
}

/** `environment:` as a map, whichever of its two forms (map or KEY=VALUE list) the file uses. */
function environment(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? '')]));
  return Object.fromEntries(env.map((e) => [e.split('=')[0]!, e.split('=').slice(1).join('=')]));
}

/** Volume mounts as source/target, from either the short ("src:dst[:mode]") or the long syntax. */
function mounts(service: Service): { type: string; source: string; target: string }[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { type: v.type, source: v.source ?? '', target: v.target };
    const [source = '', target = ''] = v.split(':');
    return { type: /^[./~]/.test(source) ? 'bind' : 'volume', source, target };
  });
}

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  environment?: string[] | Record<string, string | number | boolean | null>;
  volumes?: (string | { type: string; source?: string; target: string })[];
  ports?: (string | { host_ip?: string; published?: string | number; target: number })[];
  healthcheck?: { test: string | string[]; interval?: string; timeout?: string; retries?: number };
  restart?: string;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const raw = parse(COMPOSE_TEXT) as Compose;

/** An environment in which every variable is set, to a marker of its own name: __NAME__. */
const MARKERS = new Proxy({}, { get: (_t, name) => `__${String(name)}__` }) as Record<string, string>;
/** Every ${VAR} the file uses (interpolating with MARKERS never fails). */
const refs: Reference[] = [];
const marked = interpolateTree(raw, MARKERS, refs) as Compose;

/** The file as compose would see it with .env copied from .env.example (throws as compose would). */
let interpolated: Compose | undefined;
const composeWithSampleEnv = (): Compose => (interpolated ??= interpolateTree(raw, ENV_EXAMPLE) as Compose);

const service = (name: string): Service => {
  const compose = composeWithSampleEnv();
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service '${name}'`);
  return s;
};

describe('docker-compose.yml', () => {
  it('is valid under the Compose Specification once .env.example is interpolated', () => {
    const validate = compileComposeSchema();
    const valid = validate(composeWithSampleEnv());
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('the schema check has teeth: it rejects a wrong condition and an unknown key', () => {
    const validate = compileComposeSchema();
    type Loose = { services: Record<string, Record<string, unknown>> };
    const broken = structuredClone(composeWithSampleEnv()) as unknown as Loose;
    broken.services.streamer!.depends_on = { postgres: { condition: 'service_ready' } };
    expect(validate(broken)).toBe(false);
    const typo = structuredClone(composeWithSampleEnv()) as unknown as Loose;
    typo.services.postgres!.healthcheck = { ...(typo.services.postgres!.healthcheck as object), retry: 3 };
    expect(validate(typo)).toBe(false);
  });

  it('has the three services', () => {
    expect(Object.keys(composeWithSampleEnv().services).sort()).toEqual(['generator', 'postgres', 'streamer']);
  });

  it('every variable it requires (:?) is defined, non-empty, in .env.example', () => {
    const required = [...new Set(refs.filter((r) => r.op === ':?' || r.op === '?').map((r) => r.name))].sort();
    expect(required).toEqual(expect.arrayContaining(['POSTGRES_DB', 'POSTGRES_PASSWORD', 'POSTGRES_USER']));
    for (const name of required) expect(ENV_EXAMPLE[name], name).toMatch(/\S/);
    // Any other variable has a default, or compose would warn and use a blank string.
    for (const { name, op } of refs) {
      if (!(name in ENV_EXAMPLE)) expect([':-', '-'], `\${${name}} has no default and no sample`).toContain(op);
    }
  });

  it('refuses to start without a .env, with a message that says what to do', () => {
    expect(() => interpolateTree(raw, {})).toThrow(/POSTGRES_\w+ .*\.env/);
    const { POSTGRES_PASSWORD: _omitted, ...withoutPassword } = ENV_EXAMPLE;
    expect(() => interpolateTree(raw, withoutPassword)).toThrow(/POSTGRES_PASSWORD/);
  });

  it('has no password literal: every password comes from a variable, with no fallback', () => {
    expect(COMPOSE_TEXT).not.toContain(ENV_EXAMPLE.POSTGRES_PASSWORD!);
    // With every variable set to a marker, a password that is not a marker was written in the file.
    const marker = /^__[_a-zA-Z][_a-zA-Z0-9]*__$/;
    for (const [name, s] of Object.entries(marked.services)) {
      for (const [key, value] of Object.entries(environment(s))) {
        if (/PASSWORD|SECRET|TOKEN/i.test(key)) expect(value, `${name}.environment.${key}`).toMatch(marker);
      }
    }
    let urls = 0;
    for (const { path, value } of strings(marked)) {
      for (const [candidate] of value.matchAll(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi)) {
        const url = new URL(candidate);
        if (url.password) expect(url.password, `${path}: ${value}`).toMatch(marker);
        urls += 1;
      }
    }
    expect(urls).toBeGreaterThan(0); // DATABASE_URL was seen
    // A default (:-) would put a password in the file after all, used whenever .env lacks one.
    for (const { name, op } of refs.filter((r) => /PASSWORD/.test(r.name))) expect(op, name).toBe(':?');
  });

  it('postgres: official image, pg_isready healthcheck, named volume, port on loopback only', () => {
    const pg = service('postgres');
    expect(pg.image).toBe('postgres:15');
    const test = pg.healthcheck?.test;
    expect(Array.isArray(test) ? test.join(' ') : test).toMatch(
      /pg_isready -U \$\{?POSTGRES_USER\}? -d \$\{?POSTGRES_DB\}?/,
    );
    expect(pg.healthcheck).toMatchObject({ interval: expect.any(String), timeout: expect.any(String) });
    expect(pg.healthcheck?.retries).toBeGreaterThan(0);
    // Unescaped ($$ → $): the container's shell, not compose, expands the variables.
    expect(raw.services.postgres!.healthcheck?.test).toContain('pg_isready -U $${POSTGRES_USER} -d $${POSTGRES_DB}');

    const data = mounts(pg).find((m) => m.target === '/var/lib/postgresql/data');
    expect(data?.type).toBe('volume');
    expect(Object.keys(composeWithSampleEnv().volumes ?? {})).toContain(data?.source);

    expect(pg.ports).toEqual([`127.0.0.1:${ENV_EXAMPLE.POSTGRES_PORT ?? '5432'}:5432`]);
    expect(raw.services.postgres!.ports).toEqual(['127.0.0.1:${POSTGRES_PORT:-5432}:5432']);
  });

  it('streamer: built here, waits for a healthy postgres, restarts, reaches it with the .env credentials', () => {
    const s = service('streamer');
    expect(s.build === '.' || (typeof s.build === 'object' && (s.build.context ?? '.') === '.')).toBe(true);
    expect(s.command).toBe('npm run stream -- --data-dir /data');
    expect(s.depends_on).toMatchObject({ postgres: { condition: 'service_healthy' } });
    expect(s.restart).toBe('unless-stopped');

    const url = new URL(environment(s).DATABASE_URL!);
    expect(url.protocol).toBe('postgresql:');
    expect(decodeURIComponent(url.username)).toBe(ENV_EXAMPLE.POSTGRES_USER);
    expect(decodeURIComponent(url.password)).toBe(ENV_EXAMPLE.POSTGRES_PASSWORD);
    expect(url.hostname).toBe('postgres');
    expect(url.pathname).toBe(`/${ENV_EXAMPLE.POSTGRES_DB}`);
    // Its HTTP server (0.0.0.0 inside the image) is published on the host's loopback only.
    expect(s.ports).toEqual([`127.0.0.1:${ENV_EXAMPLE.HTTP_PORT ?? '8181'}:8181`]);
    expect(raw.services.streamer!.ports).toEqual(['127.0.0.1:${HTTP_PORT:-8181}:8181']);
  });

  it('generator: the same image, starts after the streamer', () => {
    const g = service('generator');
    expect(g.image).toBe(service('streamer').image);
    expect(g.command).toBe('npm run generate -- --data-dir /data --interval-ms 1000 --rows 1000');
    expect(g.depends_on).toMatchObject({ streamer: { condition: 'service_started' } });
  });

  it.each(['streamer', 'generator'])('%s bind-mounts ./data at /data', (name) => {
    expect(mounts(service(name))).toContainEqual({ type: 'bind', source: './data', target: '/data' });
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
