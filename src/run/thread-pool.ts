/**
 * The `workers` mode's threads: a piscina pool of worker threads, each
 * running the same per-item pipeline (`tryTask` in item/attempt.ts, one try per message)
 * with its own event loop and undici Agent. The main thread still plans every
 * item in list order (naming, duplicate URLs), and the run's pool still bounds
 * the items in flight and schedules their retries, as in every mode; this
 * module only decides which thread a try runs on.
 *
 * Only plain data crosses the boundary: a {@link WireTask} (and the tries so
 * far) goes in, an {@link ItemResult} (whose error is a `{code, message}`
 * record) or a {@link Retry} comes out. A
 * worker that dies fails the items it held with WORKER_CRASHED; piscina starts
 * a replacement and the run goes on.
 */
import { Piscina } from 'piscina';
import { isCoordination, serveWorker, type NameClaims } from './thread-shared.js';
import type { DigestRegistry } from '../names/dedupe.js';
import { aborted, ImgdlError } from '../errors.js';
import { taskFailure, type Retry, type Tries } from '../item/attempt.js';
import type { Task } from '../item/plan.js';
import type { ResolvedOptions } from '../options.js';
import type { SampleKeeper } from '../output/sample-port.js';
import type { ItemResult } from '../record/record.js';

/** A {@link Task} in structured-clone form (a URL object does not survive `postMessage`). */
export type WireTask = Omit<Task, 'url'> & { url: string };

/** The options a worker needs: everything resolved except what cannot be cloned. */
export type WireOptions = Omit<ResolvedOptions, 'logger' | 'signal' | 'stopSignal' | 'onProgress' | 'onHost'>;

/** What piscina hands the worker for one try of one item. */
export interface WorkerMessage {
  task: WireTask;
  /** What the item's earlier tries learnt; absent for its first. */
  tries: Tries | undefined;
}

/** What the worker learns once, when it starts. */
export interface WorkerSetup {
  options: WireOptions;
}

// Tests import src/*.ts directly, but a worker thread can only load the built JavaScript.
const WORKER_FILE = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/run/thread.js', import.meta.url).href
  : new URL('./thread.js', import.meta.url).href;

/** A pool of worker threads sized for one run. */
export class WorkerPool {
  readonly #pool: Piscina<WorkerMessage, ItemResult | Retry>;
  #destroyed: Promise<void> | undefined;

  /**
   * Starts the threads; aborting `signal` stops them, failing the items they hold as ABORTED.
   * `names` and `digests` are the run's, answered here for every thread; `samples` keeps the
   * samples the threads forward (WebDataset shards have one writer, here).
   */
  constructor(options: ResolvedOptions, signal: AbortSignal, names: NameClaims, digests?: DigestRegistry, samples?: SampleKeeper) {
    const { logger: _logger, signal: _signal, stopSignal: _stopSignal, onProgress: _onProgress, onHost: _onHost, ...wire } = options;
    // More threads than items in flight would only sit idle.
    const threads = Math.min(options.threads, options.concurrency);
    this.#pool = new Piscina({
      filename: WORKER_FILE,
      minThreads: threads,
      maxThreads: threads,
      // The run's own pool bounds the total; piscina gives each task to the least busy ready thread.
      // No per-thread cap: threads start at different times, and a cap would idle slots while one boots.
      concurrentTasksPerWorker: options.concurrency,
      // Each worker runs many downloads at once on its event loop; Atomics.wait between tasks would stall them.
      atomics: 'disabled',
      idleTimeout: Number.POSITIVE_INFINITY,
      workerData: { options: wire } satisfies WorkerSetup,
    });
    this.#pool.on('message', (message: unknown) => {
      if (isCoordination(message)) serveWorker(message, names, digests, samples);
    });
    signal.addEventListener('abort', () => void this.destroy(), { once: true });
  }

  /**
   * Runs one try of a task on some worker: its record, or the wait before its next try. Never
   * rejects: a dead worker or an abort becomes a failed record.
   * The signal is not given to piscina: it runs an abortable task alone on its thread, which would
   * cap each thread at one download. An aborted run destroys the pool instead (see the constructor).
   */
  async run(task: Task, tries: Tries | undefined, signal: AbortSignal): Promise<ItemResult | Retry> {
    const wire: WireTask = { ...task, url: task.url.href };
    try {
      return await this.#pool.run({ task: wire, tries } satisfies WorkerMessage);
    } catch (error) {
      if (signal.aborted) return taskFailure(task, aborted(task.shownUrl, 'stopped before it finished', error));
      return taskFailure(
        task,
        new ImgdlError('WORKER_CRASHED', 'the worker thread downloading it stopped', { url: task.shownUrl, cause: error }),
      );
    }
  }

  /** Stops every worker. */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#pool.destroy().catch(() => undefined);
    return this.#destroyed;
  }
}
