/**
 * The scheduler: which waiting task starts next.
 *
 * At most `concurrency` tasks run at once, across all hosts. Among the hosts
 * with tasks waiting, the one with the fewest in flight goes first, so a slow
 * host holds no more than its share of the slots, and a host that is paused
 * or rate-limited holds none while it waits: its tasks wait in its own queue
 * and the slots go to the others. The {@link HostGate} has the last word on
 * each host's own limits (`--per-host`, `--rate`, a server's pause).
 *
 * Plain callbacks, no promise per decision: a run of millions of items makes
 * millions of them.
 */
import { UNTIL_RELEASE, type HostGate } from './host-gate.js';
import { LinkedList } from './linked-list.js';

/** One host's waiting tasks and what holds them back. */
interface HostState<T> {
  readonly host: string;
  /** Waiting tasks, oldest first, from `head` on. */
  queue: T[];
  head: number;
  inFlight: number;
  /** The ready bucket it sits in (its `inFlight` when it got there), or -1 when not ready. */
  bucket: number;
  /** Its neighbours in that bucket (see run/linked-list.ts). */
  previous: HostState<T> | undefined;
  next: HostState<T> | undefined;
  /** Waiting for the gate's answer. */
  asking: boolean;
  /** Held back by the gate until this timer fires. */
  timer: NodeJS.Timeout | undefined;
  /** Held back by the gate until one of its own requests ends. */
  untilRelease: boolean;
}

/** How a {@link Scheduler} runs. */
export interface SchedulerOptions {
  /** Most tasks running at once, across all hosts. */
  concurrency: number;
  gate: HostGate;
}

/** Starts tasks as slots, hosts and the gate allow. See the module doc. */
export class Scheduler<T> {
  readonly #hosts = new Map<string, HostState<T>>();
  /** Hosts with a task that may start now, by how many they have in flight; insertion order within a bucket. */
  readonly #ready: Array<LinkedList<HostState<T>> | undefined> = [];
  /** Tasks held back for a delay (a retry's backoff), by their timer. */
  readonly #delayed = new Map<NodeJS.Timeout, T>();
  readonly #concurrency: number;
  readonly #gate: HostGate;
  readonly #start: (task: T, host: string) => void;
  #running = 0;
  #waiting = 0;
  #dispatching = false;
  #dispatchSoon: NodeJS.Immediate | undefined;
  #stopped = false;

  /** `start` is called for each task allowed to run; the caller calls {@link done} with its host when it ends. */
  constructor(options: SchedulerOptions, start: (task: T, host: string) => void) {
    this.#concurrency = options.concurrency;
    this.#gate = options.gate;
    this.#start = start;
  }

  /** Tasks running, and gate answers pending (each holds a slot). */
  get running(): number {
    return this.#running;
  }

  /** True while tasks added have not been dispatched yet (they will be on the next turn of the event loop). */
  get dispatchPending(): boolean {
    return this.#dispatchSoon !== undefined;
  }

