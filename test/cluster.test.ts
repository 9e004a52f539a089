/**
 * imgdl enqueue / worker / status against a real redis-server, mostly through
 * the built CLI. Every count is taken at the fixture server or from the
 * queue, never from a clock.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { http, HttpResponse } from 'msw';
import { describe, expect, it, vi } from 'vitest';
import { freePort } from '../src/bench/redis.js';
import { ClusterError, parseQueueUrl } from '../src/cluster/connection.js';
import { enqueue } from '../src/cluster/enqueue.js';
import { carriedOptions } from '../src/cluster/jobs.js';
import { Store, itemKey } from '../src/cluster/store.js';
import { generatedImage } from '../src/dev/fixture-server.js';
import { OptionError } from '../src/options.js';
import type { ItemResult } from '../src/record/record.js';
import { listFile, startCli, statusOf, until } from './cluster-helpers.js';
import { listFiles, runCli, serve, tempDir } from './helpers.js';
import { startRedis } from './redis.js';

// Each command is a fresh Node process that loads BullMQ: on a busy two-core machine, seconds each.
vi.setConfig({ testTimeout: 120_000 });

describe('the queue URL', () => {
  it.each([
    ['redis://127.0.0.1:6390', { host: '127.0.0.1', port: 6390, db: 0, tls: false }],
    ['redis://redis', { host: 'redis', port: 6379, db: 0, tls: false }],
    ['redis://h:1/3', { host: 'h', port: 1, db: 3, tls: false }],
    [
      'rediss://u:p%40ss@h:6380/1',
      { host: 'h', port: 6380, db: 1, tls: true, username: 'u', password: 'p@ss', shown: 'rediss://u:***@h:6380/1' },
    ],
    ['redis://[::1]:7000', { host: '::1', port: 7000 }],
  ])('%s is read', (text, expected) => {
    expect(parseQueueUrl(text)).toMatchObject(expected);
  });

  it.each([
    ['redis:6379', 'no host'],
    ['localhost:6379', 'scheme localhost: is not redis:'],
    ['//h:6379', 'not a URL'],
    ['http://h:6379', 'scheme http: is not redis:'],
    ['redis://h/db', 'database "db" is not a number'],
    ['redis://h/0?x=1', 'no query'],
  ])('%s is refused: %s', (text, why) => {
    const error = (() => {
      try {
        parseQueueUrl(text);
      } catch (e) {
        return e as ClusterError;
      }
      throw new Error('no error');
    })();
    expect(error.code).toBe('INVALID_QUEUE_URL');
    expect(error.message).toContain(why);
  });
});

describe('options carried by jobs', () => {
  it('carry every option but those a worker sets itself, keys sorted, undefined left out', () => {
    const carried = carriedOptions({
      out: 'x',
      concurrency: 4,
      mode: 'workers',
      graceMs: 1,
      manifest: 'm.jsonl',
      logger: undefined,
      retries: 1,
      hash: 'sha256',
      maxSize: '10k',
      headers: { 'x-b': '2', 'x-a': '1' },
      referer: undefined,
      onExists: 'overwrite',
    });
    expect(carried).toEqual({ hash: 'sha256', headers: { 'x-a': '1', 'x-b': '2' }, maxSize: '10k', onExists: 'overwrite', retries: 1 });
    expect(Object.keys(carried)).toEqual(['hash', 'headers', 'maxSize', 'onExists', 'retries']);
  });

  it.each([
    [{ maxSize: 'huge' }, 'maxSize'],
    [{ retries: -1 }, 'retries'],
    [{ dedupe: true }, 'dedupe'],
    [{ headers: { 'bad name': 'x' } }, 'headers'],
  ])('refuse %j at enqueue, naming %s', (options, name) => {
    const error = (() => {
      try {
        carriedOptions(options as never);
      } catch (e) {
        return e as OptionError;
      }
      throw new Error('no error');
    })();
    expect(error).toBeInstanceOf(OptionError);
    expect(error.message).toContain(name);
  });
});

/** A list of `n` generated images on `server`. */
function images(server: { url(p: string): string }, n: number, bytes = 2000): string[] {
  return Array.from({ length: n }, (_, i) => server.url(`/gen/${i + 1}.jpg?bytes=${bytes}`));
}

describe('enqueue', () => {
  it('sends a long list in overlapping round trips, each job added and counted once', async () => {
    const redis = await startRedis();
    // 2000 jobs of one item: 100 round trips of 20 jobs, up to 4 of them in flight while the list is read.
    const urls = Array.from({ length: 2000 }, (_, i) => `http://h.example/${i}.jpg`);
    expect(await enqueue(urls, { queue: redis.url, batch: 1 })).toEqual({ items: 2000, jobs: 2000, addedItems: 2000, addedJobs: 2000 });
    expect(await enqueue(urls, { queue: redis.url, batch: 1 })).toEqual({ items: 2000, jobs: 2000, addedItems: 0, addedJobs: 0 });
    const queue = new Queue('imgdl', { connection: { host: '127.0.0.1', port: redis.port } });
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 2000 });
    await queue.close();
  });
});

