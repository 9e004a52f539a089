/**
 * What one run shares between its items: the options, the agent, the names
 * claimed, what is already done, and the sink the bodies go to.
 */
import { setMaxListeners } from 'node:events';
import type { Dispatcher } from 'undici';
import type { ListItem } from '../input/source.js';
import type { DigestClaims } from '../names/dedupe.js';
import { FingerprintSet } from '../names/fingerprints.js';
import type { NameRegistry } from '../names/naming.js';
import type { ResolvedOptions } from '../options.js';
import { PartIndex } from '../output/folder-listing.js';
import type { Sink } from '../output/sink.js';
import { sinkFor } from '../output/sinks.js';
import { Bandwidth } from '../run/bandwidth.js';
import type { HostGate } from '../run/host-gate.js';
import type { NameClaims } from '../run/thread-shared.js';

/** State one run shares between its items. */
export interface RunContext {
  options: ResolvedOptions;
  agent: Dispatcher;
  /** Names claimed this run once a response names an item (in a worker thread, a proxy of the main thread's registry). */
  names: NameClaims;
  /**
   * The run's own names where items are planned (the main thread), in the flat layout; none in the
   * sharded layout, which needs none, nor when `names` is a registry kept elsewhere (the cluster's).
   */
  registry?: NameRegistry | undefined;
  /**
   * URLs already planned this run, to download each only once: with the run's own registry, only those
   * it cannot tell (listed with a NAME, done by the manifest, failed); otherwise every URL.
   */
  seen: FingerprintSet;
  /** Aborted when every item in flight must stop. */
  signal: AbortSignal;
  /** Aborts `signal`. */
  abort: (reason?: unknown) => void;
  /** Part files left by an earlier run, and the names each output folder already holds, for planning and the sink. */
  parts: PartIndex;
  /** Where bodies are kept, as the options choose (see output/sinks.ts); a caller may give another (a test's). */
  sink: Sink;
  /** Fingerprints of the URLs an earlier run's manifest records as done, when there was one. */
  done: FingerprintSet | undefined;
  /** The cap every body of the run draws from, with `limitRate`. */
  bandwidth: Bandwidth | undefined;
  /** With `onExists: 'update'`, the ETag an earlier run's manifest recorded for each URL (see plan.ts). */
  etags?: Map<string, string> | undefined;
  /** Content already saved this run, asked when `dedupe` is on. */
  digests?: DigestClaims | undefined;
  /** Who decides when a request to a host may start; one kept elsewhere (the cluster's, in Redis) replaces the run's own. */
  hosts?: HostGate | undefined;
  /**
   * What stops one item alone, for a caller that may take back items it handed the run (the cluster
   * takes back a batch whose lock its worker lost). Once an item's signal aborts, the item starts no
   * request, or stops the one in flight, and ends as a failed ABORTED record that the run does not
   * log (the caller reports it); the run goes on. Not seen by the threads of the workers mode. Unset,
   * only `signal` stops items.
   */
  itemSignal?: ((item: ListItem) => AbortSignal | undefined) | undefined;
}

/**
 * A run context with the state each thread keeps for itself (the sink's
 * folders and part files, the abort switch); what the whole run shares
 * across threads (names, digests, what is done) comes in `shared`.
 */
export function makeRunContext(
  options: ResolvedOptions,
  agent: Dispatcher,
  shared: Pick<RunContext, 'names' | 'registry' | 'done' | 'etags' | 'digests' | 'hosts' | 'itemSignal'> & { sink?: Sink | undefined },
): RunContext {
  const stop = new AbortController();
  // Every request in flight listens on this signal; their number is bounded by the pool, not by 10.
  setMaxListeners(0, stop.signal);
  const parts = new PartIndex(options.layout);
  return {
    options,
    agent,
    ...shared,
    seen: new FingerprintSet(),
    signal: stop.signal,
    abort: (reason) => stop.abort(reason),
    parts,
    sink: shared.sink ?? sinkFor(options, parts),
    bandwidth: options.limitRate === undefined ? undefined : new Bandwidth(options.limitRate),
  };
}

/** The sharded layout's names: unique by position, so a name the bytes call for is taken as it is. */
export const LAYOUT_NAMES: NameClaims = { claim: (relPath) => relPath };

/** An item signal joined with a run's signal, kept per item signal (a cluster batch's items share one). */
const joinedSignals = new WeakMap<AbortSignal, { run: AbortSignal; joined: AbortSignal }>();

/** What stops an item: the run's signal, joined with the item's own when the caller gives it one. */
export function itemStopSignal(item: ListItem, ctx: RunContext): AbortSignal {
  const own = ctx.itemSignal?.(item);
  if (own === undefined) return ctx.signal;
  const known = joinedSignals.get(own);
  if (known?.run === ctx.signal) return known.joined;
  const joined = AbortSignal.any([ctx.signal, own]);
  // As the run's signal: every request of the items under it listens.
  setMaxListeners(0, joined);
  joinedSignals.set(own, { run: ctx.signal, joined });
  return joined;
}
