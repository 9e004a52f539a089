/**
 * imgdl on many machines: a list enqueued once into BullMQ on Redis, batches
 * downloaded by any number of workers through the same pipeline as
 * `download()`, progress read from anywhere. The `imgdl/cluster` entry; the
 * main `imgdl` entry never loads it, nor bullmq and ioredis.
 *
 * @example
 * import { enqueue, runWorker, queueStatus } from 'imgdl/cluster';
 * await enqueue(['https://example.com/a.jpg'], { queue: 'redis://127.0.0.1:6379', options: { hash: 'sha256' } });
 * await runWorker({ queue: 'redis://127.0.0.1:6379', out: 'photos', exitWhenEmpty: true });
 * console.log(await queueStatus('redis://127.0.0.1:6379'));
 */
export { enqueue, type EnqueueOptions, type EnqueueResult } from './enqueue.js';
export { runWorker, MAX_STALLED, type WorkerOptions, type WorkerSummary } from './worker.js';
export { queueStatus, formatStatus, type ClusterStatus } from './status.js';
export { ClusterError, parseQueueUrl, QUEUE_NAME, type ClusterErrorCode, type QueueAddress } from './connection.js';
export { LOCAL_OPTIONS, type JobOptions } from './jobs.js';
