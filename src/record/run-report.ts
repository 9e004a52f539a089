/**
 * The report: per-run figures gathered from the records as they arrive.
 * Latencies are counted in a histogram whose size does not depend on the
 * number of items, so a report over millions of records stays small, and
 * percentiles stay exact to the 0.1 ms records are given in.
 */
import type { ErrorCode } from '../errors.js';
import { formatHosts, HostFigures, type HostSummary } from './host-figures.js';
import type { ItemResult } from './record.js';

/** The run summary printed by `--json`, and shown in words on stderr otherwise. */
export interface RunSummary {
  mode: string;
  concurrency: number;
  total: number;
  ok: number;
  failed: number;
  skipped: number;
  /** Bytes saved. */
  bytes: number;
  /** Wall time of the whole run, in ms. */
  wallMs: number;
  /** Files saved per second of wall time. */
  filesPerSec: number;
  /** Bytes saved per second of wall time. */
  bytesPerSec: number;
  /** Median time per saved file, in ms. */
  p50Ms: number;
  /** 95th percentile time per saved file, in ms. */
  p95Ms: number;
  /** Slowest saved file, in ms. */
  maxMs: number;
  /** Failures grouped by error code, each with a count and one example URL. */
  errors: Partial<Record<ErrorCode, { count: number; example: string }>>;
  /** The busiest hosts (by requests) and every host with failures, with their own figures (see host-figures.ts). */
  hosts?: HostSummary[];
}

/** Accumulates records into a {@link RunSummary}. */
export class RunReport {
  readonly #mode: string;
  readonly #concurrency: number;
  readonly #started = performance.now();
  readonly #latencies = new LatencyHistogram();
  #counts = { total: 0, ok: 0, failed: 0, skipped: 0, bytes: 0 };
  #errors: RunSummary['errors'] = {};
  /** Per-host figures; the run's host events go to {@link HostFigures.event}. Undefined when not asked for. */
  readonly hosts: HostFigures | undefined;

  /**
   * `hosts` gathers the per-host figures (one the caller made, to hand the run's host events to);
   * false leaves them out of the summary, and saves reading each record's host.
   */
  constructor(mode: string, concurrency: number, hosts: HostFigures | false = new HostFigures()) {
    this.#mode = mode;
    this.#concurrency = concurrency;
    this.hosts = hosts === false ? undefined : hosts;
  }

  add(record: ItemResult): void {
    this.hosts?.add(record);
    const c = this.#counts;
    c.total++;
    c[record.status]++;
    c.bytes += record.bytes;
    if (record.status === 'ok') this.#latencies.add(record.ms);
    if (record.error) {
      const group = (this.#errors[record.error.code] ??= { count: 0, example: record.url });
      group.count++;
    }
  }

  /** The summary so far; `wallMs` defaults to the time since the report was created. */
  summary(wallMs = performance.now() - this.#started): RunSummary {
    const seconds = wallMs / 1000;
    const c = this.#counts;
    const latencies = this.#latencies;
    return {
      mode: this.#mode,
      concurrency: this.#concurrency,
      ...c,
      wallMs: round(wallMs),
      filesPerSec: seconds > 0 ? round(c.ok / seconds) : 0,
      bytesPerSec: seconds > 0 ? Math.round(c.bytes / seconds) : 0,
      p50Ms: round(latencies.percentile(0.5)),
      p95Ms: round(latencies.percentile(0.95)),
      maxMs: round(latencies.max),
      errors: this.#errors,
      ...(this.hosts ? { hosts: this.hosts.summary() } : {}),
    };
  }
}

/** Tenths of a millisecond counted one by one up to here (about 105 s); above, within 1/1024 of the value. */
const EXACT_TENTHS = 1 << 20;
/** Buckets a page of the histogram holds: pages are made as values first land in them. */
const PAGE = 1024;

/**
 * Counts of per-file times, the same answers as sorting every time but in
 * memory that does not grow with the count: a 4 kB page for each stretch of
 * 102.4 ms that holds any time, so a run whose files take up to a minute
 * needs at most 2.3 MB however many files it saves. Times are bucketed by
 * tenths of a millisecond (records are rounded to that already) up to about
 * 105 s, and beyond that by 1/1024 of their value.
 */
class LatencyHistogram {
  readonly #pages = new Map<number, Uint32Array>();
  #count = 0;
  #max = 0;

