/**
 * The downloader against servers that misbehave on purpose: flaky answers,
 * rate limits, stalls, lies about sizes, HTML served as images, and a run
 * interrupted halfway then resumed.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { http, HttpResponse, type RequestHandler } from 'msw';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createRunContext, downloadWith } from '../src/run/download.js';
import { generatedImage } from '../src/dev/fixture-server.js';
import type { ListItem } from '../src/input/text-list.js';
import { resolveOptions, type Options } from '../src/options.js';
import type { ItemResult } from '../src/record/record.js';
import { FolderSink } from '../src/output/folder-sink.js';
import { partKey } from '../src/output/resume-record.js';
import { head, rawServer } from './faults.js';
import { collect, listFiles, serve, tempDir } from './helpers.js';

const jpeg = generatedImage('jpg', 20_000);
const png = generatedImage('png', 3_000);
const fast: Options = { retryDelayMs: 1 };
const MIB = 1024 * 1024;

/** An msw handler answering the i-th request (0-based) with `answers[i]`, and the last answer after that. */
function sequence(answers: Array<() => Response>): () => Response {
  let i = 0;
  return () => answers[Math.min(i++, answers.length - 1)]!();
}
const status =
  (code: number, headers: Record<string, string> = {}) =>
  () =>
    new HttpResponse('busy', { status: code, headers });
const image =
  (body: Buffer = jpeg, headers: Record<string, string> = {}) =>
  () =>
    new HttpResponse(body, { headers: { 'content-type': 'image/jpeg', ...headers } });

/** A body of `total` bytes that sends `first` and then nothing, until the client goes away. */
function stalling(first: Buffer, headers: Record<string, string> = {}, total = jpeg.length): Response {
  const stream = new ReadableStream({
    start(controller) {
      controller.enqueue(first);
    },
  });
  return new HttpResponse(stream, { headers: { 'content-type': 'image/jpeg', 'content-length': String(total), ...headers } });
}

async function until(check: () => Promise<boolean> | boolean): Promise<void> {
  while (!(await check())) await delay(10);
}

