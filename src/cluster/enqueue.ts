/**
 * Enqueuing: a list in, jobs of `batch` items out, read as a stream so a list
 * of any length costs one batch group of memory. Each job carries its items
 * (with their list positions and fields) and the download options, and is
 * named by its content, so enqueuing the same list again adds nothing. With
 * `format: 'webdataset'` one job is one tar shard: `shardSize` rows, cut on
 * the shard boundaries (see shards.ts).
 */
import { Queue } from 'bullmq';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { toListItems, type Source } from '../input/source.js';
import type { ListItem } from '../input/text-list.js';
import { OptionError, type Options } from '../options.js';
import { QUEUE_NAME, isConnectionError, parseQueueUrl, preflight, unavailable } from './connection.js';
import { DATASET_DEFAULTS } from '../dataset-options.js';
import { batchId, carriedOptions, encodeBatch, type BatchData, type JobOptions } from './jobs.js';
import { Store } from './store.js';

/** Options of {@link enqueue}. */
export interface EnqueueOptions {
  /** The queue: `redis://HOST:PORT[/DB]` [`--queue`]. Required. */
  queue: string;
  /**
   * Items per job [`--batch`], from 1 to 100000. Default 1000. Refused with `format: 'webdataset'`
   * in `options`, whose jobs are one shard each (`shardSize` rows).
   */
  batch?: number | undefined;
  /**
   * The download options every worker applies to these items: any
   * {@link Options} field but those a worker sets for itself (`out`,
   * `concurrency`, `mode`, ... see `LOCAL_OPTIONS`). Default none.
   */
  options?: Options | undefined;
  /** Logger (pino). Default: a silent one. */
  logger?: Logger | undefined;
}

/** What {@link enqueue} added. */
export interface EnqueueResult {
  /** Items read from the source. */
  items: number;
  /** Jobs those items made. */
  jobs: number;
  /** Items in jobs that were new to the queue. */
  addedItems: number;
  /** Jobs that were new to the queue (the others were enqueued before). */
  addedJobs: number;
}

/** Jobs sent to Redis per round trip. */
const JOBS_PER_CALL = 20;
/**
 * Round trips in flight while the list goes on being read: enough to hide
 * Redis's latency behind the reading, and a bound on what is held
 * (JOBS_PER_CALL × this many jobs, besides the one being filled).
 */
const CALLS_IN_FLIGHT = 4;

/**
 * Adds every item of `source` to the queue. Throws OptionError for bad
 * options (before anything is added), REDIS_UNAVAILABLE when Redis cannot be
 * reached or drops the connection (jobs added until then stay; enqueue again
 * to add the rest, nothing is added twice), REDIS_EVICTS when Redis may
 * evict the queue's keys.
 */
export async function enqueue(source: Source, options: EnqueueOptions): Promise<EnqueueResult> {
  const address = parseQueueUrl(options.queue);
  const carried = carriedOptions(options.options ?? {});
  const size = batchSize(options.batch, carried);
  const client = await preflight(address, options.logger);
  const store = new Store(client, QUEUE_NAME);
  const queue = new Queue(QUEUE_NAME, { connection: client });
  queue.on('error', () => undefined);
  const result: EnqueueResult = { items: 0, jobs: 0, addedItems: 0, addedJobs: 0 };
  let pending: BatchData[] = [];
  const calls = pLimit(CALLS_IN_FLIGHT);
  const inFlight = new Set<Promise<void>>();
  let failed: { error: unknown } | undefined;

  // Hands the pending jobs to a round trip; waits only while CALLS_IN_FLIGHT are already under way.
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const batches = pending;
    pending = [];
    // A failure is kept, not thrown into the void: the producer stops reading at its next flush.
    const call = calls(() => send(store, queue, batches, result)).catch((error: unknown) => void (failed ??= { error }));
    inFlight.add(call);
    void call.finally(() => inFlight.delete(call));
    if (calls.activeCount + calls.pendingCount > CALLS_IN_FLIGHT) await call;
    if (failed) throw failed.error;
  };

  try {
    let items: ListItem[] = [];
    for await (const item of toListItems(source)) {
      items.push({ ...item, index: result.items++ });
      if (items.length === size) {
        pending.push(encodeBatch(items, carried));
        result.jobs++;
        items = [];
        if (pending.length === JOBS_PER_CALL) await flush();
      }
    }
    if (items.length > 0) {
      pending.push(encodeBatch(items, carried));
      result.jobs++;
    }
    await flush();
    await Promise.all(inFlight);
    if (failed) throw failed.error;
  } catch (error) {
    // Every call ends before the client closes under it.
    await Promise.all(inFlight);
    if (error instanceof OptionError) throw error;
    // Anything Redis says mid-way is a dropped or refused connection for a producer that fails fast.
    if (isConnectionError(error)) throw unavailable(address, error);
    throw error;
  } finally {
    await queue.close().catch(() => undefined);
    client.disconnect();
  }
  return result;
}

/**
 * Items per job: `batch`, or with `format: 'webdataset'` one shard's rows, so that each job, cut from
 * position 0 on, holds exactly one shard. Throws OptionError.
 */
function batchSize(batch: number | undefined, carried: JobOptions): number {
  if (carried.format === 'webdataset') {
    if (batch !== undefined) throw new OptionError('batch', batch, 'unset with format webdataset: a job is one shard of shardSize rows');
    return carried.shardSize ?? DATASET_DEFAULTS.shardSize;
  }
  const size = batch ?? 1000;
  if (!Number.isInteger(size) || size < 1 || size > 100_000) throw new OptionError('batch', size, 'an integer from 1 to 100000');
  return size;
}

/** One round trip's jobs: the ones Redis has not seen are added, then counted. */
async function send(store: Store, queue: Queue, batches: BatchData[], result: EnqueueResult): Promise<void> {
  const ids = batches.map(batchId);
  const known = await store.wereListed(ids);
  const fresh = batches.flatMap((data, i) => (known[i] ? [] : [{ data, id: ids[i]! }]));
  await queue.addBulk(
    fresh.map(({ data, id }) => ({
      name: 'batch',
      data,
      opts: {
        jobId: id,
        // Records live in the queue's own keys; a finished job's list of URLs is only memory.
        removeOnComplete: true,
        // A batch fails only on a fault of the worker's machine (a full disk): retried a few times, then kept to look at.
        attempts: 3,
        backoff: { type: 'exponential', delay: 10_000 },
      },
    })),
  );
  // Counted after the add: a crash in between leaves a job that the next enqueue counts, never a count without a job.
  for (const { data, id } of fresh) {
    if (await store.listed(id, data.items.length)) {
      result.addedJobs++;
      result.addedItems += data.items.length;
    }
  }
}
