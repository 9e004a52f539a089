/**
 * The core's pipeline, kept running across a worker's batches. One run
 * serves batch after batch: two batches are taken at a time and their items
 * fed into the run as it has room, so `-c` downloads stay in flight across
 * batch boundaries (a run per batch left each batch's last round half empty
 * and opened new connections per batch). Results find their batch by
 * source, line and URL.
 *
 * A new run starts when a batch carries other options, after
 * {@link ROTATE_AFTER} items (what a run remembers per item must not grow
 * for the life of the worker), after a run stopped on its own (a full
 * disk), after a batch in it was taken back from this worker (see
 * {@link Run.leave}), and for a shard the run has written before (a batch
 * run again: the run has seen its URLs, and would skip them as duplicates).
 */
import type { Logger } from 'pino';
import { describeError } from '../errors.js';
import type { ListItem } from '../input/text-list.js';
import type { ResolvedOptions } from '../options.js';
import type { ItemResult } from '../record/record.js';
import { createRunContext, downloadWith } from '../run/download.js';
import { Feed } from './feed.js';
import type { RedisHostGates } from './host-gate.js';
import type { ClusterNames } from './names.js';
import { ShardRouter, type BatchShard } from './shards.js';

/** Items after which a worker starts a fresh run, so per-run memory (URLs seen) stays bounded. */
const ROTATE_AFTER = 100_000;

/** Where a result is routed back from: its list and line, which a result carries as its item did. */
function routeOf(at: { source: string; line: number }): string {
  return `${at.source}\n${at.line}`;
}

/** What a run asks of the batch its items came from. */
export interface RoutedBatch {
  /** Aborted when the batch is taken back from this worker: stops its items in the run. */
  readonly signal: AbortSignal;
  /** Called when no item of the batch is still out, or its run ended. */
  wake(): void;
}

/** An item handed to a run, and what takes its result back to its batch. */
export interface Routed {
  readonly item: ListItem;
  /** The forms its record's URL may take (credentials redacted): two batches' items at one source and line differ in it. */
  readonly shown: readonly string[];
  readonly batch: RoutedBatch;
}

/** What every run of a worker shares. */
export interface PipelineOptions<E extends Routed> {
  /** The names every worker of the queue claims in Redis. */
  names: ClusterNames;
  /** Each host's budget (`--per-host`, `--rate`, a server's pause), kept in Redis for every worker. */
  gates: RedisHostGates;
  /** Takes an item's result to its batch; the run reads no further result until it resolves. */
  settle: (entry: E, result: ItemResult) => Promise<void>;
  log: Logger | undefined;
}

/** One run of the core's pipeline, and the batches' items in it. */
export class Run<E extends Routed> {
  /** The batch options it was started with (JSON). */
  readonly key: string;
  /** With `format: 'webdataset'`, the run's sink, which each batch's shard joins (see shards.ts). */
  readonly shards: ShardRouter | undefined;
  /** Settles once the run has ended and each of its results was settled. */
  readonly finished: Promise<void>;
  readonly #feed = new Feed();
  /** Items pushed into it so far. */
  #fed = 0;
  #ended = false;
  /** True once a batch taken back from this worker was in it: the next batch starts a new run. */
  #retired = false;
  /** The shards whose batches it took. */
  readonly #shardsTaken = new Set<number>();
  /** `source\nline` → entries in flight, to route results back. */
  readonly #routes = new Map<string, E[]>();
  /** Each item pushed → its batch's signal, which stops it when the batch is taken back. */
  readonly #signals = new WeakMap<ListItem, AbortSignal>();

  constructor(key: string, resolved: ResolvedOptions, options: PipelineOptions<E>) {
    this.key = key;
    this.shards = resolved.format === 'webdataset' ? new ShardRouter(resolved.shardSize) : undefined;
    this.finished = this.#serve(resolved, options);
  }

  /** True when a batch with options `key` (writing `shard`) may not join this run (see the module comment). */
  closedTo(key: string, shard: number | undefined): boolean {
    const again = shard !== undefined && this.#shardsTaken.has(shard);
    return this.key !== key || this.#fed >= ROTATE_AFTER || this.#ended || this.#retired || again;
  }

  /** Routes the rows of `shard` to its writer (see shards.ts), before its batch's items are pushed. */
  join(shard: BatchShard): void {
    this.#shardsTaken.add(shard.index);
    this.shards?.join(shard.index, shard.writer);
  }

