/**
 * Per-host limits shared by every worker of a queue, against a real
 * redis-server. First the gate itself, each gate on its own connection
 * standing for one worker: concurrency is counted (grants minus releases),
 * spacing is read from the gates' own answers, and round trips are counted
 * by the server (INFO commandstats). Then three workers of the built CLI,
 * measured at the fixture servers.
 */
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { http } from 'msw';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CAP_WAIT_MS, PAUSES_FRESH_MS, RedisHostGate, type RedisHostGateOptions } from '../src/cluster/host-gate.js';
import { producerOptions, parseQueueUrl, workerOptions } from '../src/cluster/connection.js';
import { queueStatus } from '../src/cluster/status.js';
import type { FixtureServer } from '../src/dev/fixture-server.js';
import { listFile, startCli, until } from './cluster-helpers.js';
import { listFiles, runCli, serve, tempDir } from './helpers.js';
import { startRedis, type RedisServer } from './redis.js';

// The cluster runs start Node processes that load BullMQ: on a busy two-core machine, seconds each.
vi.setConfig({ testTimeout: 180_000 });

const HOST = 'img.example:443';

const clients: Redis[] = [];
const gates: RedisHostGate[] = [];
afterEach(async () => {
  for (const gate of gates.splice(0)) gate.close();
  for (const client of clients.splice(0)) client.disconnect();
});

