/**
 * The summary: percentiles from a histogram that does not grow with the run.
 */
import { describe, expect, it } from 'vitest';
import type { ItemResult } from '../src/record.js';
import { percentile, RunReport } from '../src/report.js';

const record = (ms: number): ItemResult => ({
  url: 'http://h.example/x.jpg',
  source: 'api',
  line: 1,
  status: 'ok',
  path: 'x.jpg',
  bytes: 1,
  ms,
  httpStatus: 200,
  attempts: 1,
  contentType: null,
  sniffedType: null,
  skipReason: null,
  error: null,
});

describe('the run summary', () => {
  const spread = Array.from({ length: 10_001 }, (_, i) => Math.round(((i * 7919) % 10_001) * 3.7) / 10);
  it.each([
    ['one file', [42.5]],
    ['a few, out of order', [5, 1.2, 300.4, 17, 17, 0]],
    ['ten thousand spread over 3.7 s', spread],
    ['times of minutes and hours', [250_000.1, 3_600_000, 12.3, 7_200_000.5, 99_999.9]],
  ])('gives the nearest-rank p50, p95 and max of the times (%s)', (_label, times) => {
    const report = new RunReport('concurrent', 8);
    for (const ms of times) report.add(record(ms));
    const sorted = Float64Array.from(times).sort();
    const summary = report.summary();
    const near = (actual: number, expected: number): void => {
      // Exact to the tenth of a millisecond up to about 105 s; within 1/1024 of the time beyond.
      if (expected < 100_000) expect(actual).toBe(Math.round(expected * 10) / 10);
      else expect(Math.abs(actual - expected) / expected).toBeLessThanOrEqual(1 / 1024);
    };
    near(summary.p50Ms, percentile(sorted, 0.5));
    near(summary.p95Ms, percentile(sorted, 0.95));
    expect(summary.maxMs).toBe(Math.round(sorted[sorted.length - 1]! * 10) / 10);
  });
});