describe('retries', () => {
  it.each([408, 429, 500, 502, 503, 504])('retries HTTP %i and counts every try', async (code) => {
    const server = await serve({ handlers: [http.get('*/a.jpg', sequence([status(code), status(code), image()]))] });
    const out = await tempDir();
    const [result] = await collect([server.url('/a.jpg')], { ...fast, out });
    expect(result).toMatchObject({ status: 'ok', attempts: 3, httpStatus: 200, bytes: jpeg.length });
    expect(server.stats.requests).toBe(3);
  });

  it.each([400, 403, 404, 410])('does not retry HTTP %i', async (code) => {
    const server = await serve({ handlers: [http.get('*/a.jpg', status(code))] });
    const [result] = await collect([server.url('/a.jpg')], { ...fast, out: await tempDir() });
    expect(result).toMatchObject({ status: 'failed', attempts: 1, httpStatus: code, error: { code: 'HTTP_STATUS' } });
    expect(server.stats.requests).toBe(1);
  });

  it('gives up after --retries more tries', async () => {
    const server = await serve({ handlers: [http.get('*/a.jpg', status(500))] });
    const [result] = await collect([server.url('/a.jpg')], { ...fast, retries: 2, out: await tempDir() });
    expect(result).toMatchObject({ status: 'failed', attempts: 3, httpStatus: 500 });
    expect(server.stats.requests).toBe(3);
  });

  it('does not retry a body that is not an image', async () => {
    const server = await serve({ handlers: [http.get('*/a.jpg', () => HttpResponse.html('<!doctype html><p>oops'))] });
    const [result] = await collect([server.url('/a.jpg')], { ...fast, out: await tempDir() });
    expect(result).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'NOT_AN_IMAGE' } });
  });

  // The backoff is an hour, so only obeying Retry-After lets these finish.
  it.each([
    ['delta-seconds', () => '0'],
    ['an HTTP date', () => new Date(Date.now() - 5_000).toUTCString()],
  ])('waits as Retry-After says in %s on 429 and 503', async (_form, value) => {
    const server = await serve({
      handlers: [
        http.get('*/a.jpg', sequence([status(429, { 'retry-after': value() }), status(503, { 'retry-after': value() }), image()])),
      ],
    });
    const [result] = await collect([server.url('/a.jpg')], { retryDelayMs: 3_600_000, out: await tempDir() });
    expect(result).toMatchObject({ status: 'ok', attempts: 3 });
  });

  it.each([
    ['delta-seconds', '3600'],
    ['an HTTP date', new Date(Date.now() + 3_600_000).toUTCString()],
  ])('fails at once, saying why, when Retry-After in %s is past --max-retry-after', async (_form, value) => {
    const server = await serve({ handlers: [http.get('*/a.jpg', status(429, { 'retry-after': value }))] });
    const [result] = await collect([server.url('/a.jpg')], { ...fast, maxRetryAfterMs: 60_000, out: await tempDir() });
    expect(result).toMatchObject({ status: 'failed', attempts: 1, httpStatus: 429, error: { code: 'HTTP_STATUS' } });
    expect(result?.error?.message).toMatch(/asked to retry after 3[56]\d\d s, more than the 60 s allowed/);
    expect(server.stats.requests).toBe(1);
  });

  it('starts a retry clean: no byte of a failed try reaches the file', async () => {
    const other = generatedImage('jpg', jpeg.length);
    const first = Buffer.from(other.subarray(0, 8_000));
    first.fill(0x41, 4_200);
    let served = 0;
    const server = await serve({
      handlers: [
        http.get('*/a.jpg', () => {
          if (served++ > 0) return image()();
          // 8 kB of a different body, then the connection drops.
          const stream = new ReadableStream({
            start(controller) {
              controller.enqueue(first);
              setTimeout(() => controller.error(new Error('drop')), 20);
            },
          });
          return new HttpResponse(stream, { headers: { 'content-length': String(jpeg.length) } });
        }),
      ],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/a.jpg')], { ...fast, out });
    expect(result).toMatchObject({ status: 'ok', attempts: 2 });
    expect(await fs.readFile(path.join(out, 'a.jpg'))).toEqual(jpeg);
    expect(await listFiles(out)).toEqual(['a.jpg']);
  });

  it('retries a connection reset before the headers', async () => {
    const server = await rawServer((socket, _request, index) => {
      if (index < 2) return void socket.resetAndDestroy();
      socket.end(Buffer.concat([Buffer.from(head(200, { 'content-length': png.length })), png]));
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/r.png')], { ...fast, out });
    expect(result).toMatchObject({ status: 'ok', attempts: 3 });
    expect(server.requests).toHaveLength(3);
  });
});

describe('timeouts and limits', () => {
  it('fails a body that stalls with ETIMEDOUT and leaves no file', async () => {
    const server = await serve({ handlers: [http.get('*/stall.jpg', () => stalling(jpeg.subarray(0, 5_000)))] });
    const out = await tempDir();
    const [result] = await collect([server.url('/stall.jpg')], { ...fast, retries: 0, timeoutMs: 150, out });
    expect(result).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'ETIMEDOUT' } });
    expect(result?.error?.message).toContain('next part of the body');
    expect(await listFiles(out)).toEqual([]);
  });

  it('fails a server that never answers with ETIMEDOUT while waiting for headers', async () => {
    const server = await rawServer(() => undefined);
    const [result] = await collect([server.url('/x.jpg')], { ...fast, retries: 0, timeoutMs: 150, out: await tempDir() });
    expect(result).toMatchObject({ status: 'failed', error: { code: 'ETIMEDOUT' } });
    expect(result?.error?.message).toContain('headers');
  });

  it('never times out a body that keeps flowing, however long it takes in all', async () => {
    const chunks = 12;
    const size = Math.ceil(jpeg.length / chunks);
    const server = await serve({
      handlers: [
        http.get('*/slow.jpg', () => {
          let i = 0;
          const stream = new ReadableStream({
            async pull(controller) {
              // Each gap is under the timeout; all of them together are well over it.
              await delay(50);
              controller.enqueue(jpeg.subarray(i * size, (i + 1) * size));
              if (++i === chunks) controller.close();
            },
          });
          return new HttpResponse(stream, { headers: { 'content-length': String(jpeg.length) } });
        }),
      ],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/slow.jpg')], { ...fast, retries: 0, timeoutMs: 400, out });
    expect(result).toMatchObject({ status: 'ok', attempts: 1, bytes: jpeg.length });
  });

  it('fails before downloading when Content-Length is over --max-size', async () => {
    const server = await serve();
    const out = await tempDir();
    const [result] = await collect([server.url('/gen/big.jpg?bytes=50000')], { out, maxSize: '10k' });
    expect(result).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'TOO_LARGE' } });
    expect(result?.error?.message).toContain('Content-Length 50000');
    expect(await listFiles(out)).toEqual([]);
  });

  it.each([
    ['grows past --max-size without a Content-Length', false],
    ['never ends', true],
  ])('aborts a body that %s and removes its temp file', async (_label, endless) => {
    const server = await serve({
      handlers: [
        http.get('*/grow.jpg', () => {
          let sent = 0;
          const stream = new ReadableStream({
            pull(controller) {
              controller.enqueue(sent === 0 ? jpeg : Buffer.alloc(16_384, 0x20));
              sent++;
              if (!endless && sent === 10) controller.close();
            },
          });
          return new HttpResponse(stream, { headers: { 'content-type': 'image/jpeg' } });
        }),
      ],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/grow.jpg')], { ...fast, out, maxSize: '64k' });
    expect(result).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'TOO_LARGE' } });
    expect(await listFiles(out)).toEqual([]);
  });

  it('fails a body shorter than its Content-Length as TRUNCATED, retried, never saved', async () => {
    const server = await rawServer((socket) => {
      socket.end(Buffer.concat([Buffer.from(head(200, { 'content-length': jpeg.length })), jpeg.subarray(0, 9_000)]));
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/short.jpg')], { ...fast, retries: 2, out });
    expect(result).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'TRUNCATED' } });
    expect(result?.error?.message).toContain(`9000 of ${jpeg.length}`);
    expect(await listFiles(out)).toEqual([]);
  });

  it('fails a large body (written through its part file) shorter than its Content-Length as TRUNCATED, and removes the part file', async () => {
    const big = generatedImage('jpg', 3 * MIB);
    const server = await rawServer((socket) => {
      socket.end(Buffer.concat([Buffer.from(head(200, { 'content-length': big.length })), big.subarray(0, 2 * MIB + 5)]));
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/short.jpg')], { ...fast, retries: 0, out });
    expect(result).toMatchObject({ status: 'failed', error: { code: 'TRUNCATED' } });
    expect(result?.error?.message).toContain(`${2 * MIB + 5} of ${big.length}`);
    expect(await listFiles(out)).toEqual([]);
  });

  it('cuts off a body that grows past --max-size after it started going to its part file, and removes the part file', async () => {
    const server = await serve({
      handlers: [
        http.get('*/grow.jpg', () => {
          let sent = 0;
          const stream = new ReadableStream({
            pull(controller) {
              controller.enqueue(sent++ === 0 ? jpeg : Buffer.alloc(256 * 1024, 0x20));
            },
          });
          return new HttpResponse(stream, { headers: { 'content-type': 'image/jpeg' } });
        }),
      ],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/grow.jpg')], { ...fast, out, maxSize: '3M' });
    expect(result).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'TOO_LARGE' } });
    expect(await listFiles(out)).toEqual([]);
  });

  it.each([
    ['held in memory', 200_000],
    ['at the memory limit', 256 * 1024],
    ['just past it', 256 * 1024 + 1],
    ['written in several batches', 5 * MIB + 3],
  ])('saves a body %s byte for byte, with its digest', async (_label, size) => {
    const server = await serve();
    const out = await tempDir();
    const [result] = await collect([server.url(`/gen/a.jpg?bytes=${size}`)], { out, hash: 'sha256' });
    const saved = await fs.readFile(path.join(out, 'a.jpg'));
    const expected = generatedImage('jpg', size);
    expect(saved.equals(expected)).toBe(true);
    expect(result).toMatchObject({ status: 'ok', bytes: size, digest: `sha256:${createHash('sha256').update(expected).digest('hex')}` });
    expect(await listFiles(out)).toEqual(['a.jpg']);
  });

  it('keeps the Content-Length bytes of a body longer than announced, and does not reuse the connection', async () => {
    const server = await rawServer((socket, request) => {
      const body = request.path === '/next.png' ? png : jpeg;
      const announced = request.path === '/next.png' ? png.length : 4_000;
      socket.write(head(200, { 'content-length': announced, connection: 'keep-alive' }));
      socket.write(body);
    });
    const out = await tempDir();
    // Sequential, so that the records come in list order: at -c 1 the second request starts while the first body is kept.
    const results = await collect([server.url('/long.jpg'), server.url('/next.png')], { ...fast, out, mode: 'sequential' });
    expect(results.map((r) => [r.status, r.bytes])).toEqual([
      ['ok', 4_000],
      ['ok', png.length],
    ]);
    expect(await fs.readFile(path.join(out, 'next.png'))).toEqual(png);
  });

  it('fails an endless response header instead of reading it forever', async () => {
    const server = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      const more = (): void => {
        if (socket.destroyed) return;
        if (socket.write(`x-filler: ${'a'.repeat(1000)}\r\n`)) setImmediate(more);
        else socket.once('drain', more);
      };
      more();
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/h.jpg')], { ...fast, retries: 0, out });
    expect(result?.status).toBe('failed');
    expect(result?.error?.message).toMatch(/header/i);
    expect(await listFiles(out)).toEqual([]);
  });
});

