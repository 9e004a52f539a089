/**
 * Adaptive per-host throttling: the rule by which a host that answers 429
 * (or 503 without `Retry-After`) is asked less often, and a host that
 * answers again is asked more often, AIMD as TCP backs off a congested link:
 *
 * - **Cut** (multiplicative decrease): a throttling answer sets the host's
 *   start rate to {@link DECREASE} (0.7) × what it was, never below {@link FLOOR}.
 *   A host not yet throttled was going as fast as the slots allowed: its
 *   rate is taken as the starts it saw in the last second. Answers to
 *   requests that started before the last cut are the old rate's doing and
 *   do not cut again, so the burst of 429s that a cut answers counts once.
 * - **Raise** (additive increase): each success adds `step / rate`, so the
 *   rate grows by `step` requests a second for every second of successes,
 *   where `step` gives back what the last cut took in {@link RECOVERY_S} s
 *   (at least {@link MIN_STEP}). A rate that reaches `--rate`, or twice what it
 *   was cut from when there is none, is lifted: the host goes as before.
 *
 * Pure functions over plain data, so the same rule runs in one process
 * ({@link LocalHostGate}) and in Redis' scripts for a cluster (which copy it).
 */

/**
 * Each cut keeps this share of the rate: CUBIC's 0.7 rather than Reno's 0.5. Against nginx's
 * limit_req (20 r/s, burst 10) both kept 429s to 2 % of requests, and 0.7 lost less time below the limit.
 */
export const DECREASE = 0.7;
/** Lowest rate a cut sets, in requests a second (or `--rate`, when lower): slow enough for any limiter, fast enough to finish a list. */
export const FLOOR = 1;
/** A cut's loss is regained in about this many seconds of successes. */
export const RECOVERY_S = 8;
/** Least growth, in requests a second for each second of successes. */
export const MIN_STEP = 1;
/** A rate with no `--rate` above it is lifted once it reaches this many times the rate it was last cut from. */
export const LIFT_FACTOR = 2;

/** A host's adapted rate, while it has one. */
export interface AdaptedRate {
  /** Requests started a second. */
  rate: number;
  /** When it was last cut (ms, on the caller's clock). */
  cutAt: number;
  /** The rate before the last cut. */
  cutFrom: number;
  /** Growth in requests a second for each second of successes. */
  step: number;
}

/**
 * The rate after a throttling answer to a request started at `startedAt`,
 * or undefined when that request started before the last cut (no new cut).
 * `observed` is the host's starts in the last second, used when it has no
 * adapted rate yet; `ceiling` is `--rate`, when given.
 */
export function cut(
  state: AdaptedRate | undefined,
  observed: number,
  startedAt: number,
  now: number,
  ceiling?: number,
): AdaptedRate | undefined {
  if (state !== undefined && startedAt < state.cutAt) return undefined;
  const top = ceiling ?? Number.POSITIVE_INFINITY;
  const from = Math.min(state?.rate ?? Math.max(observed, FLOOR), top);
  const rate = Math.max(Math.min(FLOOR, top), from * DECREASE);
  return { rate, cutAt: now, cutFrom: from, step: Math.max(MIN_STEP, (from - rate) / RECOVERY_S) };
}

/** The rate after a success; undefined when it is lifted (see the module doc). Changes `state` in place. */
export function raise(state: AdaptedRate, ceiling?: number): AdaptedRate | undefined {
  state.rate += state.step / state.rate;
  const top = ceiling ?? LIFT_FACTOR * state.cutFrom;
  return state.rate >= top ? undefined : state;
}

/**
 * Starts in the last second, estimated from two one-second counts (the
 * current one and the one before, weighed by how much of it is still in
 * the window): a few numbers per host, whatever its rate.
 */
export class StartCounter {
  #windowAt = 0;
  #current = 0;
  #previous = 0;

  /** Counts a start at `now`. */
  add(now: number): void {
    this.#roll(now);
    this.#current++;
  }

  /** Starts in the second up to `now`. */
  perSecond(now: number): number {
    this.#roll(now);
    const share = 1 - (now - this.#windowAt) / 1000;
    return this.#current + this.#previous * share;
  }

  #roll(now: number): void {
    if (now - this.#windowAt < 1000) return;
    this.#previous = now - this.#windowAt < 2000 ? this.#current : 0;
    this.#current = 0;
    this.#windowAt = now - ((now - this.#windowAt) % 1000);
  }
}
