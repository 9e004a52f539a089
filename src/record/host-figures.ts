/**
 * Per-host figures, since at scale "which host is failing?" is the first
 * question: requests, outcomes, bytes and times from the records, and what
 * only the run sees (tries answered 429 or 503, pauses, the adapted rate)
 * from its host events (run/host-events.ts). The summary keeps the busiest
 * hosts and every host with failures.
 */
import type { HostEvent } from '../run/host-events.js';
import { LatencyHistogram, percentile } from './latency-histogram.js';
import type { ItemResult } from './record.js';

/** One host's figures in the summary. */
export interface HostSummary {
  /** Name and port, as `url.host` gives them. */
  host: string;
  /** Requests made to it, every try and retry included (the records' `attempts`). */
  requests: number;
  ok: number;
  failed: number;
  /** Bytes saved from it. */
  bytes: number;
  /** Median time per file saved from it, in ms. */
  p50Ms: number;
  /** 95th percentile time per file saved from it, in ms. */
  p95Ms: number;
  /** Tries it answered 429. */
  http429: number;
  /** Tries it answered 503. */
  http503: number;
  /** Pauses its `Retry-After` started. */
  pauses: number;
  /** The last rate (requests a second) it was slowed to by adaptive throttling; null when never. */
  rate: number | null;
  /** True when that rate was still in force at the end (not lifted). */
  slowed: boolean;
  /** With `--http2`: the protocols its connections spoke (`h2`, `http/1.1`), comma-separated; absent otherwise. */
  protocol?: string;
}

/** The busiest hosts the summary lists, besides every host with failures. */
export const TOP_HOSTS = 20;

interface Tally {
  requests: number;
  ok: number;
  failed: number;
  bytes: number;
  /** Times of the files saved, in ms: kept as they are while few, then counted in a histogram. */
  times: number[] | LatencyHistogram;
  http429: number;
  http503: number;
  pauses: number;
  rate: number | null;
  slowed: boolean;
  protocols?: Set<string>;
}

/** Gathers {@link HostSummary} figures from records and host events. */
export class HostFigures {
  readonly #hosts = new Map<string, Tally>();
  /**
   * The last `http(s)://host/` a URL began with, as its parser writes it, and
   * that host: records in a row mostly share one, and a URL parsed per
   * record was a parse per file for one string comparison's worth of answer.
   */
  #prefix = '';
  #prefixHost = '';

  /** Counts a record under its URL's host (none for a URL that is not one). */
  add(record: ItemResult): void {
    const host = this.#hostOf(record.url);
    if (host === undefined) return;
    const tally = this.#tally(host);
    tally.requests += record.attempts;
    tally.bytes += record.bytes;
    if (record.status === 'ok') {
      tally.ok++;
      tally.times = addTime(tally.times, record.ms);
    } else if (record.status === 'failed') tally.failed++;
  }

  #hostOf(url: string): string | undefined {
    // A URL that begins with a parsed http(s) URL's scheme and host, then '/', has that host whatever follows.
    if (this.#prefix !== '' && url.startsWith(this.#prefix)) return this.#prefixHost;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    const { protocol, host } = parsed;
    const prefix = `${protocol}//${host}/`;
    if ((protocol === 'http:' || protocol === 'https:') && url.startsWith(prefix)) {
      this.#prefix = prefix;
      this.#prefixHost = host;
    }
    return host;
  }

  /** Counts what the run told of a host. */
  event(event: HostEvent): void {
    const tally = this.#tally(event.host);
    if (event.status === 429) tally.http429++;
    else if (event.status === 503) tally.http503++;
    if (event.paused === true) tally.pauses++;
    if (event.protocol !== undefined) (tally.protocols ??= new Set()).add(event.protocol);
    if (event.rate === null) tally.slowed = false;
    else if (event.rate !== undefined) {
      tally.rate = round(event.rate);
      tally.slowed = true;
    }
  }

  /** The busiest {@link TOP_HOSTS} hosts by requests, then every other host with failures, busiest first. */
  summary(): HostSummary[] {
    const all = [...this.#hosts].sort(([a, x], [b, y]) => y.requests - x.requests || (a < b ? -1 : 1));
    const kept = all.filter(([, tally], i) => i < TOP_HOSTS || tally.failed > 0);
    return kept.map(([host, t]) => {
      return {
        host,
        requests: t.requests,
        ok: t.ok,
        failed: t.failed,
        bytes: t.bytes,
        p50Ms: round(percentileOf(t.times, 0.5)),
        p95Ms: round(percentileOf(t.times, 0.95)),
        http429: t.http429,
        http503: t.http503,
        pauses: t.pauses,
        rate: t.rate,
        slowed: t.slowed,
        ...(t.protocols === undefined ? {} : { protocol: [...t.protocols].sort().join(', ') }),
      };
    });
  }

  #tally(host: string): Tally {
    let tally = this.#hosts.get(host);
    if (tally === undefined) {
      tally = { requests: 0, ok: 0, failed: 0, bytes: 0, times: [], http429: 0, http503: 0, pauses: 0, rate: null, slowed: false };
      this.#hosts.set(host, tally);
    }
    return tally;
  }
}

/** A URL's `host`, as the run's scheduler keys hosts; undefined for text that is no URL. */
/**
 * Times a host keeps as they are; past this many they go into a histogram
 * (exact to the 0.1 ms records hold), so that a host with a million files
 * costs a few pages, not a number per file, while a list of many hosts with
 * few files each costs no page per host.
 */
const EXACT_TIMES = 64;

function addTime(times: number[] | LatencyHistogram, ms: number): number[] | LatencyHistogram {
  if (Array.isArray(times) && times.length < EXACT_TIMES) {
    times.push(ms);
    return times;
  }
  const histogram = Array.isArray(times) ? new LatencyHistogram() : times;
  if (Array.isArray(times)) for (const earlier of times) histogram.add(earlier);
  histogram.add(ms);
  return histogram;
}

/** The nearest-rank `p` percentile of a host's times; 0 when it has none. */
function percentileOf(times: number[] | LatencyHistogram, p: number): number {
  return Array.isArray(times) ? percentile(Float64Array.from(times).sort(), p) : times.percentile(p);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Hosts shown in the text summary: those with failures or throttling, the first few of them. */
const SHOWN = 8;

/** The text summary's table of the hosts with failures or throttling (none when there are none). */
export function formatHosts(hosts: ReadonlyArray<Omit<HostSummary, 'p50Ms' | 'p95Ms'>>): string[] {
  const troubled = hosts.filter((h) => h.failed > 0 || h.http429 > 0 || h.http503 > 0 || h.pauses > 0 || h.rate !== null);
  if (troubled.length === 0) return [];
  const rows = troubled
    .slice(0, SHOWN)
    .map((h) => [
      h.host,
      String(h.requests),
      String(h.ok),
      String(h.failed),
      String(h.http429),
      String(h.http503),
      String(h.pauses),
      h.rate === null ? '-' : `${h.rate}/s${h.slowed ? '' : ' (lifted)'}`,
    ]);
  const header = ['host', 'requests', 'ok', 'failed', '429', '503', 'pauses', 'rate'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    `    ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}`.trimEnd();
  const lines = ['  hosts', line(header), ...rows.map(line)];
  if (troubled.length > SHOWN) lines.push(`    … and ${troubled.length - SHOWN} more (see --json)`);
  return lines;
}
