/**
 * The pool: runs `work` over a stream of tasks with at most `limit` in flight
 * and yields results as they finish.
 *
 * Backpressure runs both ways: the next task is pulled from the source only
 * when a slot is free and fewer than `limit` results wait to be consumed, so
 * memory stays flat however long the list and however slow the consumer.
 */
import pLimit from 'p-limit';

/**
 * Yields `work(task)` for every task of `source`, in completion order, with at
 * most `limit` calls in flight. `work` is expected to turn its own failures
 * into results; if it rejects anyway, or the source throws, the pool lets the
 * calls in flight settle and then rethrows. When `signal` aborts, no further
 * task is pulled. Stopping the iteration early also stops pulling.
 */
export async function* runPool<T, R>(
  source: AsyncIterable<T> | Iterable<T>,
  limit: number,
  work: (task: T) => Promise<R>,
  signal?: AbortSignal,
): AsyncGenerator<R> {
  const limiter = pLimit(limit);
  const finished: R[] = [];
  let failure: { error: unknown } | undefined;
  let sourceDone = false;
  let stopped = false;
  let running = 0;
  let wakeConsumer: (() => void) | undefined;
  let wakeProducer: (() => void) | undefined;

  const notify = (): void => {
    wakeConsumer?.();
    wakeProducer?.();
  };
  const onAbort = (): void => {
    stopped = true;
    notify();
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  const produce = async (): Promise<void> => {
    try {
      for await (const task of source) {
        if (stopped || signal?.aborted) break;
        running++;
        limiter(() => work(task)).then(
          (result) => {
            running--;
            finished.push(result);
            notify();
          },
          (error: unknown) => {
            running--;
            failure ??= { error };
            stopped = true;
            notify();
          },
        );
        while (!stopped && running + finished.length >= limit) {
          await new Promise<void>((resolve) => (wakeProducer = resolve));
          wakeProducer = undefined;
        }
        if (stopped) break;
      }
    } catch (error) {
      failure ??= { error };
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
        yield next;
        continue;
      }
      // Once stopped, the source may be waiting for input that never comes (stdin): do not wait for it.
      if ((sourceDone || stopped) && running === 0) break;
      await new Promise<void>((resolve) => (wakeConsumer = resolve));
      wakeConsumer = undefined;
    }
    if (sourceDone) await producing;
    if (failure) throw failure.error;
  } finally {
    stopped = true;
    notify();
    signal?.removeEventListener('abort', onAbort);
  }
}
