/**
 * A worker: takes batches from the queue, two at a time, and runs their
 * items through the same pipeline `download()` runs, with names claimed in
 * Redis, recording every item's result in the queue as it finishes. Here is
 * the entry and BullMQ's set-up; one batch's life is in batch.ts, the run
 * its items go through in pipeline.ts, its records in recorder.ts.
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
 *   back to the queue at once (not left to stall);
 * - a batch whose lock this worker lost (it was silent past `lockMs`) is
 *   taken back from it as soon as it knows (see batch.ts).
 */
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { describeError } from '../errors.js';
import { OptionError, resolveOptions } from '../options.js';
import type { ItemResult } from '../record/record.js';
import type { RunSummary } from '../record/run-report.js';
import { HeldBatches, runBatch, type BatchContext, type Entry } from './batch.js';
import { QUEUE_NAME, logOutages, parseQueueUrl, preflight, workerOptions, type QueueAddress } from './connection.js';
import { RedisHostGates } from './host-gate.js';
import { ClusterNames } from './names.js';
import { Pipeline } from './pipeline.js';
import { HostStats } from './host-stats.js';
import { Recorder } from './recorder.js';
import { Store } from './store.js';

/** How many times a batch may lose its worker before BullMQ fails it for good. */
export const MAX_STALLED = 5;

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

