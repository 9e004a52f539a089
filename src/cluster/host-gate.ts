/**
 * Per-host politeness across every worker of a queue: `--per-host`, `--rate`,
 * a server's pause (429 or 503 with `Retry-After`) and a host's adapted rate
 * (host-rates.ts) kept in Redis, so that ten workers on ten machines ask a
 * host no more than one run would.
 *
 * Keys, all under `imgdl:<queue>:`, each expiring once it no longer holds
 * anything back, so hosts that are done with leave nothing behind:
 * - `leases:<host>` (sorted set): lease ID → when it expires. One lease per
 *   request in flight under a `--per-host` cap; the key lives as long as its
 *   latest lease.
 * - `next:<host>` (string): the earliest start of the next request under a
 *   `--rate`; it expires at that moment.
 * - `pauses` (sorted set): host → end of the pause its server asked for; it
 *   lives as long as its longest pause.
 * - `rate:<host>` and `adapted`: see host-rates.ts. The acquire script
 *   spaces a host with an adapted rate by it, instead of by `--rate`.
 *
 * Times in Redis are on the Redis server's clock (`TIME` inside the scripts),
 * so workers whose clocks disagree still agree on a host's spacing. A pause
 * is sent as a duration, converted from the caller's `Date.now()`.
 *
 * A lease expires `leaseMs` after it was taken or last renewed; a gate renews
 * the leases it holds every `leaseMs / 2`, so a download longer than that
 * keeps its lease, and a worker killed with SIGKILL frees its slots within
 * `leaseMs`. The worker uses its `--lock-ms`, the time it takes the queue to
 * notice a dead worker's batch.
 *
 * Round trips: a gate with a cap or a rate answers each acquire with one
 * script (pause, rate and cap checked and taken at once). A gate with
 * neither has only pauses to honour, and those are rare: it answers from
 * a copy of the queue's pauses, read again at most every
 * {@link PAUSES_FRESH_MS} while it is asked (in the background, so no
 * acquire waits for it), and waited for only after {@link PAUSES_STALE_MS}
 * without a reading. A pause another worker stores is thus seen within
 * about 100 ms, at one round trip per 100 ms per worker instead of one per
 * request.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { HostGate, HostLimits } from '../run/host-gate.js';
import { RedisHostRates } from './host-rates.js';

/** Answer to an acquire refused by the cap: the holders may be other workers, whose releases this one cannot hear, so it asks again this soon. */
export const CAP_WAIT_MS = 50;
/** A gate without cap or rate reads the queue's pauses again once its copy is this old (ms). */
export const PAUSES_FRESH_MS = 100;
/** ... and waits for that reading when its copy is older than this (after an idle spell). */
const PAUSES_STALE_MS = 1000;

