/**
 * What the queue remembers besides BullMQ's jobs: each item's record, the
 * counters `status` reads, and the names claimed in the output folder. Every
 * change that must stay consistent runs as one Lua script, so that a batch
 * run twice (a crashed worker, a re-delivery) or two workers at once never
 * count an item twice.
 *
 * Keys, all under `imgdl:<queue>:`:
 * - `items` (hash): item key → `LISTING` while the item is claimed, then
 *   `LISTING\nSTATUS\tBYTES\tCODE\nRECORD-JSON` once it has a record. An
 *   item is a URL (its key a digest of it); LISTING (`jobId#position`) is the
 *   one place in the enqueued lists that owns it.
 * - `counts` (hash): `listed`, `ok`, `failed`, `skipped`, `duplicates`,
 *   `bytes`, `firstAt`, `lastAt` (ms).
 * - `errors` and `examples` (hashes): failures per error code, one URL each.
 * - `names` (hash): folded file name → owner, as the core's name registry.
 * - `batches`, `done`, `dupes` (sets): jobs enqueued, jobs finished, and
 *   listings counted as duplicates.
 *
 * One key of BullMQ's is read too: a job's lock, which a record must come
 * with (see {@link BatchLock}), so that a worker that lost its batch writes
 * nothing more of it.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ItemResult } from '../record/record.js';

/** How a claimed item goes on, as the claim script answers. */
export const Claim = {
  /** First time this item is seen: run it. */
  New: 0,
  /** This listing claimed it before and left no record (its worker died): run it again. */
  Resumed: 1,
  /** This listing already has a record: nothing to do. */
  Done: 2,
  /** Another listing owns this URL: counted once as a skipped duplicate, not run. */
  Duplicate: 3,
} as const;
/** One of {@link Claim}'s answers. */
export type Claim = (typeof Claim)[keyof typeof Claim];

/** What {@link Store.record} answers; see the table above the RECORD script. */
export const Recorded = {
  /** New, or changed: the counters moved. */
  Counted: 1,
  /** Written again unchanged, or kept as it was (a failure after a saved file): the counters stood. */
  Stood: 0,
  /** Another listing owns the item (this one is its duplicate): nothing written. */
  NotOwner: -1,
  /** The batch's lock is not the writer's any more: nothing written. */
  LockLost: -2,
} as const;
/** One of {@link Recorded}'s answers. */
export type Recorded = (typeof Recorded)[keyof typeof Recorded];

/** The lock BullMQ holds a batch's job under: its key, and the token of the worker holding it. */
export interface BatchLock {
  key: string;
  token: string;
}

const CLAIM = `
local out = {}
local n = tonumber(ARGV[2])
for i = 1, n do
  local key = ARGV[1 + 2 * i]
  local listing = ARGV[1] .. '#' .. ARGV[2 + 2 * i]
  local value = redis.call('HGET', KEYS[1], key)
  if not value then
    redis.call('HSET', KEYS[1], key, listing)
    out[i] = 0
  else
    local owner = string.match(value, '^[^\\n]*')
    if owner == listing then
      if string.find(value, '\\n', 1, true) then out[i] = 2 else out[i] = 1 end
    else
      if redis.call('SADD', KEYS[3], listing) == 1 then
        redis.call('HINCRBY', KEYS[2], 'skipped', 1)
        redis.call('HINCRBY', KEYS[2], 'duplicates', 1)
      end
      out[i] = 3
    end
  end
end
return out
`;

/**
 * What a record does to the one already stored for its item (columns: the
 * record written; rows: what is stored). "kept" leaves the stored record and
 * the counters as they are; "replaced" moves the counters from the old status
 * to the new one (nothing moves when status, bytes and error code are equal).
 *
 * | stored \ written     | ok       | failed   | skipped  |
 * | -------------------- | -------- | -------- | -------- |
 * | nothing (claimed)    | written  | written  | written  |
 * | ok                   | replaced | kept     | kept     |
 * | failed               | replaced | replaced | replaced |
 * | skipped              | replaced | kept     | replaced |
 *
 * Refused whatever is stored, and nothing is written:
 * - a record from a listing that does not own the item (a duplicate: its
 *   listing was counted once as skipped and duplicate when claimed): -1;
 * - a record of a batch whose BullMQ lock the writer no longer holds (it was
 *   silent past `--lock-ms` and the batch was taken back, and maybe finished
 *   by another worker): -2. Checked here, in the same script as the write, so
 *   no record slips in between a check and the write.
 *
 * An item with a record is never run again by its listing (see CLAIM), so a
 * record that follows an ok or a skipped one comes from a worker that ran the
 * item at the same time and lost: its failure (a part file the other worker
 * renamed, a request cut short) says nothing about the file, which is on
 * disk. A failure only ever replaces a failure; a "skipped" never replaces a
 * saved file (a rerun that finds the file there).
 */
