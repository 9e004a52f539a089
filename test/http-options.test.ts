import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { http, HttpResponse } from 'msw';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent as IndexAgent } from 'undici';
import { createAgent } from '../src/http/fetch.js';
import { fetchOne } from '../src/http/redirects.js';
import { resolveOptions, VERSION } from '../src/options.js';
import { fromUndici } from '../src/http/undici.js';
import { collect, listFiles, ROOT, runCli, serve, tempDir } from './helpers.js';

const TLS = path.join(ROOT, 'fixtures/tls');
const IMAGE = Buffer.from('\xff\xd8\xff\xe0 not really a jpeg, but bytes we can compare '.repeat(50), 'latin1');

/** Serves whatever arrives and remembers the request headers. */
async function echoHeaders() {
  const seen: Array<Record<string, string>> = [];
  const server = await serve({
    handlers: [
      http.get('*/h/:name', ({ request }) => {
        seen.push(Object.fromEntries(request.headers));
        return new HttpResponse(IMAGE, { headers: { 'content-type': 'image/jpeg' } });
      }),
    ],
  });
  return { server, seen };
}

describe('request headers', () => {
  it('sends imgdl/<version> as the default User-Agent and asks for gzip or br', async () => {
    const { server, seen } = await echoHeaders();
    await collect([server.url('/h/a.jpg')], { out: await tempDir() });
    expect(seen[0]).toMatchObject({ 'user-agent': `imgdl/${VERSION}`, 'accept-encoding': 'gzip, br' });
  });

  it('sends -H headers (repeatable), -A, --referer and --cookie from the command line', async () => {
    const { server, seen } = await echoHeaders();
    const out = await tempDir();
    const run = await runCli([
      server.url('/h/a.jpg'),
      '-o',
      out,
      '-H',
      'X-Token: abc',
      '--header',
      'Accept-Language:  fr',
      '-A',
      'gallery/2.0',
      '--referer',
      'https://example.com/page',
      '--cookie',
      'session=1; theme=dark',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(seen[0]).toMatchObject({
      'x-token': 'abc',
      'accept-language': 'fr',
      'user-agent': 'gallery/2.0',
      referer: 'https://example.com/page',
      cookie: 'session=1; theme=dark',
    });
  });

  it.each([
    [['-H', 'no colon here'], /--header/],
    [['-H', 'Bad Name: x'], /headers/],
    [['--referer', 'ftp://x'], /referer/],
    [['--proxy', 'not a url'], /proxy/],
    [['--cacert', '/nonexistent/ca.pem'], /cacert/],
  ])('refuses %j as a usage error naming the option', async (args, message) => {
    const run = await runCli(['http://127.0.0.1:9/a.jpg', '-o', await tempDir(), ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });
});

describe('encoded responses', () => {
  it.each([
    ['gzip', gzipSync(IMAGE)],
    ['br', brotliCompressSync(IMAGE)],
  ])('saves the decoded bytes of a %s response', async (encoding, body) => {
    const server = await serve({
      handlers: [
        http.get('*/z.jpg', () => new HttpResponse(body, { headers: { 'content-type': 'image/jpeg', 'content-encoding': encoding } })),
      ],
    });
    const out = await tempDir();
    const [record] = await collect([server.url('/z.jpg')], { out });
    expect(record).toMatchObject({ status: 'ok', bytes: IMAGE.length });
    expect(await fs.readFile(path.join(out, 'z.jpg'))).toEqual(IMAGE);
  });

  // Decoders are made only for encoded answers: a large one (written in batches, so paused and resumed through
  // the decoder) and plain ones on the same connections all arrive whole, and --max-size counts decoded bytes.
  it('decodes a large gzip body beside plain ones, and counts decoded bytes against --max-size', async () => {
    const large = Buffer.concat(Array.from({ length: 6000 }, () => IMAGE));
    const packed = gzipSync(large);
    const server = await serve({
      handlers: [
        http.get('*/big.jpg', () => new HttpResponse(packed, { headers: { 'content-type': 'image/jpeg', 'content-encoding': 'gzip' } })),
        http.get('*/p/:name', () => new HttpResponse(IMAGE, { headers: { 'content-type': 'image/jpeg' } })),
      ],
    });
    const out = await tempDir();
    const plain = Array.from({ length: 6 }, (_, i) => server.url(`/p/${i}.jpg`));
    const records = await collect([server.url('/big.jpg'), ...plain], { out, concurrency: 4 });
    expect(records.map((r) => r.status)).toEqual(Array(7).fill('ok'));
    expect((await fs.readFile(path.join(out, 'big.jpg'))).equals(large)).toBe(true);
    for (let i = 0; i < 6; i++) expect(await fs.readFile(path.join(out, `${i}.jpg`))).toEqual(IMAGE);
    const capped = await tempDir();
    const [tooLarge] = await collect([server.url('/big.jpg')], { out: capped, maxSize: packed.length * 2 });
    expect(tooLarge).toMatchObject({ status: 'failed', error: { code: 'TOO_LARGE' } });
    expect(await listFiles(capped)).toEqual([]);
  });
});

describe('encoded responses and resuming', () => {
  it('asks for the identity encoding when resuming with Range, since encoded offsets would not match the part file', async () => {
    const { server, seen } = await echoHeaders();
    const options = resolveOptions({});
    const agent = createAgent(options);
    try {
      for (const extra of [undefined, { range: 'bytes=100-' }]) {
        const response = await fetchOne(new URL(server.url('/h/r.jpg')), agent, options, undefined, extra);
        response.body.abort();
      }
    } finally {
      await agent.destroy();
    }
    expect(seen.map((h) => h['accept-encoding'])).toEqual(['gzip, br', 'identity']);
  });
});

describe("undici's modules", () => {
  it('come from their own files, and from the index when a release has moved them', () => {
    expect(fromUndici('dispatcher/agent.js', () => undefined)).toBe(IndexAgent);
    expect(fromUndici('dispatcher/moved-elsewhere.js', (undici) => undici.Agent)).toBe(IndexAgent);
  });
});

describe('TLS', () => {
  const servers: https.Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
  });

  /** An HTTPS server on loopback with the fixture certificate (signed by fixtures/tls/ca.pem). */
  async function httpsServer(): Promise<{ url: (p: string) => string; requests: () => number }> {
    let requests = 0;
    const [key, cert] = await Promise.all([fs.readFile(path.join(TLS, 'server.key')), fs.readFile(path.join(TLS, 'server.pem'))]);
    const server = https.createServer({ key, cert }, (_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'image/jpeg' }).end(IMAGE);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    const port = (server.address() as AddressInfo).port;
    return { url: (p) => `https://127.0.0.1:${port}${p}`, requests: () => requests };
  }

  it('refuses a certificate from an unknown CA, and accepts it with --cacert', async () => {
    const server = await httpsServer();
    const [refused] = await collect([server.url('/a.jpg')], { out: await tempDir() });
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'NETWORK' } });
    const out = await tempDir();
    const [trusted] = await collect([server.url('/a.jpg')], { out, cacert: path.join(TLS, 'ca.pem') });
    expect(trusted).toMatchObject({ status: 'ok', bytes: IMAGE.length });
    expect(await listFiles(out)).toEqual(['a.jpg']);
  });

  it('skips verification with --insecure, and says so loudly', async () => {
    const server = await httpsServer();
    const out = await tempDir();
    const run = await runCli([server.url('/b.jpg'), '-o', out, '-k']);
    expect(run.code, run.stderr).toBe(0);
    expect(await listFiles(out)).toEqual(['b.jpg']);
    expect(run.stderr).toMatch(/TLS certificate verification is OFF/);

    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    await collect([server.url('/c.jpg')], { out, insecure: true, logger });
    expect(lines.join('')).toMatch(/insecure/);
    expect(server.requests()).toBe(2);
  });
});
