/**
 * The suite's `cluster` scenario: what the queue costs. The latency list
 * (2000 × 20 kB, 50 ms before each response, concurrency 32 in all) is
 * downloaded by one `imgdl -c 32` process, then through the queue by one
 * worker at `-c 32` and by three workers at `-c 11/11/10`, all on this
 * machine, runs interleaved. Workers are started and connected before the
 * clock starts, as a fleet is in production; the clock runs from the
 * enqueue (the library's, from this process, so a CLI's start-up is not
 * counted) until the queue has no item pending. Also measured: enqueue speed
 * (a 100,000-line list) and Redis memory per queued and per finished item.
 *
 * redis-server comes from PATH, in a temp folder on a free loopback port,
 * with AOF on (`appendfsync everysec`), as the README advises.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { CLI_PATH, formatTable, median } from '../cli/bench.js';
import { freePort, launchRedis } from './redis.js';
import { QUEUE_NAME } from '../cluster/connection.js';
import { enqueue } from '../cluster/enqueue.js';
import { readStatus } from '../cluster/status.js';
import { formatBytes, formatDuration } from '../record/run-report.js';

const node = process.execPath;
const FILES = 2000;
const SIZE = 20_000;
const BATCH = 50;
const SMALL_BATCH = 20;
const ENQUEUE_ITEMS = 100_000;

/** A command of the scenario and its walls. */
interface Row {
  name: string;
  walls: number[];
  incomplete: number;
}

/** What the scenario reports. */
export interface ClusterBenchResult {
  rows: Row[];
  /** Median wall of the queue with one worker over the single process, minus 1. */
  overheadOneWorker: number;
  /** The same for three workers, at the better of the two batch sizes. */
  overheadThreeWorkers: number;
  enqueueItemsPerSec: number;
  enqueueWallMs: number;
  bytesPerQueuedItem: number;
  bytesPerFinishedItem: number;
}

async function startRedis(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = await launchRedis(port, dir, ['--appendonly', 'yes', '--appendfsync', 'everysec']);
  return { url: `redis://127.0.0.1:${port}`, child };
}