/** A connection of its own, as each worker has. */
function connect(server: RedisServer, kind: 'plain' | 'worker' | 'producer' = 'plain'): Redis {
  const address = parseQueueUrl(server.url);
  const client =
    kind === 'worker'
      ? new Redis(workerOptions(address))
      : kind === 'producer'
        ? new Redis(producerOptions(address))
        : new Redis(server.url);
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

/** A gate on a connection of its own: one worker's. */
function worker(server: RedisServer, options: RedisHostGateOptions, client = connect(server)): RedisHostGate {
  const gate = new RedisHostGate(client, 'imgdl', options);
  gates.push(gate);
  return gate;
}

/** How many times the server ran a command (`evalsha`, `zrem`...) since it started. */
async function calls(client: Redis, command: string): Promise<number> {
  const info = await client.info('commandstats');
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
}

describe('RedisHostGate', () => {
  it('two workers share one --per-host cap: the second waits briefly, and gets the slot the first frees', async () => {
    const server = await startRedis();
    const aClient = connect(server);
    const a = worker(server, { perHost: 2 }, aClient);
    const b = worker(server, { perHost: 2 });
    expect(await a.acquire(HOST)).toBe(0);
    expect(await b.acquire(HOST)).toBe(0);
    // The holders may be in another process: a short wait to ask again, not UNTIL_RELEASE.
    expect(await a.acquire(HOST)).toBe(CAP_WAIT_MS);
    expect(await b.acquire(HOST)).toBe(CAP_WAIT_MS);
    // Another host has its own cap.
    expect(await b.acquire('other.example')).toBe(0);
    a.release(HOST);
    // A release is sent without waiting for it; a round trip on the same connection is one after it.
    await aClient.ping();
    expect(await b.acquire(HOST)).toBe(0);
    expect(await a.acquire(HOST)).toBe(CAP_WAIT_MS);
  });

  it('four workers asking at once never hold more than the cap, and reach it', async () => {
    const server = await startRedis();
    const cap = 3;
    const workers = Array.from({ length: 4 }, () => worker(server, { perHost: cap }));
    let inFlight = 0;
    let peak = 0;
    let granted = 0;
    // Each worker keeps asking; a grant is held for a few ticks, then counted out before it is released.
    await Promise.all(
      workers.map(async (gate) => {
        while (granted < 200) {
          const wait = await gate.acquire(HOST);
          if (wait !== 0) {
            await delay(1);
            continue;
          }
          granted++;
          peak = Math.max(peak, ++inFlight);
          await delay(Math.floor(Math.random() * 3));
          inFlight--;
          gate.release(HOST);
        }
      }),
    );
    expect(peak).toBeLessThanOrEqual(cap);
    expect(peak).toBe(cap);
  });

  it("spaces the starts of two workers by 1/rate, on the server's clock", async () => {
    const server = await startRedis();
    const a = worker(server, { rate: 10 });
    const b = worker(server, { rate: 10 });
    expect(await a.acquire(HOST)).toBe(0);
    const waitB = await b.acquire(HOST);
    expect(waitB).toBeGreaterThan(0);
    expect(waitB).toBeLessThanOrEqual(100);
    const waitA = await a.acquire(HOST);
    expect(waitA).toBeGreaterThan(0);
    expect(waitA).toBeLessThanOrEqual(waitB);
    // Asking again once the answer is over is granted; then the other waits a whole spacing again.
    await delay(waitB);
    expect(await b.acquire(HOST)).toBe(0);
    expect(await a.acquire(HOST)).toBeGreaterThan(50);
    // No cap: nothing to release, and no lease was kept.
    b.release(HOST);
    const client = connect(server);
    expect(await client.exists(`imgdl:imgdl:leases:${HOST}`)).toBe(0);
  });

  it('lets through no more than the rate when three workers follow their answers', async () => {
    const server = await startRedis();
    const rate = 20;
    const workers = Array.from({ length: 3 }, () => worker(server, { rate }));
    const grants = 15;
    let granted = 0;
    const started = performance.now();
    await Promise.all(
      workers.map(async (gate) => {
        while (granted < grants) {
          const wait = await gate.acquire(HOST);
          if (wait === 0) granted++;
          else await delay(wait);
        }
      }),
    );
    // A lower bound only: the first start is free, then each one waits its spacing.
    expect(performance.now() - started).toBeGreaterThanOrEqual(((grants - 1) * 1000) / rate - 5);
  });

  it('a pause stored by one worker holds the others, and starts only once', async () => {
    const server = await startRedis();
    const a = worker(server, { perHost: 4 });
    const b = worker(server, { rate: 100 });
    const c = worker(server, {});
    // C reads the queue's pauses now (none), so its copy is fresh when A's pause arrives.
    expect(await c.acquire(HOST)).toBe(0);
    const now = Date.now();
    expect(await a.pause(HOST, now + 3000)).toBe(true);
    // Shorter: not stored. Longer: stored, but a pause was in force, so it is not news.
    expect(await b.pause(HOST, now + 2000)).toBe(false);
    expect(await b.pause(HOST, now + 4000)).toBe(false);
    expect(await c.pause(HOST, now + 3500)).toBe(false);
    for (const gate of [a, b]) {
      const wait = await gate.acquire(HOST);
      expect(wait).toBeGreaterThan(3000);
      expect(wait).toBeLessThanOrEqual(4000);
    }
    // C, without cap or rate, sees it once its copy is read again.
    await until(async () => (await c.acquire(HOST)) > 3000, 'the third worker to see the pause', 5000);
    // Other hosts are not held.
    expect(await a.acquire('other.example')).toBe(0);
    expect(await c.acquire('other.example')).toBe(0);
    // A pause in the past stores nothing.
    expect(await a.pause('other.example', Date.now() - 1)).toBe(false);
  });

  it('a pause that ended is news again', async () => {
    const server = await startRedis();
    const a = worker(server, { perHost: 1 });
    const b = worker(server, {});
    expect(await a.pause(HOST, Date.now() + 150)).toBe(true);
    await until(async () => (await a.acquire(HOST)) === 0, 'the pause to end', 5000);
    expect(await b.pause(HOST, Date.now() + 150)).toBe(true);
  });

  it('without cap or rate, acquires cost no round trip each: one reading of the pauses per 100 ms at most', async () => {
    const server = await startRedis();
    // Never waiting for a reading, so that a stalled machine cannot turn the answer below into a promise.
    const gate = worker(server, { pausesStaleMs: 600_000 });
    const client = connect(server);
    const before = (await calls(client, 'evalsha')) + (await calls(client, 'eval'));
    let answers = 0;
    const started = Date.now();
    for (let i = 0; i < 20_000; i++) {
      const wait = await gate.acquire(`h${i % 100}.example`);
      expect(wait).toBe(0);
      gate.release(`h${i % 100}.example`);
      answers++;
    }
    const elapsed = Date.now() - started;
    const after = (await calls(client, 'evalsha')) + (await calls(client, 'eval'));
    expect(answers).toBe(20_000);
    // One reading per PAUSES_FRESH_MS of the loop at most (plus the first).
    expect(after - before).toBeLessThanOrEqual(Math.floor(elapsed / PAUSES_FRESH_MS) + 2);
    expect(await calls(client, 'zrem')).toBe(0);
    // A copy older than PAUSES_FRESH_MS is read again, in the background: this acquire is answered from the old one.
    await delay(PAUSES_FRESH_MS + 10);
    expect(gate.acquire(HOST)).toBe(0);
    await until(
      async () => (await calls(client, 'evalsha')) + (await calls(client, 'eval')) >= after + 1,
      'the pauses to be read again',
      5000,
    );
  });

  it("a dead worker's lease frees its slot after the lease time; a live one's is renewed", async () => {
    const server = await startRedis();
    // The victim takes the one slot, then its connection dies with it: no release, no renewal.
    const victimClient = connect(server);
    const victim = worker(server, { perHost: 1, leaseMs: 400 }, victimClient);
    expect(await victim.acquire(HOST)).toBe(0);
    victimClient.disconnect();
    const other = worker(server, { perHost: 1, leaseMs: 400 });
    expect(await other.acquire(HOST)).toBe(CAP_WAIT_MS);
    await until(async () => (await other.acquire(HOST)) === 0, "the dead worker's lease to expire", 10_000);

    // `other` now holds the slot and lives: it renews every 200 ms, so the slot stays taken for several lease times.
    const third = worker(server, { perHost: 1, leaseMs: 400 });
    for (let i = 0; i < 12; i++) {
      expect(await third.acquire(HOST)).toBe(CAP_WAIT_MS);
      await delay(100);
    }
    other.release(HOST);
    await until(async () => (await third.acquire(HOST)) === 0, 'the released slot', 5000);
  });

  it('a worker that closes its gate gives its leases back at once', async () => {
    const server = await startRedis();
    const client = connect(server);
    const closing = worker(server, { perHost: 2 }, client);
    expect(await closing.acquire(HOST)).toBe(0);
    expect(await closing.acquire(HOST)).toBe(0);
    const other = worker(server, { perHost: 2 });
    expect(await other.acquire(HOST)).toBe(CAP_WAIT_MS);
    closing.close();
    await client.ping();
    expect(await other.acquire(HOST)).toBe(0);
    expect(await other.acquire(HOST)).toBe(0);
  });

  it('leaves no key behind once a host is idle: every key expires', async () => {
    const server = await startRedis();
    const client = connect(server);
    const gate = worker(server, { perHost: 2, rate: 20, leaseMs: 300 });
    expect(await gate.acquire(HOST)).toBe(0);
    expect(await gate.pause('paused.example', Date.now() + 300)).toBe(true);
    const keys = (await client.keys('imgdl:imgdl:*')).sort();
    expect(keys).toEqual(['imgdl:imgdl:leases:img.example:443', 'imgdl:imgdl:next:img.example:443', 'imgdl:imgdl:pauses']);
    const ttls = await Promise.all(keys.map((key) => client.pttl(key)));
    expect(ttls.every((ttl) => ttl > 0)).toBe(true);
    expect(ttls).toEqual([expect.any(Number), expect.any(Number), expect.any(Number)]);
    expect(ttls[0]).toBeLessThanOrEqual(300);
    expect(ttls[1]).toBeLessThanOrEqual(50);
    expect(ttls[2]).toBeLessThanOrEqual(300);
    // Released: the lease is gone at once; the rest expire on their own.
    gate.release(HOST);
    await until(async () => (await client.dbsize()) === 0, 'every key to expire', 5000);
  });

  it("Redis away: acquires reject on a connection that fails fast and wait on a worker's; releases and pauses never reject", async () => {
    const server = await startRedis();
    const fastClient = connect(server, 'producer');
    await fastClient.connect();
    const fast = worker(server, { perHost: 1 }, fastClient);
    const patient = worker(server, { perHost: 1 }, connect(server, 'worker'));
    await fast.acquire('held.example');
    expect(await fast.acquire('held.example')).toBe(CAP_WAIT_MS);
    await server.kill();
    await expect(fast.acquire(HOST)).rejects.toThrow();
    // The lease it held is not released in Redis; that is no error for the caller.
    fast.release('held.example');
    await expect(fast.pause(HOST, Date.now() + 1000)).resolves.toBe(true);
    const waiting = patient.acquire(HOST);
    let answered = false;
    void Promise.resolve(waiting).then(() => (answered = true));
    await delay(300);
    expect(answered).toBe(false);
    await server.restart();
    expect(await waiting).toBe(0);
  });
});

/** A fixture server that notes when each request to it starts (`performance.now()`), and `items` of its images. */
async function timedHost(
  items: number,
  options: { latencyMs?: number; holdUntilInFlight?: number; answer?: (n: number) => Response | undefined } = {},
): Promise<{ server: FixtureServer; starts: number[]; urls: string[] }> {
  const starts: number[] = [];
  const { answer, ...serverOptions } = options;
  const server = await serve({
    ...serverOptions,
    handlers: [
      http.get('*/gen/:name', () => {
        starts.push(performance.now());
        return answer?.(starts.length);
      }),
    ],
  });
  const urls = Array.from({ length: items }, (_, i) => server.url(`/gen/${i + 1}.jpg?bytes=1000`));
  return { server, starts, urls };
}

/** What one worker of {@link threeWorkers} printed: its summary and its log. */
interface WorkerRun {
  summary: { ok: number; batches: number };
  stderr: string;
}

/**
 * Starts three workers of the built CLI, waits until all three listen on the queue (so that each takes
 * batches), enqueues `urls` in batches of 5 with `flags`, waits until every item has a record, and stops
 * the workers.
 */
async function threeWorkers(urls: readonly string[], flags: string[], workerFlags = ['-c', '8', '-q']): Promise<WorkerRun[]> {
  const redis = await startRedis();
  const dir = await tempDir();
  const out = path.join(dir, 'out');
  const workers = [0, 1, 2].map(() => startCli(['worker', '--queue', redis.url, '-o', out, '--json', ...workerFlags]));
  await until(async () => (await queueStatus(redis.url)).workers === 3, 'three workers to listen on the queue', 120_000);
  const added = await runCli(['enqueue', '--queue', redis.url, '-i', await listFile(dir, urls), '--batch', '5', ...flags]);
  expect(added.code, added.stderr).toBe(0);
  await until(async () => (await queueStatus(redis.url)).ok === urls.length, 'every item to be saved', 120_000);
  for (const worker of workers) worker.child.kill('SIGTERM');
  const runs: WorkerRun[] = [];
  for (const worker of workers) {
    const run = await worker.done;
    expect(run.code, run.stderr).toBe(143);
    runs.push({ summary: JSON.parse(run.stdout) as WorkerRun['summary'], stderr: run.stderr });
  }
  expect(await listFiles(out)).toHaveLength(urls.length);
  // Each worker took batches: what held, held across processes, not within one.
  for (const { summary } of runs) expect(summary.batches).toBeGreaterThan(0);
  expect(runs.map((r) => r.summary.batches).reduce((a, b) => a + b)).toBe(Math.ceil(urls.length / 5));
  return runs;
}

describe('three workers of one queue', () => {
  it('keep the per-host --rate across them, measured at the server', async () => {
    const rate = 10;
    const hosts = [await timedHost(30), await timedHost(30)];
    await threeWorkers([...hosts[0]!.urls, ...hosts[1]!.urls], ['--rate', `${rate}/s`]);
    // Redis grants starts at least 1/rate apart; a request reaches the server some time after its grant
    // (the worker opens its part file first), never before. With LAG the most that may take on a busy
    // machine, the k-th and j-th starts the server sees are at least (j - k) / rate - LAG apart: the
    // j-th is no earlier than the j-th grant, the k-th no later than the k-th grant plus LAG.
    const LAG = 500;
    for (const { starts, server } of hosts) {
      expect(server.stats.requests).toBe(30);
      const sorted = [...starts].sort((a, b) => a - b);
      for (let k = 0; k < sorted.length; k++) {
        for (let j = k + 1; j < sorted.length; j++) {
          expect(sorted[j]! - sorted[k]!, `requests ${k} to ${j}`).toBeGreaterThanOrEqual(((j - k) * 1000) / rate - LAG);
        }
      }
      // Over the whole run: 30 starts take at least 2.9 s less LAG (three workers on their own would take a third of that).
      expect(sorted.at(-1)! - sorted[0]!).toBeGreaterThanOrEqual(2900 - LAG);
    }
  });

  it('keep the --per-host cap across them, counted in flight at the server', async () => {
    const { server, urls } = await timedHost(40, { latencyMs: 100 });
    await threeWorkers(urls, ['--per-host', '2']);
    expect(server.stats.requests).toBe(40);
    // Three workers of -c 8 would have 24 in flight; the queue's cap holds them to 2, and they reach it.
    expect(server.stats.peakInFlight).toBe(2);
  });

  it("all hold back for a 429's Retry-After, and the pause is logged once across them", async () => {
    let pausedAt = 0;
    // With -c 1 each, three requests in flight at once are one from each worker: all three get the 429.
    // Six batches: two workers hold at most four, blocked on their held requests, so the third takes one.
    const { server, starts, urls } = await timedHost(30, {
      holdUntilInFlight: 3,
      answer: (n) => {
        if (n > 3) return undefined;
        pausedAt = performance.now();
        return new Response(null, { status: 429, headers: { 'retry-after': '1' } });
      },
    });
    const runs = await threeWorkers(urls, [], ['-c', '1']);
    expect(server.stats.requests).toBe(33);
    const logged = runs.flatMap((r) => r.stderr.split('\n').filter((line) => line.includes('answered HTTP 429')));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('pausing every request to it');
    // Nothing more reached the host before the second it asked for was over (less 10 %).
    const after = starts.slice(3);
    expect(Math.min(...after) - pausedAt).toBeGreaterThanOrEqual(900);
  });
});