describe('it must be an image', () => {
  it('fails an HTML page served with 200 at a .jpg URL, quoting its start', async () => {
    const server = await serve({ handlers: [http.get('*/photo.jpg', () => HttpResponse.html('<!DOCTYPE html><title>404</title>'))] });
    const out = await tempDir();
    const [result] = await collect([server.url('/photo.jpg')], { out });
    expect(result).toMatchObject({ status: 'failed', error: { code: 'NOT_AN_IMAGE' }, contentType: 'text/html' });
    expect(result?.error?.message).toContain('<!DOCTYPE html>');
    expect(await listFiles(out)).toEqual([]);
  });

  it('keeps any body with anyType, under its listed name', async () => {
    const server = await serve({ handlers: [http.get('*/photo.jpg', () => HttpResponse.html('<p>hi</p>'))] });
    const out = await tempDir();
    const [result] = await collect([server.url('/photo.jpg')], { out, anyType: true });
    expect(result).toMatchObject({ status: 'ok', path: 'photo.jpg', sniffedType: null, contentType: 'text/html' });
  });

  it.each([
    ['a PNG served at x.jpg', '/img/x.jpg', png, 'x.png', 'image/png'],
    ['a PNG with no extension', '/img/picture', png, 'picture.png', 'image/png'],
    ['a JPEG at x.jpeg', '/img/x.jpeg', jpeg, 'x.jpeg', 'image/jpeg'],
    ['an SVG at /logo', '/img/logo', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'logo.svg', 'image/svg+xml'],
  ])('names %s after what its bytes are', async (_label, urlPath, body, saved, sniffedType) => {
    const server = await serve({
      handlers: [http.get(`*${urlPath}`, () => new HttpResponse(body, { headers: { 'content-type': 'image/jpeg' } }))],
    });
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    const [result] = await collect([server.url(urlPath)], { out, manifest });
    expect(result).toMatchObject({ status: 'ok', path: saved, sniffedType, contentType: 'image/jpeg' });
    expect(await listFiles(out)).toEqual(['run.jsonl', saved].sort());
    expect(JSON.parse(await fs.readFile(manifest, 'utf8'))).toMatchObject({ sniffedType, contentType: 'image/jpeg' });
  });

  it('skips on rerun an item whose file got its extension from the bytes', async () => {
    const big = generatedImage('png', 50_000);
    let runs = 0;
    // The second time, the body stalls after its head: only an item decided from the head can finish.
    const server = await serve({
      handlers: [
        http.get('*/img/picture', () =>
          runs++ === 0 ? image(big)() : stalling(big.subarray(0, 8_000), { 'content-length': String(big.length) }),
        ),
      ],
    });
    const out = await tempDir();
    const [first] = await collect([server.url('/img/picture')], { out });
    expect(first).toMatchObject({ status: 'ok', path: 'picture.png' });
    await fs.writeFile(path.join(out, 'picture.png'), 'kept');
    const [again] = await collect([server.url('/img/picture')], { out, timeoutMs: 600_000 });
    expect(again).toMatchObject({ status: 'skipped', skipReason: 'exists', path: 'picture.png' });
    expect(await fs.readFile(path.join(out, 'picture.png'), 'utf8')).toBe('kept');
    expect(await listFiles(out)).toEqual(['picture.png']);
  });

  it('keeps the NAME the list gave, whatever the bytes are', async () => {
    const server = await serve({ handlers: [http.get('*/x.jpg', image(png))] });
    const out = await tempDir();
    const [result] = await collect([{ url: server.url('/x.jpg'), name: 'mine.jpg' }], { out });
    expect(result).toMatchObject({ status: 'ok', path: 'mine.jpg', sniffedType: 'image/png' });
  });
});

