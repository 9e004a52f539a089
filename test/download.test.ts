import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { collect, listFiles, serve, tempDir } from './helpers.js';

const jpeg = generatedImage('jpg', 2_000);

/** A redirect with a Location as servers write it, relative ones included (Response.redirect wants absolute URLs). */
function redirect(location: string, status: number): HttpResponse<null> {
  return new HttpResponse(null, { status, headers: { location } });
}

describe('download', () => {
  it('streams each image to its file, byte for byte', async () => {
    const server = await serve();
    const out = await tempDir();
    const urls = [server.url('/gen/a.jpg?bytes=5000'), server.url('/gen/b.png?bytes=7000')];
    const results = await collect(urls, { out });

    expect(results.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(await listFiles(out)).toEqual(['a.jpg', 'b.png']);
    expect(await fs.readFile(path.join(out, 'a.jpg'))).toEqual(generatedImage('jpg', 5000));
    expect(await fs.readFile(path.join(out, 'b.png'))).toEqual(generatedImage('png', 7000));
  });

  it('creates the output folder when it is missing', async () => {
    const server = await serve();
    const out = path.join(await tempDir(), 'new', 'nested');
    await collect([server.url('/gen/a.jpg')], { out });
    expect(await listFiles(out)).toEqual(['a.jpg']);
  });

  it('keeps exactly one request in flight in sequential mode', async () => {
    const server = await serve({ latencyMs: 20 });
    const out = await tempDir();
    const urls = Array.from({ length: 8 }, (_, i) => server.url(`/gen/${i}.jpg`));
    const results = await collect(urls, { out, mode: 'sequential', concurrency: 8 });
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(server.stats.requests).toBe(8);
    expect(server.stats.peakInFlight).toBe(1);
  });

  it.each([2, 5, 16])('reaches but never exceeds concurrency %i with more items than slots', async (limit) => {
    const server = await serve({ latencyMs: 40, holdUntilInFlight: limit });
    const out = await tempDir();
    const urls = Array.from({ length: limit * 3 + 1 }, (_, i) => server.url(`/gen/${i}.jpg`));
    const results = await collect(urls, { out, concurrency: limit });
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(urls.length);
    expect(server.stats.peakInFlight).toBe(limit);
  });

  it('caps connections to one host with perHost', async () => {
    const server = await serve({ latencyMs: 40, holdUntilInFlight: 3 });
    const out = await tempDir();
    const urls = Array.from({ length: 12 }, (_, i) => server.url(`/gen/${i}.jpg`));
    await collect(urls, { out, concurrency: 8, perHost: 3 });
    expect(server.stats.peakInFlight).toBe(3);
  });

  it.each([404, 500])('never saves the body of an HTTP %i', async (status) => {
    const server = await serve({
      handlers: [http.get('*/missing.jpg', () => new HttpResponse(jpeg, { status, headers: { 'content-type': 'image/jpeg' } }))],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/missing.jpg')], { out, retryDelayMs: 1 });
    expect(result).toMatchObject({ status: 'failed', httpStatus: status, path: null, error: { code: 'HTTP_STATUS' } });
    expect(await listFiles(out)).toEqual([]);
  });

  // Once a folder holds a saved file, the next items open their part files while their requests are in flight.
  it.each([
    ['an HTTP 404', '/missing.jpg', {}],
    ['a Content-Length over --max-size', '/gen/big.jpg?bytes=9000', { maxSize: 5_000 }],
  ])('leaves no part file behind after %s that follows a saved file', async (_label, failing, extra) => {
    const server = await serve({ handlers: [http.get('*/missing.jpg', () => new HttpResponse('nope', { status: 404 }))] });
    const out = await tempDir();
    const results = await collect(
      [server.url('/gen/first.jpg?bytes=2000'), server.url(failing), server.url(failing.replace('.jpg', '2.jpg'))],
      {
        out,
        concurrency: 1,
        retries: 0,
        ...extra,
      },
    );
    // In completion order: the next request may start, and fail, while the first body goes to disk.
    expect(results.map((r) => [path.basename(r.url), r.status]).sort()).toEqual(
      [
        [path.basename(failing), 'failed'],
        [path.basename(failing.replace('.jpg', '2.jpg')), 'failed'],
        ['first.jpg?bytes=2000', 'ok'],
      ].sort(),
    );
    expect(await listFiles(out)).toEqual(['first.jpg']);
  });

  it('follows redirects and names the file after the listed URL', async () => {
    const server = await serve({
      handlers: [
        http.get('*/old/cat.jpg', () => redirect('/step', 301)),
        http.get('*/step', () => redirect('/gen/other.jpg?bytes=3000', 302)),
      ],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/old/cat.jpg')], { out });
    expect(result).toMatchObject({ status: 'ok', path: 'cat.jpg', bytes: 3000, httpStatus: 200 });
  });

  it.each([
    ['a loop', '*/loop', () => redirect('/loop', 302), 'REDIRECT_LOOP'],
    ['a non-http target', '*/loop', () => redirect('ftp://127.0.0.1/x.jpg', 302), 'BAD_REDIRECT'],
  ])('fails an item whose redirect is %s', async (_label, path, resolver, code) => {
    const server = await serve({ handlers: [http.get(path, resolver)] });
    const out = await tempDir();
    const [result] = await collect([server.url('/loop')], { out });
    expect(result).toMatchObject({ status: 'failed', error: { code } });
    expect(await listFiles(out)).toEqual([]);
  });

  it('gives up after maxRedirects hops', async () => {
    const server = await serve({
      handlers: [http.get('*/hop/:n', ({ params }) => redirect(`/hop/${Number(params.n) + 1}`, 302))],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/hop/0')], { out, maxRedirects: 3 });
    expect(result).toMatchObject({ status: 'failed', error: { code: 'TOO_MANY_REDIRECTS' } });
    expect(server.stats.requests).toBe(4);
  });

  it('downloads nothing when the same command runs again', async () => {
    const server = await serve();
    const out = await tempDir();
    const urls = [server.url('/gen/a.jpg'), server.url('/gen/b.jpg')];
    await collect(urls, { out });
    server.stats.reset();
    const again = await collect(urls, { out });
    // Records come in the order items finish, which two checks of the disk need not keep.
    expect(again.map((r) => [r.status, r.skipReason, r.path]).sort()).toEqual([
      ['skipped', 'exists', 'a.jpg'],
      ['skipped', 'exists', 'b.jpg'],
    ]);
    expect(server.stats.requests).toBe(0);
  });

  it('downloads a URL listed twice once', async () => {
    const server = await serve();
    const out = await tempDir();
    const url = server.url('/gen/a.jpg');
    const results = await collect([url, url], { out });
    expect(results.map((r) => r.status).sort()).toEqual(['ok', 'skipped']);
    expect(results.find((r) => r.status === 'skipped')?.skipReason).toBe('duplicate');
    expect(server.stats.requests).toBe(1);
  });

  it('gives distinct, repeatable names to URLs that would share one', async () => {
    const server = await serve();
    const urls = [server.url('/gen/x.jpg?v=1'), server.url('/gen/x.jpg?v=2')];
    const first = await collect(urls, { out: await tempDir(), mode: 'sequential' });
    const second = await collect(urls, { out: await tempDir(), concurrency: 2 });
    const byUrl = (rs: typeof first) => Object.fromEntries(rs.map((r) => [r.url, r.path]));
    expect(new Set(first.map((r) => r.path)).size).toBe(2);
    expect(byUrl(second)).toEqual(byUrl(first));
    expect(byUrl(first)[urls[0]!]).toBe('x.jpg');
  });

  it('uses the Content-Disposition file name when the list gives none', async () => {
    const server = await serve({
      handlers: [
        http.get(
          '*/download',
          () => new HttpResponse(jpeg, { headers: { 'content-disposition': `attachment; filename*=UTF-8''%E7%8C%AB.jpg` } }),
        ),
      ],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/download?id=1')], { out });
    expect(result?.path).toBe('猫.jpg');
    expect(await listFiles(out)).toEqual(['猫.jpg']);
  });

  it('saves under the NAME given in the list, subfolders included', async () => {
    const server = await serve();
    const out = await tempDir();
    const [result] = await collect([{ url: server.url('/gen/a.jpg'), name: 'cats/tabby.jpg' }], { out });
    expect(result?.path).toBe('cats/tabby.jpg');
    expect(await listFiles(out)).toEqual(['cats/tabby.jpg']);
  });

  it('refuses a NAME that escapes the output folder, and goes on with the rest', async () => {
    const server = await serve();
    const root = await tempDir();
    const out = path.join(root, 'out');
    const results = await collect(
      [
        { url: server.url('/gen/a.jpg'), name: '../escaped.jpg' },
        { url: server.url('/gen/b.jpg'), name: '/tmp/abs.jpg' },
        server.url('/gen/c.jpg'),
      ],
      { out },
    );
    expect(results.map((r) => r.error?.code ?? r.status)).toEqual(['UNSAFE_NAME', 'UNSAFE_NAME', 'ok']);
    expect(await listFiles(root)).toEqual(['out/c.jpg']);
    expect(server.stats.requests).toBe(1);
  });

  it('fails bad lines with their source and line, and goes on', async () => {
    const server = await serve();
    const out = await tempDir();
    const results = await collect(
      [
        { url: 'not a url', source: 'urls.txt', line: 3 },
        { url: 'ftp://example.com/a.jpg', source: 'urls.txt', line: 4 },
        { url: server.url('/gen/ok.jpg'), source: 'urls.txt', line: 5 },
      ],
      { out },
    );
    expect(results[0]).toMatchObject({ status: 'failed', line: 3, error: { code: 'INVALID_URL' } });
    expect(results[0]?.error?.message).toContain('urls.txt:3');
    expect(results[1]).toMatchObject({ status: 'failed', line: 4, error: { code: 'UNSUPPORTED_SCHEME' } });
    expect(results[2]).toMatchObject({ status: 'ok', path: 'ok.jpg' });
  });

  it('leaves no file behind when the connection drops mid-body', async () => {
    const server = await serve({
      handlers: [
        http.get('*/broken.jpg', () => {
          const stream = new ReadableStream({
            start(controller) {
              controller.enqueue(jpeg.subarray(0, 500));
              setTimeout(() => controller.error(new Error('boom')), 20);
            },
          });
          return new HttpResponse(stream, { headers: { 'content-type': 'image/jpeg', 'content-length': String(jpeg.length) } });
        }),
      ],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/broken.jpg')], { out, retryDelayMs: 1 });
    expect(result?.status).toBe('failed');
    expect(await listFiles(out)).toEqual([]);
  });

  it.each([
    ['overwrite', ['a.jpg']],
    ['rename', ['a-1.jpg', 'a.jpg']],
  ] as const)('with onExists %s, writes over or beside an existing file', async (onExists, files) => {
    const server = await serve();
    const out = await tempDir();
    await fs.writeFile(path.join(out, 'a.jpg'), 'old');
    const [result] = await collect([server.url('/gen/a.jpg?bytes=3000')], { out, onExists });
    expect(result?.status).toBe('ok');
    expect(await listFiles(out)).toEqual(files);
    expect((await fs.stat(path.join(out, result!.path!))).size).toBe(3000);
  });

  it('writes one manifest line per item with the documented fields', async () => {
    const server = await serve({ handlers: [http.get('*/gone.jpg', () => new HttpResponse(null, { status: 410 }))] });
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    await collect([server.url('/gen/a.jpg?bytes=1234'), server.url('/gone.jpg')], { out, manifest });
    const lines = (await fs.readFile(manifest, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    const ok = lines.find((l) => l.status === 'ok');
    const failed = lines.find((l) => l.status === 'failed');
    expect(ok).toMatchObject({ path: 'a.jpg', bytes: 1234, httpStatus: 200, attempts: 1, error: null });
    expect(typeof ok?.ms).toBe('number');
    expect(failed).toMatchObject({ path: null, bytes: 0, httpStatus: 410, error: { code: 'HTTP_STATUS' } });
    for (const line of lines) {
      expect(Object.keys(line)).toEqual(
        expect.arrayContaining(['url', 'status', 'path', 'bytes', 'ms', 'httpStatus', 'attempts', 'error']),
      );
    }
  });

  it('reads an endless async source only a bounded window ahead of the slots', async () => {
    const server = await serve({ latencyMs: 30 });
    const out = await tempDir();
    let pulled = 0;
    async function* endless() {
      for (let i = 0; ; i++) {
        pulled++;
        yield server.url(`/gen/${i}.jpg?bytes=500`);
      }
    }
    let seen = 0;
    for await (const _ of (await import('../src/run/download.js')).download(endless(), { out, concurrency: 4 })) {
      if (++seen === 10) break;
    }
    // Ten results consumed: the source was read at most the window (1024 items at four slots) ahead.
    expect(pulled).toBeGreaterThanOrEqual(10);
    expect(pulled).toBeLessThanOrEqual(10 + 1024 + 1);
  });
});
