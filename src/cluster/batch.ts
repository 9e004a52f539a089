/**
 * One batch's life in a worker: its job is read, its items claimed in the
 * queue, those still to do run through the worker's pipeline, each result
 * recorded as it comes, and then the batch completes, goes back to the
 * queue (the worker is stopping), or fails to be retried (a full disk).
 *
 * A batch is held under BullMQ's lock on its job. A worker silent past
 * `lockMs` (frozen, suspended, cut off) loses its batches: another worker
 * takes them over and may finish them before this one wakes up. What this
 * one then brings back is stale, so every record is written with the
 * batch's lock, which the store checks in the same script (see store.ts).
 * The batch is taken back from this worker as soon as it knows, from a
 * refused record, a lock it could not renew, or the stalled check: its
 * downloads stop, the rest of its items never start, nothing more of it is
 * recorded, and BullMQ's job is left to whoever holds it now.
 *
 * A batch of WebDataset rows is one shard (see shards.ts): all its rows run,
 * whatever the queue knows of them, and it completes only once its shard is
 * in place.
 */
import { UnrecoverableError, WaitingError, type Job, type Queue } from 'bullmq';
import type { Logger } from 'pino';
import { describeError } from '../errors.js';
import { parseItemUrl, redactUrl, type ListItem } from '../input/text-list.js';
import { wantedPath } from '../item/plan.js';
import { resolveOptions, type Options, type ResolvedOptions } from '../options.js';
import type { ItemResult } from '../record/record.js';
import { decodeBatch, type JobOptions } from './jobs.js';
import type { ClusterNames } from './names.js';
import type { Pipeline, Routed, RoutedBatch, Run } from './pipeline.js';
import type { Recorder } from './recorder.js';
import { BatchShard } from './shards.js';
import { Claim, Recorded, itemKey, type BatchLock, type Store } from './store.js';

/** What a batch that completes returns to BullMQ: its items' records by status. */
export interface BatchCounts {
  ok: number;
  failed: number;
  skipped: number;
}

/** What every batch of a worker shares. */
export interface BatchContext {
  store: Store;
  /** BullMQ's queue, which names a job's lock key. */
  queue: Queue;
  names: ClusterNames;
  pipeline: Pipeline<Entry>;
  recorder: Recorder;
  held: HeldBatches;
  /** The options the worker sets itself, the same for every batch. */
  local: { out: string; concurrency: number; graceMs: number };
  /** Aborted when the worker stops: items in flight get `graceMs`, and a batch left unfinished goes back to the queue. */
  stop: AbortSignal;
  log: Logger | undefined;
  /** Batches finished, and batches handed back unfinished, for the worker's summary. */
  tally: { batches: number; handedBack: number };
}

/** An item of a batch as the queue knows it, before its claim. */
interface Listed {
  readonly item: ListItem;
  /** `jobId#position`: the one place in the enqueued lists that owns the item's record. */
  readonly listing: string;
  readonly key: string;
  readonly url: URL | undefined;
  /** The forms the record's URL may take (credentials redacted). */
  readonly shown: readonly string[];
}

/** An item of a batch this worker runs. */
export interface Entry extends Listed, Routed {
  readonly claim: Claim;
  readonly batch: Batch;
}

/**
 * Runs a job's batch: the body of the worker's BullMQ processor. Resolves to
 * its counts once each of its items has a record; throws WaitingError when
 * the batch went back to the queue or was taken back, UnrecoverableError for
 * a job no retry can fix, and an Error (the job is retried) when items could
 * not be finished.
 */
export async function runBatch(job: Job, token: string | undefined, context: BatchContext): Promise<BatchCounts> {
  const id = job.id!;
  const lockToken = token ?? job.token;
  if (lockToken === undefined) throw new Error(`batch ${id}: BullMQ gave no lock token`);
  const { options, items, resolved } = readJob(id, job.data, context);
  const listed = listItems(id, items);
  const claims = await context.store.claim(
    id,
    listed.map((e, position) => [e.key, position] as const),
  );
  // A batch started before (its worker died, or Redis lost the end of it in a crash) may find its own files.
  const rerun = job.attemptsStarted > 1 || job.stalledCounter > 0;
  const claimed = listed.map((e, i) => ({ ...e, claim: claims[i] ?? Claim.New }));
  // A shard is written whole, so each of its rows runs again, whatever the queue has recorded of it.
  const whole = resolved.format === 'webdataset';
  const due = whole ? claimed : claimed.filter((e) => e.claim === Claim.New || e.claim === Claim.Resumed);
  const batch = new Batch(id, { token: lockToken, rerun, items: due.length }, context);
  batch.shard = shardFor(id, items, resolved, batch);
  const toRun = due.map((e): Entry => ({ ...e, batch }));
  // Until the job's processor returns (see worker.ts).
  context.held.hold(batch);
  if (toRun.length > 0) await batch.run(toRun, JSON.stringify(options), resolved);
  return batch.finish(job, token, toRun.length, listed.length);
}