const RECORD = `
if redis.call('GET', KEYS[5]) ~= ARGV[9] then return -2 end
local key, listing, status, code = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local summary = status .. '\\t' .. ARGV[4] .. '\\t' .. code
local value = redis.call('HGET', KEYS[1], key)
if value then
  local owner = string.match(value, '^[^\\n]*')
  if owner ~= listing then return -1 end
  local old = string.match(value, '^[^\\n]*\\n([^\\n]*)')
  if old == summary then
    redis.call('HSET', KEYS[1], key, listing .. '\\n' .. summary .. '\\n' .. ARGV[7])
    return 0
  end
  if old then
    local oldStatus, oldBytes, oldCode = string.match(old, '^(%a+)\\t(%d+)\\t(.*)$')
    if status == 'failed' and oldStatus ~= 'failed' then return 0 end
    if status == 'skipped' and oldStatus == 'ok' then return 0 end
    redis.call('HINCRBY', KEYS[2], oldStatus, -1)
    if oldBytes ~= '0' then redis.call('HINCRBY', KEYS[2], 'bytes', '-' .. oldBytes) end
    if oldCode ~= '' then redis.call('HINCRBY', KEYS[3], oldCode, -1) end
  end
end
redis.call('HSET', KEYS[1], key, listing .. '\\n' .. summary .. '\\n' .. ARGV[7])
redis.call('HINCRBY', KEYS[2], status, 1)
redis.call('HINCRBY', KEYS[2], 'bytes', ARGV[4])
if code ~= '' then
  redis.call('HINCRBY', KEYS[3], code, 1)
  redis.call('HSETNX', KEYS[4], code, ARGV[6])
end
redis.call('HSETNX', KEYS[2], 'firstAt', ARGV[8])
redis.call('HSET', KEYS[2], 'lastAt', ARGV[8])
return 1
`;

const NAMES = `
local out = {}
local at = 2
for i = 1, tonumber(ARGV[1]) do
  local owner = ARGV[at]
  local count = tonumber(ARGV[at + 1])
  out[i] = 0
  for c = 1, count do
    local folded = ARGV[at + 1 + c]
    if out[i] == 0 then
      local current = redis.call('HGET', KEYS[1], folded)
      if not current then redis.call('HSET', KEYS[1], folded, owner) end
      if not current or current == owner then out[i] = c end
    end
  end
  at = at + 2 + count
end
return out
`;

const LISTED = `
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'listed', tonumber(ARGV[2]))
  return 1
end
return 0
`;

/** Redis commands the scripts add to a client. */
interface Scripts {
  imgdlClaim(items: string, counts: string, dupes: string, ...args: Array<string | number>): Promise<number[]>;
  imgdlRecord(
    items: string,
    counts: string,
    errors: string,
    examples: string,
    lock: string,
    ...args: Array<string | number>
  ): Promise<Recorded>;
  imgdlNames(names: string, ...args: Array<string | number>): Promise<number[]>;
  imgdlListed(batches: string, counts: string, jobId: string, items: number): Promise<number>;
}

/** The key an item is remembered under: a digest of its URL, or of its listing when it has no usable URL. */
export function itemKey(url: URL | undefined, listing: string): string {
  const text = url === undefined ? `listing\n${listing}` : url.href;
  return createHash('sha1').update(text).digest('base64url').slice(0, 16);
}

/** A name to claim and the candidates to try, in order, each with its folded form. */
export interface NameRequest {
  owner: string;
  candidates: Array<{ name: string; folded: string }>;
}

/** The queue's own keys and scripts on one connection. */
export class Store {
  readonly #redis: Redis & Scripts;
  readonly #key: (name: string) => string;

