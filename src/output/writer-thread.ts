/**
 * The writer thread's entry point: each message is a batch of file
 * operations (disk-ops.ts) and the slab holding their bodies; they run
 * synchronously, in order, and one message answers them all, handing the
 * slab back for the next batch. Started by disk-writer.ts.
 */
import { parentPort } from 'node:worker_threads';
import { runBatch, type Answers, type Batch } from './disk-ops.js';

const port = parentPort;
if (port === null) throw new Error('writer-thread.js runs as a worker thread only');
port.on('message', ({ ops, slab }: Batch) => {
  const answers = runBatch(ops, slab);
  port.postMessage({ answers, slab } satisfies Answers, [slab]);
});
// Until this arrives the loop runs file calls on libuv's pool instead (see DiskWriter.run).
port.postMessage('ready');
