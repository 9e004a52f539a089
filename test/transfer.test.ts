/**
 * How bytes travel: the stall abort (`--speed-limit` / `--speed-time`)
 * against the fixture server trickling a body, and the bandwidth cap
 * (`--limit-rate`) measured as the average rate of a whole run.
 */
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { OptionError, resolveOptions } from '../src/options.js';
import type { Mode } from '../src/options.js';
import { collect, listFiles, runCli, serve, tempDir } from './helpers.js';

const jpeg = generatedImage('jpg', 40_000);

/** A response sending `first` bytes of `body` at once, then `step` bytes every `everyMs`. */
function trickle(body: Buffer, first: number, step: number, everyMs: number): Response {
  let sent = 0;
  const stream = new ReadableStream({
    async pull(controller) {
      if (sent > 0) await new Promise((resolve) => setTimeout(resolve, everyMs));
      const size = sent === 0 ? first : step;
      controller.enqueue(new Uint8Array(body.subarray(sent, sent + size)));
      sent += size;
      if (sent >= body.length) controller.close();
    },
  });
  return new HttpResponse(stream, { headers: { 'content-type': 'image/jpeg', 'content-length': String(body.length) } });
}

describe('--speed-limit and --speed-time', () => {
  it('fails a 1 kB/s body with TOO_SLOW within 4 s at --speed-limit 10k --speed-time 2', async () => {
    const server = await serve({ handlers: [http.get('*/slow.jpg', () => trickle(jpeg, 5_000, 1_000, 1_000))] });
    const out = await tempDir();
    const started = performance.now();
    const [result] = await collect([server.url('/slow.jpg')], { out, retries: 0, speedLimit: '10k', speedTime: 2 });
    const took = performance.now() - started;
    expect(result).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'TOO_SLOW' } });
    expect(result?.error?.message).toContain('--speed-limit');
    expect(took).toBeLessThan(4_000);
    expect(await listFiles(out)).toEqual([]);
  });

  it('retries a body that crawled, like other network failures', async () => {
    let tries = 0;
    const server = await serve({
      handlers: [http.get('*/once.jpg', () => (tries++ === 0 ? trickle(jpeg, 5_000, 500, 500) : trickle(jpeg, jpeg.length, 1, 0)))],
    });
    const out = await tempDir();
    const [result] = await collect([server.url('/once.jpg')], { out, retryDelayMs: 1, speedLimit: 5_000, speedTime: 1 });
    expect(result).toMatchObject({ status: 'ok', attempts: 2 });
    expect(await listFiles(out)).toEqual(['once.jpg']);
  });

  it('runs from the command line, with --speed-time 30 when only --speed-limit is given', async () => {
    const server = await serve({ handlers: [http.get('*/slow.jpg', () => trickle(jpeg, 5_000, 1_000, 1_000))] });
    const run = await runCli([
      server.url('/slow.jpg'),
      '-o',
      await tempDir(),
      '--retries',
      '0',
      '--speed-limit',
      '10k',
      '--speed-time',
      '2',
      '--json',
    ]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ failed: 1, errors: { TOO_SLOW: { count: 1 } } });
    expect(resolveOptions({ speedLimit: '10k' })).toMatchObject({ speedLimit: 10_240, speedTime: 30 });
  });

  it.each([
    ['speedLimit', 'fast'],
    ['speedLimit', -1],
    ['speedTime', 0],
    ['speedTime', 1.5],
  ])('refuses %s = %j, naming the option', (option, value) => {
    expect(() => resolveOptions({ [option]: value })).toThrow(OptionError);
    expect(() => resolveOptions({ [option]: value })).toThrow(option);
  });
});

describe('--limit-rate', () => {
  /** 16 generated images of 64 KiB: 1 MiB in all. */
  const urls = (server: { url(path: string): string }): string[] =>
    Array.from({ length: 16 }, (_, i) => server.url(`/gen/${i}.jpg?bytes=${64 * 1024}`));

  // 1 MiB at 256 KiB/s is 4 s; the band is wide because the machine is shared, and narrow enough
  // that no cap (a fraction of a second on loopback) or a cap applied per body would fall outside it.
  it.each<Mode>(['concurrent', 'workers'])('keeps a %s run of 1 MiB at 256k to an average of 256 KiB/s, give or take', async (mode) => {
    const server = await serve();
    const out = await tempDir();
    const started = performance.now();
    const results = await collect(urls(server), { out, mode, threads: 2, concurrency: 8, limitRate: '256k' });
    const seconds = (performance.now() - started) / 1000;
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(16);
    expect(seconds).toBeGreaterThan(3);
    expect(seconds).toBeLessThan(6);
  });

  it.each([
    ['limitRate', 'fast'],
    ['limitRate', -5],
  ])('refuses %s = %j, naming the option', (option, value) => {
    expect(() => resolveOptions({ [option]: value })).toThrow(option);
  });
});
