/**
 * The library entry: `download(source, options)` yields a record per item.
 * The CLI, `bench`, and the tests all drive the downloader through here.
 */
import fs from 'node:fs/promises';
import type { NameClaims } from './thread-shared.js';
import { DigestRegistry } from '../names/dedupe.js';
import { fileSystemError } from '../errors.js';
import { createAgent } from '../http/fetch.js';
import { LocalHostGate, type HostGate } from './host-gate.js';
import { LAYOUT_NAMES, makeRunContext, type RunContext } from '../item/context.js';
import { plan } from '../item/plan.js';
import { toListItem, type Source } from '../input/source.js';
import { NameRegistry } from '../names/naming.js';
import { resolveOptions, type Options } from '../options.js';
import { runPool } from './pool.js';
import { RunTurns, type Queued } from './turns.js';
import { ProgressTracker } from './progress.js';
import { ManifestWriter, readDoneKeys, readEtags, type ItemResult } from '../record/record.js';
import type { ResolvedOptions } from '../options.js';
import type { SampleKeeper } from '../output/sample-port.js';
import { ShardSink } from '../output/shard-sink.js';
import type { Sink } from '../output/sink.js';

/**
 * Downloads every item of `source` into `options.out`, yielding one
 * {@link ItemResult} per item as it finishes (in completion order). The source
 * is read a bounded window ahead of the slots (256 items, or 8 per slot when
 * that is more; up to 1024, or 32 per slot, while hosts are held back; one in
 * sequential mode), so it may be endless. Slots are shared fairly across
 * hosts, within `perHost` and `rate` for each. A failed item never stops the
 * run (a full disk stops new items from starting). Aborting
 * `options.stopSignal` stops it gently (no new items; those in flight get
 * `graceMs`), aborting `options.signal` at once.
 *
 * Throws `OptionError` for bad options, and a FILESYSTEM error when the output
 * folder or the manifest cannot be created.
 */
export async function* download(source: Source, options: Options = {}): AsyncGenerator<ItemResult> {
  const resolved = resolveOptions(options);
  try {
    await fs.mkdir(resolved.out, { recursive: true });
  } catch (error) {
    throw fileSystemError(error, 'creating output folder', resolved.out);
  }
  const progress = new ProgressTracker(resolved.onProgress);
  const ctx = await createRunContext(resolved, resolved.onProgress ? (n) => progress.bytes(n) : undefined);
  yield* downloadWith(source, ctx, progress);
}

/**
 * The state a run shares between its items: the agent, the names, the part
 * files and what an earlier run's manifest says is done. {@link download}
 * makes one; tests make their own to replace a seam such as `sink`, and
 * the cluster's worker gives `names` a registry shared by every worker,
 * `hosts` the queue's books, `itemSignal` the signal of each item's batch,
 * and `sink` the tar shards of its batches.
 */
export async function createRunContext(
  options: ResolvedOptions,
  onBytes?: (n: number) => void,
  shared: { names?: NameClaims; hosts?: HostGate; itemSignal?: RunContext['itemSignal']; sink?: Sink } = {},
): Promise<RunContext> {
  // The sharded layout names by position: no registry, shared or not. A registry from outside is asked
  // for every name; the run's own also tells, while planning, a URL listed before (see planItem).
  const registry = options.layout === 'flat' && shared.names === undefined ? new NameRegistry() : undefined;
  const update = options.onExists === 'update';
  const onHost = options.onHost;
  const agent = createAgent(options, onBytes, onHost && ((host, protocol) => onHost({ host, protocol })));
  return makeRunContext(options, agent, {
    names: options.layout === 'sharded' ? LAYOUT_NAMES : (shared.names ?? registry!),
    registry,
    // An update asks again about what is done, with the ETags the manifest kept. A tar shard is redone
    // whole (its samples are in no other file), so its rows are fetched again whatever the manifest says.
    done: options.manifest === undefined || update || options.format === 'webdataset' ? undefined : await readDoneKeys(options.manifest),
    etags: options.manifest === undefined || !update ? undefined : await readEtags(options.manifest),
    digests: options.dedupe ? new DigestRegistry() : undefined,
    hosts: shared.hosts,
    itemSignal: shared.itemSignal,
    sink: shared.sink,
  });
}

/**
 * {@link download} over a context made by {@link createRunContext}; the
 * context's agent is closed at the end. `progress` receives the run's
 * progress (its byte counts come from the agent, wired by the caller).
 */