describe('imgdl enqueue, worker, status', () => {
  it('enqueued twice, run: each URL is fetched once and counted once', async () => {
    const redis = await startRedis();
    const server = await serve();
    const dir = await tempDir();
    const urls = images(server, 120);
    const list = await listFile(dir, [...urls, 'not-a-url', urls[5]!]);
    const first = await runCli(['enqueue', '--queue', redis.url, '-i', list, '--batch', '50']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(`added 122 items in 3 jobs to ${redis.url}\n`);
    const second = await runCli(['enqueue', '--queue', redis.url, '-i', list, '--batch', '50', '--json']);
    expect(JSON.parse(second.stdout)).toEqual({ items: 122, jobs: 3, addedItems: 0, addedJobs: 0 });
    expect(await statusOf(redis.url)).toMatchObject({ total: 122, pending: 122, jobs: { waiting: 3 } });

    const out = path.join(dir, 'out');
    const worker = await runCli(['worker', '--queue', redis.url, '-o', out, '-c', '8', '--exit-when-empty', '--json']);
    expect(worker.code, worker.stderr).toBe(0);
    expect(JSON.parse(worker.stdout)).toMatchObject({ ok: 120, failed: 1, batches: 3 });
    expect([...server.stats.byPath.values()].every((n) => n === 1)).toBe(true);
    expect(server.stats.requests).toBe(120);
    expect(await listFiles(out)).toHaveLength(120);

    // Enqueued again once everything is done (its jobs are gone by now): still nothing is fetched again.
    const third = await runCli(['enqueue', '--queue', redis.url, '-i', list, '--batch', '50']);
    expect(third.stdout).toContain('added 0 items in 0 jobs');
    const status = await statusOf(redis.url);
    expect(status).toMatchObject({ total: 122, ok: 120, failed: 1, skipped: 1, duplicates: 1, pending: 0, bytes: 240_000 });
    expect(status.jobs).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 3, failed: 0 });
    expect(status.errors).toEqual({ INVALID_URL: { count: 1, example: 'not-a-url' } });
    const text = await runCli(['status', '--queue', redis.url]);
    expect(text.stdout).toContain('items  120 ok, 1 failed, 1 skipped, 0 pending of 122 (1 duplicate listings skipped)');
    expect(text.stdout).toMatch(/failures INVALID_URL {2}×1 {2}e\.g\. not-a-url/);
  });

  it('carries the download options to every worker', async () => {
    const redis = await startRedis();
    const seen: string[] = [];
    const server = await serve({
      handlers: [
        http.get('*/gen/:name', ({ request }) => {
          seen.push(`${request.headers.get('x-token')} ${request.headers.get('user-agent')}`);
          return undefined;
        }),
      ],
    });
    const dir = await tempDir();
    const list = await listFile(dir, [...images(server, 6), server.url('/gen/big.jpg?bytes=50000')]);
    const added = await runCli([
      'enqueue',
      '--queue',
      redis.url,
      '-i',
      list,
      '--batch',
      '2',
      '-H',
      'X-Token: t1',
      '-A',
      'fleet/1',
      '--max-size',
      '10k',
      '--hash',
      'sha256',
      '--retries',
      '0',
    ]);
    expect(added.code, added.stderr).toBe(0);
    const out = path.join(dir, 'out');
    for (let i = 0; i < 2; i++) {
      const worker = await runCli(['worker', '--queue', redis.url, '-o', out, '--exit-when-empty', '-q']);
      expect(worker.code, worker.stderr).toBe(0);
    }
    expect(seen).toEqual(Array(7).fill('t1 fleet/1'));
    const status = await statusOf(redis.url);
    expect(status).toMatchObject({ ok: 6, failed: 1, errors: { TOO_LARGE: { count: 1 } } });
    const store = new Store(new Redis(redis.url), 'imgdl');
    const digests: string[] = [];
    for await (const record of store.records()) if (record.digest) digests.push(record.digest);
    store.redis.disconnect();
    expect(digests).toHaveLength(6);
    expect(digests.every((d) => d.startsWith('sha256:'))).toBe(true);
  });

  it('applies each batch its own options, and tells apart batches whose items share a source and line', async () => {
    const redis = await startRedis();
    const agents = new Map<string, string>();
    const server = await serve({
      handlers: [
        http.get('*/gen/:name', async ({ request }) => {
          const { pathname } = new URL(request.url);
          agents.set(pathname, request.headers.get('user-agent') ?? '');
          // The first list answers last, so the second list's results for the same lines come back first.
          if (Number(/(\d+)\.jpg/.exec(pathname)![1]) <= 20) await until(() => agents.size >= 40, 'the second list to be asked');
          return undefined;
        }),
      ],
    });
    // Lists that are all "urls.txt" to whoever enqueued them: same source, same lines, other URLs; the first two
    // share their options (so their batches share a run), the third has its own.
    const list = (from: number, agent: string) =>
      enqueue(
        images(server, 60)
          .slice(from, from + 20)
          .map((url, i) => ({ url, source: 'urls.txt', line: i + 1 })),
        { queue: redis.url, batch: 20, options: { userAgent: agent } },
      );
    await list(0, 'agent-a');
    await list(20, 'agent-a');
    await list(40, 'agent-b');
    const dir = await tempDir();
    const worker = await runCli(['worker', '--queue', redis.url, '-o', dir, '-c', '40', '--exit-when-empty', '-q']);
    expect(worker.code, worker.stderr).toBe(0);
    expect(agents.size).toBe(60);
    for (const [pathname, agent] of agents) expect(agent).toBe(Number(/(\d+)\.jpg/.exec(pathname)![1]) <= 40 ? 'agent-a' : 'agent-b');
    // Each record is kept under its own URL's key, and names the file that URL asked for.
    const client = new Redis(redis.url);
    const items = await client.hgetall('imgdl:imgdl:items');
    client.disconnect();
    expect(Object.keys(items)).toHaveLength(60);
    for (const [key, value] of Object.entries(items)) {
      const record = JSON.parse(value.split('\n')[2]!) as ItemResult;
      expect(key).toBe(itemKey(new URL(record.url), ''));
      expect(record.path).toBe(/\/gen\/(\d+\.jpg)/.exec(record.url)![1]);
    }
    expect(await statusOf(redis.url)).toMatchObject({ ok: 60, pending: 0, jobs: { completed: 3 } });
  });

  it('gives two URLs that want one name two names, though different batches run them', async () => {
    const redis = await startRedis();
    const jpeg = generatedImage('jpg', 3000);
    const server = await serve({
      handlers: [http.get('*/dir/:d/img.jpg', () => new HttpResponse(new Uint8Array(jpeg), { headers: { 'content-type': 'image/jpeg' } }))],
    });
    const dir = await tempDir();
    const urls = ['a', 'b', 'c'].map((d) => server.url(`/dir/${d}/img.jpg`));
    await enqueue(urls, { queue: redis.url, batch: 1 });
    const out = path.join(dir, 'out');
    const workers = [0, 1].map(() => startCli(['worker', '--queue', redis.url, '-o', out, '--exit-when-empty', '-q']));
    for (const w of workers) expect((await w.done).code).toBe(0);
    const files = await listFiles(out);
    expect(files).toHaveLength(3);
    expect(files).toContain('img.jpg');
    expect(files.filter((f) => /^img-[0-9a-f]{8}\.jpg$/.test(f))).toHaveLength(2);
    for (const f of files) expect((await fs.readFile(path.join(out, f))).equals(jpeg)).toBe(true);
  });

  it.each(['enqueue', 'worker', 'status'])('%s: a Redis that cannot be reached is a clear error and exit 1', async (command) => {
    // A port that was free a moment ago: nothing listens there.
    const port = await freePort();
    const dir = await tempDir();
    const args = { enqueue: ['http://h/a.jpg'], worker: ['-o', dir], status: [] }[command]!;
    const run = await runCli([command, '--queue', `redis://127.0.0.1:${port}`, ...args]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`imgdl ${command}: cannot reach Redis at redis://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`);
  });

  it("refuses a Redis that may evict the queue's keys", async () => {
    const redis = await startRedis({ args: ['--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru'] });
    const run = await runCli(['enqueue', '--queue', redis.url, 'http://h/a.jpg']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('maxmemory-policy allkeys-lru');
    expect(run.stderr).toContain('needs noeviction');
    expect(await statusOf(redis.url)).toMatchObject({ total: 0 });
  });

  it('fails a job it cannot read at once, keeps it in the failed set, and goes on', async () => {
    const redis = await startRedis();
    const server = await serve();
    const queue = new Queue('imgdl', { connection: { host: '127.0.0.1', port: redis.port } });
    await queue.add('batch', { v: 99, items: [] }, { jobId: 'b-foreign', attempts: 3 });
    await queue.close();
    await enqueue(images(server, 3), { queue: redis.url });
    const dir = await tempDir();
    const worker = await runCli(['worker', '--queue', redis.url, '-o', dir, '--exit-when-empty']);
    expect(worker.code, worker.stderr).toBe(0);
    expect(worker.stderr).toContain('batch b-foreign failed: batch b-foreign cannot run here: job data imgdl cannot read: version 99');
    expect(await statusOf(redis.url)).toMatchObject({ ok: 3, jobs: { failed: 1, completed: 1, waiting: 0, delayed: 0 } });
  });

  it('status --watch prints a line per refresh until Ctrl-C', async () => {
    const redis = await startRedis();
    const server = await serve();
    await enqueue(images(server, 5), { queue: redis.url });
    const watch = startCli(['status', '--queue', redis.url, '--watch', '--interval', '100']);
    await until(() => watch.stdout().split('\n').length > 2, 'two refreshes');
    watch.child.kill('SIGINT');
    const run = await watch.done;
    expect(run.code).toBe(130);
    const lines = run.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines)
      expect(line).toMatch(
        /^0\/5 done · 0 ok · 0 failed · 0 skipped · 5 pending · 0 B · 0 files\/s · jobs 1 waiting 0 active · 0 workers$/,
      );
  });

  it('a bad --queue or flag is a usage error', async () => {
    expect((await runCli(['worker', '--queue', 'localhost:6379'])).code).toBe(2);
    const missing = await runCli(['status']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('Missing required argument: queue');
  });
});

