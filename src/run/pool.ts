/**
 * The pool: reads tasks a window ahead, starts them through the
 * {@link Scheduler} (slots shared fairly across hosts, each host's gate
 * obeyed), and yields results as they finish.
 *
 * A task runs in turns: a turn ends with the task's result, or with a wait
 * before its next turn (a retry), during which it holds no slot. So a slow,
 * paused or failing host keeps only its share of the slots, and the other
 * hosts' tasks in the window take the rest.
 *
 * Backpressure runs both ways. The source is read while fewer than `buffer`
 * tasks wait, or while slots stay idle that no waiting task may take (their
 * hosts are held back), and never beyond `readAhead` tasks waiting,
 * running or finished but not yet consumed; a result holds its slot until it
 * is consumed. So memory stays flat however long the list and however slow
 * the consumer, and the window grows only while some host holds its items back.
 *
 * A turn may give its slot back before it ends, once its requests are over
 * and only local work is left (its body going to disk): the next request
 * then overlaps that work instead of waiting for it. At most `concurrency`
 * turns do so at once, so no more than twice that many bodies are ever held.
 */
import type { HostGate } from './host-gate.js';
import { Scheduler } from './scheduler.js';

/** How one turn of a task ended: its result, or a wait before its next turn. */
export type Turn<R> = { result: R } | { retryInMs: number };

/** What the pool does with its tasks. */
export interface PoolWork<T, R> {
  /** The host a task's requests go to; undefined for a task that makes none (its turn runs at once, without a slot). */
  hostOf(task: T): string | undefined;
  /**
   * Runs one turn. Expected to turn its own failures into results; a rejection stops the pool and is rethrown.
   * `release` gives the turn's slot back early (see the module's comment), calling `leaving` first (the
   * next task may start in the slot at once); when it does not, the slot is held until the result is
   * consumed, as usual.
   */
  turn(task: T, host: string | undefined, release: (leaving: () => void) => void): Promise<Turn<R>>;
  /** The result of a task the pool stopped while it waited (for its first turn or its next); undefined to drop it. */
  stopped(task: T): R | undefined;
}

/** How {@link runPool} runs. */
export interface PoolOptions {
  /** Most turns running at once, across all hosts. */
  concurrency: number;
  /** Tasks kept waiting to start, so that when a slot frees, other hosts' tasks are at hand, not only a slow host's. */
  buffer: number;
  /** Most tasks read from the source and not yet consumed as results, reached only while slots stay idle that no waiting task may take. */
  readAhead: number;
  gate: HostGate;
  /** When it aborts, no further task is read or started; turns running go on, and tasks waiting end as {@link PoolWork.stopped} says. */
  signal?: AbortSignal | undefined;
}

/**
 * Yields a result for every task of `source`, in completion order. When the
 * source throws or a turn rejects, the turns running settle, and then it is
 * rethrown. Stopping the iteration early stops reading and starting.
 */
export async function* runPool<T, R>(
  source: AsyncIterable<T> | Iterable<T>,
  options: PoolOptions,
  work: PoolWork<T, R>,
): AsyncGenerator<R> {
  const pool = new Pool(options, work);
  const { signal } = options;
  const stop = (): void => pool.stop();
  if (signal?.aborted) stop();
  signal?.addEventListener('abort', stop, { once: true });
  const producing = pool.produce(source);
  try {
    for (;;) {
      const next = pool.finished.shift();
      if (next !== undefined) {
        pool.notify();
        yield next.result;
        // The slot is freed once the consumer has seen the result, so that it can stop the run first (a
        // full disk), unless the turn gave it back already.
        if (next.host !== undefined) pool.scheduler.done(next.host);
        pool.notify();
        continue;
      }
      if (pool.drained) break;
      await new Promise<void>((resolve) => (pool.wakeConsumer = resolve));
      pool.wakeConsumer = undefined;
    }
    if (pool.sourceDone) await producing;
    if (pool.failure) throw pool.failure.error;
  } finally {
    pool.stop();
    signal?.removeEventListener('abort', stop);
  }
}