  /** Routes a batch's entries, and pushes their items, unless the run has ended meanwhile: then their batch is woken. */
  take(entries: readonly E[]): void {
    for (const entry of entries) {
      this.#signals.set(entry.item, entry.batch.signal);
      const where = routeOf(entry.item);
      const list = this.#routes.get(where);
      if (list) list.push(entry);
      else this.#routes.set(where, [entry]);
    }
    if (this.#ended) entries[0]?.batch.wake();
    else {
      this.#feed.push(entries.map((e) => e.item));
      this.#fed += entries.length;
    }
  }

  /**
   * A batch taken back leaves the run: its items not read yet are dropped (they would each wait for a
   * slot and a host's turn only to end), those read end as its signal says, and the run takes no
   * further batch (it has seen the batch's URLs, and a batch that comes back here must run them again).
   * Answers how many items were dropped.
   */
  leave(signal: AbortSignal): number {
    this.#retired = true;
    return this.#feed.drop((item) => this.#signals.get(item) === signal);
  }

  /** Stops routing results to entries the run never reached: they go back with their batch. */
  forget(entries: readonly E[]): void {
    for (const entry of entries) {
      const where = routeOf(entry.item);
      const list = this.#routes.get(where)?.filter((e) => e !== entry);
      if (list === undefined) continue;
      if (list.length === 0) this.#routes.delete(where);
      else this.#routes.set(where, list);
    }
  }

  /** Takes no more items, and settles once those in the run are done. */
  async end(): Promise<void> {
    this.#feed.end();
    await this.finished;
  }

  async #serve(resolved: ResolvedOptions, options: PipelineOptions<E>): Promise<void> {
    try {
      // What the whole queue shares comes in here: the names, and each host's budget (--per-host, --rate,
      // a server's pause), answered from Redis for all workers.
      const ctx = await createRunContext(resolved, undefined, {
        names: options.names,
        hosts: options.gates.for(resolved),
        itemSignal: (item) => this.#signals.get(item),
        ...(this.shards === undefined ? {} : { sink: this.shards }),
      });
      for await (const result of downloadWith(this.#feed, ctx)) await this.#settle(result, options.settle);
    } catch (error) {
      options.log?.error(`a run stopped: ${describeError(error)}`);
    } finally {
      this.#ended = true;
      for (const entries of this.#routes.values()) for (const entry of entries) entry.batch.wake();
    }
  }

  /** Routes a result to its entry, and hands both to `settle`. */
  async #settle(result: ItemResult, settle: PipelineOptions<E>['settle']): Promise<void> {
    const where = routeOf(result);
    const entries = this.#routes.get(where);
    // The same source and line can be in two batches (two lists both called urls.txt): the URL tells them apart.
    const at = entries?.findIndex((e) => e.shown.includes(result.url)) ?? -1;
    const entry = entries?.splice(at === -1 ? 0 : at, 1)[0];
    if (entries?.length === 0) this.#routes.delete(where);
    if (entry !== undefined) await settle(entry, result);
  }
}

/** A worker's runs: the one batches enter now, and the turn they take to enter it. */
export class Pipeline<E extends Routed> {
  readonly #options: PipelineOptions<E>;
  #current: Run<E> | undefined;
  #switching: Promise<unknown> = Promise.resolve();

  constructor(options: PipelineOptions<E>) {
    this.#options = options;
  }

  /**
   * Hands a batch's entries to the current run (or a new one), in turn with every other batch;
   * resolves to that run. A batch that writes `shard` has it joined to the run first.
   */
  enter(key: string, resolved: ResolvedOptions, entries: readonly E[], shard?: BatchShard): Promise<Run<E>> {
    const next = this.#switching.then(async () => {
      if (this.#current?.closedTo(key, shard?.index)) {
        await this.#current.end();
        this.#current = undefined;
      }
      const run = (this.#current ??= new Run(key, resolved, this.#options));
      if (shard !== undefined) run.join(shard);
      // Pushed before any later batch can end this run's feed, so a switch never strands a batch.
      run.take(entries);
      return run;
    });
    this.#switching = next.catch(() => undefined);
    return next;
  }

  /** Ends the current run once its items are done: the worker is stopping. */
  async close(): Promise<void> {
    await this.#current?.end();
  }
}
