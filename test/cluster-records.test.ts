/**
 * The queue's records, written straight through the store against a real
 * redis-server: what a record does to the one stored before it (the table
 * above the RECORD script in store.ts), and that only the worker holding a
 * batch's lock writes any.
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Recorded, Store, type BatchLock } from '../src/cluster/store.js';
import type { ErrorCode } from '../src/errors.js';
import type { ItemResult } from '../src/record/record.js';
import { startRedis } from './redis.js';

function result(status: ItemResult['status'], bytes: number, code?: ErrorCode): ItemResult {
  return {
    url: 'http://h/a.jpg',
    source: 'list',
    line: 1,
    status,
    path: status === 'ok' ? 'a.jpg' : null,
    bytes,
    ms: Math.random() * 100,
    httpStatus: 200,
    attempts: 1,
    contentType: null,
    sniffedType: null,
    skipReason: status === 'skipped' ? 'exists' : null,
    error: code ? { code, message: `failed with ${code}` } : null,
  };
}

/** One record of each kind the table names. */
const RECORDS = {
  ok: result('ok', 2000),
  failed: result('failed', 0, 'HTTP_STATUS'),
  'failed otherwise': result('failed', 0, 'ETIMEDOUT'),
  skipped: result('skipped', 0),
} satisfies Record<string, ItemResult>;
type Kind = keyof typeof RECORDS;

/** A store on a fresh redis-server, and a lock on `jobs` as BullMQ keeps it for the worker holding each. */
async function freshStore(...jobs: string[]): Promise<{ store: Store; redis: Redis; locks: BatchLock[] }> {
  const server = await startRedis();
  const redis = new Redis(server.url);
  const locks = [];
  for (const job of jobs) {
    const lock = { key: `bull:imgdl:${job}:lock`, token: `token of ${job}` };
    await redis.set(lock.key, lock.token, 'PX', 600_000);
    locks.push(lock);
  }
  return { store: new Store(redis, 'imgdl'), redis, locks };
}

/** The records stored, and the counters, as `status` reads them. */
async function stored(store: Store): Promise<{ records: ItemResult[]; counts: Record<string, string>; errors: Record<string, string> }> {
  const records = [];
  for await (const r of store.records()) records.push(r);
  const { counts, errors } = await store.read();
  // A counter never moved is not there: read as 0, as `status` does.
  return { records, counts: { ok: '0', failed: '0', skipped: '0', bytes: '0', ...counts }, errors };
}

/** What the store holds when `kind` is an item's only record. */
function holding(kind: Kind): { status: string; counts: Record<string, string>; errors: Record<string, string> } {
  const record = RECORDS[kind];
  const counts: Record<string, string> = { bytes: String(record.bytes) };
  for (const status of ['ok', 'failed', 'skipped']) counts[status] = status === record.status ? '1' : '0';
  const errors: Record<string, string> = {};
  for (const code of ['HTTP_STATUS', 'ETIMEDOUT']) if (code === record.error?.code) errors[code] = '1';
  return { status: record.status, counts, errors };
}