  /** Times counted. */
  get count(): number {
    return this.#count;
  }

  /** The largest time counted, exactly; 0 when none. */
  get max(): number {
    return this.#max;
  }

  /** Counts one time, in ms. */
  add(ms: number): void {
    const bucket = bucketOf(Math.max(0, Math.round(ms * 10)));
    const index = Math.floor(bucket / PAGE);
    let page = this.#pages.get(index);
    if (!page) this.#pages.set(index, (page = new Uint32Array(PAGE)));
    page[bucket % PAGE]!++;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  /** The nearest-rank `p` percentile (0 < p ≤ 1) in ms; 0 when nothing was counted. */
  percentile(p: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.min(this.#count - 1, Math.max(0, Math.ceil(p * this.#count) - 1));
    let seen = 0;
    for (const index of [...this.#pages.keys()].sort((a, b) => a - b)) {
      const page = this.#pages.get(index)!;
      for (let i = 0; i < PAGE; i++) {
        seen += page[i]!;
        if (seen > rank) return Math.min(this.#max, lowestOf(index * PAGE + i) / 10);
      }
    }
    return this.#max;
  }
}

/** The bucket of a time in tenths of a ms: itself while exact, then 1024 buckets for each doubling. */
function bucketOf(tenths: number): number {
  if (tenths < EXACT_TENTHS) return tenths;
  const octave = Math.floor(Math.log2(tenths)) - 20;
  return EXACT_TENTHS + octave * PAGE + Math.floor(tenths / 2 ** (octave + 10)) - PAGE;
}

/** The smallest time (in tenths of a ms) of a bucket. */
function lowestOf(bucket: number): number {
  if (bucket < EXACT_TENTHS) return bucket;
  const octave = Math.floor((bucket - EXACT_TENTHS) / PAGE);
  return (bucket - EXACT_TENTHS - octave * PAGE + PAGE) * 2 ** (octave + 10);
}

/** Nearest-rank percentile of sorted values; 0 when there are none. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank]!;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Bytes in binary units: `1.5 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Milliseconds for people: `850 ms`, `3.21 s`, `2m 05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
}

/** How {@link formatSummary} writes. */
export interface SummaryStyle {
  /** ANSI colours for counts and error codes. Default false. */
  color?: boolean | undefined;
}

/**
 * The summary as a few aligned lines for a person reading stderr: counts and
 * wall time first, then bytes and throughput, latency, and failures grouped
 * by code (most frequent first) with one example URL each, and a short
 * table of the hosts that failed items or asked for fewer requests.
 */
export function formatSummary(s: RunSummary, style: SummaryStyle = {}): string {
  const paint = (code: string, text: string): string => (style.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const failed = `${s.failed} failed`;
  const lines = [
    `${paint('32', `${s.ok} ok`)}, ${s.failed > 0 ? paint('31', failed) : failed}, ${s.skipped} skipped of ${s.total} ` +
      `in ${formatDuration(s.wallMs)} (${s.mode}, concurrency ${s.concurrency})`,
    `  saved     ${formatBytes(s.bytes)} · ${formatBytes(s.bytesPerSec)}/s · ${s.filesPerSec} files/s`,
    `  per file  p50 ${formatDuration(s.p50Ms)} · p95 ${formatDuration(s.p95Ms)} · max ${formatDuration(s.maxMs)}`,
  ];
  lines.push(...formatFailures(s.errors, paint), ...formatHosts(s.hosts ?? []));
  return lines.join('\n');
}

/** Failures grouped by code, most frequent first, one aligned line each with an example URL. */
export function formatFailures(errors: RunSummary['errors'], paint: (code: string, text: string) => string): string[] {
  const groups = Object.entries(errors).sort(([, a], [, b]) => b.count - a.count);
  const codeWidth = Math.max(0, ...groups.map(([code]) => code.length));
  const countWidth = Math.max(0, ...groups.map(([, g]) => String(g.count).length));
  return groups.map(([code, group], i) => {
    const label = i === 0 ? '  failures  ' : '            ';
    return `${label}${paint('31', code.padEnd(codeWidth))}  ×${String(group.count).padEnd(countWidth)}  e.g. ${group.example}`;
  });
}
