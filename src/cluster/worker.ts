/**
 * A worker: takes batches from the queue and runs each through the same
 * pipeline `download()` runs (its own run context, with names claimed in
 * Redis), recording every item's result in the queue as it finishes.
 *
 * BullMQ, set as its guide asks:
 * - `maxRetriesPerRequest: null` and endless reconnection (connection.ts),
 *   so a Redis restart pauses the worker; results wait in the client's
 *   offline queue and are written once Redis is back;
 * - `lockDuration` is `lockMs` (a silent worker keeps its batch that long),
 *   the stalled check runs every `lockMs / 2`, so a dead worker's batch is
 *   taken over within about 1.5 × `lockMs`;
 * - `maxStalledCount` is {@link MAX_STALLED}, not BullMQ's 1: a batch run
 *   again costs only its unfinished items, so a batch is failed for good
 *   only when it has killed its worker that many times;
 * - stopping (`stopSignal`) closes the worker: no new batch is taken, items
 *   in flight get `graceMs` to finish, and a batch left unfinished is handed
 *   back to the queue at once (not left to stall).
 */
import fs from 'node:fs/promises';
import { Queue, UnrecoverableError, WaitingError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createRunContext, downloadWith } from '../download.js';
import { describeError } from '../errors.js';
import { parseItemUrl, type ListItem } from '../list.js';
import { wantedPath } from '../item.js';
import { resolveInside } from '../naming.js';
import { OptionError, resolveOptions, type Options } from '../options.js';
import type { ItemResult } from '../record.js';
import { RunReport, type RunSummary } from '../report.js';
import { QUEUE_NAME, isConnectionError, parseQueueUrl, preflight, workerOptions } from './connection.js';
import { decodeBatch } from './jobs.js';
import { ClusterNames } from './names.js';
import { Claim, Store, itemKey } from './store.js';

/** How many times a batch may lose its worker before BullMQ fails it for good. */
export const MAX_STALLED = 5;

/** Failures that say nothing about the item itself: not recorded, so the batch runs them again. */
const TRANSIENT = new Set(['ABORTED', 'DISK_FULL']);

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  /** The queue: `redis://HOST:PORT[/DB]` [`--queue`]. Required. */
  queue: string;
  /** Output folder, created if missing [`-o, --out`]. Default: the current folder. */
  out?: string | undefined;
  /** Downloads in flight at once in this worker [`-c, --concurrency`]. Default 16. */
  concurrency?: number | undefined;
  /** How long a silent worker keeps a batch before another takes it over, in ms [`--lock-ms`]. Default 30000. */
  lockMs?: number | undefined;
  /** Resolve once nothing is waiting or active in the queue [`--exit-when-empty`]. Default false: run until stopped. */
  exitWhenEmpty?: boolean | undefined;
  /** Stops the worker gently: see the module comment. Default none. */
  stopSignal?: AbortSignal | undefined;
  /** Time items in flight get to finish once `stopSignal` aborts, in ms [`--grace`]. Default 5000. */
  graceMs?: number | undefined;
  /** Logger (pino). Default: a silent one. */
  logger?: Logger | undefined;
  /** Called with each record this worker writes to the queue. Default none. */
  onRecord?: ((record: ItemResult) => void) | undefined;
}

/** What {@link runWorker} did. */
export interface WorkerSummary {
  /** The items this worker recorded, as a run summary. */
  summary: RunSummary;
  /** Batches finished by this worker. */
  batches: number;
  /** Batches handed back to the queue unfinished when it was stopped. */
  handedBack: number;
}

