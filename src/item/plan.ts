/**
 * Planning: one pass over an item, in list order, before it takes a pool
 * slot. It validates the URL, keeps only this shard's items, tells a URL
 * listed before or done by an earlier run, names the file (so that
 * collisions resolve the same way on every run) and, in the sharded layout,
 * tells a position already saved. What comes out is a task to fetch or a
 * record already decided.
 */
import { fingerprint, type Fingerprint } from '../names/fingerprints.js';
import type { ListItem } from '../input/source.js';
import { parseItemUrl, redactUrl } from '../input/text-list.js';
import { nameFromUrl, resolveInside, safeRelativePath, shardedPath, type NameRegistry } from '../names/naming.js';
import type { Shard } from '../options.js';
import { partPath, toManifestPath } from '../output/part-files.js';
import { removePart } from '../output/resume-record.js';
import type { ItemResult } from '../record/record.js';
import type { RunContext } from './context.js';
import { failed, skipped } from './records.js';

/** A listed item that passed validation and has a place to go. */
export interface Task {
  item: ListItem;
  url: URL;
  /** The URL as it may be shown: credentials redacted. */
  shownUrl: string;
  /** Where the file goes, relative to the output folder. */
  relPath: string;
  /** `relPath` resolved inside the output folder, once, when the item was planned. */
  finalPath: string;
  /** True when the name is not the server's to change: the list named the file, or the layout did. */
  named: boolean;
  /** True when the bytes do not change the name's extension either (the list named the file). */
  keepExtension: boolean;
  /** With `onExists: 'update'`, the ETag an earlier run recorded for the URL. */
  etag?: string | undefined;
  /** The item's 0-based position in the whole list (`item.index` when it knows it): a dataset's key. */
  position: number;
}

/** What the pool runs: a task to fetch, or an item already decided without a request. */
export type Planned = { task: Task } | { result: ItemResult };

/** Scratch fingerprints for planning, which runs one item at a time. */
const urlKey: Fingerprint = { hi: 0, lo: 0 };
const doneKey: Fingerprint = { hi: 0, lo: 0 };

/**
 * Plans one item, as {@link planItem} does, and then, in the sharded layout
 * with `onExists: 'skip'`, skips a position that already holds a file (see
 * {@link skipSaved}). With `tidy` (a real run, not a dry one) a part file
 * left beside such a file is removed. A promise only when there is something
 * to wait for: a folder still being listed, or a removal.
 */
export function plan(item: ListItem, ctx: RunContext, position: number, tidy: boolean): Planned | Promise<Planned> | undefined {
  // A sink that keeps rows by position (a tar shard) says which are this run's, and which an earlier run kept.
  const row = ctx.sink.rowAt ? ctx.sink.rowAt(item.index ?? position) : 'fetch';
  if (row === undefined) return undefined;
  if (row !== 'fetch') return { result: skipped(item, redactUrl(item.url), 'exists', row.kept) };
  const planned = planItem(item, ctx, position);
  if (ctx.etags !== undefined && planned !== undefined && 'task' in planned) planned.task.etag = ctx.etags.get(planned.task.shownUrl);
  const { layout, onExists, format } = ctx.options;
  // A dataset's shards tell what is kept already a shard at a time (rowAt above), not a file at a time.
  if (planned === undefined || !('task' in planned) || layout !== 'sharded' || onExists !== 'skip' || format === 'webdataset')
    return planned;
  return skipSaved(planned, ctx, tidy);
}

/**
 * Validates an item and decides its name; items that fail here never take a pool slot. `position` is
 * the item's place in the whole list, counted from 0 over every item (other shards' included), which
 * names files in the sharded layout; an item that knows its place (`index`, a slice of a longer
 * list) goes by that. Undefined for an item that belongs to another shard.
 */
export function planItem(item: ListItem, ctx: RunContext, position = item.line - 1): Planned | undefined {
  // A dataset's shards take whole tar shards by position instead (the sink's rowAt).
  const shard = ctx.options.format === 'webdataset' ? undefined : ctx.options.shard;
  let url: URL;
  try {
    url = parseItemUrl(item);
  } catch (error) {
    // An invalid line still belongs to one shard only, so exactly one of them reports it.
    if (shard && !inShard(fingerprint(item.url, urlKey), shard)) return undefined;
    return { result: failed(item, redactUrl(item.url), error, 0, null, 0) };
  }
  fingerprint(url.href, urlKey);
  if (shard && !inShard(urlKey, shard)) return undefined;
  const shownUrl = redactUrl(url);
  try {
    if (ctx.options.layout === 'sharded') return planSharded(item, url, shownUrl, item.index ?? position, ctx);
    return ctx.registry ? planFlat(item, url, shownUrl, ctx.registry, ctx, position) : planClaimed(item, url, shownUrl, ctx, position);
  } catch (error) {
    return { result: failed(item, shownUrl, error, 0, null, 0) };
  }
}

