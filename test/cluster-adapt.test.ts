/**
 * Adaptive throttling shared through Redis: one worker answered 429 slows
 * every worker of the queue, and every worker's successes raise the rate.
 */
import { Redis } from 'ioredis';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisHostGate, type RedisHostGateOptions } from '../src/cluster/host-gate.js';
import { DECREASE } from '../src/run/adaptive-rate.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { listFile, startCli, statusOf } from './cluster-helpers.js';
import { listFiles, ROOT, runCli, tempDir } from './helpers.js';
import { startNginx } from './nginx.js';
import { startRedis, type RedisServer } from './redis.js';

const HOST = 'img.example:443';

const clients: Redis[] = [];
const gates: RedisHostGate[] = [];
afterEach(() => {
  for (const gate of gates.splice(0)) gate.close();
  for (const client of clients.splice(0)) client.disconnect();
});

/** A gate on a connection of its own: one worker's. */
function worker(server: RedisServer, options: RedisHostGateOptions): RedisHostGate {
  const client = new Redis(server.url);
  client.on('error', () => undefined);
  clients.push(client);
  const gate = new RedisHostGate(client, 'imgdl', options);
  gates.push(gate);
  return gate;
}

/** Starts granted to `gate` for `host` while it grants at once, up to `most`. */
async function startsNow(gate: RedisHostGate, most: number): Promise<number> {
  let started = 0;
  while (started < most && (await gate.acquire(HOST)) === 0) {
    started++;
    gate.release(HOST);
  }
  return started;
}

describe('adaptive throttling across workers (RedisHostGate with adapt)', () => {
  it("one worker's 429 spaces the other's starts, and both raise the shared rate until it is lifted", async () => {
    const server = await startRedis();
    const a = worker(server, { adapt: true });
    const b = worker(server, { adapt: true });
    expect(await startsNow(a, 40)).toBe(40);
    const rate = await a.throttled(HOST, Date.now() - 1);
    // Cut from what a saw in the last second.
    expect(rate).toBeCloseTo(40 * DECREASE, 5);
    // A 429 to a request that started before the cut is the old rate's doing.
    expect(await b.throttled(HOST, Date.now() - 60_000)).toBeUndefined();
    // b learns of the cut in its next reading of the queue's books; from then on its starts are spaced with a's.
    await delay(150);
    await b.acquire(HOST);
    b.release(HOST);
    while ((await b.acquire(HOST)) !== 0) await delay(5);
    expect(await a.acquire(HOST)).toBeGreaterThan(0);
    expect(await b.acquire(HOST)).toBeGreaterThan(0);
    expect([...b.adaptedRates()].length + [...a.adaptedRates()].length).toBeGreaterThan(0);
    let lifted = false;
    for (let i = 0; i < 2000 && !lifted; i++) lifted = await (i % 2 === 0 ? a : b).succeeded(HOST);
    expect(lifted).toBe(true);
    const probe = new Redis(server.url);
    clients.push(probe);
    expect(await probe.exists('imgdl:imgdl:rate:img.example:443')).toBe(0);
  });

  it('never cuts below the floor nor starts a cut above --rate', async () => {
    const server = await startRedis();
    const a = worker(server, { adapt: true, rate: 10 });
    expect(await startsNow(a, 40)).toBe(1);
    // The host went at 1 a second as far as this worker saw: the floor already.
    expect(await a.throttled(HOST, Date.now() - 1)).toBe(1);
    let last: number | undefined;
    for (let i = 0; i < 10; i++) {
      await delay(2);
      last = (await a.throttled(HOST, Date.now())) ?? last;
    }
    expect(last).toBe(1);
  });

  it('without adapt, a 429 changes nothing in Redis', async () => {
    const server = await startRedis();
    const a = worker(server, {});
    expect(a.throttled(HOST, Date.now())).toBeUndefined();
    expect(a.succeeded(HOST)).toBe(false);
  });

  it("two workers against nginx limit_req: all saved, and imgdl status's host figures are nginx's counts", async () => {
    const jpeg = await fs.readFile(path.join(ROOT, 'fixtures/images/tiny.jpg'));
    const files = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`img/${i}.jpg`, jpeg]));
    const nginx = await startNginx({ tls: true, limitReq: { rate: 20, burst: 5 }, files });
    const redis = await startRedis();
    const out = await tempDir();
    const list = await listFile(
      out,
      Object.keys(files).map((name) => `${nginx.origin}/${name}`),
    );
    const enqueued = await runCli(['enqueue', '--queue', redis.url, '-i', list, '--batch', '10', '--cacert', nginx.caFile]);
    expect(enqueued.code, enqueued.stderr).toBe(0);
    const workers = [0, 1].map(() =>
      startCli(['worker', '--queue', redis.url, '-o', path.join(out, 'files'), '-c', '8', '--exit-when-empty']),
    );
    for (const worker of workers) expect((await worker.done).code).toBe(0);
    expect(await listFiles(path.join(out, 'files'))).toHaveLength(60);
    const requests = await nginx.requests();
    const status = await statusOf(redis.url);
    expect(status.hosts).toHaveLength(1);
    expect(status.hosts[0]).toMatchObject({
      host: new URL(nginx.origin).host,
      requests: requests.length,
      ok: 60,
      failed: 0,
      http429: requests.filter((r) => r.status === 429).length,
    });
    const text = await runCli(['status', '--queue', redis.url]);
    if (status.hosts[0]!.http429 > 0) expect(text.stdout).toContain(new URL(nginx.origin).host);
  });
});
