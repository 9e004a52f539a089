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
 */
import type { HostGate } from './host-gate.js';
import { Scheduler } from './scheduler.js';

/** How one turn of a task ended: its result, or a wait before its next turn. */
export type Turn<R> = { result: R } | { retryInMs: number };

/** What the pool does with its tasks. */
export interface PoolWork<T, R> {
  /** The host a task's requests go to; undefined for a task that makes none (its turn runs at once, without a slot). */
  hostOf(task: T): string | undefined;
  /** Runs one turn. Expected to turn its own failures into results; a rejection stops the pool and is rethrown. */
  turn(task: T, host: string | undefined): Promise<Turn<R>>;
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
export async function* runPool<T, R>(source: AsyncIterable<T> | Iterable<T>, options: PoolOptions, work: PoolWork<T, R>): AsyncGenerator<R> {
  const { signal } = options;
  /** Results not yet consumed, each with the host whose slot it holds until then (see below). */
  const finished: Array<{ result: R; host: string | undefined }> = [];
  let failure: { error: unknown } | undefined;
  let sourceDone = false;
  let stopped = false;
  /** Turns running, including those of tasks without a host. */
  let active = 0;
  let wakeConsumer: (() => void) | undefined;
  let wakeProducer: (() => void) | undefined;

  const notify = (): void => {
    wakeConsumer?.();
    wakeProducer?.();
  };
  const settle = (task: T, host: string | undefined, turn: Promise<Turn<R>>): void => {
    active++;
    turn.then(
      (outcome) => {
        active--;
        if ('result' in outcome) finished.push({ result: outcome.result, host });
        else {
          scheduler.done(host!);
          if (stopped) keep(work.stopped(task));
          else scheduler.addLater(host!, task, outcome.retryInMs);
        }
        notify();
      },
      (error: unknown) => {
        active--;
        if (host !== undefined) scheduler.done(host);
        failure ??= { error };
        stop();
        notify();
      },
    );
  };
  const scheduler = new Scheduler<T>({ concurrency: options.concurrency, gate: options.gate }, (task, host) => settle(task, host, work.turn(task, host)));
  const keep = (result: R | undefined): void => {
    if (result !== undefined) finished.push({ result, host: undefined });
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    for (const task of scheduler.stop()) keep(work.stopped(task));
    notify();
  };
  if (signal?.aborted) stop();
  signal?.addEventListener('abort', stop, { once: true });

  /**
   * Whether to read another task: while fewer than `buffer` tasks wait, or while slots stay idle that no
   * waiting task may take (their hosts are paused, at their cap or rate), up to `readAhead`.
   */
  const wantsMore = (): boolean => {
    if (scheduler.waiting + active + finished.length >= options.readAhead) return false;
    if (scheduler.waiting < options.buffer) return true;
    return !scheduler.dispatchPending && scheduler.running < options.concurrency;
  };
  const produce = async (): Promise<void> => {
    try {
      for await (const task of source) {
        if (stopped) break;
        const host = work.hostOf(task);
        if (host === undefined) settle(task, undefined, work.turn(task, undefined));
        else scheduler.add(host, task);
        while (!stopped && !wantsMore()) {
          // A dispatch still to come decides whether the slots fill; it runs before this wakes.
          if (scheduler.dispatchPending) await new Promise<void>((resolve) => setImmediate(resolve));
          else {
            await new Promise<void>((resolve) => (wakeProducer = resolve));
            wakeProducer = undefined;
          }
        }
        if (stopped) break;
      }
    } catch (error) {
      failure ??= { error };
      stop();
    } finally {
      sourceDone = true;
      notify();
    }
  };
  const producing = produce();

  try {
    for (;;) {
      const next = finished.shift();
      if (next !== undefined) {
        notify();
        yield next.result;
        // The slot is freed once the consumer has seen the result, so that it can stop the run first (a full disk).
        if (next.host !== undefined) scheduler.done(next.host);
        notify();
        continue;
      }
      // Once stopped, the source may be waiting for input that never comes (stdin): do not wait for it.
      if ((sourceDone || stopped) && active === 0 && scheduler.waiting === 0) break;
      await new Promise<void>((resolve) => (wakeConsumer = resolve));
      wakeConsumer = undefined;
    }
    if (sourceDone) await producing;
    if (failure) throw failure.error;
  } finally {
    stop();
    signal?.removeEventListener('abort', stop);
  }
}
