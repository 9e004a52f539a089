/**
 * `imgdl dashboard`'s server: bull-board for the queue's jobs at /queues/,
 * and imgdl's own counts at / (HTML that refreshes itself) and /api/status
 * (JSON), read from the queue as `imgdl status` reads them. With `auth`,
 * every route asks for it (HTTP Basic), bull-board's pages, assets and API
 * included. Hono on Node's http server: see the README for why this adapter.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serve, type ServerType } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import { Queue } from 'bullmq';
import { Hono } from 'hono';
import { basicAuth } from 'hono/basic-auth';
import { HTTPException } from 'hono/http-exception';
import type { Redis } from 'ioredis';
import type { AddressInfo } from 'node:net';
import { QUEUE_NAME, connectProducer, parseQueueUrl } from './connection.js';
import { countsPage, pausedHosts } from './dashboard-page.js';
import { readStatus } from './status.js';

/** Where bull-board is mounted. */
export const BOARD_PATH = '/queues';

/** What {@link startDashboard} serves. */
export interface DashboardOptions {
  /** The queue: `redis://HOST:PORT[/DB]`. */
  queue: string;
  /** Port to listen on; 0 for any free one. */
  port: number;
  /** Address to bind: loopback unless the caller decided otherwise. */
  host: string;
  /** HTTP Basic credentials every route asks for; none when undefined. */
  auth?: { username: string; password: string } | undefined;
}

/** A running dashboard. */
export interface Dashboard {
  /** `http://HOST:PORT` it answers on. */
  url: string;
  /** Stops listening, closes open connections and the queue's Redis connection. */
  close(): Promise<void>;
}

/** The dashboard's routes over an open queue. */
export function dashboardApp(client: Redis, queue: Queue, options: DashboardOptions): Hono {
  // Not strict: bull-board's entry is its base path, which people type with a trailing slash.
  const app = new Hono({ strict: false });
  if (options.auth) app.use('*', basicAuth({ ...options.auth, realm: 'imgdl dashboard' }));
  const board = new HonoAdapter(serveStatic);
  board.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue, { readOnlyMode: false })],
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'imgdl' } },
  });
  // bull-board's page asks Google for its fonts: a call out from the operator's browser that an offline
  // network fails (a console error) and that tells a third party the dashboard was opened. The system font does.
  app.use(`${BOARD_PATH}/*`, async (c, next) => {
    await next();
    if (!c.res.headers.get('content-type')?.startsWith('text/html')) return;
    const html = (await c.res.text()).replace(/<link[^>]+fonts\.googleapis\.com[^>]*>/g, '');
    c.res = new Response(html, c.res);
  });
  app.route(BOARD_PATH, board.registerPlugin());
  app.get('/api/status', async (c) => c.json({ ...(await readStatus(client, queue)), pausedHosts: await pausedHosts(client, QUEUE_NAME) }));
  app.get('/', async (c) =>
    c.html(
      countsPage(await readStatus(client, queue), await pausedHosts(client, QUEUE_NAME), { queue: options.queue, board: `${BOARD_PATH}/` }),
    ),
  );
  // A refused password is Hono's HTTPException (401 with its challenge); anything else is Redis failing us.
  app.onError((error, c) => (error instanceof HTTPException ? error.getResponse() : c.text(`imgdl dashboard: ${error.message}`, 503)));
  return app;
}

/**
 * Connects to the queue and serves the dashboard. Throws INVALID_QUEUE_URL,
 * REDIS_UNAVAILABLE when Redis cannot be reached, or the listen error (a port in use).
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const client = await connectProducer(parseQueueUrl(options.queue));
  const queue = new Queue(QUEUE_NAME, { connection: client });
  queue.on('error', () => undefined);
  let server: ServerType | undefined;
  try {
    const app = dashboardApp(client, queue, options);
    server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: options.port, hostname: options.host }, () => resolve(s));
      s.once('error', reject);
    });
  } catch (error) {
    await queue.close().catch(() => undefined);
    client.disconnect();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const listening = server;
  return {
    url: `http://${host}:${address.port}`,
    async close() {
      await new Promise<void>((resolve) => {
        listening.close(() => resolve());
        if ('closeAllConnections' in listening) listening.closeAllConnections();
      });
      await queue.close().catch(() => undefined);
      client.disconnect();
    },
  };
}