describe('resume and reruns', () => {
  // A body this small is held in memory until complete: only a larger one has a part file to resume.
  const big = generatedImage('jpg', 3 * MIB);
  /**
   * A server whose handlers a test swaps between runs, so that the second run
   * asks the same URL (a part file belongs to its URL).
   */
  async function swappable() {
    const handlers: RequestHandler[] = [];
    const server = await serve({ handlers });
    return { server, use: (handler: RequestHandler) => handlers.splice(0, handlers.length, handler) };
  }

  /**
   * Downloads /big.jpg until it stalls halfway, then stops the run once part of it is on disk;
   * `first` is how much the part file holds (what had been written when the run stopped).
   */
  async function interrupted(validator: Record<string, string>) {
    const { server, use } = await swappable();
    use(http.get('*/big.jpg', () => stalling(big.subarray(0, big.length / 2), validator, big.length)));
    const out = await tempDir();
    const part = path.join(out, 'big.jpg.part');
    const stop = new AbortController();
    const running = collect([server.url('/big.jpg')], { out, stopSignal: stop.signal, graceMs: 0 });
    await until(async () => ((await fs.stat(part).catch(() => undefined))?.size ?? 0) > 0);
    stop.abort();
    const [result] = await running;
    expect(result).toMatchObject({ status: 'failed', error: { code: 'ABORTED' } });
    const first = (await fs.stat(part)).size;
    expect(first).toBeGreaterThan(0);
    return { server, use, out, part, first };
  }

  /** A handler (of /big.jpg unless `route` says) that honours Range (and If-Range against `etag`), recording the Range headers it saw. */
  function rangeHandler(etag: string, body: Buffer = big, route = '*/big.jpg') {
    const ranges: Array<string | null> = [];
    const handler = http.get(route, ({ request }) => {
      const range = request.headers.get('range');
      ranges.push(range);
      const from = /^bytes=(\d+)-$/.exec(range ?? '');
      const ifRange = request.headers.get('if-range');
      if (!from || (ifRange !== null && ifRange !== etag)) return image(body, { etag })();
      const start = Number(from[1]);
      return new HttpResponse(body.subarray(start), {
        status: 206,
        headers: {
          etag,
          'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
          'content-length': String(body.length - start),
        },
      });
    });
    return { handler, ranges };
  }

  it('keeps the part file of a stopped download and resumes it with Range when the ETag still matches', async () => {
    const { server, use, out, first } = await interrupted({ etag: '"v1"' });
    expect(await listFiles(out)).toEqual(['big.jpg.part', 'big.jpg.part.json']);
    const { handler, ranges } = rangeHandler('"v1"');
    use(handler);
    const [result] = await collect([server.url('/big.jpg')], { out });
    expect(ranges).toEqual([`bytes=${first}-`]);
    expect(result).toMatchObject({ status: 'ok', httpStatus: 206, bytes: big.length, attempts: 1 });
    expect((await fs.readFile(path.join(out, 'big.jpg'))).equals(big)).toBe(true);
    expect(await listFiles(out)).toEqual(['big.jpg']);
  });

  it('hashes and probes the whole file when it resumes, not only the bytes of the second run', async () => {
    const { server, use, out } = await interrupted({ etag: '"v1"' });
    use(rangeHandler('"v1"').handler);
    const [result] = await collect([server.url('/big.jpg')], { out, hash: 'sha256' });
    expect(result).toMatchObject({
      status: 'ok',
      httpStatus: 206,
      digest: `sha256:${createHash('sha256').update(big).digest('hex')}`,
      imageType: 'jpeg',
      width: 8,
      height: 8,
    });
  });

  it('starts over cleanly when the file changed (a 200 to the Range request)', async () => {
    const { server, use, out } = await interrupted({ etag: '"v1"' });
    const changed = generatedImage('jpg', 30_000);
    const { handler, ranges } = rangeHandler('"v2"', changed);
    use(handler);
    const [result] = await collect([server.url('/big.jpg')], { out });
    expect(ranges).toHaveLength(1);
    expect(result).toMatchObject({ status: 'ok', httpStatus: 200, bytes: changed.length });
    expect(await fs.readFile(path.join(out, 'big.jpg'))).toEqual(changed);
    expect(await listFiles(out)).toEqual(['big.jpg']);
  });

  it('starts over when a 206 does not continue where the part file ends', async () => {
    const interruption = await interrupted({ 'last-modified': 'Wed, 21 Oct 2015 07:28:00 GMT' });
    const { server, use, out } = interruption;
    const ranges: Array<string | null> = [];
    use(
      http.get('*/big.jpg', ({ request }) => {
        ranges.push(request.headers.get('range'));
        if (request.headers.get('range') === null) return image()();
        return new HttpResponse(big.subarray(0, 100), { status: 206, headers: { 'content-range': `bytes 0-99/${big.length}` } });
      }),
    );
    const { first } = interruption;
    const [result] = await collect([server.url('/big.jpg')], { out });
    expect(ranges).toEqual([`bytes=${first}-`, null]);
    expect(result).toMatchObject({ status: 'ok', attempts: 2 });
    expect(await fs.readFile(path.join(out, 'big.jpg'))).toEqual(jpeg);
  });

  it('starts over without Range when a part file has no validator beside it', async () => {
    const { server, use, out, part } = await interrupted({ etag: '"v1"' });
    await fs.rm(`${part}.json`);
    const { handler, ranges } = rangeHandler('"v1"');
    use(handler);
    const [result] = await collect([server.url('/big.jpg')], { out });
    expect(ranges).toEqual([null]);
    expect(result).toMatchObject({ status: 'ok', httpStatus: 200 });
    expect((await fs.readFile(path.join(out, 'big.jpg'))).equals(big)).toBe(true);
  });

  it('removes the part file of a stopped download the server gave no validator for', async () => {
    const server = await serve({ handlers: [http.get('*/big.jpg', () => stalling(big.subarray(0, big.length / 2), {}, big.length))] });
    const out = await tempDir();
    const stop = new AbortController();
    const running = collect([server.url('/big.jpg')], { out, stopSignal: stop.signal, graceMs: 0 });
    await until(async () => ((await fs.stat(path.join(out, 'big.jpg.part')).catch(() => undefined))?.size ?? 0) > 0);
    stop.abort();
    await running;
    expect(await listFiles(out)).toEqual([]);
  });

  it('leaves nothing behind when a small body held in memory is stopped, so the next run fetches it whole', async () => {
    const { server, use } = await swappable();
    let sent!: () => void;
    const stalled = new Promise<void>((resolve) => (sent = resolve));
    use(
      http.get('*/small.jpg', () => {
        sent();
        return stalling(jpeg.subarray(0, 12_000), { etag: '"v1"' });
      }),
    );
    const out = await tempDir();
    const stop = new AbortController();
    const running = collect([server.url('/small.jpg')], { out, stopSignal: stop.signal, graceMs: 0 });
    await stalled;
    stop.abort();
    const [result] = await running;
    expect(result).toMatchObject({ status: 'failed', error: { code: 'ABORTED' } });
    expect(await listFiles(out)).toEqual([]);
    const { handler, ranges } = rangeHandler('"v1"', jpeg, '*/small.jpg');
    use(handler);
    const [again] = await collect([server.url('/small.jpg')], { out });
    expect(ranges).toEqual([null]);
    expect(again).toMatchObject({ status: 'ok', httpStatus: 200, bytes: jpeg.length });
    expect(await fs.readFile(path.join(out, 'small.jpg'))).toEqual(jpeg);
  });
  it.each([
    [
      'the part file is longer than the whole file',
      (key: string) => JSON.stringify({ key, etag: '"v1"', total: 100 }),
      'it holds 5000 bytes of a 100-byte file',
    ],
    [
      'the record is for another URL',
      () => JSON.stringify({ key: partKey('http://elsewhere.example/big.jpg'), etag: '"v1"' }),
      'its resume record is for another URL',
    ],
    ['the record is unreadable', () => '{"key": "trunc', 'its resume record is unreadable'],
  ])('starts over without Range, and says why at -v, when %s', async (_label, record, reason) => {
    const { server, use } = await swappable();
    const { handler, ranges } = rangeHandler('"v1"');
    use(handler);
    const out = await tempDir();
    const part = path.join(out, 'big.jpg.part');
    await fs.writeFile(part, big.subarray(0, 5000));
    await fs.writeFile(`${part}.json`, record(partKey(server.url('/big.jpg'))));
    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({ write: (chunk: Buffer, _encoding, done) => done(void lines.push(chunk.toString())) }),
    );
    const [result] = await collect([server.url('/big.jpg')], { out, logger });
    expect(ranges).toEqual([null]);
    expect(result).toMatchObject({ status: 'ok', httpStatus: 200 });
    expect((await fs.readFile(path.join(out, 'big.jpg'))).equals(big)).toBe(true);
    expect(await listFiles(out)).toEqual(['big.jpg']);
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toContain(`starting big.jpg.part over: ${reason}`);
  });

  it('removes a part file left beside a file that already exists, when the rerun skips it', async () => {
    const server = await serve();
    const out = await tempDir();
    await fs.writeFile(path.join(out, 'a.jpg'), jpeg);
    await fs.writeFile(path.join(out, 'a.jpg.part'), jpeg.subarray(0, 100));
    const [result] = await collect([server.url('/gen/a.jpg')], { out });
    expect(result).toMatchObject({ status: 'skipped', skipReason: 'exists' });
    expect(server.stats.requests).toBe(0);
    expect(await listFiles(out)).toEqual(['a.jpg']);
  });

  it('skips items the manifest records as done, without a request, and retries the failed ones', async () => {
    let healthy = false;
    const server = await serve({ handlers: [http.get('*/flaky.jpg', () => (healthy ? image()() : status(500)()))] });
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    const urls = [server.url('/gen/a.jpg'), server.url('/flaky.jpg')];
    const first = await collect(urls, { out, manifest, retries: 0, onExists: 'overwrite' });
    expect(first.map((r) => r.status).sort()).toEqual(['failed', 'ok']);

    healthy = true;
    server.stats.reset();
    const second = await collect(urls, { out, manifest, retries: 0, onExists: 'overwrite' });
    expect(Object.fromEntries(second.map((r) => [r.url, [r.status, r.skipReason]]))).toEqual({
      [urls[0]!]: ['skipped', 'manifest'],
      [urls[1]!]: ['ok', null],
    });
    expect([...server.stats.byPath.keys()]).toEqual(['/flaky.jpg']);
    // Appended: the first run's two records, then the retried item's.
    const lines = (await fs.readFile(manifest, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ItemResult);
    expect(lines.map((l) => l.status)).toEqual([...first.map((r) => r.status), 'ok']);

    server.stats.reset();
    await collect(urls, { out, manifest, onExists: 'overwrite' });
    expect(server.stats.requests).toBe(0);
  });
});

