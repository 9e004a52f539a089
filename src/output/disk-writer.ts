/**
 * The loop's side of the writer thread: file operations (disk-ops.ts) are
 * queued as they come and sent as one batch per turn of the event loop, so
 * that files finishing together cost one hand-off between them, and a small
 * file at most one. While a batch is out the next one gathers; its answers
 * come back in one message.
 *
 * Why a thread of our own rather than libuv's pool: every async `fs` call is
 * a round trip to a pool thread (4.3 futex calls per file on the latency list,
 * about 1 s of system time over 2000 files), while the calls themselves are
 * short and could run back to back. Why not synchronous calls on the loop:
 * creating a file takes 0.3–0.5 ms on ext4 here, time the loop would not
 * spend on sockets.
 *
 * Until a thread is ready, operations run on libuv's pool instead, the
 * same steps (disk-ops.ts) one call at a time: a thread takes 25-30 ms to
 * start here, as long as a small download on loopback, so a run's first
 * files do not wait for it. A run of one file never starts one, nor does a
 * run of large bodies only: their bytes go to libuv's pool in batches
 * anyway (folder-sink.ts), and their few opens and renames did not pay for
 * a thread's start (bulk, 16 × 64 MiB: 6 % more CPU and 9 MB more RSS). A
 * run of one slot, which finishes no files together, gets a writer with no
 * thread at all (folder-sink.ts).
 *
 * One writer per thread that uses it (module state), shared by every run in
 * it; its threads are unreferenced while idle, so an idle writer never keeps
 * a process alive.
 */
import { Worker } from 'node:worker_threads';
import { fileSystemError, type ImgdlError } from '../errors.js';
import { isFailure, runOnPool, type Answers, type Batch, type DiskAnswer, type DiskFailure, type DiskOp } from './disk-ops.js';

// Tests import src/*.ts directly, but a thread can only load the built JavaScript.
const THREAD_FILE = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/output/writer-thread.js', import.meta.url)
  : new URL('./writer-thread.js', import.meta.url);

/**
 * Writer threads at most; a second would start only while the first is busy
 * and work waits. One measured best on two cores (latency list, c32): a
 * second thread added ~10 MB of RSS and 15–40 % more context switches and
 * took no time off a run, since creating files in one folder takes the
 * folder's lock either way.
 */
export const WRITER_THREADS = 1;

/** A slab's least size: most batches of small bodies fit one, so slabs are seldom made. */
const SLAB_BYTES = 256 * 1024;
/** Slabs kept for the next batches (one out, one gathering); a larger one made for an unusual batch is let go. */
const SPARE_SLABS = 2;
const LARGEST_SPARE = 2 * 1024 * 1024;

/** One queued operation, the body it carries (copied into the batch's slab as it is sent), and who waits. */
interface Queued {
  op: DiskOp;
  chunks: readonly Buffer[] | undefined;
  bytes: number;
  settle: (answer: DiskAnswer) => void;
}

/** One writer thread, whether it has said it is ready, and the batch it is working on. */
interface Lane {
  thread: Worker;
  ready: boolean;
  out: Queued[] | undefined;
}