/** One {@link runPool}: its scheduler, the turns running, and the results not yet consumed. */
class Pool<T, R> {
  /** Results not yet consumed, each with the host whose slot it holds until then (see runPool). */
  readonly finished: Array<{ result: R; host: string | undefined }> = [];
  readonly scheduler: Scheduler<T>;
  failure: { error: unknown } | undefined;
  sourceDone = false;
  wakeConsumer: (() => void) | undefined;
  readonly #options: PoolOptions;
  readonly #work: PoolWork<T, R>;
  #stopped = false;
  /** Turns running, including those of tasks without a host. */
  #active = 0;
  /** Turns running that gave their slot back early. */
  #released = 0;
  #wakeProducer: (() => void) | undefined;

  constructor(options: PoolOptions, work: PoolWork<T, R>) {
    this.#options = options;
    this.#work = work;
    this.scheduler = new Scheduler<T>({ concurrency: options.concurrency, gate: options.gate }, (task, host) => this.#run(task, host));
  }

  /** True when nothing is left to yield: the source is done (or the pool stopped), and no turn runs or waits. */
  get drained(): boolean {
    // Once stopped, the source may be waiting for input that never comes (stdin): do not wait for it.
    return (this.sourceDone || this.#stopped) && this.#active === 0 && this.scheduler.waiting === 0;
  }

  notify(): void {
    this.wakeConsumer?.();
    this.#wakeProducer?.();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const task of this.scheduler.stop()) this.#keep(this.#work.stopped(task));
    this.notify();
  }

  /** Reads the source into the scheduler, as far ahead as {@link wantsMore} allows. */
  async produce(source: AsyncIterable<T> | Iterable<T>): Promise<void> {
    try {
      for await (const task of source) {
        if (this.#stopped) break;
        const host = this.#work.hostOf(task);
        if (host === undefined) this.#run(task, undefined);
        else this.scheduler.add(host, task);
        while (!this.#stopped && !this.#wantsMore()) {
          // A dispatch still to come decides whether the slots fill; it runs before this wakes.
          if (this.scheduler.dispatchPending) await new Promise<void>((resolve) => setImmediate(resolve));
          else {
            await new Promise<void>((resolve) => (this.#wakeProducer = resolve));
            this.#wakeProducer = undefined;
          }
        }
        if (this.#stopped) break;
      }
    } catch (error) {
      this.failure ??= { error };
      this.stop();
    } finally {
      this.sourceDone = true;
      this.notify();
    }
  }

  /**
   * Whether to read another task: while fewer than `buffer` tasks wait, or while slots stay idle that no
   * waiting task may take (their hosts are paused, at their cap or rate), up to `readAhead`.
   */
  #wantsMore(): boolean {
    const { scheduler } = this;
    const options = this.#options;
    if (scheduler.waiting + this.#active + this.finished.length >= options.readAhead) return false;
    if (scheduler.waiting < options.buffer) return true;
    return !scheduler.dispatchPending && scheduler.running < options.concurrency;
  }

  /** Runs one turn of `task`, which holds a slot of `host` (none when undefined) until it gives it back or its result is consumed. */
  #run(task: T, host: string | undefined): void {
    // A turn with a host holds its slot until it gives it back (then it counts in #released) or ends.
    let held = host !== undefined;
    const release = (leaving: () => void): void => {
      if (!held || this.#released >= this.#options.concurrency) return;
      held = false;
      this.#released++;
      leaving();
      this.scheduler.done(host!);
    };
    /** The turn is over: true when it still holds its slot, which goes with its outcome. */
    const ended = (): boolean => {
      this.#active--;
      const holds = held;
      if (host !== undefined && !holds) this.#released--;
      held = false;
      return holds;
    };
    this.#active++;
    this.#work.turn(task, host, release).then(
      (outcome) => {
        const holds = ended();
        if ('result' in outcome) this.finished.push({ result: outcome.result, host: holds ? host : undefined });
        else {
          if (holds) this.scheduler.done(host!);
          if (this.#stopped) this.#keep(this.#work.stopped(task));
          else this.scheduler.addLater(host!, task, outcome.retryInMs);
        }
        this.notify();
      },
      (error: unknown) => {
        if (ended()) this.scheduler.done(host!);
        this.failure ??= { error };
        this.stop();
        this.notify();
      },
    );
  }

  #keep(result: R | undefined): void {
    if (result !== undefined) this.finished.push({ result, host: undefined });
  }
}