describe('a part file that cannot be opened', () => {
  it('fails each item with FILESYSTEM, also when the file was opened while its request was in flight', async () => {
    // The latency makes the second item's open fail while its request waits: nothing listens then but the item.
    const server = await serve({ latencyMs: 30 });
    const out = await tempDir();
    const ctx = await createRunContext(resolveOptions({ out, concurrency: 1, retries: 0 }));
    const { openSync } = await import('node:fs');
    ctx.sink = new FolderSink(ctx.options, ctx.parts, async () => openSync(path.join(out, 'no-such-folder', 'x.part'), 'w'));
    const results: ItemResult[] = [];
    for await (const result of downloadWith([server.url('/gen/a.jpg'), server.url('/gen/b.jpg')], ctx)) results.push(result);
    expect(results.map((r) => [r.status, r.error?.code])).toEqual([
      ['failed', 'FILESYSTEM'],
      ['failed', 'FILESYSTEM'],
    ]);
    expect(results[1]?.error?.message).toContain('ENOENT');
    expect(await listFiles(out)).toEqual([]);
  });
});

describe('a full disk', () => {
  it('fails the items in flight with DISK_FULL, removes their part files, and starts no more', async () => {
    const server = await serve();
    const out = await tempDir();
    const ctx = await createRunContext(resolveOptions({ out, concurrency: 1 }));
    // /dev/full accepts the open and fails every write with a real ENOSPC from the kernel.
    const { openSync } = await import('node:fs');
    ctx.sink = new FolderSink(ctx.options, ctx.parts, async () => openSync('/dev/full', 'w'));
    const results: ItemResult[] = [];
    const urls = Array.from({ length: 5 }, (_, i) => server.url(`/gen/${i}.jpg`));
    for await (const result of downloadWith(urls, ctx)) results.push(result);
    // The second request started once the first body was received, before the disk refused it; no third.
    expect(results).toHaveLength(2);
    for (const result of results) expect(result).toMatchObject({ status: 'failed', error: { code: 'DISK_FULL' } });
    expect(results[0]?.error?.message).toContain('ENOSPC');
    expect(server.stats.requests).toBe(2);
    expect(await listFiles(out)).toEqual([]);
  });
});

