/**
 * Per-host politeness, counted at the servers: slots shared fairly across
 * hosts, `perHost`, `rate`, and a server's 429/503 Retry-After pausing its
 * whole host. Each host is a fixture server on its own loopback address.
 */
import { http, HttpResponse } from 'msw';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import type { ItemResult } from '../src/record/record.js';
import { collect, runCli, serve, tempDir } from './helpers.js';

const jpeg = generatedImage('jpg', 800);
const image = () => new HttpResponse(jpeg, { headers: { 'content-type': 'image/jpeg' } });

/** A pino logger whose records land in `records`. */
function capture(records: Array<{ level: number; msg: string }>) {
  return pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as { level: number; msg: string }) });
}

describe('per-host politeness', () => {
  it('gives a host that hangs only its share of the slots, so the other host finishes meanwhile', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const slow = await serve({ host: '127.0.0.2', handlers: [http.get('*/slow/:n', async () => (await released, image()))] });
    const fast = await serve({ host: '127.0.0.3' });
    // The slow host's items come first in the list: handed out in list order, they would take every slot.
    const urls = [
      ...Array.from({ length: 40 }, (_, i) => slow.url(`/slow/${i}.jpg`)),
      ...Array.from({ length: 40 }, (_, i) => fast.url(`/gen/${i}.jpg?bytes=500`)),
    ];
    const out = await tempDir();
    const results: ItemResult[] = [];
    const { download } = await import('../src/run/download.js');
    for await (const result of download(urls, { out, concurrency: 4 })) {
      results.push(result);
      // With fast items still waiting, the hanging host has held two slots, its share, and no more. (Once the
      // fast host has none waiting, the slots it frees go to the slow host: no slot stays idle.)
      if (results.length === 30) expect(slow.stats.peakInFlight).toBe(2);
      if (results.length === 40) {
        // Every fast item is done while all the slow ones still hang.
        expect(results.every((r) => r.url.startsWith(fast.origin) && r.status === 'ok')).toBe(true);
        release();
      }
    }
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(80);
  });

  it('keeps at most perHost requests in flight to each host, and runs the hosts side by side', async () => {
    // Each server answers nothing until two of its requests are in flight: a client that never gets there hangs.
    const a = await serve({ host: '127.0.0.2', holdUntilInFlight: 2 });
    const b = await serve({ host: '127.0.0.3', holdUntilInFlight: 2 });
    const urls = Array.from({ length: 30 }, (_, i) => [a.url(`/gen/${i}.jpg?bytes=500`), b.url(`/gen/${i}.jpg?bytes=500`)]).flat();
    const results = await collect(urls, { out: await tempDir(), concurrency: 8, perHost: 2 });
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(60);
    expect(a.stats.peakInFlight).toBe(2);
    expect(b.stats.peakInFlight).toBe(2);
  });

  it('starts at most `rate` requests a second to a host, spaced evenly', async () => {
    const arrivals: number[] = [];
    const server = await serve({ host: '127.0.0.2', handlers: [http.get('*/r/:n', () => (arrivals.push(performance.now()), image()))] });
    const urls = Array.from({ length: 12 }, (_, i) => server.url(`/r/${i}.jpg`));
    const results = await collect(urls, { out: await tempDir(), concurrency: 8, rate: '20/s' });
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(12);
    expect(arrivals).toHaveLength(12);
    // 20 a second is one start every 50 ms. What the server sees is each start plus the time until its request
    // is on the wire (the first try's file checks, a busy event loop), which varies by tens of ms on a loaded
    // machine: so the whole run spans at least 11 × 50 ms less that lag once, and no four gaps in a row are
    // much shorter than 200 ms. Without the rate, the 8 slots put 8 requests on the wire within a few ms.
    expect(arrivals[11]! - arrivals[0]!).toBeGreaterThan(550 - 150);
    for (let i = 0; i + 4 < arrivals.length; i++) expect(arrivals[i + 4]! - arrivals[i]!).toBeGreaterThan(200 - 100);
  });

  it('pauses a whole host for the Retry-After of its 429, says so once, and goes on with the other hosts', async () => {
    const arrivals: number[] = [];
    let pausedAt = 0;
    let busy = 2;
    const limited = await serve({
      host: '127.0.0.2',
      handlers: [
        http.get('*/l/:n', () => {
          arrivals.push(performance.now());
          if (busy > 0) {
            busy--;
            pausedAt = performance.now();
            return new HttpResponse('slow down', { status: 429, headers: { 'retry-after': '1' } });
          }
          return image();
        }),
      ],
    });
    const otherArrivals: number[] = [];
    const other = await serve({
      host: '127.0.0.3',
      handlers: [http.get('*/o/:n', () => (otherArrivals.push(performance.now()), image()))],
    });
    const urls = Array.from({ length: 6 }, (_, i) => limited.url(`/l/${i}.jpg`));
    for (let i = 0; i < 200; i++) urls.push(other.url(`/o/${i}.jpg`));
    const records: Array<{ level: number; msg: string }> = [];
    const results = await collect(urls, { out: await tempDir(), concurrency: 4, retryDelayMs: 1, logger: capture(records) });

    expect(results.filter((r) => r.status === 'ok')).toHaveLength(206);
    // Two requests were in flight when the 429s came; every later one waited out the second's pause.
    const later = arrivals.filter((t) => t > pausedAt);
    expect(later).toHaveLength(6);
    for (const t of later) expect(t - pausedAt).toBeGreaterThan(950);
    expect(otherArrivals.some((t) => t > pausedAt && t < pausedAt + 900)).toBe(true);
    const said = records.filter((r) => /pausing every request to it/.test(r.msg));
    expect(said).toHaveLength(1);
    expect(said[0]!.msg).toContain(`127.0.0.2:${limited.port} answered HTTP 429 asking to wait 1 s`);
  });

  it('refuses a --rate without a unit, naming the option and the forms it takes', async () => {
    const run = await runCli(['--rate', '5', '-o', await tempDir(), 'http://127.0.0.1:9/a.jpg']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/rate.*5.*N\/s, N\/m, N\/h or N\/d/);
  });
});
