/**
 * A worker: takes batches from the queue and runs their items through the
 * same pipeline `download()` runs, with names claimed in Redis, recording
 * every item's result in the queue as it finishes.
 *
 * One run serves batch after batch: two batches are taken at a time and
 * their items fed into the run as it has room, so `-c` downloads stay in
 * flight across batch boundaries (a run per batch left each batch's last
 * round half empty and opened new connections per batch). Results find
 * their batch by source, line and URL; a batch completes once each of its
 * items has a record.
 *
 * BullMQ, set as its guide asks:
 * - `maxRetriesPerRequest: null` and endless reconnection (connection.ts),
 *   so a Redis restart pauses the worker; results wait in the client's
 *   offline queue and are written once Redis is back;
 * - `lockDuration` is `lockMs` (a silent worker keeps its batch that long),
 *   the stalled check runs every `lockMs / 2`, so a dead worker's batch is
 *   taken over within about 1.5 × `lockMs`;
 * - `maxStalledCount` is {@link MAX_STALLED}, not BullMQ's 1: a batch run
 *   again costs only its unfinished items, so a batch is failed for good
 *   only when it has killed its worker that many times;
 * - stopping (`stopSignal`) closes the worker: no new batch is taken, items
 *   in flight get `graceMs` to finish, and a batch left unfinished is handed
 *   back to the queue at once (not left to stall).
 *
 * A worker silent past `lockMs` (frozen, suspended, cut off) loses its
 * batches: another worker takes them over and may finish them before this
 * one wakes up. What this one then brings back is stale, so every record is
 * written with the batch's lock, which the store checks in the same script
 * (see store.ts). The batch is taken back from this worker as soon as it
 * knows, from a refused record, a lock it could not renew, or the stalled
 * check: its downloads stop, the rest of its items never start, nothing more
 * of it is recorded, and BullMQ's job is left to whoever holds it now.
 */
import { Queue, UnrecoverableError, WaitingError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createRunContext, downloadWith } from '../run/download.js';
import { describeError } from '../errors.js';
import { parseItemUrl, redactUrl, type ListItem } from '../input/text-list.js';
import { wantedPath } from '../item/item.js';
import { OptionError, resolveOptions, type Options, type ResolvedOptions } from '../options.js';
import type { ItemResult } from '../record/record.js';
import type { RunSummary } from '../record/run-report.js';
import { QUEUE_NAME, logOutages, parseQueueUrl, preflight, workerOptions } from './connection.js';
import { Feed } from './feed.js';
import { RedisHostGates } from './host-gate.js';
import { decodeBatch } from './jobs.js';
import { ClusterNames } from './names.js';
import { Recorder } from './recorder.js';
import { Claim, Recorded, Store, itemKey, type BatchLock } from './store.js';

/** How many times a batch may lose its worker before BullMQ fails it for good. */
export const MAX_STALLED = 5;

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  /** The queue: `redis://HOST:PORT[/DB]` [`--queue`]. Required. */
  queue: string;
  /** Output folder, created if missing [`-o, --out`]. Default: the current folder. */
  out?: string | undefined;
  /** Downloads in flight at once in this worker [`-c, --concurrency`]. Default 16. */
  concurrency?: number | undefined;
  /** How long a silent worker keeps a batch before another takes it over, in ms [`--lock-ms`]. Default 30000. */
  lockMs?: number | undefined;
  /** Resolve once nothing is waiting or active in the queue [`--exit-when-empty`]. Default false: run until stopped. */
  exitWhenEmpty?: boolean | undefined;
  /** Stops the worker gently: see the module comment. Default none. */
  stopSignal?: AbortSignal | undefined;
  /** Time items in flight get to finish once `stopSignal` aborts, in ms [`--grace`]. Default 5000. */
  graceMs?: number | undefined;
  /** Logger (pino). Default: a silent one. */
  logger?: Logger | undefined;
  /** Called with each record this worker writes to the queue. Default none. */
  onRecord?: ((record: ItemResult) => void) | undefined;
}