describe('items their caller takes back', () => {
  it('stop alone, in flight or before they start, as ABORTED and unlogged, and the rest of the run goes on', async () => {
    const server = await serve({
      // Never answered: only taking the item back ends its request.
      handlers: [http.get('*/held.jpg', () => new Promise<never>(() => undefined))],
    });
    const out = await tempDir();
    const item = (line: number, p: string): ListItem => ({ url: server.url(p), source: 'list', line });
    const items = [item(1, '/held.jpg'), item(2, '/gen/never.jpg'), ...[0, 1, 2, 3].map((i) => item(3 + i, `/gen/${i}.jpg`))];
    const inFlight = new AbortController();
    const before = new AbortController();
    before.abort(new Error('taken back'));
    const signals = new Map([
      [items[0]!, inFlight.signal],
      [items[1]!, before.signal],
    ]);
    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({ write: (chunk: Buffer, _encoding, done) => done(void lines.push(chunk.toString())) }),
    );
    const ctx = await createRunContext(resolveOptions({ out, concurrency: 2, logger }), undefined, { itemSignal: (i) => signals.get(i) });
    const taken = (async () => {
      while (server.stats.byPath.get('/held.jpg') === undefined) await delay(10);
      inFlight.abort(new Error('taken back'));
    })();
    const results: ItemResult[] = [];
    for await (const result of downloadWith(items, ctx)) results.push(result);
    await taken;
    results.sort((a, b) => a.line - b.line);
    expect(results.map((r) => [r.line, r.status, r.error?.code ?? null, r.attempts])).toEqual([
      [1, 'failed', 'ABORTED', 1],
      [2, 'failed', 'ABORTED', 0],
      [3, 'ok', null, 1],
      [4, 'ok', null, 1],
      [5, 'ok', null, 1],
      [6, 'ok', null, 1],
    ]);
    expect(server.stats.byPath.has('/gen/never.jpg')).toBe(false);
    expect(await listFiles(out)).toEqual(['0.jpg', '1.jpg', '2.jpg', '3.jpg']);
    // Whoever took them back says so; the run logs only the items it finished.
    expect(lines.filter((line) => line.includes('held.jpg') || line.includes('never.jpg'))).toEqual([]);
    expect(lines.filter((line) => line.includes('"status":"ok"'))).toHaveLength(4);
  });
});