/** Runs a command to its end; rejects when it fails. */
async function run(args: string[]): Promise<void> {
  const child = spawn(node, [CLI_PATH, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`imgdl ${args[0]} exited with ${code}: ${stderr}`);
}

async function tally(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    files++;
    bytes += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return { files, bytes };
}

/**
 * One timed run through the queue: workers at `concurrencies`, started and
 * connected first; then the clock from enqueue until nothing is pending.
 */
async function queueRun(
  redisUrl: string,
  urls: readonly string[],
  out: string,
  concurrencies: readonly number[],
  batch: number,
): Promise<number> {
  const redis = new Redis(redisUrl);
  await redis.flushall();
  const queue = new Queue(QUEUE_NAME, { connection: redis });
  const workers = concurrencies.map((c) =>
    spawn(node, [CLI_PATH, 'worker', '--queue', redisUrl, '-o', out, '-c', String(c), '-q'], { stdio: 'ignore' }),
  );
  try {
    while ((await readStatus(redis, queue)).workers < workers.length) await delay(50);
    // Enqueued from this process (BullMQ already loaded), so the clock measures the queue, not a CLI's start-up.
    const started = performance.now();
    await enqueue(urls, { queue: redisUrl, batch });
    for (;;) {
      const status = await readStatus(redis, queue);
      if (status.total === FILES && status.pending === 0) break;
      await delay(20);
    }
    return performance.now() - started;
  } finally {
    await queue.close();
    redis.disconnect();
    await Promise.all(
      workers.map(async (worker) => {
        const exited = once(worker, 'exit');
        worker.kill('SIGTERM');
        await exited;
      }),
    );
  }
}

/** A single `imgdl -c 32` process over the same list. */
async function oneProcess(list: string, out: string): Promise<number> {
  const started = performance.now();
  await run(['-i', list, '-o', out, '-c', '32', '-q']);
  return performance.now() - started;
}

/** Runs the scenario against the fixture server at `origin` (50 ms latency); `runs` interleaved runs each. */
export async function clusterBench(origin: string, runs: number, onRun?: (what: string) => void): Promise<ClusterBenchResult> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-cluster-'));
  const { url, child } = await startRedis(dir);
  try {
    const list = path.join(dir, 'urls.txt');
    const urls = Array.from({ length: FILES }, (_, i) => `${origin}/gen/${i + 1}.jpg?bytes=${SIZE}`);
    await fs.writeFile(list, urls.join('\n') + '\n');
    const commands: Array<{ name: string; go: (out: string) => Promise<number> }> = [
      { name: 'imgdl -c 32 (one process)', go: (out) => oneProcess(list, out) },
      { name: `queue: 1 worker -c 32, batch ${BATCH}`, go: (out) => queueRun(url, urls, out, [32], BATCH) },
      { name: `queue: 3 workers -c 11/11/10, batch ${BATCH}`, go: (out) => queueRun(url, urls, out, [11, 11, 10], BATCH) },
      // A worker holds two batches; at the end of the queue the others may be idle while it finishes them,
      // so a short list splits better in small batches.
      { name: `queue: 3 workers -c 11/11/10, batch ${SMALL_BATCH}`, go: (out) => queueRun(url, urls, out, [11, 11, 10], SMALL_BATCH) },
    ];
    const rows: Row[] = commands.map((c) => ({ name: c.name, walls: [], incomplete: 0 }));
    let bytesPerFinishedItem = Number.NaN;
    for (let r = 1; r <= runs; r++) {
      for (const [i, command] of commands.entries()) {
        onRun?.(`${command.name} run ${r}/${runs}`);
        const out = path.join(dir, `out-${r}-${i}`);
        await fs.mkdir(out);
        let before = 0;
        if (i > 0) {
          const redis = new Redis(url);
          await redis.flushall();
          before = Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
          redis.disconnect();
        }
        rows[i]!.walls.push(await command.go(out));
        if (i > 0) {
          const redis = new Redis(url);
          const after = Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
          redis.disconnect();
          // Jobs are removed as they finish: what stays is each item's record and claimed name.
          bytesPerFinishedItem = (after - before) / FILES;
        }
        const got = await tally(out);
        if (got.files !== FILES || got.bytes !== FILES * SIZE) rows[i]!.incomplete++;
        await fs.rm(out, { recursive: true, force: true });
      }
    }

    // Enqueue speed and memory per queued item: a long list, no worker.
    onRun?.(`enqueue ${ENQUEUE_ITEMS} items`);
    const redis = new Redis(url);
    await redis.flushall();
    const before = Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
    const big = path.join(dir, 'big.txt');
    await fs.writeFile(
      big,
      Array.from({ length: ENQUEUE_ITEMS }, (_, i) => `https://images.example.com/photos/${i + 1}/original.jpg`).join('\n') + '\n',
    );
    const started = performance.now();
    await run(['enqueue', '--queue', url, '-i', big]);
    const enqueueWallMs = performance.now() - started;
    const after = Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
    redis.disconnect();

    const base = median(rows[0]!.walls);
    return {
      rows,
      overheadOneWorker: median(rows[1]!.walls) / base - 1,
      overheadThreeWorkers: Math.min(median(rows[2]!.walls), median(rows[3]!.walls)) / base - 1,
      enqueueItemsPerSec: Math.round(ENQUEUE_ITEMS / (enqueueWallMs / 1000)),
      enqueueWallMs,
      bytesPerQueuedItem: Math.round((after - before) / ENQUEUE_ITEMS),
      bytesPerFinishedItem: Math.round(bytesPerFinishedItem),
    };
  } finally {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The scenario as the suite prints it. */
export function formatClusterBench(result: ClusterBenchResult): string {
  const base = median(result.rows[0]!.walls);
  const rows = result.rows.map((row) => {
    const m = median(row.walls);
    return [
      row.name,
      String(row.walls.length),
      formatDuration(m),
      formatDuration(Math.min(...row.walls)),
      formatDuration(Math.max(...row.walls)),
      (m / base).toFixed(3),
      `${row.walls.length - row.incomplete}/${row.walls.length}`,
    ];
  });
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  return (
    `\n## cluster: ${FILES} × ${formatBytes(SIZE)}, 50 ms latency, concurrency 32 in all; queue runs timed from enqueue (in-process) to nothing pending, workers already connected\n` +
    formatTable(['command', 'runs', 'median wall', 'min', 'max', '× one process', 'complete'], rows) +
    `\n\nqueue overhead: ${pct(result.overheadOneWorker)} with 1 worker, ${pct(result.overheadThreeWorkers)} with 3 workers at the better batch size (target ≤ 10 %)` +
    `\nenqueue: ${ENQUEUE_ITEMS} items in ${formatDuration(result.enqueueWallMs)} (whole command) = ${result.enqueueItemsPerSec} items/s` +
    `\nRedis memory: ${result.bytesPerQueuedItem} B per queued item (batch 1000, ~55-byte URLs), ${result.bytesPerFinishedItem} B per finished item (record + name)\n`
  );
}
