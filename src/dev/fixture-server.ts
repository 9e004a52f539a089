/**
 * A loopback HTTP server that answers like an image host.
 *
 * Tests, the `npm start` demo and `imgdl bench` all download from it, so it
 * ships in `dist/` rather than living under `test/`. Built-in routes use plain
 * `node:http` so benchmarks measure the downloader, not the server; msw
 * handlers are there for tests that need one particular answer.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename, extname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { RequestHandler } from 'msw';
import { generatedImage, MAX_GENERATED_BYTES } from './generated-image.js';

export { generatedImage, MAX_GENERATED_BYTES };

/** Options for {@link startFixtureServer}. */
export interface FixtureServerOptions {
  /**
   * msw handlers tried before the built-in routes, for tests that need a
   * particular answer. Default none.
   *
   * Paths may be written relative (`http.get('/a.jpg', …)`), with a wildcard
   * origin (`http.get('*\/a.jpg', …)`) or absolute
   * (`http.get(server.url('/a.jpg'), …)`): the server resolves relative paths
   * against its own origin, which msw cannot know in Node. As everywhere in
   * msw, paths match without the query string; read it from `request.url`.
   * The array is read on every request, so a test may push handlers built
   * from `server.url()` after start.
   * A handler answering `HttpResponse.error()` makes the server drop the
   * connection, the way a network failure looks to the client.
   */
  handlers?: readonly RequestHandler[];
  /** Delay before every response's headers, in ms. Default 0. */
  latencyMs?: number;
  /** Host to bind. Default '127.0.0.1'. Port is always 0 (OS-chosen). */
  host?: string;
  /**
   * Answer nothing until this many requests are in flight at once; from then
   * on, answer as usual. A test that the client reaches its concurrency limit
   * sets it to the limit: a client that never gets there hangs and the test
   * fails by its timeout, however busy the machine, with no time window to
   * guess. Default 0 (no wait).
   */
  holdUntilInFlight?: number;
  /**
   * A PEM key and certificate: the server then speaks HTTPS, and its origin
   * is `https://…`. Default none (plain HTTP).
   */
  tls?: { key: string | Buffer; cert: string | Buffer };
}

/** What the server has seen; counted at the server so tests count instead of timing. */
export interface FixtureStats {
  /** Requests received since start or {@link reset}. */
  requests: number;
  /** Requests received whose response has not yet finished or whose socket has not closed. */
  inFlight: number;
  /** Highest {@link inFlight} since start or {@link reset}. */
  peakInFlight: number;
  /** Request count per request target as the client sent it (`pathname + search`). */
  byPath: Map<string, number>;
  /** When the first request since start or {@link reset} arrived (`Date.now()`), so a benchmark can time a client's start. */
  firstRequestAt: number | undefined;
  /** Zeroes the counters; `inFlight` keeps the truth and `peakInFlight` restarts from it. */
  reset(): void;
}

/** A running fixture server; see {@link startFixtureServer}. */
export interface FixtureServer {
  /** e.g. 'http://127.0.0.1:41234' (no trailing slash) */
  readonly origin: string;
  /** The OS-chosen port. */
  readonly port: number;
  /** Live counters, updated as requests arrive and finish. */
  readonly stats: FixtureStats;
  /** origin + path */
  url(path: string): string;
  /** Closes the server and destroys every open connection (keep-alive sockets included). */
  close(): Promise<void>;
}

const DEFAULT_GENERATED_BYTES = 20_000;
// Resolved from this module so it works from src/ (tests) and dist/ (published) alike.
const FIXTURES_DIR = fileURLToPath(new URL('../../fixtures/images/', import.meta.url));
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
};

/**
 * Starts a server on `host`, port 0.
 *
 * Routing, first match wins: the msw `handlers`; `GET|HEAD /gen/<any>.jpg|.png?bytes=N`
 * (a {@link generatedImage}, N defaults to 20000); `GET|HEAD /fixtures/<file>` (a file
 * from `fixtures/images`, never outside it); otherwise 404. Built-in routes honour
 * `Range: bytes=N-` and `bytes=N-M` with a 206.
 */