// `now` on the server's clock in fractional ms; scores are written with string.format so that no
// conversion of a Lua number to text ever drops digits.
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
`;

/** Keeps `key` alive for at least `ms` more, never shortening what another worker set. */
const EXTEND = `
local function extend(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
`;

const ACQUIRE = `${NOW}${EXTEND}
local host, cap, spacing, leaseMs, id, capWait = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local wait = tonumber(redis.call('ZSCORE', KEYS[3], host) or '0') - now
local adapted = tonumber(redis.call('HGET', KEYS[4], 'rate') or '0')
if adapted > 0 then spacing = 1000 / adapted end
if spacing > 0 then
  local nextAt = tonumber(redis.call('GET', KEYS[2]) or '0')
  if nextAt - now > wait then wait = nextAt - now end
end
-- Expired leases (their workers died) are dropped only when they would make up the cap: a call saved per acquire.
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.3f', now))
  if redis.call('ZCARD', KEYS[1]) >= cap and wait < capWait then wait = capWait end
end
if wait > 0 then return math.ceil(wait) end
if spacing > 0 then
  redis.call('SET', KEYS[2], string.format('%.3f', now + spacing), 'PX', math.ceil(spacing))
end
if cap > 0 then
  redis.call('ZADD', KEYS[1], string.format('%.3f', now + leaseMs), id)
  extend(KEYS[1], leaseMs)
end
return 0
`;

const RENEW = `${NOW}${EXTEND}
local leaseMs = tonumber(ARGV[1])
local expiry = string.format('%.3f', now + leaseMs)
local at = 2
for i = 1, #KEYS do
  local n = tonumber(ARGV[at])
  for j = 1, n do redis.call('ZADD', KEYS[i], 'XX', expiry, ARGV[at + j]) end
  if redis.call('EXISTS', KEYS[i]) == 1 then extend(KEYS[i], leaseMs) end
  at = at + 1 + n
end
return 0
`;

const PAUSE = `${NOW}${EXTEND}
local host, ms = ARGV[1], tonumber(ARGV[2])
local untilAt = now + ms
local current = tonumber(redis.call('ZSCORE', KEYS[1], host) or '0')
if current >= untilAt then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.3f', now))
redis.call('ZADD', KEYS[1], string.format('%.3f', untilAt), host)
extend(KEYS[1], math.ceil(ms))
if current > now then return 0 end
return 1
`;

// The pauses in force (host, ms left, ...), and the hosts with an adapted rate.
const PAUSES = `${NOW}
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.3f', now), '+inf', 'WITHSCORES')
local out = {}
for i = 1, #found, 2 do
  out[#out + 1] = found[i]
  out[#out + 1] = math.ceil(tonumber(found[i + 1]) - now)
end
return {out, redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. string.format('%.3f', now), '+inf')}
`;

/** Redis commands the scripts add to a client. */
interface Scripts {
  imgdlHostAcquire(leases: string, next: string, pauses: string, rate: string, ...args: Array<string | number>): Promise<number>;
  imgdlHostRenew(...keysAndArgs: Array<string | number>): Promise<number>;
  imgdlHostPause(pauses: string, host: string, ms: number): Promise<number>;
  imgdlHostPauses(pauses: string, adapted: string): Promise<[Array<string | number>, string[]]>;
}

/** How a {@link RedisHostGate} keeps its books. */
export interface RedisHostGateOptions extends HostLimits {
  /** How long a lease outlives a worker that stopped renewing it, in ms. Default 30000 (a worker's default `--lock-ms`). */
  leaseMs?: number | undefined;
  /** Without cap or rate: how old the copy of the pauses may get before it is read again in the background, in ms. Default {@link PAUSES_FRESH_MS}. */
  pausesFreshMs?: number | undefined;
  /** ... and before an acquire waits for that reading, in ms. Default {@link PAUSES_STALE_MS}. */
  pausesStaleMs?: number | undefined;
}

const noop = (): void => undefined;

/**
 * A {@link HostGate} shared by every worker of a queue through Redis; see
 * the module doc. Workers with other limits share a host's books: each
 * acquire applies its own cap and spacing to the host's traffic as a whole.
 * A gate that cannot reach Redis rejects acquires (the scheduler asks again
 * shortly); on a worker's connection, which waits out an outage, an acquire
 * waits for Redis instead. Releases and pauses never reject: a lease that
 * could not be removed expires, a pause that could not be stored holds here.
 */
export class RedisHostGate implements HostGate {
  readonly #redis: Redis & Scripts;
  readonly #prefix: string;
  readonly #pausesKey: string;
  /** 0: no cap. */
  readonly #perHost: number;
  /** 0: no rate. */
  readonly #spacingMs: number;
  readonly #leaseMs: number;
  readonly #pausesFreshMs: number;
  readonly #pausesStaleMs: number;
  /** Has a cap or a rate, so acquires ask Redis. */
  readonly #limited: boolean;
  /** Lease IDs are this gate's token and a counter, unique across workers. */
  readonly #token = randomBytes(6).toString('base64url');
  #serial = 0;
  /** Leases this gate holds, per host. */
  readonly #leases = new Map<string, string[]>();
  #renewal: NodeJS.Timeout | undefined;
  /** Without cap or rate: the queue's pauses in force (host → end, on `Date.now()`'s clock), read at `#pausesAt`. */
  #pauses = new Map<string, number>();
  #pausesAt = Number.NEGATIVE_INFINITY;
  #reading: Promise<void> | undefined;
  /** With `adapt`: the queue's adapted rates. Read here too without it, so a host that other workers slowed is spaced. */
  readonly #rates: RedisHostRates;
  readonly #adapt: boolean;

  constructor(redis: Redis, queue: string, options: RedisHostGateOptions = {}) {
    redis.defineCommand('imgdlHostAcquire', { numberOfKeys: 4, lua: ACQUIRE });
    redis.defineCommand('imgdlHostRenew', { lua: RENEW });
    redis.defineCommand('imgdlHostPause', { numberOfKeys: 1, lua: PAUSE });
    redis.defineCommand('imgdlHostPauses', { numberOfKeys: 2, lua: PAUSES });
    this.#redis = redis as Redis & Scripts;
    this.#prefix = `imgdl:${queue}:`;
    this.#pausesKey = `${this.#prefix}pauses`;
    this.#perHost = options.perHost ?? 0;
    this.#spacingMs = options.rate === undefined ? 0 : 1000 / options.rate;
    this.#leaseMs = Math.max(1, Math.round(options.leaseMs ?? 30_000));
    this.#limited = this.#perHost > 0 || this.#spacingMs > 0;
    this.#pausesFreshMs = options.pausesFreshMs ?? PAUSES_FRESH_MS;
    this.#pausesStaleMs = Math.max(this.#pausesFreshMs, options.pausesStaleMs ?? PAUSES_STALE_MS);
    this.#rates = new RedisHostRates(redis, this.#prefix, options.rate);
    this.#adapt = options.adapt === true;
  }

  acquire(host: string): number | Promise<number> {
    if (!this.#limited && !this.#rates.adapted(host)) {
      const wait = this.#pausedFor(host);
      if (!this.#adapt) return wait;
      return typeof wait === 'number' ? this.#started(host, wait) : wait.then((ms) => this.#started(host, ms));
    }
    const id = this.#perHost === 0 ? '' : `${this.#token}.${(this.#serial++).toString(36)}`;
    const leases = `${this.#prefix}leases:${host}`;
    return this.#redis
      .imgdlHostAcquire(
        leases,
        `${this.#prefix}next:${host}`,
        this.#pausesKey,
        this.#rates.rateKey(host),
        host,
        this.#perHost,
        this.#spacingMs,
        this.#leaseMs,
        id,
        CAP_WAIT_MS,
      )
      .then(
        (wait) => {
          if (wait === 0 && id !== '') this.#hold(host, id);
          return this.#adapt ? this.#started(host, wait) : wait;
        },
        (error: unknown) => {
          // The script may have granted before the reply was lost: give that lease back rather than wait for it to expire.
          if (id !== '') this.#redis.zrem(leases, id).catch(noop);
          throw error;
        },
      );
  }

  release(host: string): void {
    const held = this.#leases.get(host);
    const id = held?.pop();
    if (id === undefined) return;
    if (held!.length === 0) this.#leases.delete(host);
    if (this.#leases.size === 0) this.#stopRenewal();
    this.#redis.zrem(`${this.#prefix}leases:${host}`, id).catch(noop);
  }

  pause(host: string, untilMs: number): Promise<boolean> {
    const now = Date.now();
    const ms = Math.ceil(untilMs - now);
    if (ms <= 0) return Promise.resolve(false);
    const known = this.#pauses.get(host) ?? 0;
    // Held here at once, so this worker's next acquire without cap or rate honours it before any reading
    // (with a cap or a rate, the acquire script reads the pause the script below stores, on the same connection).
    if (untilMs > known && !this.#limited) this.#pauses.set(host, untilMs);
    return this.#redis.imgdlHostPause(this.#pausesKey, host, ms).then(
      (fresh) => fresh === 1,
      // Not stored for the others; this worker still holds it, and tells it once as a run of its own would.
      () => known <= now,
    );
  }

  throttled(host: string, startedAt: number): Promise<number | undefined> | undefined {
    return this.#adapt ? this.#rates.throttled(host, startedAt) : undefined;
  }

  succeeded(host: string): boolean | Promise<boolean> {
    return this.#adapt && this.#rates.succeeded(host);
  }

  adaptedRates(): Iterable<[string, number]> {
    return this.#rates.rates();
  }

  /** Counts a start granted (`wait` 0), for a host's first cut. */
  #started(host: string, wait: number): number {
    if (wait === 0) this.#rates.started(host);
    return wait;
  }

  /**
   * Stops renewing, and gives back the leases still held (a run that ended gave all of them back as its
   * requests ended). Sent without waiting: closing must not wait out a Redis outage, and a lease that
   * does not arrive expires.
   */
  close(): void {
    this.#stopRenewal();
    for (const [host, ids] of this.#leases) this.#redis.zrem(`${this.#prefix}leases:${host}`, ...ids).catch(noop);
    this.#leases.clear();
  }

  #hold(host: string, id: string): void {
    const held = this.#leases.get(host);
    if (held === undefined) this.#leases.set(host, [id]);
    else held.push(id);
    this.#renewal ??= setInterval(() => this.#renew(), Math.max(1, Math.floor(this.#leaseMs / 2))).unref();
  }

  #stopRenewal(): void {
    clearInterval(this.#renewal);
    this.#renewal = undefined;
  }

  /** Pushes back the expiry of every lease held, in one script; a lease that already expired stays expired. */
  #renew(): void {
    if (this.#leases.size === 0) return;
    const keys: string[] = [];
    const args: Array<string | number> = [this.#leaseMs];
    for (const [host, ids] of this.#leases) {
      keys.push(`${this.#prefix}leases:${host}`);
      args.push(ids.length, ...ids);
    }
    this.#redis.imgdlHostRenew(keys.length, ...keys, ...args).catch(noop);
  }

  /** Without cap or rate: what the copy of the queue's pauses says, read again as the module doc tells. */
  #pausedFor(host: string): number | Promise<number> {
    const now = Date.now();
    const age = now - this.#pausesAt;
    if (age >= this.#pausesFreshMs) this.#reading ??= this.#readPauses();
    if (age >= this.#pausesStaleMs) return this.#reading!.then(() => this.#left(host, Date.now()));
    return this.#left(host, now);
  }

  #left(host: string, now: number): number {
    const until = this.#pauses.get(host);
    return until === undefined || until <= now ? 0 : Math.ceil(until - now);
  }

  #readPauses(): Promise<void> {
    const asked = Date.now();
    const reading = this.#redis.imgdlHostPauses(this.#pausesKey, this.#rates.adaptedKey).then(([reply, adapted]) => {
      this.#rates.learn(adapted);
      const now = Date.now();
      const pauses = new Map<string, number>();
      for (let i = 0; i + 1 < reply.length; i += 2) pauses.set(String(reply[i]), now + Number(reply[i + 1]));
      // Pauses only ever grow: one this worker stored after the reading was asked for is kept.
      for (const [host, until] of this.#pauses) if (until > now && until > (pauses.get(host) ?? 0)) pauses.set(host, until);
      this.#pauses = pauses;
      this.#pausesAt = asked;
    });
    // Handled here, so a reading in the background that fails is no unhandled rejection; acquires that wait for it see the failure.
    reading.then(
      () => (this.#reading = undefined),
      () => (this.#reading = undefined),
    );
    return reading;
  }
}

/**
 * A worker's gates, one per distinct (`--per-host`, `--rate`) its batches
 * carry: those limits travel with the jobs, so two runs may want two gates.
 * All of them keep the same hosts' books in Redis.
 */
export class RedisHostGates {
  readonly #redis: Redis;
  readonly #queue: string;
  readonly #leaseMs: number;
  readonly #gates = new Map<string, RedisHostGate>();

  /** `leaseMs` is the worker's `--lock-ms`: a lease outlives a dead worker as long as its batch does. */
  constructor(redis: Redis, queue: string, leaseMs: number) {
    this.#redis = redis;
    this.#queue = queue;
    this.#leaseMs = leaseMs;
  }

  /** The gate for these limits, made the first time they are asked for. */
  for(limits: HostLimits): RedisHostGate {
    const key = `${limits.perHost ?? ''}/${limits.rate ?? ''}/${limits.adapt === true}`;
    let gate = this.#gates.get(key);
    if (gate === undefined) {
      gate = new RedisHostGate(this.#redis, this.#queue, {
        perHost: limits.perHost,
        rate: limits.rate,
        adapt: limits.adapt,
        leaseMs: this.#leaseMs,
      });
      this.#gates.set(key, gate);
    }
    return gate;
  }

  /** Closes every gate (see {@link RedisHostGate.close}). */
  close(): void {
    for (const gate of this.#gates.values()) gate.close();
  }
}
