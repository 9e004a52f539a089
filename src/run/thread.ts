/**
 * The entry of one worker thread in `workers` mode: its own undici Agent and
 * run context, and one try of one task per message, the same {@link tryTask}
 * the main thread runs in the other modes. Retries come back to the run's
 * pool, which schedules them as it does every mode's.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectToMain } from './thread-shared.js';
import { createAgent } from '../http/fetch.js';
import { startTries, tryTask, type Retry } from '../item/attempt.js';
import { LAYOUT_NAMES, makeRunContext } from '../item/context.js';
import { PortKeeper } from '../output/sample-port.js';
import { ShardSink } from '../output/shard-sink.js';
import type { ItemResult } from '../record/record.js';
import type { WorkerMessage, WorkerSetup } from './thread-pool.js';

const { options } = workerData as WorkerSetup;
// Names and digests are the main thread's, so that every thread sees every claim. Aborting a run
// terminates the pool's threads, so nothing here listens for it.
const shared = connectToMain((message, transfer) => parentPort!.postMessage(message, transfer));
// Each thread keeps an equal part of the run's bandwidth cap, as many as the pool starts (see thread-pool.ts).
const limitRate = options.limitRate === undefined ? undefined : options.limitRate / Math.min(options.threads, options.concurrency);
const ctx = makeRunContext(
  { ...options, limitRate, logger: undefined, signal: undefined, stopSignal: undefined, onProgress: undefined, onHost: undefined },
  createAgent(options),
  // The main thread skips what an earlier run's manifest says is done, before an item gets here.
  // The sharded layout's names need no registry, so no round trip to the main thread either.
  {
    names: options.layout === 'sharded' ? LAYOUT_NAMES : shared.names,
    done: undefined,
    digests: options.dedupe ? shared.digests : undefined,
  },
);

// A shard has one writer, on the main thread: this thread's samples go there.
if (options.format === 'webdataset') ctx.sink = new ShardSink(ctx.options, new PortKeeper(shared.samples));

// A seam for the tests alone: an item whose URL contains this text kills its worker, as a native crash would.
const CRASH_ON = process.env.IMGDL_TEST_CRASH_WORKER_ON;

/** Runs one try of one item; piscina calls this for every message sent to this thread. */
export default async function downloadInWorker({ task, tries }: WorkerMessage): Promise<ItemResult | Retry> {
  if (CRASH_ON && task.url.includes(CRASH_ON)) process.exit(70);
  return tryTask({ ...task, url: new URL(task.url) }, ctx, tries ?? startTries());
}