/** True when the URL with fingerprint `key` belongs to `shard`. */
function inShard(key: Fingerprint, shard: Shard): boolean {
  return key.lo % shard.count === shard.index;
}

/** Flat layout: named from the URL or the list; a URL planned before holds a name in its URL name's chain. */
function planFlat(item: ListItem, url: URL, shownUrl: string, registry: NameRegistry, ctx: RunContext, position: number): Planned {
  const href = url.href;
  // No table of URLs beside the names: a URL listed before without a NAME holds a name in this chain.
  const held = ctx.seen.has(urlKey) ? undefined : registry.find(nameFromUrl(url), href, urlKey);
  if (held === undefined || held.own) return { result: skipped(item, shownUrl, 'duplicate') };
  if (isDone(shownUrl, ctx)) {
    ctx.seen.add(urlKey);
    return { result: skipped(item, shownUrl, 'manifest') };
  }
  let relPath: string;
  if (item.name === undefined) relPath = registry.take(held);
  else {
    // Counted as listed before its NAME is checked, so a URL whose NAME is refused is still downloaded once.
    ctx.seen.add(urlKey);
    relPath = registry.claim(safeRelativePath(item.name, { source: item.source, line: item.line, url: shownUrl }), href);
  }
  return flatTask(item, url, shownUrl, relPath, ctx, item.index ?? position);
}

/**
 * Flat layout with names claimed from a registry kept elsewhere (the cluster's, shared by every
 * worker), which only answers claims: URLs planned before are told by their fingerprints.
 */
function planClaimed(item: ListItem, url: URL, shownUrl: string, ctx: RunContext, position: number): Planned {
  if (!ctx.seen.add(urlKey)) return { result: skipped(item, shownUrl, 'duplicate') };
  if (isDone(shownUrl, ctx)) return { result: skipped(item, shownUrl, 'manifest') };
  const relPath = ctx.names.claim(wantedPath(item, url, { source: item.source, line: item.line, url: shownUrl }), url.href);
  return flatTask(item, url, shownUrl, relPath, ctx, item.index ?? position);
}

/** The task of a flat-layout item named `relPath`, resolved now so a path outside the output folder is refused before any request. */
function flatTask(item: ListItem, url: URL, shownUrl: string, relPath: string, ctx: RunContext, position: number): Planned {
  const named = item.name !== undefined;
  const finalPath = resolveInside(ctx.options.out, relPath);
  return { task: { item, url, shownUrl, relPath, finalPath, named, keepExtension: named, position } };
}

/** Sharded layout: named by position, so no names are remembered; the bytes still choose the extension. */
function planSharded(item: ListItem, url: URL, shownUrl: string, position: number, ctx: RunContext): Planned {
  if (!ctx.seen.add(urlKey)) return { result: skipped(item, shownUrl, 'duplicate') };
  if (isDone(shownUrl, ctx)) return { result: skipped(item, shownUrl, 'manifest') };
  const { format, shardSize } = ctx.options;
  // A dataset's sample is named as the member of its tar shard it becomes.
  const relPath = format === 'webdataset' ? shardedPath(position, url, shardSize, '.tar') : shardedPath(position, url);
  const finalPath = resolveInside(ctx.options.out, relPath);
  return { task: { item, url, shownUrl, relPath, finalPath, named: true, keepExtension: false, position } };
}

function isDone(shownUrl: string, ctx: RunContext): boolean {
  return ctx.done !== undefined && ctx.done.has(fingerprint(shownUrl, doneKey));
}

/**
 * Sharded layout with `onExists: 'skip'`: a task whose position already
 * holds a file is skipped without a request, whatever extension the bytes
 * gave that file (its folder's listing tells).
 */
function skipSaved(planned: { task: Task }, ctx: RunContext, tidy: boolean): Planned | Promise<Planned> {
  const saved = ctx.parts.savedAsListed(planned.task.finalPath);
  if (saved === undefined) return planned;
  return skipSavedLater(planned, saved, ctx, tidy);
}

async function skipSavedLater(planned: { task: Task }, listed: string | null, ctx: RunContext, tidy: boolean): Promise<Planned> {
  const { task } = planned;
  const saved = listed ?? (await ctx.parts.savedAs(task.finalPath));
  if (saved === undefined) return planned;
  // Nothing will continue a part file beside a saved one.
  const part = partPath(task.finalPath);
  if (tidy && (await ctx.parts.take(part))) await removePart(part);
  return { result: skipped(task.item, task.shownUrl, 'exists', toManifestPath(saved, ctx.options.out)) };
}

/**
 * The name an item asks for before any registry has a say: the list's NAME,
 * made safe, or the URL's last segment. Throws UNSAFE_NAME for a NAME that
 * cannot be made safe.
 */
export function wantedPath(item: ListItem, url: URL, context: { source?: string; line?: number; url?: string } = {}): string {
  return item.name === undefined ? nameFromUrl(url) : safeRelativePath(item.name, context);
}
