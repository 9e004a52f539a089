/**
 * `--http2` against a real server: Debian's nginx over TLS with the fixtures'
 * CA, whose access log says which protocol each request came in and on
 * which connection.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { classifyNetworkError } from '../src/errors.js';
import { isRetryable } from '../src/item/retry.js';
import { collect, runCli, tempDir } from './helpers.js';
import { startNginx } from './nginx.js';

const COUNT = 500;
const files = Object.fromEntries(Array.from({ length: COUNT }, (_, i) => [`${i}.png`, generatedImage('png', 2_000 + i)]));

describe('--http2', () => {
  it('fetches 500 images at -c 32 over HTTP/2 on at most 2 connections, byte-exact', async () => {
    const nginx = await startNginx({ tls: true, http2: true, files });
    const out = await tempDir();
    const urls = Object.keys(files).map((name) => `${nginx.origin}/${name}`);
    const results = await collect(urls, { out, concurrency: 32, http2: true, cacert: nginx.caFile });
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(COUNT);
    const logged = await nginx.requests();
    expect(logged).toHaveLength(COUNT);
    expect(new Set(logged.map((r) => r.protocol))).toEqual(new Set(['HTTP/2.0']));
    expect(new Set(logged.map((r) => r.connection)).size).toBeLessThanOrEqual(2);
    for (const [name, body] of Object.entries(files)) expect((await fs.readFile(path.join(out, name))).equals(body)).toBe(true);
  });

  it('keeps to HTTP/1.1 without it (the control), and falls back to HTTP/1.1 with it where the server has no HTTP/2', async () => {
    const some = Object.fromEntries(Object.entries(files).slice(0, 40));
    for (const [http2, serverH2] of [
      [false, true],
      [true, false],
    ] as const) {
      const nginx = await startNginx({ tls: true, http2: serverH2, files: some });
      const out = await tempDir();
      const urls = Object.keys(some).map((name) => `${nginx.origin}/${name}`);
      const results = await collect(urls, { out, concurrency: 8, http2, cacert: nginx.caFile });
      expect(results.filter((r) => r.status === 'ok')).toHaveLength(40);
      expect(new Set((await nginx.requests()).map((r) => r.protocol))).toEqual(new Set(['HTTP/1.1']));
    }
  });

  it.each([
    [true, 'h2'],
    [false, 'http/1.1'],
  ])('says in --json which protocol each host spoke (server with HTTP/2: %s)', async (serverH2, protocol) => {
    const some = Object.fromEntries(Object.entries(files).slice(0, 10));
    const nginx = await startNginx({ tls: true, http2: serverH2, files: some });
    const urls = Object.keys(some).map((name) => `${nginx.origin}/${name}`);
    const run = await runCli([...urls, '-o', await tempDir(), '--http2', '--cacert', nginx.caFile, '--json']);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: 10, hosts: [{ host: new URL(nginx.origin).host, protocol }] });
  });

  it.each([
    ['a GOAWAY', Object.assign(new Error('HTTP/2: "GOAWAY" frame received with code 0'), { code: 'UND_ERR_SOCKET' })],
    [
      'a REFUSED_STREAM reset',
      Object.assign(new Error('Stream closed with error code NGHTTP2_REFUSED_STREAM'), { code: 'ERR_HTTP2_STREAM_ERROR' }),
    ],
  ])('retries a request ended by %s', (_what, error) => {
    const classified = classifyNetworkError(error, 'https://example.com/a.png');
    expect(classified.code).toBe('NETWORK');
    expect(isRetryable(classified)).toBe(true);
  });
});
