/**
 * Per-host politeness: how many requests one host may have in flight, how
 * often they may start, and the pauses its server asked for (429 or 503 with
 * `Retry-After`). The scheduler asks a {@link HostGate} before each request;
 * {@link LocalHostGate} keeps the books for one process, and a gate shared
 * through Redis (the cluster's) keeps them for many.
 *
 * A host is `url.host`: name and port, so two services on one machine are two
 * hosts, and `http:` and `https:` of one name and port are one.
 */

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
}

/** The limits a {@link LocalHostGate} keeps. */
export interface HostLimits {
  /** Most requests in flight to one host; undefined for no cap. */
  perHost?: number | undefined;
  /** Most requests started per second to one host, spaced evenly; undefined for no limit. */
  rate?: number | undefined;
}

interface HostBooks {
  inFlight: number;
  /** Earliest time the next request may start, from the rate. */
  nextStartMs: number;
  /** End of a pause a server asked for. */
  pausedUntilMs: number;
}

/** Hosts kept before books that no longer restrict anything are swept, so a list of millions of hosts stays flat. */
const SWEEP_EVERY = 4096;

/** The per-process {@link HostGate}. */
export class LocalHostGate implements HostGate {
  readonly #hosts = new Map<string, HostBooks>();
  readonly #perHost: number;
  readonly #spacingMs: number;
  readonly #now: () => number;
  #sweepAt = SWEEP_EVERY;

  constructor(limits: HostLimits = {}, now: () => number = Date.now) {
    this.#perHost = limits.perHost ?? Number.POSITIVE_INFINITY;
    this.#spacingMs = limits.rate === undefined ? 0 : 1000 / limits.rate;
    this.#now = now;
  }

  acquire(host: string): number {
    let books = this.#hosts.get(host);
    // No limits and no pause on record: nothing to keep, the common case costs one lookup.
    if (books === undefined && this.#perHost === Number.POSITIVE_INFINITY && this.#spacingMs === 0) return 0;
    const now = this.#now();
    if (books === undefined) {
      books = { inFlight: 0, nextStartMs: 0, pausedUntilMs: 0 };
      this.#hosts.set(host, books);
      if (this.#hosts.size >= this.#sweepAt) this.#sweep(now);
    }
    if (books.pausedUntilMs > now) return books.pausedUntilMs - now;
    if (books.inFlight >= this.#perHost) return UNTIL_RELEASE;
    if (books.nextStartMs > now) return books.nextStartMs - now;
    books.inFlight++;
    books.nextStartMs = now + this.#spacingMs;
    return 0;
  }

  release(host: string): void {
    const books = this.#hosts.get(host);
    if (books !== undefined && books.inFlight > 0) books.inFlight--;
  }

  pause(host: string, untilMs: number): boolean {
    let books = this.#hosts.get(host);
    if (books === undefined) {
      books = { inFlight: 0, nextStartMs: 0, pausedUntilMs: 0 };
      this.#hosts.set(host, books);
    }
    if (untilMs <= books.pausedUntilMs) return false;
    const fresh = books.pausedUntilMs <= this.#now();
    books.pausedUntilMs = untilMs;
    return fresh;
  }

  /** Drops the books of hosts with nothing in flight, no pause and no spacing left to enforce. */
  #sweep(now: number): void {
    for (const [host, books] of this.#hosts) {
      if (books.inFlight === 0 && books.pausedUntilMs <= now && books.nextStartMs <= now) this.#hosts.delete(host);
    }
    this.#sweepAt = Math.max(SWEEP_EVERY, this.#hosts.size * 2);
  }
}
