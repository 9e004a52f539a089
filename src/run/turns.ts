/**
 * What the run's pool does with each planned item: one try per turn, on
 * this thread or on a worker thread, whatever the mode. A retry ends the
 * turn with the wait before the next one, which the pool schedules, so a
 * task waiting to retry holds no slot and every mode retries alike.
 */
import { startTries, stoppedWaiting, tryTask, type Retry, type Tries } from '../item/attempt.js';
import type { RunContext } from '../item/context.js';
import type { Task } from '../item/plan.js';
import type { ItemResult } from '../record/record.js';
import type { HostGate } from './host-gate.js';
import type { PoolWork, Turn } from './pool.js';
import type { ProgressTracker } from './progress.js';
import type { WorkerPool } from './thread-pool.js';

/** A planned item as the pool holds it: with its tries once the first has ended in a retry (or started, on this thread). */
export type Queued = { task: Task; tries?: Tries } | { result: ItemResult };

/** The pool's work for one run. */
export class RunTurns implements PoolWork<Queued, ItemResult> {
  readonly #ctx: RunContext;
  readonly #progress: ProgressTracker;
  readonly #gate: HostGate;
  /** The worker threads in `workers` mode; undefined runs every try on this thread. */
  readonly #workers: WorkerPool | undefined;
  /** Results of items their caller took back (see RunContext.itemSignal): the caller's to report, not logged by the run. */
  readonly takenBack = new WeakSet<ItemResult>();

  constructor(ctx: RunContext, progress: ProgressTracker, gate: HostGate, workers: WorkerPool | undefined) {
    this.#ctx = ctx;
    this.#progress = progress;
    this.#gate = gate;
    this.#workers = workers;
  }

  hostOf(queued: Queued): string | undefined {
    return 'task' in queued ? queued.task.url.host : undefined;
  }

  async turn(queued: Queued, host: string | undefined): Promise<Turn<ItemResult>> {
    const progress = this.#progress;
    if ('result' in queued) {
      progress.finished(queued.result, false);
      return queued;
    }
    const { task } = queued;
    const workers = this.#workers;
    if (queued.tries === undefined) progress.started();
    // A worker thread starts an item's tries itself, so nothing more crosses for a first try.
    const outcome = workers
      ? await workers.run(task, queued.tries, this.#ctx.signal)
      : await tryTask(task, this.#ctx, (queued.tries ??= startTries()));
    if ('retryInMs' in outcome) {
      queued.tries = outcome.tries;
      // In workers mode a server's pause holds only for its own item, as the README states.
      if (!workers) await this.#pauseFor(outcome, host!, task.shownUrl);
      return outcome;
    }
    if (this.#ctx.itemSignal?.(task.item)?.aborted) this.takenBack.add(outcome);
    // Worker threads have agents of their own, so their bytes are counted as each item finishes.
    if (workers) progress.bytes(outcome.bytes);
    progress.finished(outcome, true);
    return { result: outcome };
  }

  stopped(queued: Queued): ItemResult | undefined {
    // Never started: left out, like the lines not read yet. Waiting for its next try: it ends here.
    if (!('task' in queued) || queued.tries === undefined) return undefined;
    const result = stoppedWaiting(queued.task, queued.tries);
    this.#progress.finished(result, true);
    return result;
  }

  /** A server's Retry-After on 429 or 503 holds back the whole host, not just this item; said once per pause. */
  async #pauseFor(retry: Retry, host: string, url: string): Promise<void> {
    const status = retry.hostWait;
    if (status === undefined) return;
    const fresh = await Promise.resolve(this.#gate.pause(host, Date.now() + retry.retryInMs)).catch(() => false);
    const waitMs = retry.retryInMs;
    if (fresh)
      this.#ctx.options.logger?.warn(
        { host, url, status, waitMs },
        `${host} answered HTTP ${status} asking to wait ${Math.ceil(waitMs / 1000)} s: pausing every request to it until then`,
      );
  }
}