/** The job's items and options, resolved as this worker runs them. */
function readJob(id: string, data: unknown, context: BatchContext): { options: JobOptions; items: ListItem[]; resolved: ResolvedOptions } {
  try {
    const batch = decodeBatch(data);
    const { out, concurrency, graceMs } = context.local;
    const resolved = resolveOptions({
      ...(batch.options as Options),
      out,
      concurrency,
      graceMs,
      logger: context.log,
      stopSignal: context.stop,
      onHost: (event) => context.recorder.hostEvent(event),
    });
    return { ...batch, resolved };
  } catch (error) {
    // No retry can fix the job's own data: BullMQ fails it at once, and it stays in the failed set to look at.
    throw new UnrecoverableError(`batch ${id} cannot run here: ${describeError(error)}`);
  }
}

/** The shard a batch of WebDataset rows writes; a batch that is not one shard's rows can never run. */
function shardFor(id: string, items: readonly ListItem[], resolved: ResolvedOptions, batch: Batch): BatchShard | undefined {
  try {
    return BatchShard.of(items, resolved, batch.lock.token, () => batch.holds());
  } catch (error) {
    throw new UnrecoverableError(`batch ${id} cannot run here: ${describeError(error)}`);
  }
}

/** The batch's items with their listings, keys and the URLs their records may show. */
function listItems(id: string, items: readonly ListItem[]): Listed[] {
  return items.map((item, position) => {
    let url: URL | undefined;
    try {
      url = parseItemUrl(item);
    } catch {
      url = undefined;
    }
    const listing = `${id}#${position}`;
    // The record names the URL as the planner shows it: parsed when it parses, as listed otherwise.
    const shown = url === undefined ? [redactUrl(item.url)] : [redactUrl(url), redactUrl(item.url)];
    return { item, listing, key: itemKey(url, listing), url, shown };
  });
}

/** One batch in this worker: its lock, how many of its items are still out, and what was recorded. */
export class Batch implements RoutedBatch {
  /** Its job's ID. */
  readonly id: string;
  /** The lock its job is held under; every record is written with it. */
  readonly lock: BatchLock;
  /** With `format: 'webdataset'`, the shard the batch writes. */
  shard: BatchShard | undefined;
  readonly #context: BatchContext;
  /** Its job ran before: a file found at an item's name may be that run's download (see Recorder.recovered). */
  readonly #rerun: boolean;
  /** Aborted when the batch is taken back from this worker (its lock is lost): stops its items. */
  readonly #withdrawn = new AbortController();
  /** The run its items went into, once handed over. */
  #run: Run<Entry> | undefined;
  /** Its items still out. */
  #left: number;
  #recorded = 0;
  readonly #counts: BatchCounts = { ok: 0, failed: 0, skipped: 0 };
  readonly #writes: Array<Promise<unknown>> = [];
  #wake: () => void = () => undefined;
  /** Settles once no item of the batch is still out, or its run ended. */
  readonly #over = new Promise<void>((resolve) => (this.#wake = resolve));

  /** `token` is the lock token BullMQ gave with the job; `rerun` says the job ran before; `items` is how many items the batch runs. */
  constructor(id: string, start: { token: string; rerun: boolean; items: number }, context: BatchContext) {
    this.id = id;
    // BullMQ's own lock key, which its extendLock and moveToFinished scripts check against the token the same way.
    this.lock = { key: `${context.queue.toKey(id)}:lock`, token: start.token };
    this.#rerun = start.rerun;
    this.#left = start.items;
    this.#context = context;
  }

  /** Aborted when the batch is taken back from this worker. */
  get signal(): AbortSignal {
    return this.#withdrawn.signal;
  }

