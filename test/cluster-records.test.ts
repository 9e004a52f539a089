/**
 * The queue's records, written straight through the store against a real
 * redis-server: what a record does to the one stored before it (the table
 * above the RECORD script in store.ts).
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Recorded, Store } from '../src/cluster/store.js';
import type { ErrorCode } from '../src/errors.js';
import type { ItemResult } from '../src/record.js';
import { startRedis } from './redis.js';

function result(status: ItemResult['status'], bytes: number, code?: ErrorCode): ItemResult {
  return {
    url: 'http://h/a.jpg', source: 'list', line: 1, status, path: status === 'ok' ? 'a.jpg' : null, bytes, ms: Math.random() * 100,
    httpStatus: 200, attempts: 1, contentType: null, sniffedType: null, skipReason: status === 'skipped' ? 'exists' : null,
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

/** A store on a fresh redis-server. */
async function freshStore(): Promise<{ store: Store; redis: Redis }> {
  const server = await startRedis();
  const redis = new Redis(server.url);
  return { store: new Store(redis, 'imgdl'), redis };
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
    const { store, redis } = await freshStore();
    try {
      await store.claim('b-1', [['k', 0]]);
      if (before !== null) await store.record('k', 'b-1#0', RECORDS[before]);
      expect(await store.record('k', 'b-1#0', RECORDS[written])).toBe(answer);
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

  it.each<Kind>(['ok', 'failed', 'skipped'])("a duplicate's %s record is refused: only the listing that owns an item records it", async (written) => {
    const { store, redis } = await freshStore();
    try {
      expect(await store.claim('b-1', [['k', 0]])).toEqual([0]);
      // Another batch lists the same URL: its listing is counted once as a skipped duplicate, and never run.
      expect(await store.claim('b-2', [['k', 0]])).toEqual([3]);
      await store.record('k', 'b-1#0', RECORDS.ok);
      expect(await store.record('k', 'b-2#0', RECORDS[written])).toBe(Recorded.NotOwner);
      const now = await stored(store);
      expect(now.records.map((r) => r.status)).toEqual(['ok']);
      expect(now.counts).toMatchObject({ ok: '1', failed: '0', skipped: '1', duplicates: '1', bytes: '2000' });
    } finally {
      redis.disconnect();
    }
  });

  it('count an item once however often its record is written, and move the counters when it changes', async () => {
    const { store, redis } = await freshStore();
    try {
      const counts = async (): Promise<Record<string, string>> => (await store.read()).counts;
      expect(await store.claim('b-1', [['k1', 0], ['k1', 1], ['k2', 2]])).toEqual([0, 3, 0]);
      // The same batch claimed again (a re-delivery): its own items resume, the duplicate is not counted twice.
      expect(await store.claim('b-1', [['k1', 0], ['k1', 1], ['k2', 2]])).toEqual([1, 3, 1]);
      expect(await counts()).toMatchObject({ skipped: '1', duplicates: '1' });

      expect(await store.record('k1', 'b-1#0', RECORDS.failed)).toBe(1);
      expect(await store.record('k1', 'b-1#0', RECORDS.failed)).toBe(0);
      expect(await counts()).toMatchObject({ failed: '1', bytes: '0' });
      expect((await store.read()).errors).toEqual({ HTTP_STATUS: '1' });
      // It succeeds on a later run: failed goes down, ok up, once.
      expect(await store.record('k1', 'b-1#0', RECORDS.ok)).toBe(1);
      expect(await store.record('k1', 'b-1#0', RECORDS.ok)).toBe(0);
      // A later run that finds the file there does not turn a saved item into a skipped one.
      expect(await store.record('k1', 'b-1#0', RECORDS.skipped)).toBe(0);
      // Only the listing that owns an item records it.
      expect(await store.record('k1', 'b-2#0', RECORDS.failed)).toBe(-1);
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
