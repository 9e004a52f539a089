/**
 * Per-host politeness: how many requests one host may have in flight, how
 * often they may start, the pauses its server asked for (429 or 503 with
 * `Retry-After`), and the rate it was slowed to when it answered 429 (or
 * 503 without `Retry-After`; see adaptive-rate.ts). The scheduler asks a {@link HostGate} before each request;
 * {@link LocalHostGate} keeps the books for one process, and a gate shared
 * through Redis (the cluster's) keeps them for many.
 *
 * A host is `url.host`: name and port, so two services on one machine are two
 * hosts, and `http:` and `https:` of one name and port are one.
 */

import { cut, raise, StartCounter, type AdaptedRate } from './adaptive-rate.js';

/** The answer of {@link HostGate.acquire} when only the end of one of this process's requests to the host can free it. */
export const UNTIL_RELEASE = Number.POSITIVE_INFINITY;

/** Decides when a request to a host may start. */
export interface HostGate {
  /**
   * Asks to start one request to `host` now. 0: granted, and the caller must
   * call {@link release} when the request ends. Otherwise the ms to wait
   * before asking again, or {@link UNTIL_RELEASE}. May answer asynchronously
   * (a gate shared between processes); the caller counts a pending answer as
   * a request in flight.
   */
  acquire(host: string): number | Promise<number>;
  /** A request granted by {@link acquire} has ended. */
  release(host: string): void;
  /**
   * A server asked for a pause: no request to `host` starts before
   * `untilMs` (on `Date.now()`'s clock). True when this starts a pause (none
   * was in force), so that it is logged once, not once per item.
   */
  pause(host: string, untilMs: number): boolean | Promise<boolean>;
  /**
   * A request to `host` that started at `startedAt` (`Date.now()`'s clock) was answered 429, or 503
   * without `Retry-After`: slow the host down. The host's new rate (requests a second) when this cut
   * it, so that each cut is logged once; undefined when an earlier cut already answered for that
   * request, or the gate does not adapt. Never rejects.
   */
  throttled?(host: string, startedAt: number): number | undefined | Promise<number | undefined>;
  /** A request to `host` succeeded: its adapted rate, if any, grows. True when this lifted it (the host goes as before). Never rejects. */
  succeeded?(host: string): boolean | Promise<boolean>;
  /** The adapted rate of each host that has one now. */
  adaptedRates?(): Iterable<[host: string, rate: number]>;
}

/** The limits a {@link LocalHostGate} keeps. */
export interface HostLimits {
  /** Most requests in flight to one host; undefined for no cap. */
  perHost?: number | undefined;
  /** Most requests started per second to one host, spaced evenly; undefined for no limit. */
  rate?: number | undefined;
  /** Slow a host down when it answers 429 (or 503 without `Retry-After`), never above `rate`. Default false. */
  adapt?: boolean | undefined;
}

interface HostBooks {
  inFlight: number;
  /** Earliest time the next request may start, from the rate. */
  nextStartMs: number;
  /** End of a pause a server asked for. */
  pausedUntilMs: number;
  /** With `adapt`: the host's starts, to know how fast it went when first throttled. */
  starts: StartCounter | undefined;
  /** With `adapt`: the rate it was slowed to, while it is. */
  adapted: AdaptedRate | undefined;
}

/** Hosts kept before books that no longer restrict anything are swept, so a list of millions of hosts stays flat. */
const SWEEP_EVERY = 4096;

/** The per-process {@link HostGate}. */
export class LocalHostGate implements HostGate {
  readonly #hosts = new Map<string, HostBooks>();
  readonly #perHost: number;
  readonly #spacingMs: number;
  readonly #rate: number | undefined;
  readonly #adapt: boolean;
  readonly #now: () => number;
  #sweepAt = SWEEP_EVERY;

  constructor(limits: HostLimits = {}, now: () => number = Date.now) {
    this.#perHost = limits.perHost ?? Number.POSITIVE_INFINITY;
    this.#rate = limits.rate;
    this.#spacingMs = limits.rate === undefined ? 0 : 1000 / limits.rate;
    this.#adapt = limits.adapt === true;
    this.#now = now;
  }

  acquire(host: string): number {
    let books = this.#hosts.get(host);
    // No limits and no pause on record: nothing to keep, the common case costs one lookup.
    if (books === undefined && this.#perHost === Number.POSITIVE_INFINITY && this.#spacingMs === 0 && !this.#adapt) return 0;
    const now = this.#now();
    books ??= this.#open(host, now);
    if (books.pausedUntilMs > now) return books.pausedUntilMs - now;
    if (books.inFlight >= this.#perHost) return UNTIL_RELEASE;
    if (books.nextStartMs > now) return books.nextStartMs - now;
    books.inFlight++;
    books.nextStartMs = now + this.#spacingOf(books);
    books.starts?.add(now);
    return 0;
  }

  throttled(host: string, startedAt: number): number | undefined {
    if (!this.#adapt) return undefined;
    const now = this.#now();
    const books = this.#hosts.get(host) ?? this.#open(host, now);
    const next = cut(books.adapted, books.starts?.perSecond(now) ?? 0, startedAt, now, this.#rate);
    if (next === undefined) return undefined;
    books.adapted = next;
    // Over the limit now: the next start waits a whole new spacing, whatever the old one allowed.
    books.nextStartMs = Math.max(books.nextStartMs, now + 1000 / next.rate);
    return next.rate;
  }

  succeeded(host: string): boolean {
    const books = this.#hosts.get(host);
    if (books?.adapted === undefined) return false;
    books.adapted = raise(books.adapted, this.#rate);
    return books.adapted === undefined;
  }

  *adaptedRates(): Iterable<[string, number]> {
    for (const [host, books] of this.#hosts) if (books.adapted !== undefined) yield [host, books.adapted.rate];
  }

  release(host: string): void {
    const books = this.#hosts.get(host);
    if (books !== undefined && books.inFlight > 0) books.inFlight--;
  }

  pause(host: string, untilMs: number): boolean {
    const books = this.#hosts.get(host) ?? this.#open(host, this.#now());
    if (untilMs <= books.pausedUntilMs) return false;
    const fresh = books.pausedUntilMs <= this.#now();
    books.pausedUntilMs = untilMs;
    return fresh;
  }

  #open(host: string, now: number): HostBooks {
    const books: HostBooks = {
      inFlight: 0,
      nextStartMs: 0,
      pausedUntilMs: 0,
      starts: this.#adapt ? new StartCounter() : undefined,
      adapted: undefined,
    };
    this.#hosts.set(host, books);
    if (this.#hosts.size >= this.#sweepAt) this.#sweep(now);
    return books;
  }

  #spacingOf(books: HostBooks): number {
    return books.adapted === undefined ? this.#spacingMs : 1000 / books.adapted.rate;
  }

  /** Drops the books of hosts with nothing in flight, no pause, no spacing left to enforce and no adapted rate. */
  #sweep(now: number): void {
    for (const [host, books] of this.#hosts) {
      if (books.inFlight === 0 && books.pausedUntilMs <= now && books.nextStartMs <= now && books.adapted === undefined)
        this.#hosts.delete(host);
    }
    this.#sweepAt = Math.max(SWEEP_EVERY, this.#hosts.size * 2);
  }
}