function positiveInteger(option: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionError(option, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

/** An item of a batch with what the queue knows of it. */
interface Entry {
  item: ListItem;
  listing: string;
  key: string;
  url: URL | undefined;
  claim: Claim;
}

/**
 * Runs a worker until `stopSignal` aborts or, with `exitWhenEmpty`, until the
 * queue has nothing waiting or active. Throws REDIS_UNAVAILABLE when Redis
 * cannot be reached at start, REDIS_EVICTS when it may evict the queue's
 * keys, and OptionError for a bad option.
 */
export async function runWorker(options: WorkerOptions): Promise<WorkerSummary> {
  const address = parseQueueUrl(options.queue);
  const concurrency = positiveInteger('concurrency', options.concurrency, 16, 1, 10_000);
  const lockMs = positiveInteger('lockMs', options.lockMs, 30_000, 1_000, 24 * 3600 * 1000);
  const graceMs = positiveInteger('graceMs', options.graceMs, 5_000, 0, 24 * 3600 * 1000);
  const out = options.out ?? '.';
  // The same checks a batch's options will get, done now so a bad -o fails at start, not per batch.
  resolveOptions({ out, concurrency, graceMs });
  const log = options.logger;
  (await preflight(address, log)).disconnect();

  const redis = new Redis(workerOptions(address));
  const store = new Store(redis, QUEUE_NAME);
  const names = new ClusterNames(store);
  const queue = new Queue(QUEUE_NAME, { connection: redis });
  const report = new RunReport('cluster worker', concurrency);
  const stopping = new AbortController();
  const state = { batches: 0, handedBack: 0, busy: false };
  let outage = false;
  const onError = (error: Error): void => {
    if (!isConnectionError(error)) {
      log?.warn(`queue: ${describeError(error)}`);
      return;
    }
    // ioredis and BullMQ report every failed reconnection; one line per outage is enough.
    if (!outage) log?.warn(`lost the connection to Redis at ${address.shown} (${describeError(error)}); reconnecting with backoff`);
    outage = true;
  };
  redis.on('error', onError);
  redis.on('ready', () => {
    if (outage) log?.info(`reconnected to Redis at ${address.shown}`);
    outage = false;
  });
  queue.on('error', onError);

  async function processBatch(job: Job, token?: string): Promise<{ ok: number; failed: number; skipped: number }> {
    const id = job.id!;
    const stop = stopping.signal;
    let batch;
    let resolved;
    try {
      batch = decodeBatch(job.data);
      resolved = resolveOptions({ ...(batch.options as Options), out, concurrency, graceMs, logger: log, stopSignal: stop });
    } catch (error) {
      // No retry can fix the job's own data: BullMQ fails it at once, and it stays in the failed set to look at.
      throw new UnrecoverableError(`batch ${id} cannot run here: ${describeError(error)}`);
    }
    const entries: Entry[] = batch.items.map((item, position) => {
      let url: URL | undefined;
      try {
        url = parseItemUrl(item);
      } catch {
        url = undefined;
      }
      const listing = `${id}#${position}`;
      return { item, listing, key: itemKey(url, listing), url, claim: Claim.New };
    });
    const claims = await store.claim(id, entries.map((e, position) => [e.key, position] as const));
    claims.forEach((claim, i) => (entries[i]!.claim = claim));
    const toRun = entries.filter((e) => e.claim === Claim.New || e.claim === Claim.Resumed);
    await names.prepare(toRun.flatMap((e) => (e.url ? named(e.item, e.url) : [])));

    // Results come back in completion order; their source and line find their entry.
    const bySourceLine = new Map<string, Entry[]>();
    for (const entry of toRun) {
      const where = `${entry.item.source}\n${entry.item.line}`;
      bySourceLine.set(where, [...(bySourceLine.get(where) ?? []), entry]);
    }
    // A batch started before (its worker died, or Redis lost the end of it in a crash) may find its own files.
    const rerun = job.attemptsStarted > 1 || job.stalledCounter > 0;
    const writes: Array<Promise<unknown>> = [];
    let recorded = 0;
    const counts = { ok: 0, failed: 0, skipped: 0 };
    // What the whole queue shares comes in here: names now; the per-host budget (--per-host, --rate, a 429's
    // pause) once the core's scheduler asks an interface for it, answered from Redis across all workers.
    const ctx = await createRunContext(resolved, undefined, { names });
    for await (const result of downloadWith(toRun.map((e) => e.item), ctx)) {
      const entry = bySourceLine.get(`${result.source}\n${result.line}`)?.shift();
      if (entry === undefined) continue;
      if (result.error && TRANSIENT.has(result.error.code)) continue;
      const record = entry.claim === Claim.Resumed || rerun ? await recovered(result, resolved.out) : result;
      recorded++;
      counts[record.status]++;
      report.add(record);
      options.onRecord?.(record);
      writes.push(store.record(entry.key, entry.listing, record));
    }
    await Promise.all(writes);
    if (recorded < toRun.length) {
      if (stop.aborted && token !== undefined) {
        log?.info(`batch ${id}: handed back with ${toRun.length - recorded} of ${toRun.length} items unfinished`);
        state.handedBack++;
        await job.moveToWait(token);
        throw new WaitingError();
      }
      throw new Error(`batch ${id}: ${toRun.length - recorded} items could not be finished (disk full?); the batch will be retried`);
    }
    await store.finished(id);
    state.batches++;
    log?.info(`batch ${id}: ${counts.ok} ok, ${counts.failed} failed, ${counts.skipped} skipped (${entries.length - toRun.length} already done or listed elsewhere)`);
    return counts;
  }

  const worker = new Worker(
    QUEUE_NAME,
    async (job, token) => {
      state.busy = true;
      try {
        return await processBatch(job, token);
      } finally {
        state.busy = false;
      }
    },
    {
      // ioredis' own options type; bullmq declares a looser copy of it that exactOptionalPropertyTypes will not match.
      connection: workerOptions(address) as ConnectionOptions,
      autorun: false,
      concurrency: 1,
      lockDuration: lockMs,
      stalledInterval: Math.max(500, Math.round(lockMs / 2)),
      maxStalledCount: MAX_STALLED,
    },
  );
  worker.on('error', onError);
  worker.on('stalled', (jobId) => log?.info(`batch ${jobId} was taken back from a worker that stopped answering; it will run again`));
  worker.on('failed', (job, error) => {
    if (error.name !== 'WaitingError') log?.error(`batch ${job?.id ?? '?'} failed: ${describeError(error)}`);
  });

  const close = (): void => {
    stopping.abort(new Error('stopped'));
    void worker.close();
  };
  const onStop = (): void => close();
  if (options.stopSignal?.aborted) close();
  options.stopSignal?.addEventListener('abort', onStop, { once: true });
  const watcher = options.exitWhenEmpty ? watchForEmpty(queue, state, close) : undefined;
  try {
    await worker.run();
  } finally {
    options.stopSignal?.removeEventListener('abort', onStop);
    watcher?.stop();
    await worker.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    redis.disconnect();
  }
  return { summary: report.summary(), batches: state.batches, handedBack: state.handedBack };
}

/** The name an item will ask for when planned, or nothing for an item the planner will refuse. */
function named(item: ListItem, url: URL): Array<{ wanted: string; url: string }> {
  try {
    return [{ wanted: wantedPath(item, url), url: url.href }];
  } catch {
    return [];
  }
}

/**
 * A result of a batch run again after its worker died (or after Redis lost
 * its last writes in a crash). That worker may have saved the file and died
 * before its record reached Redis; this run then finds the file and skips
 * it. Names are the queue's own, and a file at its final name is always
 * complete, so the file at this item's name is that worker's download:
 * recorded as saved.
 */
async function recovered(result: ItemResult, out: string): Promise<ItemResult> {
  if (result.status !== 'skipped' || result.skipReason !== 'exists' || result.path === null) return result;
  try {
    const { size } = await fs.stat(resolveInside(out, result.path));
    return { ...result, status: 'ok', skipReason: null, bytes: size };
  } catch {
    return result;
  }
}

/**
 * Polls the queue while this worker is idle, and closes it once nothing is
 * waiting, delayed or active anywhere. A batch held by a dead worker stays
 * active until another worker takes it over, so it keeps everyone waiting.
 */
function watchForEmpty(queue: Queue, state: { busy: boolean }, close: () => void): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const check = async (): Promise<void> => {
    if (stopped) return;
    try {
      if (!state.busy) {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
        if (Object.values(counts).every((n) => n === 0) && !state.busy) {
          close();
          return;
        }
      }
    } catch {
      // Redis away: the worker reconnects; look again later.
    }
    if (!stopped) timer = setTimeout(() => void check(), 250);
  };
  timer = setTimeout(() => void check(), 250);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