  /** True while the batch is still this worker's, as Redis knows it: asked before its shard is put in place. */
  async holds(): Promise<boolean> {
    if (this.#withdrawn.signal.aborted) return false;
    const held = await this.#context.store.holds(this.lock);
    return held && !this.#withdrawn.signal.aborted;
  }

  /** Ends {@link run}'s wait: no item is still out, or the run they were in ended. */
  wake(): void {
    this.#wake();
  }

  /** Runs the batch's entries through the worker's pipeline, with their names claimed first; resolves once none is out. */
  async run(entries: Entry[], optionsKey: string, resolved: ResolvedOptions): Promise<void> {
    const { names, pipeline } = this.#context;
    // A shard's samples are named by position: no name is claimed for them.
    const wanted = this.shard ? [] : entries.flatMap((e) => (e.url ? named(e.item, e.url) : []));
    await names.prepare(wanted);
    const run = await pipeline.enter(optionsKey, resolved, entries, this.shard);
    this.#run = run;
    if (this.#withdrawn.signal.aborted) this.#leave(run);
    await this.#over;
    // Entries a stopped run never reached go back with the batch.
    run.forget(entries);
    names.forget(wanted);
  }

  /** Records an entry's result, unless it is stale or says nothing about the item. */
  async settle(entry: Entry, result: ItemResult): Promise<void> {
    const { recorder } = this.#context;
    // What a batch taken back from this worker did here is stale: the worker that holds it now decides.
    if (!this.#withdrawn.signal.aborted && recorder.keeps(result)) {
      const record = entry.claim === Claim.Resumed || this.#rerun ? await recorder.recovered(result) : result;
      this.#writes.push(
        recorder.write(entry, record, this.lock).then((answer) => {
          if (answer === Recorded.LockLost) return this.withdraw('its lock had gone when a record was written');
          this.#recorded++;
          this.#counts[record.status]++;
          recorder.counted(record);
        }),
      );
    }
    if (--this.#left === 0) this.wake();
  }

  /** Takes the batch back from this worker once its lock is lost: see the module comment. */
  withdraw(why: string): void {
    if (this.#withdrawn.signal.aborted) return;
    this.#context.log?.warn(
      `batch ${this.id}: ${why} (this worker was silent past --lock-ms and the batch was taken back); its downloads here stop and nothing more of it is recorded here`,
    );
    this.#withdrawn.abort(new Error(`batch ${this.id} was taken back`));
    if (this.#run) this.#leave(this.#run);
  }

  /** Leaves the run (see {@link Run.leave}): the items it dropped are no longer out. */
  #leave(run: Run<Entry>): void {
    this.#left -= run.leave(this.#withdrawn.signal);
    if (this.#left === 0) this.wake();
  }

  /**
   * Ends the batch once its records are written: completed when each item it
   * ran has one, else handed back to the queue (the worker is stopping) or
   * failed to be retried; left alone when it was taken back.
   */
  async finish(job: Job, token: string | undefined, ran: number, listed: number): Promise<BatchCounts> {
    const { store, stop, log, tally } = this.#context;
    await Promise.all(this.#writes);
    // Its tar is renamed and its stats written before the batch may complete; rejects when they cannot be.
    const shardDone =
      this.shard === undefined ||
      (await this.shard.end(this.#run?.shards).catch((error: unknown) => {
        // A batch taken back says nothing more here, whatever befell its part file.
        if (this.#withdrawn.signal.aborted) return false;
        throw error;
      }));
    // BullMQ leaves the job alone on a WaitingError: it is another worker's now, or waits for one.
    if (this.#withdrawn.signal.aborted) throw new WaitingError();
    if (this.#recorded < ran || !shardDone) {
      if (stop.aborted && token !== undefined) {
        log?.info(`batch ${this.id}: handed back with ${ran - this.#recorded} of ${ran} items unfinished`);
        tally.handedBack++;
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const what = shardDone ? `${ran - this.#recorded} items` : `its shard`;
      throw new Error(`batch ${this.id}: ${what} could not be finished (disk full?); the batch will be retried`);
    }
    await store.finished(this.id);
    tally.batches++;
    const counts = this.#counts;
    log?.info(
      `batch ${this.id}: ${counts.ok} ok, ${counts.failed} failed, ${counts.skipped} skipped (${listed - ran} already done or listed elsewhere)`,
    );
    return counts;
  }
}

/**
 * The batches this worker holds, by job ID, from their claim until their
 * processor returns: BullMQ's events name the jobs whose locks are lost, and
 * their batches must be taken back.
 */
export class HeldBatches {
  readonly #held = new Map<string, Batch>();

  /** Holds `batch` until {@link release}. */
  hold(batch: Batch): void {
    this.#held.set(batch.id, batch);
  }

  /** Lets go of job `id`'s batch, unless this worker took the same job again meanwhile (a token is the job's for one taking). */
  release(id: string, token: string | undefined): void {
    if (this.#held.get(id)?.lock.token === token) this.#held.delete(id);
  }

  /** Takes job `id`'s batch back from this worker, if it holds it (see {@link Batch.withdraw}). */
  withdraw(id: string, why: string): void {
    this.#held.get(id)?.withdraw(why);
  }
}

/** The name an item will ask for when planned, or nothing for an item the planner will refuse. */
function named(item: ListItem, url: URL): Array<{ wanted: string; url: string }> {
  try {
    return [{ wanted: wantedPath(item, url), url: url.href }];
  } catch {
    return [];
  }
}