export async function* downloadWith(
  source: Source,
  ctx: RunContext,
  progress: ProgressTracker = new ProgressTracker(ctx.options.onProgress),
): AsyncGenerator<ItemResult> {
  const { options: resolved } = ctx;
  const manifest = resolved.manifest === undefined ? undefined : new ManifestWriter(resolved.manifest);
  // Loaded only for this mode, so other runs never pay for piscina's import.
  const workers =
    resolved.mode === 'workers'
      ? new (await import('./thread-pool.js')).WorkerPool(
          resolved,
          ctx.signal,
          ctx.names,
          ctx.digests as DigestRegistry | undefined,
          samplesOf(ctx),
        )
      : undefined;
  const log = resolved.logger;
  const stops = new StopSwitches(ctx);
  if (resolved.insecure) log?.warn('TLS certificate verification is OFF (insecure): anyone on the path can read and alter these downloads');
  const gate = ctx.hosts ?? new LocalHostGate({ perHost: resolved.perHost, rate: resolved.rate, adapt: resolved.adapt });
  const poolOptions = { concurrency: resolved.concurrency, ...readAheadFor(resolved), gate, signal: stops.drain.signal };
  // Asked once: a line per saved file is logged only at -v, and building it costs an object and a string each.
  const logItems = log?.isLevelEnabled('info') === true;
  const list: Listed = { rows: undefined, positions: undefined };
  try {
    const turns = new RunTurns(ctx, progress, gate, workers);
    list.positions = turns.positions;
    for await (const result of runPool(planAll(source, ctx, progress, list), poolOptions, turns)) {
      // A sink that keeps every row (a tar shard's table) hears of each, whatever happened to it.
      if (list.positions !== undefined) ctx.sink.settle!(list.positions.get(result)!, result);
      // Items the manifest already records as done are not recorded again.
      if (result.skipReason !== 'manifest') manifest?.write(result);
      // An item its caller took back is the caller's to report.
      if (result.status === 'failed') {
        if (!turns.takenBack.has(result)) failedItem(result, ctx, stops.drain);
      } else if (logItems)
        log!.info(
          { url: result.url, path: result.path, status: result.status, bytes: result.bytes, ms: result.ms },
          `${result.status} ${result.path ?? result.url}`,
        );
      yield result;
    }
  } finally {
    // Also reached when the caller stops iterating early: abort what is still in flight.
    stops.release();
    // The rates hosts ended at, for the per-host figures.
    if (resolved.onHost) for (const [host, rate] of gate.adaptedRates?.() ?? []) resolved.onHost({ host, rate });
    manifest?.close();
    await ctx.agent.destroy().catch(() => undefined);
    await workers?.destroy().catch(() => undefined);
    await ctx.sink.end?.(list.rows);
  }
}

/** What planning tells the run about the list: its length once read to its end, and where each planned record sits in it. */
interface Listed {
  rows: number | undefined;
  positions: WeakMap<ItemResult, number> | undefined;
}

/** Where the worker threads' samples go: the run's tar shard writer, when the run writes shards. */
function samplesOf(ctx: RunContext): SampleKeeper | undefined {
  return ctx.sink instanceof ShardSink ? ctx.sink.keeper : undefined;
}

/** Every item of `source`, planned in list order. */
async function* planAll(source: Source, ctx: RunContext, progress: ProgressTracker, list: Listed): AsyncGenerator<Queued> {
  // Every item's place in the whole list, other shards' included: the sharded layout names files by it.
  let position = 0;
  for await (const entry of source) {
    const item = toListItem(entry, ++position);
    const found = plan(item, ctx, position - 1, true);
    // Another shard's item is not part of this run at all.
    if (found === undefined) continue;
    progress.read();
    const planned = found instanceof Promise ? await found : found;
    if ('result' in planned) list.positions?.set(planned.result, item.index ?? position - 1);
    yield planned;
  }
  list.rows = position;
  progress.listComplete();
}

/** Logs a failed item; a full disk stops new items from starting, since every later one would fail the same way. */
function failedItem(result: ItemResult, ctx: RunContext, drain: AbortController): void {
  const log = ctx.options.logger;
  log?.warn(
    { url: result.url, source: result.source, line: result.line, error: result.error },
    `${result.source}:${result.line}: ${result.error?.message ?? 'failed'}`,
  );
  if (result.error?.code === 'DISK_FULL' && !drain.signal.aborted) {
    // Let those in flight end, start no more.
    log?.error({ error: result.error }, 'disk full: no new downloads will start');
    drain.abort();
  }
}

/**
 * The run's two ways of stopping: `options.stopSignal` drains (no new items;
 * those in flight get `graceMs`), `options.signal` aborts at once. Draining
 * stops new items from starting; aborting (ctx.abort) also stops those in flight.
 */
class StopSwitches {
  readonly drain = new AbortController();
  readonly #ctx: RunContext;
  #graceTimer: NodeJS.Timeout | undefined;
  readonly #onAbort = (): void => {
    this.drain.abort();
    this.#ctx.abort(this.#ctx.options.signal?.reason);
  };
  readonly #onStop = (): void => {
    this.drain.abort();
    this.#graceTimer ??= setTimeout(() => this.#ctx.abort(new Error('grace period over')), this.#ctx.options.graceMs);
  };

  constructor(ctx: RunContext) {
    this.#ctx = ctx;
    const { signal, stopSignal } = ctx.options;
    if (signal?.aborted) this.#onAbort();
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (stopSignal?.aborted) this.#onStop();
    stopSignal?.addEventListener('abort', this.#onStop, { once: true });
  }

  /** The run is over: stops whatever is still in flight and lets go of the signals. */
  release(): void {
    clearTimeout(this.#graceTimer);
    this.drain.abort();
    this.#ctx.abort();
    this.#ctx.options.signal?.removeEventListener('abort', this.#onAbort);
    this.#ctx.options.stopSignal?.removeEventListener('abort', this.#onStop);
  }
}

/**
 * How far the list is read ahead of the slots: items kept waiting (`buffer`), so that the other hosts'
 * items are at hand when one host is slow; and, while slots stay idle because hosts are paused or at
 * their cap or rate, up to `readAhead`. Sequential mode reads one at a time and keeps list order.
 */
function readAheadFor(options: ResolvedOptions): { buffer: number; readAhead: number } {
  if (options.mode === 'sequential') return { buffer: 1, readAhead: 1 };
  return { buffer: Math.max(256, 8 * options.concurrency), readAhead: Math.max(1024, 32 * options.concurrency) };
}