describe("the queue's records", () => {
  it.each<[stored: Kind | null, written: Kind, kept: Kind, answer: Recorded]>([
    [null, 'ok', 'ok', Recorded.Counted],
    [null, 'failed', 'failed', Recorded.Counted],
    [null, 'skipped', 'skipped', Recorded.Counted],
    ['ok', 'ok', 'ok', Recorded.Stood],
    ['ok', 'failed', 'ok', Recorded.Stood],
    ['ok', 'skipped', 'ok', Recorded.Stood],
    ['failed', 'ok', 'ok', Recorded.Counted],
    ['failed', 'failed', 'failed', Recorded.Stood],
    ['failed', 'failed otherwise', 'failed otherwise', Recorded.Counted],
    ['failed', 'skipped', 'skipped', Recorded.Counted],
    ['skipped', 'ok', 'ok', Recorded.Counted],
    ['skipped', 'failed', 'skipped', Recorded.Stood],
    ['skipped', 'skipped', 'skipped', Recorded.Stood],
  ])('stored %s, then %s written: %s is kept (answer %i)', async (before, written, kept, answer) => {
    const { store, redis, locks } = await freshStore('b-1');
    const lock = locks[0]!;
    try {
      await store.claim('b-1', [['k', 0]]);
      if (before !== null) await store.record('k', 'b-1#0', RECORDS[before], lock);
      expect(await store.record('k', 'b-1#0', RECORDS[written], lock)).toBe(answer);
      const now = await stored(store);
      const expected = holding(kept);
      expect(now.records.map((r) => [r.status, r.error?.code])).toEqual([[expected.status, RECORDS[kept].error?.code]]);
      expect(now.counts).toMatchObject(expected.counts);
      // A code no record carries any more reads 0, or is absent when none ever did.
      expect(Object.fromEntries(Object.entries(now.errors).filter(([, n]) => n !== '0'))).toEqual(expected.errors);
    } finally {
      redis.disconnect();
    }
  });

  it.each<Kind>(['ok', 'failed', 'skipped'])(
    "a duplicate's %s record is refused: only the listing that owns an item records it",
    async (written) => {
      const { store, redis, locks } = await freshStore('b-1', 'b-2');
      try {
        expect(await store.claim('b-1', [['k', 0]])).toEqual([0]);
        // Another batch lists the same URL: its listing is counted once as a skipped duplicate, and never run.
        expect(await store.claim('b-2', [['k', 0]])).toEqual([3]);
        await store.record('k', 'b-1#0', RECORDS.ok, locks[0]!);
        expect(await store.record('k', 'b-2#0', RECORDS[written], locks[1]!)).toBe(Recorded.NotOwner);
        const now = await stored(store);
        expect(now.records.map((r) => r.status)).toEqual(['ok']);
        expect(now.counts).toMatchObject({ ok: '1', failed: '0', skipped: '1', duplicates: '1', bytes: '2000' });
      } finally {
        redis.disconnect();
      }
    },
  );

  it.each<[lock: string, written: Kind]>([
    ['gone (expired, or the job finished)', 'ok'],
    ['gone (expired, or the job finished)', 'failed'],
    ['gone (expired, or the job finished)', 'skipped'],
    ["another worker's", 'ok'],
    ["another worker's", 'failed'],
    ["another worker's", 'skipped'],
  ])('a batch whose lock is %s writes no %s record', async (lockState, written) => {
    const { store, redis, locks } = await freshStore('b-1');
    const lock = locks[0]!;
    try {
      await store.claim('b-1', [
        ['k', 0],
        ['k2', 1],
      ]);
      // The item is saved, and then the lock is not this worker's any more.
      await store.record('k', 'b-1#0', RECORDS.ok, lock);
      if (lockState.startsWith('gone')) await redis.del(lock.key);
      else await redis.set(lock.key, 'token of the worker that took it over');
      // The worker that held it first wakes up and writes with its own token.
      expect(await store.record('k', 'b-1#0', RECORDS[written], lock)).toBe(Recorded.LockLost);
      // Nor a record for an item that had none.
      expect(await store.record('k2', 'b-1#1', RECORDS[written], lock)).toBe(Recorded.LockLost);
      const now = await stored(store);
      expect(now.records.map((r) => r.status)).toEqual(['ok']);
      expect(now.counts).toMatchObject({ ok: '1', failed: '0', skipped: '0', bytes: '2000' });
      expect(now.errors).toEqual({});
    } finally {
      redis.disconnect();
    }
  });

  it('count an item once however often its record is written, and move the counters when it changes', async () => {
    const { store, redis, locks } = await freshStore('b-1', 'b-2');
    const [b1, b2] = locks as [BatchLock, BatchLock];
    try {
      const counts = async (): Promise<Record<string, string>> => (await store.read()).counts;
      expect(
        await store.claim('b-1', [
          ['k1', 0],
          ['k1', 1],
          ['k2', 2],
        ]),
      ).toEqual([0, 3, 0]);
      // The same batch claimed again (a re-delivery): its own items resume, the duplicate is not counted twice.
      expect(
        await store.claim('b-1', [
          ['k1', 0],
          ['k1', 1],
          ['k2', 2],
        ]),
      ).toEqual([1, 3, 1]);
      expect(await counts()).toMatchObject({ skipped: '1', duplicates: '1' });

      expect(await store.record('k1', 'b-1#0', RECORDS.failed, b1)).toBe(1);
      expect(await store.record('k1', 'b-1#0', RECORDS.failed, b1)).toBe(0);
      expect(await counts()).toMatchObject({ failed: '1', bytes: '0' });
      expect((await store.read()).errors).toEqual({ HTTP_STATUS: '1' });
      // It succeeds on a later run: failed goes down, ok up, once.
      expect(await store.record('k1', 'b-1#0', RECORDS.ok, b1)).toBe(1);
      expect(await store.record('k1', 'b-1#0', RECORDS.ok, b1)).toBe(0);
      // A later run that finds the file there does not turn a saved item into a skipped one.
      expect(await store.record('k1', 'b-1#0', RECORDS.skipped, b1)).toBe(0);
      // Only the listing that owns an item records it.
      expect(await store.record('k1', 'b-2#0', RECORDS.failed, b2)).toBe(-1);
      expect(await counts()).toMatchObject({ ok: '1', failed: '0', skipped: '1', bytes: '2000' });
      expect((await store.read()).errors).toEqual({ HTTP_STATUS: '0' });
      expect(await store.claim('b-1', [['k1', 0]])).toEqual([2]);
      const records = [];
      for await (const r of store.records()) records.push(r);
      expect(records.map((r) => r.status)).toEqual(['ok']);
    } finally {
      redis.disconnect();
    }
  });
});
