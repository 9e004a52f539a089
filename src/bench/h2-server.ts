/**
 * The suite's TLS fixture server: the `/gen/` routes of the fixture server
 * (dev/fixture-server.ts), but over `node:http2`'s secure server with
 * `allowHTTP1`, so that one origin answers HTTP/2 and HTTP/1.1 alike, as
 * the ALPN of each connection decides. The fixture server itself speaks
 * node:http(s), HTTP/1.1 only. Certificates are the checked-in
 * `fixtures/tls/` ones (valid for 127.0.0.1, signed by `ca.pem`, which
 * clients are given: servers.ts's `TLS_CA`).
 *
 * Like bench/server.ts it runs in a process of its own, prints its origin
 * on the first line of stdout, serves until stdin closes or it is
 * signalled, answers `stats` on stdin with `{ requests, firstRequestAt }` as
 * one JSON line and zeroes them on `reset`.
 *
 *   node dist/bench/h2-server.js [latencyMs]
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { generatedImage } from '../dev/generated-image.js';

const TLS_DIR = new URL('../../fixtures/tls/', import.meta.url);
const GEN = /^\/gen\/[^/]+\.(jpg|png)$/;

const latencyMs = Number(process.argv[2] ?? 0);
let requests = 0;
let firstRequestAt: number | null = null;

/** Answers `GET|HEAD /gen/<any>.jpg|.png?bytes=N` (N defaults to 20000) after the latency; 404 otherwise. */
async function respond(req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
  requests++;
  firstRequestAt ??= Date.now();
  if (latencyMs > 0) await delay(latencyMs);
  const url = new URL(req.url, 'https://127.0.0.1');
  const match = GEN.exec(url.pathname);
  if (!match || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  const type = match[1] as 'jpg' | 'png';
  const body = generatedImage(type, Number(url.searchParams.get('bytes') ?? 20_000));
  res.writeHead(200, { 'content-type': type === 'jpg' ? 'image/jpeg' : 'image/png', 'content-length': body.length });
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

const server = createSecureServer(
  {
    allowHTTP1: true,
    key: readFileSync(new URL('server.key', TLS_DIR)),
    cert: readFileSync(new URL('server.pem', TLS_DIR)),
    // Room for a client's whole -c 32 on one connection (Node's default is already 100; said here, not assumed).
    settings: { maxConcurrentStreams: 256 },
  },
  (req, res) => {
    respond(req, res).catch((error: unknown) => {
      // Only a bad ?bytes= gets here, before any header is sent.
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`);
    });
  },
);
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`https://127.0.0.1:${(server.address() as AddressInfo).port}\n`);

const stop = (): void => {
  server.close(() => process.exit(0));
  // Open HTTP/1.1 keep-alive sockets and HTTP/2 sessions would hold close() open; the suite is done with them.
  setTimeout(() => process.exit(0), 1000).unref();
};
createInterface({ input: process.stdin })
  .on('line', (line) => {
    const command = line.trim();
    if (command === 'reset') [requests, firstRequestAt] = [0, null];
    if (command === 'stats') process.stdout.write(JSON.stringify({ requests, firstRequestAt }) + '\n');
  })
  .on('close', stop);
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