/** `value` checked as an integer from `min` to `max`, or `fallback` when unset; throws OptionError naming `option`. */
function positiveInteger(option: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionError(option, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

/** {@link WorkerOptions}, checked, with their defaults. */
interface Settings {
  address: QueueAddress;
  lockMs: number;
  /** The options this worker sets for every batch it runs. */
  local: BatchContext['local'];
}

/** What the worker opens for its whole life: one connection, and what its batches share over it. */
interface Shared extends BatchContext {
  redis: Redis;
  gates: RedisHostGates;
  /** Aborted when the worker stops; its signal is the batches' `stop`. */
  stopping: AbortController;
  /** Listens for the `error` events of every client on the connection. */
  onError: (error: Error) => void;
}

/**
 * Runs a worker until `stopSignal` aborts or, with `exitWhenEmpty`, until the
 * queue has nothing waiting or active. Throws REDIS_UNAVAILABLE when Redis
 * cannot be reached at start, REDIS_EVICTS when it may evict the queue's
 * keys, and OptionError for a bad option.
 */
export async function runWorker(options: WorkerOptions): Promise<WorkerSummary> {
  const settings = readSettings(options);
  (await preflight(settings.address, options.logger)).disconnect();
  const shared = openShared(settings, options);
  const busy = { batches: 0 };
  const worker = createWorker(settings, shared, busy);
  const close = (): void => {
    shared.stopping.abort(new Error('stopped'));
    void worker.close();
  };
  const onStop = (): void => close();
  if (options.stopSignal?.aborted) close();
  options.stopSignal?.addEventListener('abort', onStop, { once: true });
  const watcher = options.exitWhenEmpty ? watchForEmpty(shared.queue, busy, close) : undefined;
  try {
    await worker.run();
  } finally {
    options.stopSignal?.removeEventListener('abort', onStop);
    watcher?.stop();
    await worker.close().catch(() => undefined);
    await closeShared(shared);
  }
  return { summary: shared.recorder.summary(), batches: shared.tally.batches, handedBack: shared.tally.handedBack };
}

/** Checks the options and fills in their defaults, so a bad value fails at start, not per batch. */
function readSettings(options: WorkerOptions): Settings {
  const address = parseQueueUrl(options.queue);
  const concurrency = positiveInteger('concurrency', options.concurrency, 16, 1, 10_000);
  const lockMs = positiveInteger('lockMs', options.lockMs, 30_000, 1_000, 24 * 3600 * 1000);
  const graceMs = positiveInteger('graceMs', options.graceMs, 5_000, 0, 24 * 3600 * 1000);
  const out = options.out ?? '.';
  // The same checks a batch's options will get, done now so a bad -o fails at start, not per batch.
  resolveOptions({ out, concurrency, graceMs });
  return { address, lockMs, local: { out, concurrency, graceMs } };
}

/** Opens the worker's connection to Redis and what its batches share over it. */
function openShared(settings: Settings, options: WorkerOptions): Shared {
  const log = options.logger;
  const { out, concurrency } = settings.local;
  const redis = new Redis(workerOptions(settings.address));
  const store = new Store(redis, QUEUE_NAME);
  const names = new ClusterNames(store);
  const gates = new RedisHostGates(redis, QUEUE_NAME, settings.lockMs);
  const queue = new Queue(QUEUE_NAME, { connection: redis });
  const stopping = new AbortController();
  const hostStats = new HostStats(redis, QUEUE_NAME);
  const recorder = new Recorder(store, { out: resolveOptions({ out }).out, concurrency, onRecord: options.onRecord, hostStats });
  const onError = logOutages(redis, settings.address, log);
  queue.on('error', onError);
  const pipeline = new Pipeline<Entry>({ names, gates, log, settle: (entry, result) => entry.batch.settle(entry, result) });
  const held = new HeldBatches();
  const tally = { batches: 0, handedBack: 0 };
  return {
    redis,
    store,
    names,
    gates,
    queue,
    stopping,
    recorder,
    onError,
    pipeline,
    held,
    log,
    local: settings.local,
    stop: stopping.signal,
    tally,
  };
}

/**
 * BullMQ's worker, set as its guide asks (see the module comment). Each
 * batch it takes is run by {@link runBatch}; each sign that this worker lost
 * a batch's lock takes that batch back from it.
 */
function createWorker(settings: Settings, shared: Shared, busy: { batches: number }): Worker {
  const { held, log } = shared;
  const worker = new Worker(
    QUEUE_NAME,
    async (job, token) => {
      busy.batches++;
      try {
        return await runBatch(job, token, shared);
      } finally {
        held.release(job.id!, token ?? job.token);
        busy.batches--;
      }
    },
    {
      // ioredis' own options type; bullmq declares a looser copy of it that exactOptionalPropertyTypes will not match.
      connection: workerOptions(settings.address) as ConnectionOptions,
      autorun: false,
      // Two batches at a time: the next one is already in the run's feed when the first one's last items run.
      concurrency: 2,
      lockDuration: settings.lockMs,
      stalledInterval: Math.max(500, Math.round(settings.lockMs / 2)),
      maxStalledCount: MAX_STALLED,
    },
  );
  worker.on('error', shared.onError);
  worker.on('stalled', (jobId) => {
    log?.info(`batch ${jobId} was taken back from a worker that stopped answering; it will run again`);
    // This worker's own stalled check may find its own batch: then this worker is the one that stopped answering.
    held.withdraw(jobId, 'the stalled check took it back');
  });
  worker.on('lockRenewalFailed', (jobIds: string[]) => {
    for (const jobId of jobIds) held.withdraw(jobId, 'its lock could not be renewed');
  });
  worker.on('failed', (job, error) => {
    if (error.name !== 'WaitingError') log?.error(`batch ${job?.id ?? '?'} failed: ${describeError(error)}`);
  });
  return worker;
}

/** Closes what {@link openShared} opened, once BullMQ's worker is closed: the last run ends first, so its records are written. */
async function closeShared(shared: Shared): Promise<void> {
  await shared.pipeline.close();
  await shared.recorder.flush();
  shared.gates.close();
  await shared.queue.close().catch(() => undefined);
  shared.redis.disconnect();
}

/**
 * Polls the queue while this worker is idle, and closes it once nothing is
 * waiting, delayed or active anywhere. A batch held by a dead worker stays
 * active until another worker takes it over, so it keeps everyone waiting.
 */
function watchForEmpty(queue: Queue, busy: { batches: number }, close: () => void): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const check = async (): Promise<void> => {
    if (stopped) return;
    try {
      if (busy.batches === 0) {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
        if (Object.values(counts).every((n) => n === 0) && busy.batches === 0) {
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