/** What {@link runWorker} did. */
export interface WorkerSummary {
  /** The items this worker recorded, as a run summary. */
  summary: RunSummary;
  /** Batches finished by this worker. */
  batches: number;
  /** Batches handed back to the queue unfinished when it was stopped. */
  handedBack: number;
}

function positiveInteger(option: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionError(option, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

/** An item of a batch with what the queue knows of it. */
interface Entry {
  item: ListItem;
  listing: string;
  key: string;
  url: URL | undefined;
  /** The forms the record's URL may take (credentials redacted). */
  shown: string[];
  claim: Claim;
  /** Its batch, once handed to a run. */
  batch?: BatchState;
}

/** A batch in a run: how many of its items are still out, and what was recorded. */
interface BatchState {
  id: string;
  /** The lock its job is held under; every record is written with it. */
  lock: BatchLock;
  /** Aborted when the batch is taken back from this worker (its lock is lost): stops its items. */
  withdrawn: AbortController;
  /** The run its items went into, once handed over. */
  run?: Run;
  left: number;
  recorded: number;
  counts: { ok: number; failed: number; skipped: number };
  writes: Array<Promise<unknown>>;
  rerun: boolean;
  /** Called when no item of the batch is still out, or its run ended. */
  wake: () => void;
}

/** A long-lived run of the core's pipeline and the batches it serves. */
interface Run {
  /** The batch options it was started with (JSON). */
  key: string;
  feed: Feed;
  /** Items pushed into it so far. */
  fed: number;
  ended: boolean;
  /** True once a batch taken back from this worker was in it: the next batch starts a new run. */
  retired: boolean;
  /** `source\nline` → entries in flight, to route results back. */
  routes: Map<string, Entry[]>;
  finished: Promise<void>;
}

/** Items after which a worker starts a fresh run, so per-run memory (URLs seen) stays bounded. */
const ROTATE_AFTER = 100_000;

/**
 * Runs a worker until `stopSignal` aborts or, with `exitWhenEmpty`, until the
 * queue has nothing waiting or active. Throws REDIS_UNAVAILABLE when Redis
 * cannot be reached at start, REDIS_EVICTS when it may evict the queue's
 * keys, and OptionError for a bad option.
 */
export async function runWorker(options: WorkerOptions): Promise<WorkerSummary> {
  const address = parseQueueUrl(options.queue);
  const concurrency = positiveInteger('concurrency', options.concurrency, 16, 1, 10_000);
  const lockMs = positiveInteger('lockMs', options.lockMs, 30_000, 1_000, 24 * 3600 * 1000);
  const graceMs = positiveInteger('graceMs', options.graceMs, 5_000, 0, 24 * 3600 * 1000);
  const out = options.out ?? '.';
  // The same checks a batch's options will get, done now so a bad -o fails at start, not per batch.
  resolveOptions({ out, concurrency, graceMs });
  const log = options.logger;
  (await preflight(address, log)).disconnect();

  const redis = new Redis(workerOptions(address));
  const store = new Store(redis, QUEUE_NAME);
  const names = new ClusterNames(store);
  const gates = new RedisHostGates(redis, QUEUE_NAME, lockMs);
  const queue = new Queue(QUEUE_NAME, { connection: redis });
  const stopping = new AbortController();
  let finishedBatches = 0;
  let handedBack = 0;
  const busy = { batches: 0 };
  /** The batches being run, by job ID. */
  const held = new Map<string, BatchState>();
  /** Each item handed to a run → its batch's signal, which stops it when the batch is taken back. */
  const itemSignals = new WeakMap<ListItem, AbortSignal>();
  const recorder = new Recorder(store, { out: resolveOptions({ out }).out, concurrency, onRecord: options.onRecord });
  const onError = logOutages(redis, address, log);
  queue.on('error', onError);

  /**
   * The run items go through. One run serves batch after batch, so the pool stays full across batch
   * boundaries and connections are kept; a new one starts when a batch carries other options, after
   * ROTATE_AFTER items (what a run remembers per item must not grow for the life of the worker), or
   * after a run stopped on its own (a full disk).
   */
  let current: Run | undefined;
  let switching: Promise<unknown> = Promise.resolve();
  /** Hands a batch's entries to the current run (or a new one), in turn with every other batch. */
  function enter(key: string, resolved: ResolvedOptions, entries: readonly Entry[]): Promise<Run> {
    const next = switching.then(async () => {
      if (current && (current.key !== key || current.fed >= ROTATE_AFTER || current.ended || current.retired)) {
        current.feed.end();
        await current.finished;
        current = undefined;
      }
      const run = (current ??= startRun(key, resolved));
      for (const entry of entries) {
        const where = `${entry.item.source}\n${entry.item.line}`;
        const list = run.routes.get(where);
        if (list) list.push(entry);
        else run.routes.set(where, [entry]);
      }
      // Pushed before any later batch can end this run's feed, so a switch never strands a batch.
      if (run.ended) entries[0]?.batch?.wake();
      else {
        run.feed.push(entries.map((e) => e.item));
        run.fed += entries.length;
      }
      return run;
    });
    switching = next.catch(() => undefined);
    return next;
  }

  function startRun(key: string, resolved: ResolvedOptions): Run {
    const run: Run = { key, feed: new Feed(), fed: 0, ended: false, retired: false, routes: new Map(), finished: Promise.resolve() };
    run.finished = (async () => {
      try {
        // What the whole queue shares comes in here: the names, and each host's budget (--per-host, --rate,
        // a server's pause), answered from Redis for all workers.
        const ctx = await createRunContext(resolved, undefined, { names, hosts: gates.for(resolved), itemSignal: (item) => itemSignals.get(item) });
        for await (const result of downloadWith(run.feed, ctx)) await settle(run, result);
      } catch (error) {
        log?.error(`a run stopped: ${describeError(error)}`);
      } finally {
        run.ended = true;
        for (const entries of run.routes.values()) for (const entry of entries) entry.batch!.wake();
      }
    })();
    return run;
  }

  /** Routes a result to its batch's entry and records it. */
  async function settle(run: Run, result: ItemResult): Promise<void> {
    const where = `${result.source}\n${result.line}`;
    const entries = run.routes.get(where);
    // The same source and line can be in two batches (two lists both called urls.txt): the URL tells them apart.
    const at = entries?.findIndex((e) => e.shown.includes(result.url)) ?? -1;
    const entry = entries?.splice(at === -1 ? 0 : at, 1)[0];
    if (entries?.length === 0) run.routes.delete(where);
    if (entry === undefined) return;
    const batch = entry.batch!;
    // What a batch taken back from this worker did here is stale: the worker that holds it now decides.
    if (!batch.withdrawn.signal.aborted && recorder.keeps(result)) {
      const record = entry.claim === Claim.Resumed || batch.rerun ? await recorder.recovered(result) : result;
      batch.writes.push(
        recorder.write(entry, record, batch.lock).then((answer) => {
          if (answer === Recorded.LockLost) return withdraw(batch, 'its lock had gone when a record was written');
          batch.recorded++;
          batch.counts[record.status]++;
          recorder.counted(record);
        }),
      );
    }
    if (--batch.left === 0) batch.wake();
  }

  /** Takes a batch back from this worker once its lock is lost: see the module comment. */
  function withdraw(batch: BatchState, why: string): void {
    if (batch.withdrawn.signal.aborted) return;
    log?.warn(`batch ${batch.id}: ${why} (this worker was silent past --lock-ms and the batch was taken back); its downloads here stop and nothing more of it is recorded here`);
    batch.withdrawn.abort(new Error(`batch ${batch.id} was taken back`));
    if (batch.run) leaveRun(batch, batch.run);
  }

  /**
   * A batch taken back leaves its run: its items not read yet are dropped (they would each wait for a
   * slot and a host's turn only to end), those read end as its signal says, and the run takes no
   * further batch (it has seen the batch's URLs, and a batch that comes back here must run them again).
   */
  function leaveRun(batch: BatchState, run: Run): void {
    run.retired = true;
    const signal = batch.withdrawn.signal;
    batch.left -= run.feed.drop((item) => itemSignals.get(item) === signal);
    if (batch.left === 0) batch.wake();
  }

  async function processBatch(job: Job, token?: string): Promise<{ ok: number; failed: number; skipped: number }> {
    const id = job.id!;
    const lockToken = token ?? job.token;
    if (lockToken === undefined) throw new Error(`batch ${id}: BullMQ gave no lock token`);
    const stop = stopping.signal;
    let batch;
    let resolved;
    try {
      batch = decodeBatch(job.data);
      resolved = resolveOptions({ ...(batch.options as Options), out, concurrency, graceMs, logger: log, stopSignal: stop });
    } catch (error) {
      // No retry can fix the job's own data: BullMQ fails it at once, and it stays in the failed set to look at.
      throw new UnrecoverableError(`batch ${id} cannot run here: ${describeError(error)}`);
    }
    const entries: Entry[] = batch.items.map((item, position) => {
      let url: URL | undefined;
      try {
        url = parseItemUrl(item);
      } catch {
        url = undefined;
      }
      const listing = `${id}#${position}`;
      // The record names the URL as the planner shows it: parsed when it parses, as listed otherwise.
      const shown = url === undefined ? [redactUrl(item.url)] : [redactUrl(url), redactUrl(item.url)];
      return { item, listing, key: itemKey(url, listing), url, shown, claim: Claim.New };
    });
    const claims = await store.claim(id, entries.map((e, position) => [e.key, position] as const));
    claims.forEach((claim, i) => (entries[i]!.claim = claim));
    const toRun = entries.filter((e) => e.claim === Claim.New || e.claim === Claim.Resumed);
    const state: BatchState = {
      id,
      // BullMQ's own lock key, which its extendLock and moveToFinished scripts check against the token the same way.
      lock: { key: `${queue.toKey(id)}:lock`, token: lockToken },
      withdrawn: new AbortController(),
      left: toRun.length,
      recorded: 0,
      counts: { ok: 0, failed: 0, skipped: 0 },
      writes: [],
      // A batch started before (its worker died, or Redis lost the end of it in a crash) may find its own files.
      rerun: job.attemptsStarted > 1 || job.stalledCounter > 0,
      wake: () => undefined,
    };
    const over = new Promise<void>((resolve) => (state.wake = resolve));
    // Until the job's processor returns (see the Worker below).
    held.set(id, state);
    const wanted = toRun.flatMap((e) => (e.url ? named(e.item, e.url) : []));
    if (toRun.length > 0) {
      await names.prepare(wanted);
      for (const entry of toRun) {
        entry.batch = state;
        itemSignals.set(entry.item, state.withdrawn.signal);
      }
      const run = await enter(JSON.stringify(batch.options), resolved, toRun);
      state.run = run;
      if (state.withdrawn.signal.aborted) leaveRun(state, run);
      await over;
      // Entries a stopped run never reached go back with the batch.
      for (const entry of toRun) {
        const where = `${entry.item.source}\n${entry.item.line}`;
        const list = run.routes.get(where)?.filter((e) => e !== entry);
        if (list === undefined) continue;
        if (list.length === 0) run.routes.delete(where);
        else run.routes.set(where, list);
      }
      names.forget(wanted);
    }
    await Promise.all(state.writes);
    // BullMQ leaves the job alone on a WaitingError: it is another worker's now, or waits for one.
    if (state.withdrawn.signal.aborted) throw new WaitingError();
    if (state.recorded < toRun.length) {
      if (stop.aborted && token !== undefined) {
        log?.info(`batch ${id}: handed back with ${toRun.length - state.recorded} of ${toRun.length} items unfinished`);
        handedBack++;
        await job.moveToWait(token);
        throw new WaitingError();
      }
      throw new Error(`batch ${id}: ${toRun.length - state.recorded} items could not be finished (disk full?); the batch will be retried`);
    }
    await store.finished(id);
    finishedBatches++;
    const { counts } = state;
    log?.info(`batch ${id}: ${counts.ok} ok, ${counts.failed} failed, ${counts.skipped} skipped (${entries.length - toRun.length} already done or listed elsewhere)`);
    return counts;
  }

  const worker = new Worker(
    QUEUE_NAME,
    async (job, token) => {
      busy.batches++;
      try {
        return await processBatch(job, token);
      } finally {
        // Unless this worker took the same job again meanwhile (a token is the job's for one taking).
        if (held.get(job.id!)?.lock.token === (token ?? job.token)) held.delete(job.id!);
        busy.batches--;
      }
    },
    {
      // ioredis' own options type; bullmq declares a looser copy of it that exactOptionalPropertyTypes will not match.
      connection: workerOptions(address) as ConnectionOptions,
      autorun: false,
      // Two batches at a time: the next one is already in the run's feed when the first one's last items run.
      concurrency: 2,
      lockDuration: lockMs,
      stalledInterval: Math.max(500, Math.round(lockMs / 2)),
      maxStalledCount: MAX_STALLED,
    },
  );
  worker.on('error', onError);
  worker.on('stalled', (jobId) => {
    log?.info(`batch ${jobId} was taken back from a worker that stopped answering; it will run again`);
    // This worker's own stalled check may find its own batch: then this worker is the one that stopped answering.
    const state = held.get(jobId);
    if (state) withdraw(state, 'the stalled check took it back');
  });
  worker.on('lockRenewalFailed', (jobIds: string[]) => {
    for (const jobId of jobIds) {
      const state = held.get(jobId);
      if (state) withdraw(state, 'its lock could not be renewed');
    }
  });
  worker.on('failed', (job, error) => {
    if (error.name !== 'WaitingError') log?.error(`batch ${job?.id ?? '?'} failed: ${describeError(error)}`);
  });

  const close = (): void => {
    stopping.abort(new Error('stopped'));
    void worker.close();
  };
  const onStop = (): void => close();
  if (options.stopSignal?.aborted) close();
  options.stopSignal?.addEventListener('abort', onStop, { once: true });
  const watcher = options.exitWhenEmpty ? watchForEmpty(queue, busy, close) : undefined;
  try {
    await worker.run();
  } finally {
    options.stopSignal?.removeEventListener('abort', onStop);
    watcher?.stop();
    await worker.close().catch(() => undefined);
    current?.feed.end();
    await current?.finished;
    gates.close();
    await queue.close().catch(() => undefined);
    redis.disconnect();
  }
  return { summary: recorder.summary(), batches: finishedBatches, handedBack };
}

/** The name an item will ask for when planned, or nothing for an item the planner will refuse. */
function named(item: ListItem, url: URL): Array<{ wanted: string; url: string }> {
  try {
    return [{ wanted: wantedPath(item, url), url: url.href }];
  } catch {
    return [];
  }
}

/**
 * Polls the queue while this worker is idle, and closes it once nothing is
 * waiting, delayed or active anywhere. A batch held by a dead worker stays
 * active until another worker takes it over, so it keeps everyone waiting.
 */
function watchForEmpty(queue: Queue, busy: { batches: number }, close: () => void): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const check = async (): Promise<void> => {
    if (stopped) return;
    try {
      if (busy.batches === 0) {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
        if (Object.values(counts).every((n) => n === 0) && busy.batches === 0) {
          close();
          return;
        }
      }
    } catch {
      // Redis away: the worker reconnects; look again later.
    }
    if (!stopped) timer = setTimeout(() => void check(), 250);
  };
  timer = setTimeout(() => void check(), 250);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
