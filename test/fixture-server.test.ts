import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { http, HttpResponse, type RequestHandler } from 'msw';
import { Agent, request } from 'undici';
import { describe, it, expect, afterEach } from 'vitest';
import { generatedImage, startFixtureServer, type FixtureServer, type FixtureServerOptions } from '../src/dev/fixture-server.js';

const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff]);
const JPEG_END = Buffer.from([0xff, 0xd9]);
const PNG_MAGIC = Buffer.from('89504e470d0a1a0a', 'hex');
const PNG_IEND = Buffer.from('0000000049454e44ae426082', 'hex');

const servers: FixtureServer[] = [];
const agents: Agent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.destroy()));
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function serve(options?: FixtureServerOptions): Promise<FixtureServer> {
  const server = await startFixtureServer(options);
  servers.push(server);
  return server;
}

function newAgent(): Agent {
  const agent = new Agent();
  agents.push(agent);
  return agent;
}

type RequestOptions = NonNullable<Parameters<typeof request>[1]>;

/** One request through undici, body read to the end. */
async function fetchBytes(url: string, options: RequestOptions = {}) {
  const { statusCode, headers, body } = await request(url, { dispatcher: newAgent(), ...options });
  return { status: statusCode, headers, body: Buffer.from(await body.arrayBuffer()) };
}

describe('generated images', () => {
  it.each([
    ['jpg', 160, 'image/jpeg'],
    ['jpg', 20_000, 'image/jpeg'],
    ['jpg', 200_001, 'image/jpeg'],
    ['png', 79, 'image/png'],
    ['png', 20_000, 'image/png'],
    ['png', 200_001, 'image/png'],
  ] as const)('serves a %s of exactly %i bytes', async (type, bytes, contentType) => {
    const server = await serve();
    const { status, headers, body } = await fetchBytes(server.url(`/gen/photo.${type}?bytes=${bytes}`));
    expect(status).toBe(200);
    expect(headers['content-type']).toBe(contentType);
    expect(headers['content-length']).toBe(String(bytes));
    expect(body.length).toBe(bytes);
    expect(body.equals(generatedImage(type, bytes))).toBe(true);
    if (type === 'jpg') {
      expect(body.subarray(0, 3)).toEqual(JPEG_MAGIC);
      expect(body.subarray(-2)).toEqual(JPEG_END);
    } else {
      expect(body.subarray(0, 8)).toEqual(PNG_MAGIC);
      expect(body.subarray(-12)).toEqual(PNG_IEND);
    }
  });

  it('defaults to 20000 bytes', async () => {
    const server = await serve();
    const { body } = await fetchBytes(server.url('/gen/a.jpg'));
    expect(body.length).toBe(20_000);
  });

  it.each([
    ['jpg', 159],
    ['png', 78],
    ['jpg', 1.5],
    ['png', 64 * 1024 * 1024 + 1],
  ] as const)('refuses a %s of %s bytes with RangeError, and the route with 400', async (type, bytes) => {
    expect(() => generatedImage(type, bytes)).toThrow(RangeError);
    const server = await serve();
    expect((await fetchBytes(server.url(`/gen/a.${type}?bytes=${bytes}`))).status).toBe(400);
  });

  it('answers HEAD with the headers only', async () => {
    const server = await serve();
    const { status, headers, body } = await fetchBytes(server.url('/gen/a.png?bytes=5000'), { method: 'HEAD' });
    expect(status).toBe(200);
    expect(headers['content-length']).toBe('5000');
    expect(body.length).toBe(0);
  });

  it.each([
    ['bytes=100-', 100, 999],
    ['bytes=100-199', 100, 199],
    ['bytes=990-5000', 990, 999],
  ])('answers Range %s with 206 and the slice', async (range, start, end) => {
    const server = await serve();
    const { status, headers, body } = await fetchBytes(server.url('/gen/a.jpg?bytes=1000'), { headers: { range } });
    expect(status).toBe(206);
    expect(headers['content-range']).toBe(`bytes ${start}-${end}/1000`);
    expect(body).toEqual(generatedImage('jpg', 1000).subarray(start, end + 1));
  });

  it('answers a Range past the end with 416', async () => {
    const server = await serve();
    const { status, headers } = await fetchBytes(server.url('/gen/a.jpg?bytes=1000'), {
      headers: { range: 'bytes=1000-' },
    });
    expect(status).toBe(416);
    expect(headers['content-range']).toBe('bytes */1000');
  });
});

