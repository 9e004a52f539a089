import { describe, expect, it } from 'vitest';
import { cut, DECREASE, FLOOR, LIFT_FACTOR, raise, RECOVERY_S, StartCounter } from '../src/run/adaptive-rate.js';
import { LocalHostGate } from '../src/run/host-gate.js';

/** A gate on a clock the test moves. */
function clocked(limits: ConstructorParameters<typeof LocalHostGate>[0]) {
  const clock = { now: 1_000_000 };
  const gate = new LocalHostGate(limits, () => clock.now);
  /** Asks the gate 5 times each ms over `ms` (5000 a second, when nothing holds the host back); each request ends at once. */
  const drive = (host: string, ms: number): number => {
    let started = 0;
    for (const end = clock.now + ms; clock.now < end; clock.now++) {
      for (let ask = 0; ask < 5; ask++) {
        if (gate.acquire(host) !== 0) break;
        started++;
        gate.release(host);
      }
    }
    return started;
  };
  return { clock, gate, drive };
}

describe('the adaptive rate rule (AIMD)', () => {
  it('a first 429 cuts what the host was observed to take in the last second', () => {
    expect(cut(undefined, 40, 0, 10)).toMatchObject({ rate: 40 * DECREASE, cutFrom: 40, cutAt: 10 });
  });

  it('a 429 to a request started before the last cut does not cut again', () => {
    const first = cut(undefined, 40, 0, 10)!;
    expect(cut(first, 40, 9, 11)).toBeUndefined();
    expect(cut(first, 40, 10, 12)).toMatchObject({ rate: 40 * DECREASE * DECREASE });
  });

  it('never goes below the floor, nor above --rate', () => {
    let state = cut(undefined, 1, 0, 0)!;
    for (let t = 1; t < 50; t++) state = cut(state, 0, t, t)!;
    expect(state.rate).toBe(FLOOR);
    // Under a --rate lower than the floor, the floor is that rate.
    expect(cut(undefined, 100, 0, 0, 0.5)!.rate).toBe(0.5);
    // A first cut starts from --rate when the host was seen going faster.
    expect(cut(undefined, 100, 0, 0, 20)!.rate).toBe(20 * DECREASE);
  });

  it('successes give back what a cut took in about RECOVERY_S seconds, then lift it', () => {
    let state = cut(undefined, 32, 0, 0);
    let successes = 0;
    while (state !== undefined && state.rate < 32) {
      state = raise(state);
      successes++;
    }
    // Going back from the cut to 32 a second takes RECOVERY_S seconds, at a rate between the two.
    expect(successes).toBeGreaterThan(RECOVERY_S * 32 * DECREASE);
    expect(successes).toBeLessThan(RECOVERY_S * 32);
    while (state !== undefined) state = raise(state);
    expect(state).toBeUndefined();
  });

  it('a raise never passes --rate: it lifts there', () => {
    const state = cut(undefined, 10, 0, 0, 6)!;
    let rate = state.rate;
    let next: typeof state | undefined = state;
    while (next !== undefined) {
      rate = next.rate;
      next = raise(next, 6);
    }
    expect(rate).toBeLessThanOrEqual(6);
  });

  it('counts the starts of the last second from two one-second counts', () => {
    const counter = new StartCounter();
    for (let t = 5000; t < 5500; t += 10) counter.add(t);
    expect(counter.perSecond(5500)).toBe(50);
    // Half of the previous second still in the window.
    expect(counter.perSecond(6500)).toBeCloseTo(25);
    expect(counter.perSecond(9000)).toBe(0);
  });
});

describe('LocalHostGate with adapt', () => {
  it('spaces a throttled host at its adapted rate, and only that host', () => {
    const { clock, gate, drive } = clocked({ adapt: true });
    expect(drive('a:1', 10)).toBe(50);
    const rate = gate.throttled('a:1', clock.now - 1)!;
    expect(rate).toBeGreaterThan(0);
    // The next second starts `rate` requests, give or take the one at its edge.
    expect(Math.abs(drive('a:1', 1000) - rate)).toBeLessThanOrEqual(1);
    expect(drive('b:1', 10)).toBe(50);
  });

  it('a 429 cuts, successes recover, and the host is lifted in the end', () => {
    const { clock, gate, drive } = clocked({ adapt: true });
    for (let i = 0; i < 40; i++) {
      gate.acquire('a:1');
      gate.release('a:1');
    }
    expect(gate.throttled('a:1', clock.now)).toBe(40 * DECREASE);
    clock.now += 1;
    expect(gate.throttled('a:1', clock.now)).toBe(40 * DECREASE * DECREASE);
    expect([...gate.adaptedRates()]).toEqual([['a:1', 40 * DECREASE * DECREASE]]);
    let lifted = false;
    for (let i = 0; i < 10_000 && !lifted; i++) lifted = gate.succeeded('a:1');
    expect(lifted).toBe(true);
    expect([...gate.adaptedRates()]).toEqual([]);
    // Once the last spacing is over, nothing holds the host back.
    clock.now += 1000;
    expect(drive('a:1', 10)).toBe(50);
  });

  it('under --rate, never starts more than --rate, however it recovers', () => {
    const { clock, gate, drive } = clocked({ adapt: true, rate: 10 });
    drive('a:1', 1000);
    expect(gate.throttled('a:1', clock.now)).toBe(10 * DECREASE);
    let peak = 0;
    for (let second = 0; second < 20; second++) {
      const started = drive('a:1', 1000);
      peak = Math.max(peak, started);
      for (let i = 0; i < started; i++) gate.succeeded('a:1');
    }
    expect(peak).toBeLessThanOrEqual(10);
    expect(peak).toBe(10);
  });

  it('never throttles below the floor: a host that only answers 429 still gets FLOOR a second', () => {
    const { clock, gate, drive } = clocked({ adapt: true });
    drive('a:1', 10);
    for (let i = 0; i < 30; i++) {
      gate.throttled('a:1', clock.now);
      clock.now++;
    }
    expect([...gate.adaptedRates()]).toEqual([['a:1', FLOOR]]);
    expect(drive('a:1', 10_000)).toBeGreaterThanOrEqual(10 * FLOOR - 1);
  });

  it('without adapt, a 429 changes nothing', () => {
    const { clock, gate } = clocked({});
    expect(gate.throttled('a:1', clock.now)).toBeUndefined();
    expect(gate.succeeded('a:1')).toBe(false);
  });

  it('lifts at LIFT_FACTOR × the rate it was cut from when there is no --rate', () => {
    const state = cut(undefined, 8, 0, 0)!;
    let top = state.rate;
    for (let next: typeof state | undefined = state; next !== undefined; next = raise(next)) top = next.rate;
    expect(top).toBeLessThan(LIFT_FACTOR * 8);
  });
});