  constructor(redis: Redis, queue: string) {
    redis.defineCommand('imgdlClaim', { numberOfKeys: 3, lua: CLAIM });
    redis.defineCommand('imgdlRecord', { numberOfKeys: 5, lua: RECORD });
    redis.defineCommand('imgdlNames', { numberOfKeys: 1, lua: NAMES });
    redis.defineCommand('imgdlListed', { numberOfKeys: 2, lua: LISTED });
    this.#redis = redis as Redis & Scripts;
    this.#key = (name) => `imgdl:${queue}:${name}`;
  }

  /** The connection the store uses. */
  get redis(): Redis {
    return this.#redis;
  }

  /** Claims a batch's items for its job; see {@link Claim}. `items` are `[key, position]`. */
  async claim(jobId: string, items: ReadonlyArray<readonly [key: string, position: number]>): Promise<Claim[]> {
    if (items.length === 0) return [];
    const args = items.flatMap(([key, position]) => [key, position]);
    return (await this.#redis.imgdlClaim(
      this.#key('items'),
      this.#key('counts'),
      this.#key('dupes'),
      jobId,
      items.length,
      ...args,
    )) as Claim[];
  }

  /**
   * Writes an item's record for the batch held under `lock`, as the table
   * above the RECORD script says, and moves the counters only if the record
   * is new or its status, bytes or error code changed. Resolves to one of
   * {@link Recorded}: nothing is written once `lock` is not held any more.
   */
  record(key: string, listing: string, result: ItemResult, lock: BatchLock): Promise<Recorded> {
    const code = result.error?.code ?? '';
    return this.#redis.imgdlRecord(
      this.#key('items'),
      this.#key('counts'),
      this.#key('errors'),
      this.#key('examples'),
      lock.key,
      key,
      listing,
      result.status,
      result.bytes,
      code,
      result.url,
      JSON.stringify(result),
      Date.now(),
      lock.token,
    );
  }

  /** For each request, the index of the first candidate that was free or already its owner's; -1 when none was. */
  async claimNames(requests: readonly NameRequest[]): Promise<number[]> {
    if (requests.length === 0) return [];
    const args: Array<string | number> = [requests.length];
    for (const request of requests) args.push(request.owner, request.candidates.length, ...request.candidates.map((c) => c.folded));
    const chosen = await this.#redis.imgdlNames(this.#key('names'), ...args);
    return chosen.map((c) => c - 1);
  }

  /** Counts a job's items as listed, once per job ID; true the first time. */
  async listed(jobId: string, items: number): Promise<boolean> {
    return (await this.#redis.imgdlListed(this.#key('batches'), this.#key('counts'), jobId, items)) === 1;
  }

  /** Which of `jobIds` were already listed by an earlier enqueue. */
  async wereListed(jobIds: readonly string[]): Promise<boolean[]> {
    if (jobIds.length === 0) return [];
    return (await this.#redis.smismember(this.#key('batches'), ...jobIds)).map((n) => n === 1);
  }

  /** True while the batch's lock is still `lock.token`'s: a writer about to put a shard in place asks first. */
  async holds(lock: BatchLock): Promise<boolean> {
    return (await this.#redis.get(lock.key)) === lock.token;
  }

  /** Marks a job's batch as finished. */
  async finished(jobId: string): Promise<void> {
    await this.#redis.sadd(this.#key('done'), jobId);
  }

  /** Everything `status` shows from the store, in one round trip. */
  async read(): Promise<{
    counts: Record<string, string>;
    errors: Record<string, string>;
    examples: Record<string, string>;
    done: number;
  }> {
    const replies = await this.#redis
      .multi()
      .hgetall(this.#key('counts'))
      .hgetall(this.#key('errors'))
      .hgetall(this.#key('examples'))
      .scard(this.#key('done'))
      .exec();
    const value = <T>(i: number): T => {
      const [error, result] = replies?.[i] ?? [new Error('no reply'), undefined];
      if (error) throw error;
      return result as T;
    };
    return { counts: value(0), errors: value(1), examples: value(2), done: value(3) };
  }

  /** Every stored record, in no particular order (HSCAN, so a large queue streams). */
  async *records(): AsyncGenerator<ItemResult> {
    let cursor = '0';
    do {
      const [next, fields] = await this.#redis.hscan(this.#key('items'), cursor, 'COUNT', 1000);
      cursor = next;
      for (let i = 1; i < fields.length; i += 2) {
        const value = fields[i]!;
        const json = value.indexOf('\n', value.indexOf('\n') + 1);
        if (json !== -1) yield JSON.parse(value.slice(json + 1)) as ItemResult;
      }
    } while (cursor !== '0');
  }
}