describe('fixture files', () => {
  it.each([
    ['tiny.jpg', 'image/jpeg'],
    ['tiny.png', 'image/png'],
    ['tiny.gif', 'image/gif'],
    ['tiny.webp', 'image/webp'],
  ])('serves %s as %s', async (name, contentType) => {
    const server = await serve();
    const { status, headers, body } = await fetchBytes(server.url(`/fixtures/${name}`));
    expect(status).toBe(200);
    expect(headers['content-type']).toBe(contentType);
    expect(body).toEqual(await readFile(new URL(`../fixtures/images/${name}`, import.meta.url)));
  });

  it('answers 404 for an unknown path', async () => {
    const server = await serve();
    const { status, body } = await fetchBytes(server.url('/nope.jpg'));
    expect(status).toBe(404);
    expect(body.toString()).toBe('not found\n');
  });

  it.each(['/fixtures/../package.json', '/fixtures/..%2Fpackage.json', '/fixtures/%2e%2e%2f..%2fpackage.json'])(
    'refuses to leave the fixtures folder: %s',
    async (path) => {
      const server = await serve();
      // Dispatcher.request sends the path as written; request(url) would normalise the dot-segments away.
      const { statusCode, body } = await newAgent().request({ origin: server.origin, path, method: 'GET' });
      expect(statusCode).toBe(404);
      expect(await body.text()).not.toContain('imgdl');
    },
  );
});

describe('msw handlers', () => {
  it('matches relative and wildcard paths, and falls through to built-in routes', async () => {
    const server = await serve({
      handlers: [
        http.get('/relative.jpg', () => HttpResponse.text('relative', { status: 201, headers: { 'x-from': 'msw' } })),
        http.get('*/wildcard.jpg', ({ request }) => HttpResponse.text(request.url)),
      ],
    });
    const relative = await fetchBytes(server.url('/relative.jpg'));
    expect(relative.status).toBe(201);
    expect(relative.headers['x-from']).toBe('msw');
    expect(relative.body.toString()).toBe('relative');
    const wildcard = await fetchBytes(server.url('/wildcard.jpg?size=big'));
    expect(wildcard.body.toString()).toBe(server.url('/wildcard.jpg?size=big'));
    expect((await fetchBytes(server.url('/gen/a.png?bytes=100'))).body.length).toBe(100);
  });

  it('matches absolute handlers built from server.url() after start', async () => {
    const handlers: RequestHandler[] = [];
    const server = await serve({ handlers });
    handlers.push(http.get(server.url('/absolute.jpg'), () => HttpResponse.text('absolute')));
    expect((await fetchBytes(server.url('/absolute.jpg'))).body.toString()).toBe('absolute');
  });

  it('passes the method, headers and body of a POST to the handler', async () => {
    const server = await serve({
      handlers: [http.post('/echo', async ({ request }) => HttpResponse.text(`${request.headers.get('x-token')} ${await request.text()}`))],
    });
    const { body } = await fetchBytes(server.url('/echo'), { method: 'POST', headers: { 'x-token': 't' }, body: 'hi' });
    expect(body.toString()).toBe('t hi');
  });

  it('streams a slow body chunk by chunk', async () => {
    const chunks = ['one ', 'two ', 'three'];
    const server = await serve({
      handlers: [
        http.get('/slow', () => {
          const stream = new ReadableStream<Uint8Array>({
            async pull(controller) {
              await delay(10);
              const chunk = chunks.shift();
              if (chunk === undefined) controller.close();
              else controller.enqueue(new TextEncoder().encode(chunk));
            },
          });
          return new HttpResponse(stream, { headers: { 'content-type': 'text/plain' } });
        }),
      ],
    });
    const { headers, body } = await fetchBytes(server.url('/slow'));
    expect(headers['transfer-encoding']).toBe('chunked');
    expect(body.toString()).toBe('one two three');
  });

  it('cancels an endless body when the client goes away', async () => {
    let cancelled!: () => void;
    const wasCancelled = new Promise<void>((resolve) => (cancelled = resolve));
    const server = await serve({
      handlers: [
        http.get('/endless', () => {
          const stream = new ReadableStream<Uint8Array>({
            pull: (controller) => controller.enqueue(new Uint8Array(16 * 1024)),
            cancel: () => cancelled(),
          });
          return new HttpResponse(stream);
        }),
      ],
    });
    const { body } = await request(server.url('/endless'), { dispatcher: newAgent() });
    for await (const chunk of body) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    await wasCancelled;
    await expect.poll(() => server.stats.inFlight).toBe(0);
  });

  it('drops the connection for HttpResponse.error()', async () => {
    const server = await serve({ handlers: [http.get('/broken', () => HttpResponse.error())] });
    await expect(fetchBytes(server.url('/broken'))).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
  });
});

