/**
 * A queue's per-host figures, summed over every worker in Redis, so that
 * `imgdl status` answers "which host is failing?" for the whole queue as a
 * run's summary does for one run (record/host-figures.ts). Times are not
 * kept: p50 and p95 are in each worker's own summary.
 *
 * Keys, under `imgdl:<queue>:`:
 * - `host:<host>` (hash): `requests`, `ok`, `failed`, `bytes`, `http429`,
 *   `http503`, `pauses` (counts), `rate` (the last adapted rate, with
 *   `slowed` 1 while in force).
 * - `hosts` (sorted set): host → requests, for the busiest;
 *   `hosts:failed` (sorted set): host → failed items, for every failing one.
 *
 * A worker adds its figures up in memory and sends them every
 * {@link FLUSH_MS} in one pipeline, not a round trip per record.
 */
import type { Redis } from 'ioredis';
import { TOP_HOSTS, type HostSummary } from '../record/host-figures.js';
import type { ItemResult } from '../record/record.js';
import type { HostEvent } from '../run/host-events.js';

/** A worker sends its per-host figures this often (ms). */
export const FLUSH_MS = 1000;

/** One host's figures in `imgdl status`: a run's, without the times. */
export type QueueHostSummary = Omit<HostSummary, 'p50Ms' | 'p95Ms'>;

const COUNTS = ['requests', 'ok', 'failed', 'bytes', 'http429', 'http503', 'pauses'] as const;
type Counts = Record<(typeof COUNTS)[number], number> & { rate?: number; slowed?: boolean };

/** Adds a worker's per-host figures to the queue's; see the module doc. */
export class HostStats {
  readonly #redis: Redis;
  readonly #key: (name: string) => string;
  #pending = new Map<string, Counts>();
  #timer: NodeJS.Timeout | undefined;

  constructor(redis: Redis, queue: string) {
    this.#redis = redis;
    this.#key = (name) => `imgdl:${queue}:${name}`;
  }

  /** Counts a record the queue took. */
  add(record: ItemResult): void {
    let host: string;
    try {
      host = new URL(record.url).host;
    } catch {
      return;
    }
    const counts = this.#counts(host);
    counts.requests += record.attempts;
    counts.bytes += record.bytes;
    if (record.status === 'ok') counts.ok++;
    else if (record.status === 'failed') counts.failed++;
  }

  /** Counts what a run told of a host. */
  event(event: HostEvent): void {
    const counts = this.#counts(event.host);
    if (event.status === 429) counts.http429++;
    else if (event.status === 503) counts.http503++;
    if (event.paused === true) counts.pauses++;
    if (event.rate === null) counts.slowed = false;
    else if (event.rate !== undefined) {
      counts.rate = Math.round(event.rate * 10) / 10;
      counts.slowed = true;
    }
  }

  /** Sends what was counted since the last time; never rejects (figures that could not be sent are lost, not retried). */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.size === 0) return;
    const pending = this.#pending;
    this.#pending = new Map();
    const batch = this.#redis.pipeline();
    for (const [host, counts] of pending) {
      const key = this.#key(`host:${host}`);
      for (const name of COUNTS) if (counts[name] !== 0) batch.hincrby(key, name, counts[name]);
      if (counts.rate !== undefined) batch.hset(key, 'rate', counts.rate);
      if (counts.slowed !== undefined) batch.hset(key, 'slowed', counts.slowed ? 1 : 0);
      if (counts.requests !== 0) batch.zincrby(this.#key('hosts'), counts.requests, host);
      if (counts.failed !== 0) batch.zincrby(this.#key('hosts:failed'), counts.failed, host);
    }
    await batch.exec().catch(() => undefined);
  }

  #counts(host: string): Counts {
    let counts = this.#pending.get(host);
    if (counts === undefined) {
      counts = { requests: 0, ok: 0, failed: 0, bytes: 0, http429: 0, http503: 0, pauses: 0 };
      this.#pending.set(host, counts);
    }
    this.#timer ??= setTimeout(() => void this.flush(), FLUSH_MS).unref();
    return counts;
  }
}

/** The queue's busiest {@link TOP_HOSTS} hosts by requests, then every other host with failures. */
export async function readHostStats(redis: Redis, queue: string): Promise<QueueHostSummary[]> {
  const key = (name: string): string => `imgdl:${queue}:${name}`;
  const [busiest, failing] = await Promise.all([
    redis.zrevrange(key('hosts'), 0, TOP_HOSTS - 1),
    redis.zrevrangebyscore(key('hosts:failed'), '+inf', '(0'),
  ]);
  const hosts = [...new Set([...busiest, ...failing])];
  const batch = redis.pipeline();
  for (const host of hosts) batch.hgetall(key(`host:${host}`));
  const replies = (await batch.exec()) ?? [];
  return hosts.map((host, i) => {
    const fields = (replies[i]?.[1] ?? {}) as Record<string, string>;
    const n = (name: string): number => Number(fields[name] ?? 0) || 0;
    return {
      host,
      requests: n('requests'),
      ok: n('ok'),
      failed: n('failed'),
      bytes: n('bytes'),
      http429: n('http429'),
      http503: n('http503'),
      pauses: n('pauses'),
      rate: fields.rate === undefined ? null : Number(fields.rate),
      slowed: fields.slowed === '1',
    };
  });
}
