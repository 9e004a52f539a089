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
import { THROTTLE_STATUSES } from './host-events.js';
import type { HostGate } from './host-gate.js';
import type { PoolWork, Turn } from './pool.js';
import type { ProgressTracker } from './progress.js';
import type { WorkerPool } from './thread-pool.js';

/**
 * A planned item as the pool holds it: with its tries once the first has ended in a retry (or started,
 * on this thread), and whether progress counts it in flight.
 */
export type Queued = { task: Task; tries?: Tries; flying?: boolean } | { result: ItemResult };

/** The pool's work for one run. */
export class RunTurns implements PoolWork<Queued, ItemResult> {
  readonly #ctx: RunContext;
  readonly #progress: ProgressTracker;
  readonly #gate: HostGate;
  /** The worker threads in `workers` mode; undefined runs every try on this thread. */
  readonly #workers: WorkerPool | undefined;
  /** Results of items their caller took back (see RunContext.itemSignal): the caller's to report, not logged by the run. */
  readonly takenBack = new WeakSet<ItemResult>();
  /** Each result's list position, kept for a sink that hears of every row (see Sink.settle); undefined when none does. */
  readonly positions: WeakMap<ItemResult, number> | undefined;

  constructor(ctx: RunContext, progress: ProgressTracker, gate: HostGate, workers: WorkerPool | undefined) {
    this.#ctx = ctx;
    this.#progress = progress;
    this.#gate = gate;
    this.#workers = workers;
    this.positions = ctx.sink.settle === undefined ? undefined : new WeakMap();
  }

  hostOf(queued: Queued): string | undefined {
    return 'task' in queued ? queued.task.url.host : undefined;
  }

  async turn(queued: Queued, host: string | undefined, release: (leaving: () => void) => void): Promise<Turn<ItemResult>> {
    const progress = this.#progress;
    if ('result' in queued) {
      progress.finished(queued.result, false);
      return queued;
    }
    const { task } = queued;
    const workers = this.#workers;
    if (queued.flying !== true) {
      queued.flying = true;
      progress.started();
    }
    const startedAt = Date.now();
    // Its body received, the item leaves flight while the disk keeps it, if the pool lets its slot go.
    const received = (): void =>
      release(() => {
        queued.flying = false;
        progress.received();
      });
    // A worker thread starts an item's tries itself, so nothing more crosses for a first try.
    const outcome = workers
      ? await workers.run(task, queued.tries, this.#ctx.signal)
      : await tryTask(task, this.#ctx, (queued.tries ??= startTries()), received);
    if ('retryInMs' in outcome) {
      queued.tries = outcome.tries;
      // In workers mode a server's pause holds only for its own item, as the README states.
      const paused = !workers && (await this.#pauseFor(outcome, host!, task.shownUrl));
      await this.#answered(host!, outcome.status, outcome.hostWait === undefined, startedAt, paused);
      return outcome;
    }
    if (outcome.status === 'failed') await this.#answered(host!, failedStatus(outcome), false, startedAt, false);
    else if (outcome.attempts > 0) this.#succeeded(host!);
    if (this.#ctx.itemSignal?.(task.item)?.aborted) this.takenBack.add(outcome);
    this.positions?.set(outcome, task.position);
    // Worker threads have agents of their own, so their bytes are counted as each item finishes.
    if (workers) progress.bytes(outcome.bytes);
    progress.finished(outcome, queued.flying);
    return { result: outcome };
  }

  stopped(queued: Queued): ItemResult | undefined {
    // Never started: left out, like the lines not read yet. Waiting for its next try: it ends here.
    if (!('task' in queued) || queued.tries === undefined) return undefined;
    const result = stoppedWaiting(queued.task, queued.tries);
    this.positions?.set(result, queued.task.position);
    this.#progress.finished(result, queued.flying === true);
    return result;
  }

  /** A server's Retry-After on 429 or 503 holds back the whole host, not just this item; said once per pause. True when this started a pause. */
  async #pauseFor(retry: Retry, host: string, url: string): Promise<boolean> {
    const status = retry.hostWait;
    if (status === undefined) return false;
    const fresh = await Promise.resolve(this.#gate.pause(host, Date.now() + retry.retryInMs)).catch(() => false);
    const waitMs = retry.retryInMs;
    if (fresh)
      this.#ctx.options.logger?.warn(
        { host, url, status, waitMs },
        `${host} answered HTTP ${status} asking to wait ${Math.ceil(waitMs / 1000)} s: pausing every request to it until then`,
      );
    return fresh;
  }

  /**
   * A try to `host` that started at `startedAt` failed with `status`: a 429, or a 503 that did not say
   * how long to wait (`untimed`), slows the host down; each cut is logged once, at info (-v).
   */
  async #answered(host: string, status: number | undefined, untimed: boolean, startedAt: number, paused: boolean): Promise<void> {
    if (status === undefined || !THROTTLE_STATUSES.has(status)) return;
    const slows = status === 429 || untimed;
    const rate = slows ? await Promise.resolve(this.#gate.throttled?.(host, startedAt)).catch(() => undefined) : undefined;
    const { options } = this.#ctx;
    options.onHost?.({ host, status, paused, rate });
    if (rate !== undefined)
      options.logger?.info({ host, status, rate }, `${host} answered HTTP ${status}: slowing to ${formatRate(rate)} requests/s`);
  }

  /** A try to `host` succeeded; not waited for when the gate answers later (a shared gate), since nothing depends on it. */
  #succeeded(host: string): void {
    const lifted = this.#gate.succeeded?.(host);
    if (lifted === true) this.#lifted(host);
    else if (lifted instanceof Promise) void lifted.then((yes) => yes && this.#lifted(host));
  }

  /** The host's adapted rate was lifted: said once, at info (-v). */
  #lifted(host: string): void {
    const { options } = this.#ctx;
    options.onHost?.({ host, rate: null });
    const to = options.rate === undefined ? 'as fast as the slots allow' : `at --rate again`;
    options.logger?.info({ host, rate: null }, `${host} keeps up again: requests go ${to}`);
  }
}

/** The status of the response that failed an item, when one did. */
function failedStatus(result: ItemResult): number | undefined {
  return result.error?.code === 'HTTP_STATUS' && result.httpStatus !== null ? result.httpStatus : undefined;
}

/** A rate for people: `12`, `2.5`, `0.25`. */
export function formatRate(rate: number): string {
  return rate >= 10 ? String(Math.round(rate)) : String(Math.round(rate * 100) / 100);
}
