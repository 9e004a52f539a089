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
import { startTries, stoppedWaiting, tryTask, type Retry, type Tries } from '../item/attempt.js';
import { LAYOUT_NAMES, makeRunContext, type RunContext } from '../item/context.js';
import { plan, type Task } from '../item/plan.js';
import { toListItem, type Source } from '../input/source.js';
import { NameRegistry } from '../names/naming.js';
import { resolveOptions, type Options } from '../options.js';
import { runPool, type PoolWork } from './pool.js';
import { ProgressTracker } from './progress.js';
import { ManifestWriter, readDoneKeys, type ItemResult } from '../record/record.js';
import type { ResolvedOptions } from '../options.js';

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
 * the cluster's worker gives `names` a registry shared by every worker.
 */
export async function createRunContext(
  options: ResolvedOptions,
  onBytes?: (n: number) => void,
  shared: { names?: NameClaims; hosts?: HostGate } = {},
): Promise<RunContext> {
  // The sharded layout names by position: no registry, shared or not. A registry from outside is asked
  // for every name; the run's own also tells, while planning, a URL listed before (see planItem).
  const registry = options.layout === 'flat' && shared.names === undefined ? new NameRegistry() : undefined;
  return makeRunContext(options, createAgent(options, onBytes), {
    names: options.layout === 'sharded' ? LAYOUT_NAMES : (shared.names ?? registry!),
    registry,
    done: options.manifest === undefined ? undefined : await readDoneKeys(options.manifest),
    digests: options.dedupe ? new DigestRegistry() : undefined,
    hosts: shared.hosts,
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
    resolved.mode === 'workers' ? new (await import('./thread-pool.js')).WorkerPool(resolved, ctx.signal, ctx.names, ctx.digests as DigestRegistry | undefined) : undefined;
  const log = resolved.logger;
  // Draining stops new items from starting; aborting (ctx.abort) also stops those in flight.
  const drain = new AbortController();
  let graceTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    drain.abort();
    ctx.abort(resolved.signal?.reason);
  };
  const onStop = (): void => {
    drain.abort();
    graceTimer ??= setTimeout(() => ctx.abort(new Error('grace period over')), resolved.graceMs);
  };
  if (resolved.signal?.aborted) onAbort();
  resolved.signal?.addEventListener('abort', onAbort, { once: true });
  if (resolved.stopSignal?.aborted) onStop();
  resolved.stopSignal?.addEventListener('abort', onStop, { once: true });
  if (resolved.insecure) log?.warn('TLS certificate verification is OFF (insecure): anyone on the path can read and alter these downloads');

  async function* planAll(): AsyncGenerator<Queued> {
    // Every item's place in the whole list, other shards' included: the sharded layout names files by it.
    let position = 0;
    for await (const entry of source) {
      const item = toListItem(entry, ++position);
      const planned = plan(item, ctx, position - 1, true);
      // Another shard's item is not part of this run at all.
      if (planned === undefined) continue;
      progress.read();
      yield planned instanceof Promise ? await planned : planned;
    }
    progress.listComplete();
  }
  const gate = ctx.hosts ?? new LocalHostGate({ perHost: resolved.perHost, rate: resolved.rate });
  const work: PoolWork<Queued, ItemResult> = {
    hostOf: (queued) => ('task' in queued ? queued.task.url.host : undefined),
    turn: async (queued, host) => {
      if ('result' in queued) {
        progress.finished(queued.result, false);
        return queued;
      }
      const { task } = queued;
      if (queued.tries === undefined) progress.started();
      // One try, here or on a worker thread (which starts the item's tries itself, so nothing more crosses for a first try).
      const outcome = workers ? await workers.run(task, queued.tries, ctx.signal) : await tryTask(task, ctx, (queued.tries ??= startTries()));
      if ('retryInMs' in outcome) {
        queued.tries = outcome.tries;
        // In workers mode a server's pause holds only for its own item, as the README states.
        if (!workers) await pauseFor(outcome, host!, task.shownUrl);
        return outcome;
      }
      // Worker threads have agents of their own, so their bytes are counted as each item finishes.
      if (workers) progress.bytes(outcome.bytes);
      progress.finished(outcome, true);
      return { result: outcome };
    },
    stopped: (queued) => {
      // Never started: left out, like the lines not read yet. Waiting for its next try: it ends here.
      if (!('task' in queued) || queued.tries === undefined) return undefined;
      const result = stoppedWaiting(queued.task, queued.tries);
      progress.finished(result, true);
      return result;
    },
  };
  /** A server's Retry-After on 429 or 503 holds back the whole host, not just this item; said once per pause. */
  const pauseFor = async (retry: Retry, host: string, url: string): Promise<void> => {
    const status = retry.hostWait;
    if (status === undefined) return;
    const fresh = await Promise.resolve(gate.pause(host, Date.now() + retry.retryInMs)).catch(() => false);
    if (fresh) log?.warn({ host, url, status, waitMs: retry.retryInMs }, `${host} answered HTTP ${status} asking to wait ${Math.ceil(retry.retryInMs / 1000)} s: pausing every request to it until then`);
  };

  // Asked once: a line per saved file is logged only at -v, and building it costs an object and a string each.
  const logItems = log?.isLevelEnabled('info') === true;
  try {
    for await (const result of runPool(planAll(), { concurrency: resolved.concurrency, ...readAheadFor(resolved), gate, signal: drain.signal }, work)) {
      // Items the manifest already records as done are not recorded again.
      if (result.skipReason !== 'manifest') manifest?.write(result);
      if (result.status === 'failed') {
        log?.warn({ url: result.url, source: result.source, line: result.line, error: result.error }, `${result.source}:${result.line}: ${result.error?.message ?? 'failed'}`);
        if (result.error?.code === 'DISK_FULL' && !drain.signal.aborted) {
          // Every later item would fail the same way: let those in flight end, start no more.
          log?.error({ error: result.error }, 'disk full: no new downloads will start');
          drain.abort();
        }
      } else if (logItems) {
        log!.info({ url: result.url, path: result.path, status: result.status, bytes: result.bytes, ms: result.ms }, `${result.status} ${result.path ?? result.url}`);
      }
      yield result;
    }
  } finally {
    // Also reached when the caller stops iterating early: abort what is still in flight.
    clearTimeout(graceTimer);
    drain.abort();
    ctx.abort();
    resolved.signal?.removeEventListener('abort', onAbort);
    resolved.stopSignal?.removeEventListener('abort', onStop);
    manifest?.close();
    await ctx.agent.destroy().catch(() => undefined);
    await workers?.destroy().catch(() => undefined);
  }
}

/** A planned item as the pool holds it: with its tries once the first has started. */
type Queued = { task: Task; tries?: Tries } | { result: ItemResult };

/**
 * How far the list is read ahead of the slots: items kept waiting (`buffer`), so that the other hosts'
 * items are at hand when one host is slow; and, while slots stay idle because hosts are paused or at
 * their cap or rate, up to `readAhead`. Sequential mode reads one at a time and keeps list order.
 */
function readAheadFor(options: ResolvedOptions): { buffer: number; readAhead: number } {
  if (options.mode === 'sequential') return { buffer: 1, readAhead: 1 };
  return { buffer: Math.max(256, 8 * options.concurrency), readAhead: Math.max(1024, 32 * options.concurrency) };
}
