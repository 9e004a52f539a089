import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { HeaderProbe } from '../src/image/inspect.js';
import { OptionError, resolveOptions, type Mode } from '../src/options.js';
import type { ItemResult } from '../src/record/record.js';
import { ROOT, collect, listFiles, runCli, serve, tempDir } from './helpers.js';

const byLine = (results: ItemResult[]): ItemResult[] => [...results].sort((a, b) => a.line - b.line);

describe('workers mode', () => {
  it('downloads every item byte for byte on worker threads', async () => {
    const server = await serve();
    const out = await tempDir();
    const urls = Array.from({ length: 12 }, (_, i) => server.url(`/gen/${i}.png?bytes=${3000 + i}`));
    const results = await collect(urls, { out, mode: 'workers', threads: 2, concurrency: 4 });
    expect(results.map((r) => r.status)).toEqual(Array(12).fill('ok'));
    expect(await listFiles(out)).toHaveLength(12);
    expect(await fs.readFile(path.join(out, '7.png'))).toEqual(generatedImage('png', 3007));
  });

  it('gives distinct names to items on different threads that the server names alike', async () => {
    const server = await serve({
      handlers: [
        http.get(
          '*/photo/:id',
          () =>
            new HttpResponse(generatedImage('jpg', 4000), {
              headers: { 'content-type': 'image/jpeg', 'content-disposition': 'attachment; filename="same.jpg"' },
            }),
        ),
      ],
    });
    const out = await tempDir();
    const urls = Array.from({ length: 8 }, (_, i) => server.url(`/photo/${i}`));
    const results = await collect(urls, { out, mode: 'workers', threads: 2, concurrency: 8 });
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    // One registry for the run, as in the other modes: no file replaced another.
    expect(new Set(results.map((r) => r.path)).size).toBe(8);
    expect(await listFiles(out)).toHaveLength(8);
  });

  it("retries on the run's pool, counting every try and timing the item from its first", async () => {
    let calls = 0;
    const server = await serve({
      handlers: [
        http.get('*/flaky.jpg', () =>
          ++calls < 3
            ? new HttpResponse('busy', { status: 503 })
            : new HttpResponse(generatedImage('jpg', 4000), { headers: { 'content-type': 'image/jpeg' } }),
        ),
      ],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/flaky.jpg')], { out, mode: 'workers', threads: 2, retries: 3, retryDelayMs: 1 });
    expect(result).toMatchObject({ status: 'ok', attempts: 3, httpStatus: 200, path: 'flaky.jpg' });
    expect(result!.ms).toBeGreaterThanOrEqual(0);
    expect(result!.ms).toBeLessThan(60_000);
  });

  it('keeps the concurrency limit across all threads, and reaches it', async () => {
    const server = await serve({ latencyMs: 40, holdUntilInFlight: 5 });
    const out = await tempDir();
    const urls = Array.from({ length: 16 }, (_, i) => server.url(`/gen/${i}.jpg`));
    await collect(urls, { out, mode: 'workers', threads: 2, concurrency: 5 });
    expect(server.stats.requests).toBe(16);
    expect(server.stats.peakInFlight).toBe(5);
  });

  it('stops the items in flight on worker threads when the signal aborts', async () => {
    const server = await serve({ latencyMs: 60_000 });
    const out = await tempDir();
    const abort = new AbortController();
    const urls = Array.from({ length: 6 }, (_, i) => server.url(`/gen/${i}.jpg`));
    const running = collect(urls, { out, mode: 'workers', threads: 2, concurrency: 3, signal: abort.signal });
    while (server.stats.inFlight < 3) await setTimeout(10);
    abort.abort();
    const results = await running;
    expect(results.map((r) => r.error?.code)).toEqual(['ABORTED', 'ABORTED', 'ABORTED']);
    expect(server.stats.requests).toBe(3);
    expect(await listFiles(out)).toEqual([]);
  });

  it('fails the items of a crashed worker with WORKER_CRASHED and goes on with a new worker', async () => {
    const server = await serve();
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    const urls = ['a', 'b', 'crash-me', 'd', 'e'].map((n) => server.url(`/gen/${n}.jpg`));
    // One thread and one item in flight: the items after the crash can only run on its replacement.
    const run = await runCli([...urls, '-o', path.join(out, 'img'), '-m', 'workers', '-t', '1', '-c', '1', '--manifest', manifest], {
      env: { IMGDL_TEST_CRASH_WORKER_ON: 'crash-me' },
    });
    expect(run.code).toBe(1);
    const records = (await fs.readFile(manifest, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ItemResult);
    expect(byLine(records).map((r) => [r.status, r.error?.code ?? null])).toEqual([
      ['ok', null],
      ['ok', null],
      ['failed', 'WORKER_CRASHED'],
      ['ok', null],
      ['ok', null],
    ]);
    expect(await listFiles(path.join(out, 'img'))).toEqual(['a.jpg', 'b.jpg', 'd.jpg', 'e.jpg']);
  });
});

describe('hashing and probing', () => {
  it.each(['sha256', 'sha1', 'md5'] as const)('records the %s digest of the saved bytes', async (algorithm) => {
    const server = await serve();
    const out = await tempDir();
    const [result] = await collect([server.url('/gen/a.jpg?bytes=150000')], { out, hash: algorithm });
    const expected = createHash(algorithm).update(generatedImage('jpg', 150_000)).digest('hex');
    expect(result?.digest).toBe(`${algorithm}:${expected}`);
  });

  it('records no digest unless asked', async () => {
    const server = await serve();
    const [result] = await collect([server.url('/gen/a.jpg')], { out: await tempDir() });
    expect(result).not.toHaveProperty('digest');
  });

  it.each([
    ['/fixtures/tiny.jpg', 'jpeg', 16, 16],
    ['/fixtures/tiny.png', 'png', 16, 16],
    ['/fixtures/tiny.gif', 'gif', 16, 16],
    ['/fixtures/tiny.webp', 'webp', 16, 16],
    // A JPEG whose frame header sits behind 2 MB of comment segments, read without buffering them.
    ['/gen/big.jpg?bytes=2000000', 'jpeg', 8, 8],
    ['/gen/big.png?bytes=2000000', 'png', 1, 1],
  ])('reads type and size of %s from its header', async (route, imageType, width, height) => {
    const server = await serve();
    const [result] = await collect([server.url(route)], { out: await tempDir(), mode: 'workers', threads: 1 });
    expect(result).toMatchObject({ status: 'ok', imageType, width, height });
  });

  it.each([1, 3, 4096])('finds a JPEG size fed %i bytes at a time', (step) => {
    const bytes = generatedImage('jpg', 70_000);
    const probe = new HeaderProbe();
    for (let i = 0; i < bytes.length && !probe.done; i += step) probe.feed(bytes.subarray(i, i + step));
    expect(probe.facts).toEqual({ imageType: 'jpeg', width: 8, height: 8 });
  });

  it('leaves size out for bytes that are not a known image', () => {
    const probe = new HeaderProbe();
    probe.feed(Buffer.from('<html><body>not an image</body></html>'));
    expect(probe.facts).toBeUndefined();
    expect(probe.done).toBe(true);
  });
});

describe('dedupe', () => {
  it.each(['concurrent', 'workers'] as Mode[])('saves content once and names the file it repeats (%s)', async (mode) => {
    const server = await serve();
    const out = await tempDir();
    // a and b are the same bytes (same size), c differs.
    const urls = ['a', 'b', 'c'].map((n, i) => server.url(`/gen/${n}.jpg?bytes=${i === 2 ? 6000 : 5000}`));
    const results = byLine(await collect(urls, { out, mode, threads: 2, concurrency: 1, dedupe: true }));
    expect(results.map((r) => r.status)).toEqual(['ok', 'skipped', 'ok']);
    expect(results[1]).toMatchObject({ skipReason: 'same-content', duplicateOf: 'a.jpg', path: null, bytes: 0 });
    expect(results[1]?.digest).toBe(results[0]?.digest);
    expect(await listFiles(out)).toEqual(['a.jpg', 'c.jpg']);
  });

  it('keeps every file without dedupe', async () => {
    const server = await serve();
    const out = await tempDir();
    await collect(
      ['a', 'b'].map((n) => server.url(`/gen/${n}.jpg?bytes=5000`)),
      { out, hash: 'sha256' },
    );
    expect(await listFiles(out)).toEqual(['a.jpg', 'b.jpg']);
  });
});

describe('options', () => {
  it.each([
    [{ threads: 0 }, 'threads'],
    [{ threads: 1.5 }, 'threads'],
    [{ hash: 'crc32' }, 'hash'],
    [{ dedupe: 'yes' }, 'dedupe'],
  ])('refuses %j, naming %s', (options, named) => {
    expect(() => resolveOptions(options as never)).toThrow(OptionError);
    expect(() => resolveOptions(options as never)).toThrow(named);
  });

  it('defaults threads to the available parallelism and hashes with sha256 for dedupe', () => {
    const resolved = resolveOptions({ dedupe: true });
    expect(resolved.threads).toBeGreaterThanOrEqual(1);
    expect(resolved.hash).toBe('sha256');
  });
});

describe('imgdl bench', () => {
  it('runs every mode against its embedded server and prints one row per mode', async () => {
    const run = await runCli(['bench', '--local', '--files', '4', '--size', '2k', '--latency', '0', '--repeat', '1', '--json']);
    expect(run.code).toBe(0);
    const rows = JSON.parse(run.stdout) as Array<Record<string, unknown>>;
    expect(rows.map((r) => r.mode)).toEqual(['sequential', 'concurrent', 'workers']);
    for (const row of rows) {
      expect(row).toMatchObject({ files: 4, bytes: 4 * 2048, failed: 0 });
      expect(row.peakRssBytes).toBeGreaterThan(0);
    }
    expect(rows[0]?.speedup).toBe(1);
    // Not a terminal: no progress line.
    expect(run.stderr).toBe('');
  });

  it('prints a table with the columns a reader compares', async () => {
    const run = await runCli(['bench', '--local', '--files', '2', '--latency', '0', '--repeat', '1', '--modes', 'concurrent']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/mode\s+files\s+bytes\s+median wall\s+files\/s\s+MB\/s\s+p50\s+p95\s+peak RSS\s+speedup/);
    expect(run.stdout).toMatch(/^concurrent\s+2\s/m);
  });

  it('keeps the downloaded folders with --keep', async () => {
    const run = await runCli(['bench', '--local', '--files', '2', '--latency', '0', '--repeat', '1', '--modes', 'sequential', '--keep']);
    const kept = /kept (\S+)/.exec(run.stderr)?.[1];
    expect(kept).toBeDefined();
    try {
      expect(await listFiles(kept!)).toEqual(['1.jpg', '2.jpg']);
    } finally {
      await fs.rm(kept!, { recursive: true, force: true });
    }
  });

  it.each([
    [['bench'], 'no URLs'],
    [['bench', '--local', '--modes', 'fast'], 'fast'],
    [['bench', '--local', '--size', 'huge'], 'huge'],
    [['bench', '--local', '--repeat', '0'], 'repeat'],
  ])('exits 2 for %j, naming %s', async (args, named) => {
    const run = await runCli(args, { cwd: ROOT });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(named);
  });
});
