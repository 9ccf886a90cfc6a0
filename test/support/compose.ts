import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { parse } from 'yaml';
import { ROOT } from '../../lib/paths.ts';

// docker-compose.yml (and the dev override) read as `docker compose config` would, without a Docker
// engine: YAML, then the Compose Specification's interpolation and merge rules.

export const BASE_FILE = 'docker-compose.yml';
export const DEV_FILE = 'docker-compose.dev.yml';
export const readText = (file: string): string => readFileSync(join(ROOT, file), 'utf8');
export const ENV_EXAMPLE = parseEnv(readText('.env.example')) as Record<string, string>;

export interface Reference {
  name: string;
  /** '' for ${VAR} and $VAR, else the operator: ':-', '-', ':?', '?', ':+', '+'. */
  op: string;
}

const NAME = /^[_a-zA-Z][_a-zA-Z0-9]*/;

/** Compose-spec interpolation of one scalar: $$, $VAR, ${VAR}, and the :- - :? ? :+ + forms, nested. */
export function interpolate(value: string, env: Record<string, string>, refs: Reference[] = []): string {
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
export function interpolateTree(node: unknown, env: Record<string, string>, refs: Reference[] = []): unknown {
  if (typeof node === 'string') return interpolate(node, env, refs);
  if (Array.isArray(node)) return node.map((n) => interpolateTree(n, env, refs));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env, refs)]));
  }
  return node;
}

export function strings(node: unknown, path = ''): { path: string; value: string }[] {
  if (typeof node === 'string') return [{ path, value: node }];
  if (Array.isArray(node)) return node.flatMap((n, i) => strings(n, `${path}[${i}]`));
  if (node && typeof node === 'object') return Object.entries(node).flatMap(([k, v]) => strings(v, `${path}.${k}`));
  return [];
}

export interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string; target?: string };
  pull_policy?: string;
  profiles?: string[];
  command?: string | string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  environment?: string[] | Record<string, string | number | boolean | null>;
  volumes?: (string | { type: string; source?: string; target: string })[];
  ports?: (string | { host_ip?: string; published?: string | number; target: number })[];
  healthcheck?: { test: string | string[]; interval?: string; timeout?: string; retries?: number; disable?: boolean };
  deploy?: { resources?: { limits?: { cpus?: string | number; memory?: string } } };
  user?: string;
  init?: boolean;
  restart?: string;
  stop_grace_period?: string;
}
export interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** `environment:` as a map, whichever of its two forms (map or KEY=VALUE list) the file uses. */
export function environment(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? '')]));
  return Object.fromEntries(env.map((e) => [e.split('=')[0]!, e.split('=').slice(1).join('=')]));
}

/** Volume mounts as source/target, from either the short ("src:dst[:mode]") or the long syntax. */
export function mounts(service: Service): { type: string; source: string; target: string }[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { type: v.type, source: v.source ?? '', target: v.target };
    const parts = v.split(':');
    // "/app/node_modules" alone: an anonymous volume at that target.
    if (parts.length === 1) return { type: 'volume', source: '', target: parts[0]! };
    const [source = '', target = ''] = parts;
    return { type: /^[./~]/.test(source) ? 'bind' : 'volume', source, target };
  });
}

const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * The Compose Specification's merge of an override file into a base (`-f base -f override`), for
 * what these files use: mappings merge key by key, volumes by their target, command and
 * healthcheck.test are replaced, other sequences (ports, profiles) are appended without repeats.
 */
export function mergeCompose(base: unknown, override: unknown, key = ''): unknown {
  if (isMap(base) && isMap(override)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(override)) out[k] = k in base ? mergeCompose(base[k], v, k) : v;
    return out;
  }
  if (Array.isArray(base) && Array.isArray(override)) {
    if (key === 'command' || key === 'entrypoint' || key === 'test') return override;
    if (key === 'volumes') {
      const target = (v: unknown) => mounts({ volumes: [v as string] })[0]!.target;
      const replaced = new Set(override.map(target));
      return [...base.filter((v) => !replaced.has(target(v))), ...override];
    }
    return [...new Set([...base, ...override])];
  }
  return override;
}

export const rawBase = parse(readText(BASE_FILE)) as Compose;
export const rawDev = parse(readText(DEV_FILE)) as Compose;
export const rawMerged = mergeCompose(rawBase, rawDev) as Compose;

/** A compose file as compose would see it with .env copied from .env.example (plus `env`), or its error. */
export function withEnv(raw: Compose, env: Record<string, string> = {}): Compose {
  return interpolateTree(raw, { ...ENV_EXAMPLE, ...env }) as Compose;
}

export function service(compose: Compose, name: string): Service {
  const s = compose.services[name];
  if (!s) throw new Error(`no service '${name}'`);
  return s;
}

/** The ENV and CMD of the Dockerfile's last stage, the image that runs. */
export function imageConfig(): { env: Record<string, string>; cmd: string[] } {
  const lastStage = readText('Dockerfile').split(/^FROM /m).at(-1)!;
  const env: Record<string, string> = {};
  let cmd: string[] = [];
  for (const line of lastStage.split('\n')) {
    const envLine = /^ENV\s+(.*)$/.exec(line);
    if (envLine) for (const [, k, v] of envLine[1]!.matchAll(/(\w+)=(\S+)/g)) env[k!] = v!;
    const cmdLine = /^CMD\s+(\[.*\])\s*$/.exec(line);
    if (cmdLine) cmd = JSON.parse(cmdLine[1]!) as string[];
  }
  return { env, cmd };
}

export type Container = ChildProcess & { output: () => string };

/**
 * Runs a service of docker-compose.yml as its container would: its command (or the image's CMD),
 * the image's and the service's environment and nothing else, as the service's user, in this
 * checkout as /app, with `dataDir` as /data. `env` overrides variables of the container.
 */
export function runAsContainer(
  compose: Compose,
  name: string,
  opts: { dataDir: string; env?: Record<string, string> },
): Container {
  const s = service(compose, name);
  const command = s.command ?? imageConfig().cmd;
  if (!Array.isArray(command)) throw new Error(`${name}: write command as a list, as the image runs it`);
  const atData = (v: string) => (v === '/data' || v.startsWith('/data/') ? opts.dataDir + v.slice('/data'.length) : v);
  const env = Object.fromEntries(
    Object.entries({ ...imageConfig().env, ...environment(s), ...opts.env }).map(([k, v]) => [k, atData(v)]),
  );
  const [uid, gid] = (s.user ?? '').split(':').map(Number);
  const [program, ...args] = command.map(atData);
  // The image's node is the one on its PATH; here, the one running the tests.
  const child = spawn(program === 'node' ? process.execPath : program!, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(uid !== undefined && !Number.isNaN(uid) ? { uid, gid } : {}),
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return Object.assign(child, { output: () => output });
}
