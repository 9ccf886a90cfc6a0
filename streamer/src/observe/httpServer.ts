import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type pg from 'pg';
import type { Logger } from '../../../lib/log.ts';
import type { StreamerConfig } from '../config.ts';
import { readStatus, type StreamStatus } from '../status/readStatus.ts';
import { recentProgress, recentRejects } from './history.ts';
import { livePageRoutes } from './livePage.ts';
import { localUrl } from './localUrl.ts';
import { createMetrics } from './metrics.ts';
import { readiness } from './readiness.ts';
import { revenuePerMinute } from './revenuePerMinute.ts';
import type { StreamSnapshot, StreamState } from './streamState.ts';

/** What /api/status serves: `npm run status --json`, plus the streamer's live state. */
export interface LiveStatus extends StreamStatus {
  stream: StreamSnapshot;
}

export interface HttpServer {
  url: string;
  close(): Promise<void>;
}

export interface HttpDeps {
  cfg: StreamerConfig;
  pool: pg.Pool;
  state: StreamState;
  log: Logger;
}

interface Reply {
  status: number;
  body: unknown;
  /** A body that is already text in this content type (else it is sent as JSON). */
  type?: string;
}

const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 20;
const ENDPOINTS = ['/livez', '/readyz', '/readyz?verbose', '/api/status', '/api/progress?limit=20', '/api/rejects?limit=20', '/api/revenue?limit=15', '/metrics'];

/**
 * The streamer's HTTP server (node:http): health probes, the stream's state and history as JSON,
 * and Prometheus metrics. Every answer is read from the stream's state or the database; nothing
 * here runs in the loop. Not started with --http-port 0.
 */
export async function startHttpServer({ cfg, pool, state, log }: HttpDeps): Promise<HttpServer> {
  const metrics = createMetrics(state);
  const check = () => readiness({ pool, state, inputDir: cfg.inputDir, checkpointDir: cfg.checkpointDir });

  const routes: Record<string, (query: URLSearchParams) => Promise<Reply>> = {
    ...(await livePageRoutes()),
    '/livez': async () => {
      const alive = state.state !== 'stopped';
      const { heartbeat, heartbeatAgeMs } = state.snapshot();
      return { status: alive ? 200 : 503, body: { status: alive ? 'alive' : 'stopped', state: state.state, heartbeat, heartbeatAgeMs } };
    },
    '/readyz': async (query) => {
      const checks = await check();
      const ready = checks.every((c) => c.ok);
      const shown = query.has('verbose') ? checks : checks.filter((c) => !c.ok);
      return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not ready', checks: shown } };
    },
    '/api/status': async () => {
      try {
        const status = await readStatus({ db: pool, dataDir: cfg.dataDir, recursive: cfg.recursive, pending: state.backlog() });
        return { status: 200, body: { ...status, stream: state.snapshot() } satisfies LiveStatus };
      } catch (err) {
        return { status: 503, body: { error: `the database cannot be read: ${(err as Error).message}`, stream: state.snapshot() } };
      }
    },
    '/api/progress': async (query) => fromDatabase(query, async (limit) => ({ progress: await recentProgress(pool, limit) })),
    '/api/rejects': async (query) => fromDatabase(query, async (limit) => ({ rejects: await recentRejects(pool, limit) })),
    '/api/revenue': async (query) => fromDatabase(query, async (limit) => ({ minutes: await revenuePerMinute(pool, limit) })),
    '/metrics': async () => ({ status: 200, type: metrics.contentType, body: await metrics.metrics() }),
  };

  const server = createServer((req, res) => {
    answer(req, res).catch((err) => {
      log.error({ err, url: req.url }, 'the HTTP server failed to answer');
      if (!res.headersSent) send(res, req, { status: 500, body: { error: (err as Error).message } });
      else res.destroy();
    });
  });

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://streamer');
    const route = routes[url.pathname];
    if (!route) return send(res, req, { status: 404, body: { error: `no such endpoint: ${url.pathname}`, endpoints: ENDPOINTS } });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, req, { status: 405, body: { error: `${req.method} is not allowed: use GET` } });
    }
    send(res, req, await route(url.searchParams));
  }

  server.listen(cfg.httpPort, cfg.httpHost);
  try {
    await once(server, 'listening');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? 'is in use (another streamer?)' : e.code === 'EADDRNOTAVAIL' ? 'is not an address of this machine' : `cannot be listened on (${e.message})`;
    throw new Error(`The HTTP server's address ${cfg.httpHost}:${cfg.httpPort} ${why}: set --http-port / DROPSTREAM_HTTP_PORT and --http-host / DROPSTREAM_HTTP_HOST, or --http-port 0 for no server`, { cause: err });
  }
  const url = localUrl(cfg.httpHost, cfg.httpPort);
  log.info({ url }, `HTTP on ${url}: /livez /readyz /api/status /api/progress /api/rejects /metrics`);
  return {
    url,
    async close() {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

/** Reads `?limit=N` (1 to MAX_LIMIT), then the database; 503 while it cannot be read. */
async function fromDatabase(query: URLSearchParams, read: (limit: number) => Promise<unknown>): Promise<Reply> {
  const text = query.get('limit');
  const limit = text === null ? DEFAULT_LIMIT : /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT)) return { status: 400, body: { error: `limit must be a whole number from 1 to ${MAX_LIMIT}, got '${text}'` } };
  try {
    return { status: 200, body: await read(limit) };
  } catch (err) {
    return { status: 503, body: { error: `the database cannot be read: ${(err as Error).message}` } };
  }
}

function send(res: ServerResponse, req: IncomingMessage, reply: Reply): void {
  const text = reply.type ? String(reply.body) : `${JSON.stringify(reply.body, null, 2)}\n`;
  res.writeHead(reply.status, {
    'Content-Type': reply.type ?? 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}
