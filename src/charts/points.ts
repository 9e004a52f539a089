/**
 * What a concurrency sweep measures: one point per series (an imgdl mode or
 * another command) per concurrency. `imgdl bench --sweep` and the suite's
 * sweep both produce them; the charts, the caption and `--json` read them.
 */
import { percentile } from '../record/latency-histogram.js';

/** One series at one concurrency: medians over its repeats. */
export interface SweepPoint {
  /** The series: an imgdl mode (`sequential`, `concurrent`, `workers`) or another command's name. */
  series: string;
  /** Downloads in flight (1 for sequential). */
  concurrency: number;
  /** Files saved (from the last run). */
  files: number;
  /** Bytes saved (from the last run). */
  bytes: number;
  /** Median whole-process wall time, start-up included, in ms. */
  wallMs: number;
  filesPerSec: number;
  /** Megabytes (10^6 bytes) per second of median wall time. */
  mbPerSec: number;
  /** Per-file time percentiles in ms (median over runs); null for a command that records none. */
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  /** Median user + system CPU of the whole process over files saved, in ms; null when unmeasured. */
  cpuMsPerFile: number | null;
  /** Highest peak RSS of any run, in bytes; null when unmeasured. */
  peakRssBytes: number | null;
  /** Failed items in the last run (a point with failures measures the wrong thing). */
  failed: number;
}

/** The series imgdl's modes are drawn as: the seed's three ways, in plain words. */
export const MODE_LABELS: Readonly<Record<string, string>> = {
  sequential: 'sequential',
  concurrent: 'event-loop pool (concurrent)',
  workers: 'worker-thread pool (workers)',
};

/** A series' label on the charts and in the caption. */
export function seriesLabel(series: string): string {
  return MODE_LABELS[series] ?? series;
}

/**
 * The per-file latency the ceiling is drawn from, in ms: the median time per
 * file at concurrency 1 (sequential's when it ran, else the first series
 * measured at 1), or null when no series ran one at a time.
 */
export function baseLatencyMs(points: readonly SweepPoint[]): number | null {
  const ones = points.filter((p) => p.concurrency === 1 && p.p50Ms !== null && p.p50Ms > 0);
  const chosen = ones.find((p) => p.series === 'sequential') ?? ones[0];
  return chosen?.p50Ms ?? null;
}

/** The latency-only ceiling at `concurrency`: `concurrency` files per per-file latency, in files/s. */
export function ceiling(concurrency: number, latencyMs: number): number {
  return (concurrency * 1000) / latencyMs;
}

/** Nearest-rank percentile (0 < p ≤ 1) of a list of numbers; 0 for an empty one. */
export function percentileOf(values: readonly number[], p: number): number {
  return percentile(Float64Array.from(values).sort(), p);
}