/** Sends batches of file operations to the writer threads; see the module's comment. */
export class DiskWriter {
  readonly #lanes: Lane[] = [];
  readonly #most: number;
  readonly #spare: ArrayBuffer[] = [];
  #queue: Queued[] = [];
  #scheduled = false;
  /** Batches sent and operations in them, so far: what the hand-offs cost is counted, not timed. */
  batches = 0;
  operations = 0;
  /** Operations run on libuv's pool, while no thread was ready. */
  pooled = 0;
  /** Those of them that carried a body: the second starts a thread. */
  #bodies = 0;
  /** Callers of {@link ready} waiting for a thread. */
  readonly #waiting: Array<() => void> = [];
  readonly #flush = (): void => {
    this.#scheduled = false;
    this.#send();
  };

  /** `threads` 0 runs every operation on libuv's pool, as before a thread is ready. */
  constructor(threads: number = WRITER_THREADS) {
    this.#most = threads;
  }

  /**
   * Runs `op` on a writer thread, with `chunks` (`bytes` in all) as its body
   * when it has one; resolves with its answer, or rejects with FILESYSTEM or
   * DISK_FULL naming `url`. The chunks are copied when the batch is sent:
   * they must not change until then. Until a thread is ready, it runs on
   * libuv's pool instead (see the module's comment).
   */
  run(op: DiskOp, chunks?: readonly Buffer[], bytes = 0, url?: string): Promise<number | string | null> {
    return new Promise((resolve, reject) => {
      const settle = (answer: DiskAnswer): void => (isFailure(answer) ? reject(asError(answer, url)) : resolve(answer));
      if (this.#lanes.some((lane) => lane.ready)) {
        this.#queue.push({ op, chunks, bytes, settle });
        this.#schedule();
        return;
      }
      // The thread is for small bodies, each kept in one hand-off: it starts with the second operation
      // that carries one. A run of one file, or of large bodies only (their bytes go to libuv's pool
      // whatever runs their opens and renames), never starts one.
      if (chunks !== undefined) {
        if (this.#bodies > 0) this.#warm();
        this.#bodies++;
      }
      this.pooled++;
      const body = chunks === undefined ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes);
      void runOnPool(op, body).then(settle);
    });
  }

  /** Threads started so far and running, ready or not. */
  get threads(): number {
    return this.#lanes.length;
  }

  /** Starts a thread if none runs; operations go to libuv's pool until it is ready. */
  #warm(): void {
    if (this.#lanes.length === 0 && this.#most > 0) this.#start();
  }

  /** Resolves once a thread is ready to take batches (started if none runs); never, with no threads allowed. */
  ready(): Promise<void> {
    this.#warm();
    if (this.#lanes.some((lane) => lane.ready)) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // Once the loop has run every callback that is ready, so that bodies finishing together go together.
    setImmediate(this.#flush);
  }

  #send(): void {
    if (this.#queue.length === 0) return;
    const lane = this.#lanes.find((l) => l.ready && l.out === undefined) ?? this.#start();
    // Every thread is busy (or starting): the queue goes with the first answer, as a larger batch.
    if (lane === undefined || !lane.ready) return;
    const batch = this.#queue;
    this.#queue = [];
    lane.out = batch;
    this.batches++;
    this.operations += batch.length;
    const slab = this.#slabFor(batch);
    lane.thread.ref();
    lane.thread.postMessage({ ops: batch.map((queued) => queued.op), slab } satisfies Batch, [slab]);
  }

  /** A slab holding every body of `batch`, each op pointed at its own. */
  #slabFor(batch: readonly Queued[]): ArrayBuffer {
    let total = 0;
    for (const queued of batch) total += queued.bytes;
    const at = this.#spare.findIndex((spare) => spare.byteLength >= total);
    const slab = at === -1 ? new ArrayBuffer(Math.max(total, SLAB_BYTES)) : this.#spare.splice(at, 1)[0]!;
    const view = new Uint8Array(slab);
    let offset = 0;
    for (const queued of batch) {
      if (queued.chunks === undefined) continue;
      const { op } = queued;
      if (op.op === 'keep') op.body = { at: offset, size: queued.bytes };
      for (const chunk of queued.chunks) {
        view.set(chunk, offset);
        offset += chunk.length;
      }
    }
    return slab;
  }

  #start(): Lane | undefined {
    if (this.#lanes.length >= this.#most) return undefined;
    // Descriptors it opens are closed by the loop as often as by itself: not its to close when it exits.
    // No flags of the process's own (V8 flags a thread may not take): the thread runs file calls only.
    const thread = new Worker(THREAD_FILE, { trackUnmanagedFds: false, execArgv: [] });
    const lane: Lane = { thread, ready: false, out: undefined };
    thread.on('message', (message: Answers | 'ready') => (message === 'ready' ? this.#ready(lane) : this.#answered(lane, message)));
    thread.on('error', (error) => this.#lost(lane, error));
    thread.on('exit', (code) => this.#lost(lane, new Error(`the writer thread exited with code ${code}`)));
    // Referenced only while a batch is out, an idle writer never keeps a process alive (after the
    // listeners: listening for messages references the thread's port again).
    thread.unref();
    this.#lanes.push(lane);
    return lane;
  }

  #ready(lane: Lane): void {
    lane.ready = true;
    for (const resolve of this.#waiting.splice(0)) resolve();
    if (this.#queue.length > 0) this.#send();
  }

  #answered(lane: Lane, { answers, slab }: Answers): void {
    const batch = lane.out ?? [];
    lane.out = undefined;
    if (this.#spare.length < SPARE_SLABS && slab.byteLength <= LARGEST_SPARE) this.#spare.push(slab);
    if (this.#queue.length > 0) this.#send();
    else lane.thread.unref();
    for (const [i, queued] of batch.entries()) queued.settle(answers[i] ?? null);
  }

  /** A thread died: what it held fails as FILESYSTEM, and a new thread takes the next batch. */
  #lost(lane: Lane, error: Error): void {
    const at = this.#lanes.indexOf(lane);
    if (at === -1) return;
    this.#lanes.splice(at, 1);
    const batch = lane.out ?? [];
    lane.out = undefined;
    for (const queued of batch) {
      const { op } = queued;
      const file = op.op === 'record' ? op.file : op.op === 'drop' ? (op.files[0] ?? '') : op.part;
      queued.settle({ failed: true, code: undefined, message: error.message, action: 'writing', file });
    }
    if (this.#queue.length > 0) this.#schedule();
  }
}

function asError(failure: DiskFailure, url?: string): ImgdlError {
  const cause = Object.assign(new Error(failure.message), failure.code === undefined ? {} : { code: failure.code });
  return fileSystemError(cause, failure.action, failure.file, url);
}

let shared: DiskWriter | undefined;

/** This thread's writer, started with its first operation. */
export function diskWriter(): DiskWriter {
  return (shared ??= new DiskWriter());
}