describe('a worker stopped with SIGTERM', () => {
  /** A server whose /slow.jpg sends its first bytes, then waits for `release`. */
  async function slowServer(release: Promise<void>) {
    const jpeg = generatedImage('jpg', 40_000);
    return serve({
      handlers: [
        http.get('*/slow.jpg', () => {
          const body = new ReadableStream({
            async start(controller) {
              controller.enqueue(jpeg.subarray(0, 10_000));
              await release;
              controller.enqueue(jpeg.subarray(10_000));
              controller.close();
            },
          });
          return new HttpResponse(body, { headers: { 'content-type': 'image/jpeg', 'content-length': String(jpeg.length) } });
        }),
      ],
    });
  }

  it('hands its unfinished batch back to the queue and exits 143; another worker finishes it', async () => {
    const redis = await startRedis();
    let release!: () => void;
    const server = await slowServer(new Promise((resolve) => (release = resolve)));
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    await enqueue([...images(server, 4), server.url('/slow.jpg'), ...images(server, 10).slice(4)], { queue: redis.url, batch: 100 });
    const worker = startCli(['worker', '--queue', redis.url, '-o', out, '-c', '2', '--grace', '200']);
    await until(() => server.stats.byPath.has('/slow.jpg') && server.stats.requests >= 5, 'the slow item to start');
    worker.child.kill('SIGTERM');
    const stopped = await worker.done;
    expect(stopped.code, stopped.stderr).toBe(143);
    expect(stopped.stderr).toContain('1 handed back');
    const status = await statusOf(redis.url);
    // Handed back at once: waiting, not active until --lock-ms runs out.
    expect(status.jobs).toMatchObject({ waiting: 1, active: 0, completed: 0 });
    expect(status.failed).toBe(0);
    expect(status.ok).toBeGreaterThanOrEqual(4);
    expect(status.ok + status.pending).toBe(11);

    release();
    const before = server.stats.requests;
    const next = await runCli(['worker', '--queue', redis.url, '-o', out, '--exit-when-empty', '-q']);
    expect(next.code, next.stderr).toBe(0);
    // Only what the first worker left undone was fetched again.
    expect(server.stats.requests - before).toBe(11 - status.ok);
    expect(await statusOf(redis.url)).toMatchObject({ ok: 11, pending: 0, jobs: { completed: 1, waiting: 0 } });
    expect(await listFiles(out)).toHaveLength(11);
  });

  it('finishes its batch when the downloads in flight end within --grace, and exits 143', async () => {
    const redis = await startRedis();
    let release!: () => void;
    const server = await slowServer(new Promise((resolve) => (release = resolve)));
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    await enqueue([server.url('/slow.jpg'), ...images(server, 3)], { queue: redis.url, batch: 100 });
    const worker = startCli(['worker', '--queue', redis.url, '-o', out, '-c', '4', '--grace', '60000']);
    await until(() => server.stats.requests === 4, 'every item to start');
    await until(
      async () => (await listFiles(out).catch(() => [])).filter((f) => !f.includes('.part')).length === 3,
      'the quick items to land',
    );
    worker.child.kill('SIGTERM');
    await until(() => worker.stderr().includes('SIGTERM'), 'the worker to take the signal');
    release();
    const stopped = await worker.done;
    expect(stopped.code, stopped.stderr).toBe(143);
    expect(await statusOf(redis.url)).toMatchObject({ ok: 4, pending: 0, jobs: { completed: 1, waiting: 0, active: 0 } });
    expect(await listFiles(out)).toEqual(['1.jpg', '2.jpg', '3.jpg', 'slow.jpg']);
  });
});
