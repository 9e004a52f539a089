/**
 * The report: per-run figures gathered from the records as they arrive.
 * Latencies are counted in a histogram whose size does not depend on the
 * number of items, so a report over millions of records stays small, and
 * percentiles stay exact to the 0.1 ms records are given in.
 */
import type { ErrorCode } from '../errors.js';
import { formatHosts, HostFigures, type HostSummary } from './host-figures.js';
import type { ItemResult } from './record.js';
import { LatencyHistogram } from './latency-histogram.js';

export { percentile } from './latency-histogram.js';

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
