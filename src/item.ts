/**
 * One item's path through the pipeline: task → response → file → record.
 *
 * {@link planItem} runs in list order (naming is decided there, so that
 * collisions resolve the same way on every run); {@link runTask} runs in the
 * pool and never rejects: every failure becomes a `failed` record.
 */
import type { Dispatcher } from 'undici';
import { ImgdlError, toErrorRecord } from './errors.js';
import { classifyNetworkError, fetchOne, header } from './fetch.js';
import { parseItemUrl, redactUrl, type ListItem } from './list.js';
import { filenameFromContentDisposition, nameFromUrl, resolveInside, safeRelativePath, type NameRegistry } from './naming.js';
import type { ResolvedOptions } from './options.js';
import type { ItemResult, SkipReason } from './record.js';
import { commitFile, exists, partPath, streamToFile, type FolderMaker } from './write.js';

/** A listed item that passed validation and has a place to go. */
export interface Task {
  item: ListItem;
  url: URL;
  /** The URL as it may be shown: credentials redacted. */
  shownUrl: string;
  /** Where the file goes, relative to the output folder. */
  relPath: string;
  /** True when the list named the file, so the server's name does not override it. */
  named: boolean;
}

/** What the pool runs: a task to fetch, or an item already decided without a request. */
export type Planned = { task: Task } | { result: ItemResult };

/** State one run shares between its items. */
export interface RunContext {
  options: ResolvedOptions;
  agent: Dispatcher;
  names: NameRegistry;
  folders: FolderMaker;
  /** URLs already planned this run, to download each only once. */
  seen: Set<string>;
  signal: AbortSignal;
}

/** Validates an item and decides its name; items that fail here never take a pool slot. */
export function planItem(item: ListItem, ctx: RunContext): Planned {
  let url: URL;
  try {
    url = parseItemUrl(item);
    const shownUrl = redactUrl(url);
    if (ctx.seen.has(url.href)) return { result: skipped(item, shownUrl, 'duplicate') };
    ctx.seen.add(url.href);
    const context = { source: item.source, line: item.line, url: shownUrl };
    const wanted = item.name === undefined ? nameFromUrl(url) : safeRelativePath(item.name, context);
    const relPath = ctx.names.claim(wanted, url.href);
    // Resolving now refuses a path outside the output folder before any request is made.
    resolveInside(ctx.options.out, relPath);
    return { task: { item, url, shownUrl, relPath, named: item.name !== undefined } };
  } catch (error) {
    return { result: failed(item, redactUrl(item.url), error, 0, null, 0) };
  }
}

/** Downloads one task to its file. Never rejects. */
export async function runTask(task: Task, ctx: RunContext): Promise<ItemResult> {
  const { options } = ctx;
  const started = performance.now();
  let httpStatus: number | null = null;
  let attempts = 0;
  let contentType: string | null = null;
  try {
    let finalPath = resolveInside(options.out, task.relPath);
    if (options.onExists === 'skip' && (await exists(finalPath))) return skipped(task.item, task.shownUrl, 'exists', task.relPath);

    attempts++;
    const response = await fetchOne(task.url, ctx.agent, options, ctx.signal);
    httpStatus = response.status;
    contentType = header(response.headers, 'content-type') ?? null;

    let relPath = task.relPath;
    if (!task.named) {
      const offered = filenameFromContentDisposition(header(response.headers, 'content-disposition'));
      if (offered !== undefined && offered !== relPath) {
        relPath = ctx.names.claim(offered, task.url.href);
        finalPath = resolveInside(options.out, relPath);
        if (options.onExists === 'skip' && (await exists(finalPath))) {
          response.body.destroy();
          return skipped(task.item, task.shownUrl, 'exists', relPath, attempts, httpStatus);
        }
      }
    }

    await ctx.folders.ensureFor(finalPath);
    const temp = partPath(finalPath);
    const bytes = await streamToFile(response.body, temp, (error) => classifyNetworkError(error, task.shownUrl));
    const written = await commitFile(temp, finalPath, options.onExists);
    return {
      url: task.shownUrl,
      source: task.item.source,
      line: task.item.line,
      status: 'ok',
      path: toManifestPath(written, options.out),
      bytes,
      ms: elapsed(started),
      httpStatus,
      attempts,
      contentType,
      skipReason: null,
      error: null,
    };
  } catch (error) {
    const status = error instanceof ImgdlError && error.status !== undefined ? error.status : httpStatus;
    return { ...failed(task.item, task.shownUrl, error, elapsed(started), status, attempts), contentType };
  }
}

function elapsed(since: number): number {
  return Math.round((performance.now() - since) * 10) / 10;
}

function toManifestPath(file: string, out: string): string {
  return file.slice(out.length + 1).split('\\').join('/');
}

function skipped(
  item: ListItem,
  url: string,
  reason: SkipReason,
  path: string | null = null,
  attempts = 0,
  httpStatus: number | null = null,
): ItemResult {
  return {
    url,
    source: item.source,
    line: item.line,
    status: 'skipped',
    path,
    bytes: 0,
    ms: 0,
    httpStatus,
    attempts,
    contentType: null,
    skipReason: reason,
    error: null,
  };
}

function failed(
  item: ListItem,
  url: string,
  error: unknown,
  ms: number,
  httpStatus: number | null,
  attempts: number,
): ItemResult {
  return {
    url,
    source: item.source,
    line: item.line,
    status: 'failed',
    path: null,
    bytes: 0,
    ms,
    httpStatus,
    attempts,
    contentType: null,
    skipReason: null,
    error: toErrorRecord(error),
  };
}
