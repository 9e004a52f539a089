/**
 * What a sweep's curve says, in plain words, derived from the measured points
 * alone: for each series, where more concurrency stopped paying, and why.
 * Pure: the report's caption and its tests call it with points and nothing else.
 */
import { ceiling, seriesLabel, type SweepPoint } from './points.js';

/** Why a series' curve stopped climbing (or, for `latency`, why it had not yet). */
export type Bound = 'latency' | 'cpu' | 'server' | 'list';

/** One series' verdict. */
export interface SeriesVerdict {
  series: string;
  /** Its points, by concurrency. */
  points: SweepPoint[];
  /** The concurrency after which more stopped paying; null when every step still paid. */
  flattensAt: number | null;
  /** The point at `flattensAt` (or the last point), where the bound is read. */
  at: SweepPoint;
  /** The next point after `flattensAt`, if any: what more concurrency bought. */
  beyond: SweepPoint | undefined;
  bound: Bound;
  /** Cores the process kept busy at its busiest point from `at` on (CPU per file × files/s); null when unmeasured. */
  busyCores: number | null;
  /** Cores the series can use: 1 for one event loop, the CPUs for worker threads. */
  usableCores: number;
  /** How it flattened: a step up stopped paying, or the curve fell away from the ceiling; null when neither. */
  shape: 'stops' | 'bends' | null;
  /** `at`'s throughput over the latency-only ceiling there; null without a base latency. */
  ceilingShare: number | null;
  /** The same for `beyond`. */
  beyondShare: number | null;
}

/** What the verdict needs besides the points. */
export interface VerdictContext {
  /** Per-file latency at concurrency 1, in ms (see baseLatencyMs); null when unknown. */
  latencyMs: number | null;
  /** Cores a series can keep busy. */
  cores(series: string): number;
}

/** A step pays when at least this share of the concurrency added turns into throughput. */
export const PAYING_SHARE = 0.25;
/** A curve within this share of the latency-only ceiling keeps pace with it. */
export const CEILING_SHARE = 0.5;
/** A process this busy (share of its usable cores) is CPU-bound. */
export const CPU_BOUND_SHARE = 0.75;

/** How much of a step up in concurrency turned into throughput: 1 = all of it, 0 = none, negative = slower. */
export function stepShare(from: SweepPoint, to: SweepPoint): number {
  const wanted = to.concurrency / from.concurrency - 1;
  return wanted <= 0 ? 0 : (to.filesPerSec / from.filesPerSec - 1) / wanted;
}

/**
 * Where a series flattens: the first step up that stopped paying (`stops`), or
 * else the last point that kept within {@link CEILING_SHARE} of the
 * latency-only ceiling before the curve fell away from it (`bends`).
 */
function flattening(sorted: readonly SweepPoint[], latencyMs: number | null): { index: number; shape: 'stops' | 'bends' } | undefined {
  for (let i = 0; i + 1 < sorted.length; i++) if (stepShare(sorted[i]!, sorted[i + 1]!) < PAYING_SHARE) return { index: i, shape: 'stops' };
  if (latencyMs === null) return undefined;
  const share = (p: SweepPoint): number => p.filesPerSec / ceiling(p.concurrency, latencyMs);
  for (let i = 0; i + 1 < sorted.length; i++)
    if (share(sorted[i]!) >= CEILING_SHARE && share(sorted[i + 1]!) < CEILING_SHARE) return { index: i, shape: 'bends' };
  return undefined;
}

/** The verdict for one series' points (at least one). */
export function seriesVerdict(series: string, points: readonly SweepPoint[], context: VerdictContext): SeriesVerdict {
  const sorted = [...points].sort((a, b) => a.concurrency - b.concurrency);
  const found = flattening(sorted, context.latencyMs);
  const knee = found?.index ?? sorted.length - 1;
  const at = sorted[knee]!;
  const beyond = sorted[knee + 1];
  const flattensAt = found === undefined ? null : at.concurrency;
  const busy = sorted
    .slice(knee)
    .map((p) => (p.cpuMsPerFile === null ? null : (p.cpuMsPerFile * p.filesPerSec) / 1000))
    .filter((b): b is number => b !== null);
  const busyCores = busy.length > 0 ? Math.max(...busy) : null;
  const usableCores = context.cores(series);
  const share = (p: SweepPoint | undefined): number | null =>
    context.latencyMs === null || p === undefined ? null : p.filesPerSec / ceiling(p.concurrency, context.latencyMs);
  let bound: Bound = 'latency';
  if (flattensAt !== null) {
    if (beyond !== undefined && beyond.concurrency > at.files && at.files > 0) bound = 'list';
    else if (busyCores !== null && busyCores >= CPU_BOUND_SHARE * usableCores) bound = 'cpu';
    else bound = 'server';
  }
  return {
    series,
    points: sorted,
    flattensAt,
    shape: found?.shape ?? null,
    at,
    beyond,
    bound,
    busyCores,
    usableCores,
    ceilingShare: share(at),
    beyondShare: share(beyond),
  };
}

