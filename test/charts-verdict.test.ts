import { describe, expect, it } from 'vitest';
import { baseLatencyMs, ceiling, percentileOf, type SweepPoint } from '../src/charts/points.js';
import { caption, seriesVerdict, stepShare, type Bound } from '../src/charts/verdict.js';

/** A point: series, concurrency, files/s, CPU ms per file, p95 ms; 200 files of 20 kB. */
function pt(
  series: string,
  concurrency: number,
  filesPerSec: number,
  cpuMsPerFile: number | null = 1,
  p95Ms: number | null = 55,
  files = 200,
): SweepPoint {
  return {
    series,
    concurrency,
    files,
    bytes: files * 20_000,
    wallMs: (files / filesPerSec) * 1000,
    filesPerSec,
    mbPerSec: (filesPerSec * 20_000) / 1e6,
    p50Ms: p95Ms === null ? null : p95Ms - 2,
    p95Ms,
    p99Ms: p95Ms,
    cpuMsPerFile,
    peakRssBytes: 80e6,
    failed: 0,
  };
}

const context = { latencyMs: 53, cores: (series: string) => (series === 'workers' ? 2 : 1) };

describe('where concurrency stops paying, and why', () => {
  it.each<[string, SweepPoint[], number | null, Bound]>([
    [
      'a curve that follows the ceiling is latency-bound and still pays',
      [pt('concurrent', 1, 18), pt('concurrent', 4, 70), pt('concurrent', 16, 270), pt('concurrent', 64, 900)],
      null,
      'latency',
    ],
    [
      'a flat curve with the event loop busy is CPU-bound',
      [pt('concurrent', 1, 18, 2), pt('concurrent', 4, 70, 2), pt('concurrent', 16, 400, 2.2), pt('concurrent', 64, 420, 2.3)],
      16,
      'cpu',
    ],
    [
      'worker threads are CPU-bound only when every core is busy',
      [pt('workers', 4, 70, 5), pt('workers', 16, 300, 5), pt('workers', 64, 320, 5)],
      16,
      'cpu',
    ],
    [
      'the same figures with one core in use are not CPU-bound for worker threads',
      [pt('workers', 4, 70, 2.5), pt('workers', 16, 300, 2.5), pt('workers', 64, 320, 2.5)],
      16,
      'server',
    ],
    [
      'a flat curve with CPU to spare and growing times is server-bound',
      [pt('concurrent', 1, 18, 1, 55), pt('concurrent', 4, 60, 1, 60), pt('concurrent', 16, 70, 1, 230), pt('concurrent', 64, 71, 1, 900)],
      4,
      'server',
    ],
    ['going slower counts as not paying', [pt('concurrent', 4, 70), pt('concurrent', 16, 60)], 4, 'server'],
    [
      'more in flight than files in the list cannot pay',
      [pt('concurrent', 4, 70, 1, 55, 20), pt('concurrent', 16, 250, 1, 55, 20), pt('concurrent', 64, 255, 1, 55, 20)],
      16,
      'list',
    ],
    [
      'without CPU figures a flat curve is put down to the server',
      [pt('concurrent', 4, 70, null), pt('concurrent', 16, 71, null)],
      4,
      'server',
    ],
    [
      'a curve that falls away from the ceiling while still climbing starts to flatten where it leaves it',
      [pt('concurrent', 1, 18), pt('concurrent', 4, 72), pt('concurrent', 16, 230), pt('concurrent', 64, 430)],
      16,
      'server',
    ],
    ['a single point still pays, as far as anyone can tell', [pt('sequential', 1, 18)], null, 'latency'],
  ])('%s', (_what, points, flattensAt, bound) => {
    const v = seriesVerdict(points[0]!.series, points, context);
    expect(v.flattensAt).toBe(flattensAt);
    expect(v.bound).toBe(bound);
  });

  it('says where a curve that still climbs leaves the ceiling, and why', () => {
    const points = [
      pt('sequential', 1, 18.8, 2),
      pt('concurrent', 4, 74.7, 1.3),
      pt('concurrent', 16, 229, 2, 102),
      pt('concurrent', 64, 431, 1.6, 200),
    ];
    expect(caption(points, context)).toBe(
      'Sequential: 18.8 files/s, one file at a time (53 ms each). ' +
        'Event-loop pool (concurrent) starts to flatten after 16: it kept pace with the latency-only ceiling up to 16 (229 files/s, 76 %); ' +
        '4× as many in flight gives 431 files/s, +88 %, 36 % of the ceiling: server-bound: the process was not short of CPU (0.69 of its 1 core busy); ' +
        'time per file (p95) went from 55 ms at 4 to 200 ms at 64, so the server answers no faster.',
    );
  });

  it.each([
    [pt('c', 1, 10), pt('c', 2, 20), 1],
    [pt('c', 1, 10), pt('c', 4, 10), 0],
    [pt('c', 4, 100), pt('c', 16, 250), 0.5],
    [pt('c', 4, 100), pt('c', 16, 50), -1 / 6],
  ])('a step from %o to %o turns %d of the concurrency added into throughput', (from, to, share) => {
    expect(stepShare(from, to)).toBeCloseTo(share);
  });

  it('says it in words, naming the three ways and where each flattens, from the figures', () => {
    const points = [
      pt('sequential', 1, 18, 1.5, 55),
      pt('concurrent', 4, 70, 1.5, 56),
      pt('concurrent', 16, 270, 1.6, 58),
      pt('concurrent', 64, 900, 1.1, 70),
      pt('workers', 4, 60, 8, 60),
      pt('workers', 16, 230, 8, 70),
      pt('workers', 64, 240, 8.2, 250),
    ];
    const text = caption(points, context);
    expect(text).toBe(
      'Sequential: 18.0 files/s, one file at a time (53 ms each). ' +
        'Event-loop pool (concurrent) still pays at 64 (900 files/s, 75 % of the latency-only ceiling): latency-bound, so more in flight would be faster still. ' +
        'Worker-thread pool (workers) flattens after 16 (230 files/s; 4× as many in flight gives 240 files/s, +4 %): CPU-bound: the process kept 1.97 of its 2 cores busy.',
    );
  });
});

describe('the ceiling and the percentiles', () => {
  it('takes the per-file latency from the sequential point, else the first series at 1', () => {
    expect(baseLatencyMs([pt('concurrent', 1, 10, 1, 62), pt('sequential', 1, 18, 1, 55)])).toBe(53);
    expect(baseLatencyMs([pt('curl', 1, 10, 1, 62), pt('concurrent', 4, 60)])).toBe(60);
    expect(baseLatencyMs([pt('concurrent', 4, 60)])).toBeNull();
    expect(ceiling(16, 50)).toBe(320);
  });

  it.each([
    [[], 0.5, 0],
    [[5], 0.99, 5],
    [[4, 1, 3, 2], 0.5, 2],
    [Array.from({ length: 100 }, (_, i) => i + 1), 0.95, 95],
    [Array.from({ length: 100 }, (_, i) => i + 1), 0.99, 99],
  ])('the nearest-rank percentile of %j at %d is %d', (values, p, expected) => {
    expect(percentileOf(values, p)).toBe(expected);
  });
});