describe('stats', () => {
  it('counts every request and the peak in flight', async () => {
    const concurrent = 6;
    // Every response is held back until all requests have arrived.
    const server = await serve({ holdUntilInFlight: concurrent });
    const agent = newAgent();
    await Promise.all(
      Array.from({ length: concurrent }, async (_, i) => {
        const { body } = await request(server.url(`/gen/${i % 2}.jpg?bytes=1000`), { dispatcher: agent });
        await body.dump();
      }),
    );
    expect(server.stats.requests).toBe(concurrent);
    expect(server.stats.peakInFlight).toBe(concurrent);
    expect(server.stats.byPath).toEqual(
      new Map([
        ['/gen/0.jpg?bytes=1000', concurrent / 2],
        ['/gen/1.jpg?bytes=1000', concurrent / 2],
      ]),
    );
    await expect.poll(() => server.stats.inFlight).toBe(0);

    const firstAt = server.stats.firstRequestAt;
    expect(firstAt).toBeGreaterThan(0);
    server.stats.reset();
    expect(server.stats.firstRequestAt).toBeUndefined();
    await fetchBytes(server.url('/nope'));
    expect(server.stats.firstRequestAt).toBeGreaterThanOrEqual(firstAt!);
    expect(server.stats.requests).toBe(1);
    expect(server.stats.peakInFlight).toBe(1);
    expect([...server.stats.byPath]).toEqual([['/nope', 1]]);
  });
});

describe('close()', () => {
  it('resolves with an idle keep-alive connection and a response still streaming', async () => {
    const server = await serve({
      handlers: [
        http.get('/endless', () => {
          const stream = new ReadableStream<Uint8Array>({
            pull: (controller) => controller.enqueue(new Uint8Array(16 * 1024)),
          });
          return new HttpResponse(stream);
        }),
      ],
    });
    const agent = newAgent();
    const idle = await request(server.url('/gen/a.jpg?bytes=1000'), { dispatcher: agent });
    await idle.body.dump();
    const streaming = await request(server.url('/endless'), { dispatcher: agent });
    const streamEnded = streaming.body.arrayBuffer().catch((error: unknown) => error);
    const disconnected = once(agent, 'disconnect');

    await server.close();
    await disconnected;
    expect(await streamEnded).toBeInstanceOf(Error);
    await expect(server.close()).resolves.toBeUndefined();
  });
});

describe('tls', () => {
  it('speaks HTTPS with the given key and certificate, and says so in its origin', async () => {
    const tls = new URL('../fixtures/tls/', import.meta.url);
    const [key, cert, ca] = await Promise.all(['server.key', 'server.pem', 'ca.pem'].map((name) => readFile(new URL(name, tls))));
    const server = await serve({ tls: { key: key!, cert: cert! } });
    expect(server.origin).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const agent = new Agent({ connect: { ca: ca! } });
    agents.push(agent);
    const { status, body } = await fetchBytes(server.url('/gen/a.png?bytes=500'), { dispatcher: agent });
    expect(status).toBe(200);
    expect(body.equals(generatedImage('png', 500))).toBe(true);
    expect(server.stats.requests).toBe(1);
  });
});
