/**
 * The run's bandwidth cap (`--limit-rate`): a token bucket that every body
 * of the run draws from as its chunks arrive. A body that overdraws it is
 * paused (its connection stops reading, so nothing piles up in memory) and
 * resumed once the bucket has refilled; the debt is paid back in time, so
 * over a few seconds the bytes received match the cap.
 */

/** A body waiting for the bucket to refill. */
export interface BandwidthWaiter {
  /** The bucket has refilled: the body may read again. */
  onBandwidth(): void;
}

/** The least a bucket may hold, so that a small cap still lets a socket's read through whole. */
const MIN_BURST = 16 * 1024;

/** A token bucket of bytes, refilled at a fixed rate; see the module's comment. */
export class Bandwidth {
  readonly #perMs: number;
  readonly #burst: number;
  /** Bytes that may be read now; below 0, a debt to wait out. */
  #tokens = 0;
  #at: number;
  #waiters: BandwidthWaiter[] = [];
  #timer: NodeJS.Timeout | undefined;

  /** A cap of `bytesPerSecond`, with at most a tenth of a second's worth (16 KiB at least) saved up while idle. */
  constructor(readonly bytesPerSecond: number) {
    this.#perMs = bytesPerSecond / 1000;
    this.#burst = Math.max(MIN_BURST, bytesPerSecond / 10);
    this.#at = performance.now();
  }

  /** Counts `bytes` just received; true when the bucket is overdrawn and the body should {@link wait}. */
  take(bytes: number): boolean {
    this.#refill();
    this.#tokens -= bytes;
    return this.#tokens < 0;
  }

  /** Calls `waiter.onBandwidth()` once the debt is paid back. */
  wait(waiter: BandwidthWaiter): void {
    this.#waiters.push(waiter);
    this.#schedule();
  }

  #refill(): void {
    const at = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (at - this.#at) * this.#perMs);
    this.#at = at;
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(wake, Math.max(1, Math.ceil(-this.#tokens / this.#perMs)), this);
  }

  /** The timer fired: every waiter goes on when the debt is paid, else the timer is set again. */
  wake(): void {
    this.#timer = undefined;
    this.#refill();
    if (this.#tokens < 0) return this.#schedule();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.onBandwidth();
  }
}

/** The timer's callback: a plain function given the bucket, so no closure is made per wait. */
function wake(bandwidth: Bandwidth): void {
  bandwidth.wake();
}
