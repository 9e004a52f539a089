/**
 * Adaptive throttling across every worker of a queue: a host's adapted rate
 * (run/adaptive-rate.ts) kept in Redis, so that when one worker is answered
 * 429 every worker slows down, and every worker's successes raise it again.
 * The scripts below copy the rule of adaptive-rate.ts, run atomically.
 *
 * Keys, under `imgdl:<queue>:`:
 * - `rate:<host>` (hash): `rate`, `cutAt`, `cutFrom`, `step`; it expires
 *   {@link RATE_TTL_MS} after its last change, and is deleted when lifted.
 * - `adapted` (sorted set): host → when its `rate:` key expires, so a gate
 *   learns in its regular reading (see host-gate.ts) which hosts to ask
 *   Redis about. The acquire script reads `rate:<host>` for the spacing.
 */
import type { Redis } from 'ioredis';
import { DECREASE, FLOOR, LIFT_FACTOR, MIN_STEP, RECOVERY_S, StartCounter } from '../run/adaptive-rate.js';

/** An adapted rate lasts this long in Redis after its last change (ms), so a queue that is done with a host leaves nothing. */
export const RATE_TTL_MS = 600_000;

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
`;

// KEYS: rate:<host>, adapted, next:<host>. ARGV: host, startedAgo (ms), observed, ceiling (0: none), ttl.
const THROTTLE = `${NOW}
local host, startedAt, observed, ceiling, ttl = ARGV[1], now - tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'rate', 'cutAt')
local top = ceiling > 0 and ceiling or math.huge
local from
if state[1] then
  if startedAt < tonumber(state[2]) then return '' end
  from = tonumber(state[1])
else
  from = math.max(observed, ${FLOOR})
end
from = math.min(from, top)
local rate = math.max(math.min(${FLOOR}, top), from * ${DECREASE})
local step = math.max(${MIN_STEP}, (from - rate) / ${RECOVERY_S})
redis.call('HSET', KEYS[1], 'rate', string.format('%.6f', rate), 'cutAt', string.format('%.3f', now),
  'cutFrom', string.format('%.6f', from), 'step', string.format('%.6f', step))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], string.format('%.3f', now + ttl), host)
redis.call('PEXPIRE', KEYS[2], ttl)
-- Over the limit now: the next start, whichever worker makes it, waits a whole new spacing.
local spacing = 1000 / rate
local nextAt = tonumber(redis.call('GET', KEYS[3]) or '0')
if nextAt < now + spacing then redis.call('SET', KEYS[3], string.format('%.3f', now + spacing), 'PX', math.ceil(spacing)) end
return string.format('%.6f', rate)
`;

// KEYS: rate:<host>, adapted. ARGV: host, ceiling (0: none), ttl. '' when not adapted, 'lifted', or the new rate.
const SUCCEED = `${NOW}
local state = redis.call('HMGET', KEYS[1], 'rate', 'cutFrom', 'step')
if not state[1] then return '' end
local rate = tonumber(state[1]) + tonumber(state[3]) / tonumber(state[1])
local ceiling = tonumber(ARGV[2])
local top = ceiling > 0 and ceiling or ${LIFT_FACTOR} * tonumber(state[2])
if rate >= top then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 'lifted'
end
redis.call('HSET', KEYS[1], 'rate', string.format('%.6f', rate))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return string.format('%.6f', rate)
`;

/** Redis commands the scripts add to a client. */
interface Scripts {
  imgdlHostThrottle(rate: string, adapted: string, next: string, ...args: Array<string | number>): Promise<string>;
  imgdlHostSucceed(rate: string, adapted: string, host: string, ceiling: number, ttl: number): Promise<string>;
}

/** Starts counted per host before the counts are dropped and begun again, so a list of millions of hosts stays flat. */
const COUNTED_HOSTS = 4096;

/** One gate's side of the queue's adapted rates; see the module doc. */
export class RedisHostRates {
  readonly #redis: Redis & Scripts;
  readonly #prefix: string;
  readonly #ceiling: number;
  /** Hosts adapted as this gate last heard (its own answers, and its readings of `adapted`), with their rates. */
  readonly #known = new Map<string, number>();
  /** This worker's starts per host, for a host's first cut (the queue's total is not counted anywhere). */
  readonly #starts = new Map<string, StartCounter>();

  constructor(redis: Redis, prefix: string, ceiling: number | undefined) {
    redis.defineCommand('imgdlHostThrottle', { numberOfKeys: 3, lua: THROTTLE });
    redis.defineCommand('imgdlHostSucceed', { numberOfKeys: 2, lua: SUCCEED });
    this.#redis = redis as Redis & Scripts;
    this.#prefix = prefix;
    this.#ceiling = ceiling ?? 0;
  }

  /** The key of the sorted set of adapted hosts. */
  get adaptedKey(): string {
    return `${this.#prefix}adapted`;
  }

  /** The key of a host's rate, which the acquire script reads. */
  rateKey(host: string): string {
    return `${this.#prefix}rate:${host}`;
  }

  /** True when `host` is adapted as far as this gate knows, so its acquires go to Redis. */
  adapted(host: string): boolean {
    return this.#known.has(host);
  }

  /** Counts a start granted to `host`. */
  started(host: string): void {
    let counter = this.#starts.get(host);
    if (counter === undefined) {
      if (this.#starts.size >= COUNTED_HOSTS) this.#starts.clear();
      this.#starts.set(host, (counter = new StartCounter()));
    }
    counter.add(Date.now());
  }

  /** What a reading of `adapted` found: host, seconds… pairs flattened. Hosts another worker lifted are forgotten. */
  learn(hosts: readonly string[]): void {
    const found = new Set(hosts);
    for (const host of this.#known.keys()) if (!found.has(host)) this.#known.delete(host);
    for (const host of hosts) if (!this.#known.has(host)) this.#known.set(host, Number.NaN);
  }

  throttled(host: string, startedAt: number): Promise<number | undefined> {
    const now = Date.now();
    const observed = this.#starts.get(host)?.perSecond(now) ?? 0;
    const args = [host, Math.max(0, now - startedAt), observed, this.#ceiling, RATE_TTL_MS];
    return this.#redis.imgdlHostThrottle(this.rateKey(host), this.adaptedKey, `${this.#prefix}next:${host}`, ...args).then(
      (reply) => {
        if (reply === '') return undefined;
        this.#known.set(host, Number(reply));
        return Number(reply);
      },
      () => undefined,
    );
  }

  succeeded(host: string): boolean | Promise<boolean> {
    if (!this.#known.has(host)) return false;
    return this.#redis.imgdlHostSucceed(this.rateKey(host), this.adaptedKey, host, this.#ceiling, RATE_TTL_MS).then(
      (reply) => {
        if (reply === 'lifted' || reply === '') {
          this.#known.delete(host);
          return reply === 'lifted';
        }
        this.#known.set(host, Number(reply));
        return false;
      },
      () => false,
    );
  }

  /** The rates this gate last heard for hosts it knows are adapted (a host learnt only from a reading has none yet). */
  *rates(): Iterable<[string, number]> {
    for (const [host, rate] of this.#known) if (!Number.isNaN(rate)) yield [host, rate];
  }
}