/** A verdict per series, in the order the series first appear. */
export function verdicts(points: readonly SweepPoint[], context: VerdictContext): SeriesVerdict[] {
  const names = [...new Set(points.map((p) => p.series))];
  return names.map((name) =>
    seriesVerdict(
      name,
      points.filter((p) => p.series === name),
      context,
    ),
  );
}

const rate = (p: SweepPoint): string => `${p.filesPerSec >= 100 ? Math.round(p.filesPerSec) : p.filesPerSec.toFixed(1)} files/s`;
const ms = (value: number): string => `${value >= 10 ? Math.round(value) : value.toFixed(1)} ms`;
const cores = (n: number): string => `${n} core${n === 1 ? '' : 's'}`;

/** Why, in words, for a series that flattened. */
function because(v: SeriesVerdict): string {
  const busy = v.busyCores === null ? '' : `${v.busyCores.toFixed(2)} of its ${cores(v.usableCores)}`;
  if (v.bound === 'list') return `the list has only ${v.at.files} files, so more than ${v.at.files} in flight cannot pay`;
  if (v.bound === 'cpu') return `CPU-bound: the process kept ${busy} busy`;
  const first = v.points[0]!;
  const grew =
    first.p95Ms !== null && v.beyond?.p95Ms != null
      ? `; time per file (p95) went from ${ms(first.p95Ms)} at ${first.concurrency} to ${ms(v.beyond.p95Ms)} at ${v.beyond.concurrency}`
      : '';
  return `server-bound: the process was not short of CPU${busy ? ` (${busy} busy)` : ''}${grew}, so the server answers no faster`;
}

/** One sentence about one series: where it flattens (a step up turned less than {@link PAYING_SHARE} of itself into throughput), and why. */
export function describeSeries(v: SeriesVerdict): string {
  const name = seriesLabel(v.series);
  const Name = name.charAt(0).toUpperCase() + name.slice(1);
  if (v.points.length === 1) {
    const only = v.points[0]!;
    const each =
      only.concurrency === 1 && only.p50Ms !== null
        ? `, one file at a time (${ms(only.p50Ms)} each)`
        : ` at concurrency ${only.concurrency}`;
    return `${Name}: ${rate(only)}${each}.`;
  }
  if (v.flattensAt === null) {
    const percent = v.ceilingShare === null ? null : Math.round(v.ceilingShare * 100);
    if (percent !== null && percent < 50) {
      const busy = v.busyCores === null ? '' : ` (the process kept ${v.busyCores.toFixed(2)} of its ${cores(v.usableCores)} busy)`;
      return `${Name} still pays at ${v.at.concurrency} (${rate(v.at)}), but at only ${percent} % of the latency-only ceiling: more in flight still helps, though something besides latency already holds it back${busy}.`;
    }
    const share = percent === null ? '' : `, ${percent} % of the latency-only ceiling`;
    return `${Name} still pays at ${v.at.concurrency} (${rate(v.at)}${share}): latency-bound, so more in flight would be faster still.`;
  }
  const more = v.beyond
    ? `${v.beyond.concurrency / v.flattensAt}× as many in flight gives ${rate(v.beyond)}, ${signed(v.beyond.filesPerSec / v.at.filesPerSec - 1)}`
    : '';
  if (v.shape === 'bends') {
    const kept = `kept pace with the latency-only ceiling up to ${v.flattensAt} (${rate(v.at)}, ${percent(v.ceilingShare)})`;
    return `${Name} starts to flatten after ${v.flattensAt}: it ${kept}; ${more}, ${percent(v.beyondShare)} of the ceiling: ${because(v)}.`;
  }
  return `${Name} flattens after ${v.flattensAt} (${rate(v.at)}${more ? `; ${more}` : ''}): ${because(v)}.`;
}

const percent = (share: number | null): string => `${Math.round((share ?? 0) * 100)} %`;

function signed(change: number): string {
  const percent = Math.round(change * 100);
  return `${percent >= 0 ? '+' : '−'}${Math.abs(percent)} %`;
}

/** The first chart's caption: a sentence per series, derived from the points. */
export function caption(points: readonly SweepPoint[], context: VerdictContext): string {
  return verdicts(points, context).map(describeSeries).join(' ');
}
