/**
 * The scheduler and the per-host gate, driven by hand: tasks end when the
 * test says so, and time moves only when the test moves it (fake timers), so
 * every assertion is about order and counts, never about how long anything took.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalHostGate, UNTIL_RELEASE, type HostGate } from '../src/run/host-gate.js';
import { Scheduler } from '../src/run/scheduler.js';

interface Job {
  host: string;
  id: string;
}

/** A scheduler whose started jobs are recorded, and ended by the test. */
function harness(concurrency: number, gate: HostGate = new LocalHostGate()) {
  const started: Job[] = [];
  const running = new Set<Job>();
  let peak = 0;
  const peakOf = new Map<string, number>();
  const scheduler = new Scheduler<Job>({ concurrency, gate }, (job) => {
    started.push(job);
    running.add(job);
    peak = Math.max(peak, running.size);
    const mine = [...running].filter((j) => j.host === job.host).length;
    peakOf.set(job.host, Math.max(peakOf.get(job.host) ?? 0, mine));
  });
  const add = (host: string, count: number): void => {
    for (let i = 0; i < count; i++) scheduler.add(host, { host, id: `${host}${i}` });
    // Tasks added together start on the next turn of the event loop.
    vi.advanceTimersByTime(0);
  };
  /** Ends the oldest running job of `host` (any host when omitted). */
  const finish = (host?: string): Job => {
    const job = [...running].find((j) => host === undefined || j.host === host);
    if (job === undefined) throw new Error(`nothing of ${host ?? 'any host'} is running`);
    running.delete(job);
    scheduler.done(job.host);
    return job;
  };
  const runningOf = (host: string): number => [...running].filter((j) => j.host === host).length;
  return { scheduler, started, running, add, finish, runningOf, peak: () => peak, peakOf };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the scheduler', () => {
  it('runs every task, never more than the concurrency at once, and reaches it', () => {
    const h = harness(3);
    h.add('a', 10);
    expect(h.running.size).toBe(3);
    while (h.running.size > 0) h.finish();
    expect(h.started.map((j) => j.id)).toEqual(Array.from({ length: 10 }, (_, i) => `a${i}`));
    expect(h.peak()).toBe(3);
    expect(h.scheduler.waiting).toBe(0);
  });

  it('shares the slots between hosts, the one with fewest in flight first', () => {
    const h = harness(4);
    h.add('a', 20);
    h.add('b', 20);
    // a took all four slots before b arrived; as they free up, b gets them until both hold two.
    expect(h.runningOf('a')).toBe(4);
    h.finish('a');
    h.finish('a');
    expect([h.runningOf('a'), h.runningOf('b')]).toEqual([2, 2]);
    // A slot that frees up goes back to the host it came from when that one now has fewer in flight.
    h.finish('a');
    expect([h.runningOf('a'), h.runningOf('b')]).toEqual([2, 2]);
    h.finish('b');
    expect([h.runningOf('a'), h.runningOf('b')]).toEqual([2, 2]);
    expect(h.peakOf.get('b')).toBe(2);
  });

  it('keeps a slow host to its share while the others go on', () => {
    const h = harness(4);
    h.add('fast', 200);
    h.add('slow', 50);
    // The slow host's requests never end here; the fast host's end as soon as the test gets to them.
    for (let i = 0; i < 150; i++) h.finish('fast');
    expect(h.runningOf('slow')).toBe(2);
    expect(h.runningOf('fast')).toBe(2);
    expect(h.peakOf.get('slow')).toBe(2);
  });

  it('gives a paused host no slot until its pause ends, then goes on with it', async () => {
    const gate = new LocalHostGate();
    const h = harness(2, gate);
    expect(gate.pause('a', Date.now() + 60_000)).toBe(true);
    // A second pause within the first is not news: it is logged once.
    expect(gate.pause('a', Date.now() + 30_000)).toBe(false);
    h.add('a', 3);
    h.add('b', 3);
    expect(h.runningOf('a')).toBe(0);
    while (h.runningOf('b') > 0) h.finish('b');
    expect(h.started.map((j) => j.host)).toEqual(['b', 'b', 'b']);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.runningOf('a')).toBe(2);
  });

  it('keeps --per-host, and hands the other slots to other hosts', () => {
    const h = harness(8, new LocalHostGate({ perHost: 2 }));
    h.add('a', 10);
    h.add('b', 10);
    expect([h.runningOf('a'), h.runningOf('b')]).toEqual([2, 2]);
    for (let i = 0; i < 16; i++) h.finish();
    expect(h.peakOf.get('a')).toBe(2);
    expect(h.peakOf.get('b')).toBe(2);
    expect(h.started).toHaveLength(20);
  });

  it('spaces the starts to one host by --rate', async () => {
    const h = harness(8, new LocalHostGate({ rate: 4 }));
    const startedAt: number[] = [];
    const t0 = Date.now();
    h.add('a', 5);
    const record = (): void => {
      while (startedAt.length < h.started.length) startedAt.push(Date.now() - t0);
    };
    record();
    for (let i = 0; i < 8; i++) {
      await vi.advanceTimersByTimeAsync(125);
      record();
    }
    expect(startedAt).toEqual([0, 250, 500, 750, 1000]);
  });

  it('holds a retry back for its delay, without a slot, then runs it', async () => {
    const h = harness(1);
    h.scheduler.addLater('a', { host: 'a', id: 'retry' }, 5_000);
    h.add('a', 1);
    expect(h.started.map((j) => j.id)).toEqual(['a0']);
    expect(h.scheduler.waiting).toBe(1);
    h.finish();
    await vi.advanceTimersByTimeAsync(4_999);
    expect(h.running.size).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.started.map((j) => j.id)).toEqual(['a0', 'retry']);
  });

  it('hands back every waiting task when stopped, and starts nothing more', async () => {
    const h = harness(1);
    h.add('a', 3);
    h.scheduler.addLater('b', { host: 'b', id: 'later' }, 1_000);
    const left = h.scheduler.stop();
    expect(left.map((j) => j.id).sort()).toEqual(['a1', 'a2', 'later']);
    h.finish();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(h.started.map((j) => j.id)).toEqual(['a0']);
  });

  it('counts a gate answer still pending as a slot taken', async () => {
    const answers: Array<(wait: number) => void> = [];
    const gate: HostGate = {
      acquire: () => new Promise<number>((resolve) => answers.push(resolve)),
      release: () => undefined,
      pause: () => false,
    };
    const h = harness(2, gate);
    h.add('a', 1);
    h.add('b', 1);
    h.add('c', 1);
    // Two questions out, none answered: the third host waits for a slot.
    expect(answers).toHaveLength(2);
    expect(h.scheduler.running).toBe(2);
    answers[0]!(0);
    answers[1]!(UNTIL_RELEASE);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.started.map((j) => j.host)).toEqual(['a']);
    expect(answers).toHaveLength(3);
  });
});
