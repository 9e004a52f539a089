/**
 * The pool's slots when a turn gives its slot back before it ends (its
 * requests are over and only its body's keeping is left), driven by hand:
 * each turn waits for the test, so every assertion is about which turns
 * have started, never about time.
 */
import { describe, expect, it } from 'vitest';
import { LocalHostGate } from '../src/run/host-gate.js';
import { runPool, type Turn } from '../src/run/pool.js';

/** A turn the test steps through: it may give its slot back, then it ends with a result or a retry. */
interface Held {
  id: number;
  release: (leaving: () => void) => void;
  end: (outcome: Turn<number>) => void;
}

/** Runs `count` tasks of one host through a pool of `concurrency` slots; every turn waits for the test. */
function harness(count: number, concurrency: number) {
  const running: Held[] = [];
  const started: number[] = [];
  const results: number[] = [];
  const source = Array.from({ length: count }, (_, i) => i);
  const run = (async () => {
    const pool = runPool(
      source,
      { concurrency, buffer: count, readAhead: count * 2, gate: new LocalHostGate() },
      {
        hostOf: () => 'h',
        stopped: () => undefined,
        turn: (id, _host, release) =>
          new Promise<Turn<number>>((resolve) => {
            started.push(id);
            const held: Held = {
              id,
              release,
              end: (outcome) => {
                running.splice(running.indexOf(held), 1);
                resolve(outcome);
              },
            };
            running.push(held);
          }),
      },
    );
    for await (const result of pool) results.push(result);
  })();
  /** Lets the pool's callbacks run: reading the source and dispatching each wait for a later turn of the event loop. */
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  const take = (id: number): Held => {
    const held = running.find((h) => h.id === id);
    if (held === undefined) throw new Error(`turn ${id} is not running`);
    return held;
  };
  return { run, started, results, settle, take };
}

describe('a turn that gives its slot back', () => {
  it('lets the next task start in it, at most as many at once as there are slots', async () => {
    const pool = harness(6, 2);
    await pool.settle();
    expect(pool.started).toEqual([0, 1]);
    const left: number[] = [];
    pool.take(0).release(() => left.push(0));
    await pool.settle();
    expect(left).toEqual([0]);
    expect(pool.started).toEqual([0, 1, 2]);
    pool.take(1).release(() => left.push(1));
    await pool.settle();
    expect(pool.started).toEqual([0, 1, 2, 3]);
    // Two slots are given back already: a third turn keeps its slot, and nothing more starts.
    pool.take(2).release(() => left.push(2));
    await pool.settle();
    expect(left).toEqual([0, 1]);
    expect(pool.started).toEqual([0, 1, 2, 3]);
    // A turn that gave its slot back ends: another may give its own back now.
    pool.take(0).end({ result: 0 });
    await pool.settle();
    expect(pool.started).toEqual([0, 1, 2, 3]);
    pool.take(3).release(() => left.push(3));
    await pool.settle();
    expect(left).toEqual([0, 1, 3]);
    expect(pool.started).toEqual([0, 1, 2, 3, 4]);
    for (const id of [1, 2, 3, 4]) pool.take(id).end({ result: id });
    await pool.settle();
    pool.take(5).end({ result: 5 });
    await pool.run;
    expect(pool.results.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('frees the slot once when the turn that gave it back ends in a retry, or gives it back twice', async () => {
    const pool = harness(4, 2);
    await pool.settle();
    const first = pool.take(0);
    first.release(() => undefined);
    first.release(() => undefined);
    await pool.settle();
    expect(pool.started).toEqual([0, 1, 2]);
    // Retried: it waits without a slot, and both slots stay with tasks 1 and 2.
    first.end({ retryInMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 5));
    await pool.settle();
    expect(pool.started).toEqual([0, 1, 2]);
    pool.take(1).end({ result: 1 });
    await pool.settle();
    expect(pool.started).toEqual([0, 1, 2, 3]);
    pool.take(2).end({ result: 2 });
    await pool.settle();
    expect(pool.started).toEqual([0, 1, 2, 3, 0]);
    pool.take(3).end({ result: 3 });
    pool.take(0).end({ result: 0 });
    await pool.run;
    expect(pool.results.sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
  });
});
