/**
 * The cluster under faults, through the built CLI and a real redis-server:
 * a worker killed with SIGKILL mid-batch, one frozen with SIGSTOP past its
 * lock and woken once another finished its batches, and Redis itself killed
 * and restarted from its append-only file mid-run. Progress is read at the
 * fixture server (requests counted and held) and in the queue, never from a
 * clock.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { http } from 'msw';
import { describe, expect, it, vi } from 'vitest';
import { Store } from '../src/cluster/store.js';
import { isStopped, listFile, startCli, statusOf, until } from './cluster-helpers.js';
import { listFiles, runCli, serve, tempDir } from './helpers.js';
import { startRedis } from './redis.js';

vi.setConfig({ testTimeout: 240_000 });

const SIZE = 2000;

/** Every file of `out` is one of `n` expected names, complete, and nothing else is there. */
async function expectAllSaved(out: string, n: number): Promise<void> {
  const files = await listFiles(out);
  expect(files).toEqual(Array.from({ length: n }, (_, i) => `${i + 1}.jpg`).sort());
  for (const file of files) expect((await fs.stat(path.join(out, file))).size).toBe(SIZE);
}

describe('a cluster run', () => {
  it('3000 URLs, 3 workers, one killed with SIGKILL mid-batch: every file saved once, 3000 ok', async () => {
    const redis = await startRedis();
    // A little latency keeps batches in flight long enough to be killed in the middle of one.
    const server = await serve({ latencyMs: 5 });
    const dir = await tempDir();
    const out = path.join(dir, 'shared');
    const urls = Array.from({ length: 3000 }, (_, i) => server.url(`/gen/${i + 1}.jpg?bytes=${SIZE}`));
    const added = await runCli(['enqueue', '--queue', redis.url, '-i', await listFile(dir, urls), '--batch', '100']);
    expect(added.code, added.stderr).toBe(0);

    const worker = (): ReturnType<typeof startCli> =>
      startCli(['worker', '--queue', redis.url, '-o', out, '-c', '8', '--lock-ms', '2000', '--exit-when-empty', '-v']);
    const victim = worker();
    // -v logs a line per item: once the victim has saved some, it holds a batch with items still in flight.
    await until(() => (victim.stderr().match(/"status":"ok"/g)?.length ?? 0) >= 130, 'the first worker to be well into a batch');
    const others = [worker(), worker()];
    victim.child.kill('SIGKILL');
    const killed = await victim.done;
    expect(killed.signal).toBe('SIGKILL');
    // It died holding a batch that was neither finished nor handed back.
    const finished = (killed.stderr.match(/batch b-[0-9a-f]+: \d+ ok/g) ?? []).length;
    expect(finished).toBeLessThan(30);

    for (const other of others) {
      const run = await other.done;
      expect(run.code, run.stderr.slice(-2000)).toBe(0);
    }
    // One of them found the victim's batch silent and put it back in the queue.
    const logs = await Promise.all(others.map((o) => o.done));
    expect(logs.some((run) => /batch b-[0-9a-f]+ was taken back from a worker that stopped answering/.test(run.stderr))).toBe(true);
    await expectAllSaved(out, 3000);
    const status = await statusOf(redis.url);
    expect(status).toMatchObject({ total: 3000, ok: 3000, failed: 0, skipped: 0, pending: 0, bytes: 3000 * SIZE });
    expect(status.jobs).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 30, failed: 0 });
  });

  it('Redis killed and restarted from its AOF mid-run: the workers reconnect and finish', async () => {
    const redis = await startRedis({ aof: true });
    const server = await serve({ latencyMs: 5 });
    const dir = await tempDir();
    const out = path.join(dir, 'shared');
    const n = 1500;
    const urls = Array.from({ length: n }, (_, i) => server.url(`/gen/${i + 1}.jpg?bytes=${SIZE}`));
    expect((await runCli(['enqueue', '--queue', redis.url, '-i', await listFile(dir, urls), '--batch', '100'])).code).toBe(0);

    const workers = [0, 1].map(() =>
      startCli(['worker', '--queue', redis.url, '-o', out, '-c', '8', '--lock-ms', '10000', '--exit-when-empty']),
    );
    await until(() => server.stats.requests >= 300, 'the run to be under way');
    await redis.kill();
    const during = server.stats.requests;
    // Downloads in flight go on while Redis is away; the results wait in the workers' offline queues.
    await until(() => workers.every((w) => w.stderr().includes('lost the connection to Redis')), 'both workers to notice');
    await redis.restart();
    for (const worker of workers) {
      const run = await worker.done;
      expect(run.code, run.stderr.slice(-2000)).toBe(0);
    }
    expect(server.stats.requests).toBeGreaterThan(during);
    await expectAllSaved(out, n);
    expect(await statusOf(redis.url)).toMatchObject({ total: n, ok: n, failed: 0, skipped: 0, pending: 0 });
  });

  it('a worker frozen past --lock-ms, woken after another finished its batches, records nothing of them: ok stays ok', async () => {
    const redis = await startRedis();
    const n = 300;
    const concurrency = 4;
    // The frozen worker's first answers go through, so that it has saved files (and opens its next part files
    // early); the requests after them are held, so that it is frozen with all its downloads in flight.
    const answered = 8;
    let requests = 0;
    let held: Array<() => void> | undefined = [];
    const server = await serve({
      handlers: [
        http.get('*/gen/:name', async () => {
          const holding = held;
          if (++requests > answered && holding) await new Promise<void>((resolve) => holding.push(resolve));
          // Nothing returned: the built-in route answers.
          return undefined;
        }),
      ],
    });
    const dir = await tempDir();
    const out = path.join(dir, 'shared');
    const urls = Array.from({ length: n }, (_, i) => server.url(`/gen/${i + 1}.jpg?bytes=${SIZE}`));
    const added = await runCli(['enqueue', '--queue', redis.url, '-i', await listFile(dir, urls), '--batch', '50']);
    expect(added.code, added.stderr).toBe(0);
    const worker = (): ReturnType<typeof startCli> =>
      startCli([
        'worker',
        '--queue',
        redis.url,
        '-o',
        out,
        '-c',
        String(concurrency),
        '--lock-ms',
        '1500',
        '--exit-when-empty',
        '-v',
        '--json',
      ]);

    const frozen = worker();
    await until(() => held!.length === concurrency, 'the first worker to have all its downloads in flight');
    const client = new Redis(redis.url);
    try {
      const store = new Store(client, 'imgdl');
      await until(async () => (await store.read()).counts.ok === String(answered), 'the first worker to record what it saved');
    } finally {
      client.disconnect();
    }
    frozen.child.kill('SIGSTOP');
    await until(() => isStopped(frozen.child.pid!), 'the first worker to be stopped');
    // Answered while it is frozen: the answers wait in its sockets until it wakes up.
    const release = held!;
    held = undefined;
    for (const answer of release) answer();

    // The other worker takes its batches over once their locks run out, and finishes the queue.
    const other = await worker().done;
    expect(other.code, other.stderr.slice(-2000)).toBe(0);
    expect(other.stderr).toMatch(/batch b-[0-9a-f]+ was taken back from a worker that stopped answering/);
    await expectAllSaved(out, n);
    expect(await statusOf(redis.url)).toMatchObject({ total: n, ok: n, failed: 0 });

    frozen.child.kill('SIGCONT');
    const woken = await frozen.done;
    expect(woken.code, woken.stderr.slice(-2000)).toBe(0);
    // What it brought back replaced nothing: every file saved once and whole, every item ok.
    await expectAllSaved(out, n);
    const status = await statusOf(redis.url);
    expect(status).toMatchObject({ total: n, ok: n, failed: 0, skipped: 0, pending: 0, bytes: n * SIZE });
    expect(status.errors).toEqual({});
    expect(status.jobs).toEqual({ waiting: 0, active: 0, delayed: 0, completed: n / 50, failed: 0 });
    // It recorded what it saved before it froze, and nothing after.
    expect(JSON.parse(woken.stdout)).toMatchObject({ total: answered, ok: answered, failed: 0, skipped: 0, batches: 0, handedBack: 0 });
    expect(woken.stderr).toContain('this worker was silent past --lock-ms and the batch was taken back');
  });
});