  /** Tasks waiting to start: queued behind their host, or delayed (a retry's backoff). */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Queues `task` for `host`. Tasks start on the next turn of the event loop, not at once: tasks added
   * together (a list read ahead) are then shared out among all their hosts, where starting each as it
   * came would give the first host every slot.
   */
  add(host: string, task: T): void {
    if (this.#stopped) throw new Error('the scheduler has stopped');
    this.#enqueue(host, task);
    this.#dispatchSoon ??= setImmediate(() => {
      this.#dispatchSoon = undefined;
      this.#dispatch();
    });
  }

  /** Queues `task` for `host` after `delayMs`; it counts as waiting meanwhile, and holds no slot. */
  addLater(host: string, task: T, delayMs: number): void {
    if (this.#stopped) throw new Error('the scheduler has stopped');
    this.#waiting++;
    const timer = setTimeout(() => {
      this.#delayed.delete(timer);
      this.#waiting--;
      this.#enqueue(host, task);
      this.#dispatch();
    }, delayMs);
    this.#delayed.set(timer, task);
  }

  /** A task started for `host` has ended: its slot, and the gate's, are free. */
  done(host: string): void {
    const state = this.#hosts.get(host);
    if (state === undefined) throw new Error(`no task is running for ${host}`);
    this.#running--;
    state.inFlight--;
    this.#gate.release(host);
    state.untilRelease = false;
    this.#makeReady(state);
    this.#forgetIfIdle(state);
    this.#dispatch();
  }

  /**
   * Starts nothing more, and hands back every task still waiting (queued or
   * delayed) for the caller to end. Tasks running go on; call {@link done} for them as usual.
   */
  stop(): T[] {
    this.#stopped = true;
    clearImmediate(this.#dispatchSoon);
    const left: T[] = [...this.#delayed.values()];
    for (const timer of this.#delayed.keys()) clearTimeout(timer);
    this.#delayed.clear();
    for (const state of this.#hosts.values()) {
      clearTimeout(state.timer);
      state.timer = undefined;
      left.push(...state.queue.slice(state.head));
      state.queue = [];
      state.head = 0;
    }
    this.#waiting = 0;
    return left;
  }

  #enqueue(host: string, task: T): void {
    const state = this.#state(host);
    state.queue.push(task);
    this.#waiting++;
    this.#makeReady(state);
  }

  #state(host: string): HostState<T> {
    let state = this.#hosts.get(host);
    if (state === undefined) {
      state = {
        host,
        queue: [],
        head: 0,
        inFlight: 0,
        bucket: -1,
        previous: undefined,
        next: undefined,
        asking: false,
        timer: undefined,
        untilRelease: false,
      };
      this.#hosts.set(host, state);
    }
    return state;
  }

  /** Puts a host with a waiting task, and nothing holding it back, in the bucket of its in-flight count. */
  #makeReady(state: HostState<T>): void {
    this.#leave(state);
    if (state.head === state.queue.length || state.asking || state.timer !== undefined || state.untilRelease) return;
    (this.#ready[state.inFlight] ??= new LinkedList()).push(state);
    state.bucket = state.inFlight;
  }

  /** Takes a host out of its ready bucket, if it is in one. */
  #leave(state: HostState<T>): void {
    if (state.bucket === -1) return;
    this.#ready[state.bucket]!.remove(state);
    state.bucket = -1;
  }

  /** The ready host with the fewest in flight (the longest ready among those), taken out of the ready buckets. */
  #takeReady(): HostState<T> | undefined {
    for (const bucket of this.#ready) {
      const state = bucket?.first;
      if (state === undefined) continue;
      this.#leave(state);
      return state;
    }
    return undefined;
  }

  #dispatch(): void {
    // A start callback that ends its task at once would come back here; the loop below picks that up.
    if (this.#dispatching) return;
    this.#dispatching = true;
    try {
      while (!this.#stopped && this.#running < this.#concurrency) {
        const state = this.#takeReady();
        if (state === undefined) break;
        const answer = this.#gate.acquire(state.host);
        if (typeof answer === 'number') {
          this.#answered(state, answer);
          continue;
        }
        // The pending answer holds a slot, so a slow gate cannot let more than `concurrency` through.
        state.asking = true;
        this.#running++;
        answer.then(
          (wait) => this.#asked(state, wait),
          // A gate that cannot answer (its store is down) is asked again shortly; nothing is lost meanwhile.
          () => this.#asked(state, 1000),
        );
      }
    } finally {
      this.#dispatching = false;
    }
  }

  #asked(state: HostState<T>, wait: number): void {
    state.asking = false;
    this.#running--;
    if (this.#stopped) {
      if (wait === 0) this.#gate.release(state.host);
      this.#forgetIfIdle(state);
      return;
    }
    this.#answered(state, wait);
    this.#dispatch();
  }

  /** Acts on the gate's answer for the host's oldest waiting task. */
  #answered(state: HostState<T>, wait: number): void {
    if (wait === 0) {
      const task = state.queue[state.head]!;
      state.queue[state.head++] = undefined as T;
      // Drop the consumed front now and then, so a long queue does not keep its past alive.
      if (state.head === state.queue.length) {
        state.queue = [];
        state.head = 0;
      } else if (state.head >= 1024 && state.head * 2 >= state.queue.length) {
        state.queue = state.queue.slice(state.head);
        state.head = 0;
      }
      this.#waiting--;
      this.#running++;
      state.inFlight++;
      this.#makeReady(state);
      this.#start(task, state.host);
      return;
    }
    if (wait === UNTIL_RELEASE && state.inFlight > 0) {
      state.untilRelease = true;
      return;
    }
    // UNTIL_RELEASE with nothing of ours in flight: another process holds the host; ask again soon.
    const ms = wait === UNTIL_RELEASE ? 50 : Math.max(1, Math.ceil(wait));
    state.timer = setTimeout(() => {
      state.timer = undefined;
      this.#makeReady(state);
      this.#dispatch();
    }, ms);
  }

  #forgetIfIdle(state: HostState<T>): void {
    if (state.head === state.queue.length && state.inFlight === 0 && !state.asking && state.timer === undefined) {
      this.#hosts.delete(state.host);
    }
  }
}