export async function startFixtureServer(options: FixtureServerOptions = {}): Promise<FixtureServer> {
  const { handlers = [], latencyMs = 0, host = '127.0.0.1', holdUntilInFlight = 0, tls } = options;
  const stats = createStats();
  const hold = holdUntil(stats, holdUntilInFlight);
  let origin = '';

  const server = tls === undefined ? createServer(onRequest) : createTlsServer(tls, onRequest);

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const closed = track(stats, req, res);
    respond(req, res, closed).catch((error: unknown) => {
      if (closed.aborted) return;
      if (res.headersSent) res.destroy();
      else sendText(res, 500, `fixture server error: ${String(error)}`);
    });
  }

  async function respond(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    await hold();
    if (latencyMs > 0) await delay(latencyMs, undefined, { signal });
    // Concatenated, not resolved against the origin: a target like '//x/a.jpg' must stay a path, not name a host.
    const target = origin + (req.url ?? '/');
    if (!URL.canParse(target)) return sendText(res, 400, 'bad request target\n');
    const url = new URL(target);
    if (handlers.length > 0 && (await respondWithHandlers(handlers, origin, req, res, url, signal))) return;
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (/^\/gen\/.+\.(jpg|png)$/.test(url.pathname)) return sendGenerated(req, res, url);
      if (url.pathname.startsWith('/fixtures/')) return sendFixture(req, res, url);
    }
    sendText(res, 404, 'not found\n');
  }

  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  origin = `${tls === undefined ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  return {
    origin,
    port,
    stats,
    url: (path) => origin + path,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * Counts a request in `stats` as it arrives; the signal aborts when it leaves
 * flight ('finish' and 'close' can both fire, and it leaves only once), so
 * that whatever still answers it can stop.
 */
function track(stats: FixtureStats, req: IncomingMessage, res: ServerResponse): AbortSignal {
  const path = req.url ?? '/';
  stats.firstRequestAt ??= Date.now();
  stats.requests++;
  stats.byPath.set(path, (stats.byPath.get(path) ?? 0) + 1);
  stats.inFlight++;
  stats.peakInFlight = Math.max(stats.peakInFlight, stats.inFlight);
  const closed = new AbortController();
  const settle = (): void => {
    if (closed.signal.aborted) return;
    closed.abort();
    stats.inFlight--;
  };
  res.once('finish', settle);
  res.once('close', settle);
  return closed.signal;
}

/**
 * `holdUntilInFlight`: each request awaits what this returns, which keeps it
 * waiting until `count` are in flight, then lets them all go together, once.
 */
function holdUntil(stats: FixtureStats, count: number): () => Promise<void> | undefined {
  let held: Array<() => void> | undefined = count > 0 ? [] : undefined;
  return () => {
    if (held === undefined) return undefined;
    if (stats.inFlight < count) return new Promise<void>((resolve) => held?.push(resolve));
    for (const release of held) release();
    held = undefined;
    return undefined;
  };
}

/** Answers with the first of the msw `handlers` that answers; false when none does. */
async function respondWithHandlers(
  handlers: readonly RequestHandler[],
  origin: string,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  signal: AbortSignal,
): Promise<boolean> {
  // Imported on demand: msw is a dev dependency, and `imgdl bench` runs without it.
  const { getResponse } = await import('msw');
  const response = await getResponse([...handlers], await toWebRequest(req, url, signal), { baseUrl: origin });
  if (!response) return false;
  // HttpResponse.error() is msw's word for a network failure.
  if (response.type === 'error') {
    res.destroy();
    return true;
  }
  res.statusCode = response.status;
  if (response.statusText) res.statusMessage = response.statusText;
  for (const [name, value] of response.headers) res.appendHeader(name, value);
  if (!response.body || req.method === 'HEAD') {
    await response.body?.cancel();
    res.end();
    return true;
  }
  // pipeline destroys the source when the client goes away, which cancels the
  // web stream, so slow or endless handler bodies stop with the connection;
  // a body that errors destroys the response, so the client sees it cut short.
  await pipeline(Readable.fromWeb(response.body), res).catch(() => {});
  return true;
}

function createStats(): FixtureStats {
  return {
    requests: 0,
    inFlight: 0,
    peakInFlight: 0,
    byPath: new Map(),
    firstRequestAt: undefined,
    reset() {
      this.requests = 0;
      this.firstRequestAt = undefined;
      this.peakInFlight = this.inFlight;
      this.byPath.clear();
    },
  };
}

async function toWebRequest(req: IncomingMessage, url: URL, signal: AbortSignal): Promise<Request> {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i] ?? '', req.rawHeaders[i + 1] ?? '');
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const body = hasBody ? Buffer.concat(await req.toArray()) : null;
  return new Request(url, { method, headers, body, signal });
}

function sendGenerated(req: IncomingMessage, res: ServerResponse, url: URL): void {
  const type = url.pathname.endsWith('.png') ? 'png' : 'jpg';
  const bytes = Number(url.searchParams.get('bytes') ?? DEFAULT_GENERATED_BYTES);
  let image: Buffer;
  try {
    image = generatedImage(type, bytes);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return sendText(res, 400, `${error.message}\n`);
  }
  sendBuffer(req, res, image, type === 'png' ? 'image/png' : 'image/jpeg');
}

async function sendFixture(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  let name: string;
  try {
    name = decodeURIComponent(url.pathname.slice('/fixtures/'.length));
  } catch {
    return sendText(res, 400, 'bad path\n');
  }
  // A flat folder: any separator or dot-segment (even percent-encoded) is refused.
  if (name === '' || name !== basename(name) || name.startsWith('.')) return sendText(res, 404, 'not found\n');
  let file: Buffer;
  try {
    file = await readFile(FIXTURES_DIR + name);
  } catch {
    return sendText(res, 404, 'not found\n');
  }
  sendBuffer(req, res, file, CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream');
}

function sendBuffer(req: IncomingMessage, res: ServerResponse, body: Buffer, contentType: string): void {
  res.setHeader('Content-Type', contentType);
  res.setHeader('Accept-Ranges', 'bytes');
  let part = body;
  // Only single ranges: enough for resuming a download, and malformed ones fall back to 200 as RFC 9110 allows.
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    const end = Math.min(range[2] ? Number(range[2]) : Infinity, body.length - 1);
    if (start > end) {
      res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
      return;
    }
    part = body.subarray(start, end + 1);
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${body.length}`);
  }
  res.setHeader('Content-Length', part.length);
  res.end(req.method === 'HEAD' ? undefined : part);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
