/**
 * One item's path through the pipeline: task → response → file → record.
 *
 * {@link planItem} runs in list order (naming is decided there, so that
 * collisions resolve the same way on every run); {@link runTask} runs in the
 * pool and never rejects: every failure becomes a `failed` record.
 *
 * The hot path is {@link attempt}, one try as four named steps: `request`
 * (fetch.ts), `nameOffered`, `receive` (sniff.ts, inspect.ts and write.ts as
 * the bytes pass) and `keep`. {@link runTask} is the retry loop around it.
 */
import { setMaxListeners } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import type { NameClaims } from '../run/thread-shared.js';
import type { DigestClaims } from '../names/dedupe.js';
import { fileSystemError, ImgdlError, notAnImage, toErrorRecord } from '../errors.js';
import { header, type FetchedResponse } from '../http/body.js';
import { fetchOne } from '../http/redirects.js';
import { fingerprint, FingerprintSet, type Fingerprint } from '../names/fingerprints.js';
import { Inspector, type Inspection } from '../image/inspect.js';
import { parseItemUrl, redactUrl, type ListItem } from '../input/text-list.js';
import { PartIndex } from '../output/folder-listing.js';
import { filenameFromContentDisposition, nameFromUrl, resolveInside, safeRelativePath, shardedPath, splitExt, type NameRegistry } from '../names/naming.js';
import type { HostGate } from '../run/host-gate.js';
import type { ResolvedOptions, Shard } from '../options.js';
import type { ItemResult, SkipReason } from '../record/record.js';
import { nextTryIn, waitBeforeRetry } from './retry.js';
import { extensionFits, SNIFF_BYTES, sniffImage, type Sniffed } from '../image/sniff.js';
import {
  commitFile,
  EarlyPart,
  partKey,
  partMetaPath,
  partPath,
  readPartMeta,
  receiveBody,
  removePart,
  removeQuietly,
  writePartMeta,
  writeWhole,
  FolderMaker,
  openPartFile,
  type OpenPart,
  type PartMeta,
  type Received,
} from '../output/write.js';

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
}

/** What the pool runs: a task to fetch, or an item already decided without a request. */
export type Planned = { task: Task } | { result: ItemResult };

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
  folders: FolderMaker;
  /**
   * URLs already planned this run, to download each only once: with the run's own registry, only those
   * it cannot tell (listed with a NAME, done by the manifest, failed); otherwise every URL.
   */
  seen: FingerprintSet;
  /** Aborted when every item in flight must stop. */
  signal: AbortSignal;
  /** Aborts `signal`. */
  abort: (reason?: unknown) => void;
  /** Part files left by an earlier run, to resume, and the names each folder already holds. */
  parts: PartIndex;
  /** How part files are opened; a seam for tests that need a real write failure (e.g. ENOSPC from /dev/full). */
  openPart: OpenPart;
  /** Fingerprints of the URLs an earlier run's manifest records as done, when there was one. */
  done: FingerprintSet | undefined;
  /** Content already saved this run, asked when `dedupe` is on. */
  digests?: DigestClaims | undefined;
  /** Who decides when a request to a host may start; one kept elsewhere (the cluster's, in Redis) replaces the run's own. */
  hosts?: HostGate | undefined;
}

/**
 * A run context with the state each thread keeps for itself (folders made, part files, the abort
 * switch); what the whole run shares across threads (names, digests, what is done) comes in `shared`.
 */
export function makeRunContext(
  options: ResolvedOptions,
  agent: Dispatcher,
  shared: Pick<RunContext, 'names' | 'registry' | 'done' | 'digests' | 'hosts'>,
): RunContext {
  const stop = new AbortController();
  // Every request in flight listens on this signal; their number is bounded by the pool, not by 10.
  setMaxListeners(0, stop.signal);
  return {
    options,
    agent,
    ...shared,
    folders: new FolderMaker(),
    seen: new FingerprintSet(),
    signal: stop.signal,
    abort: (reason) => stop.abort(reason),
    parts: new PartIndex(options.layout),
    openPart: openPartFile,
  };
}

/** The sharded layout's names: unique by position, so a name the bytes call for is taken as it is. */
export const LAYOUT_NAMES: NameClaims = { claim: (relPath) => relPath };

/** Scratch fingerprints for planning, which runs one item at a time. */
const urlKey: Fingerprint = { hi: 0, lo: 0 };
const doneKey: Fingerprint = { hi: 0, lo: 0 };

/**
 * Validates an item and decides its name; items that fail here never take a pool slot. `position` is
 * the item's place in the whole list, counted from 0 over every item (other shards' included), which
 * names files in the sharded layout; an item that knows its place (`index`, a slice of a longer
 * list) goes by that. Undefined for an item that belongs to another shard.
 */
export function planItem(item: ListItem, ctx: RunContext, position = item.line - 1): Planned | undefined {
  const { shard } = ctx.options;
  let url: URL;
  try {
    url = parseItemUrl(item);
  } catch (error) {
    // An invalid line still belongs to one shard only, so exactly one of them reports it.
    if (shard && !inShard(fingerprint(item.url, urlKey), shard)) return undefined;
    return { result: failed(item, redactUrl(item.url), error, 0, null, 0) };
  }
  const href = url.href;
  fingerprint(href, urlKey);
  if (shard && !inShard(urlKey, shard)) return undefined;
  const shownUrl = redactUrl(url);
  try {
    if (ctx.options.layout === 'sharded') return planSharded(item, url, shownUrl, item.index ?? position, ctx);
    return ctx.registry ? planFlat(item, url, shownUrl, ctx.registry, ctx) : planClaimed(item, url, shownUrl, ctx);
  } catch (error) {
    return { result: failed(item, shownUrl, error, 0, null, 0) };
  }
}

/** True when the URL with fingerprint `key` belongs to `shard`. */
function inShard(key: Fingerprint, shard: Shard): boolean {
  return key.lo % shard.count === shard.index;
}

/** Flat layout: named from the URL or the list; a URL planned before holds a name in its URL name's chain. */
function planFlat(item: ListItem, url: URL, shownUrl: string, registry: NameRegistry, ctx: RunContext): Planned {
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
  return flatTask(item, url, shownUrl, relPath, ctx);
}

/**
 * Flat layout with names claimed from a registry kept elsewhere (the cluster's, shared by every
 * worker), which only answers claims: URLs planned before are told by their fingerprints.
 */
function planClaimed(item: ListItem, url: URL, shownUrl: string, ctx: RunContext): Planned {
  if (!ctx.seen.add(urlKey)) return { result: skipped(item, shownUrl, 'duplicate') };
  if (isDone(shownUrl, ctx)) return { result: skipped(item, shownUrl, 'manifest') };
  const relPath = ctx.names.claim(wantedPath(item, url, { source: item.source, line: item.line, url: shownUrl }), url.href);
  return flatTask(item, url, shownUrl, relPath, ctx);
}

/** The task of a flat-layout item named `relPath`, resolved now so a path outside the output folder is refused before any request. */
function flatTask(item: ListItem, url: URL, shownUrl: string, relPath: string, ctx: RunContext): Planned {
  const named = item.name !== undefined;
  return { task: { item, url, shownUrl, relPath, finalPath: resolveInside(ctx.options.out, relPath), named, keepExtension: named } };
}

/** Sharded layout: named by position, so no names are remembered; the bytes still choose the extension. */
function planSharded(item: ListItem, url: URL, shownUrl: string, position: number, ctx: RunContext): Planned {
  if (!ctx.seen.add(urlKey)) return { result: skipped(item, shownUrl, 'duplicate') };
  if (isDone(shownUrl, ctx)) return { result: skipped(item, shownUrl, 'manifest') };
  const relPath = shardedPath(position, url);
  return { task: { item, url, shownUrl, relPath, finalPath: resolveInside(ctx.options.out, relPath), named: true, keepExtension: false } };
}

/**
 * In the sharded layout with `onExists: 'skip'`, an item whose position already holds a file is
 * skipped without a request, whatever extension the bytes gave that file (its folder's listing
 * tells). Other items are returned as they were. With `tidy` (a real run, not a dry one), a part
 * file left beside the saved one is removed, as a run does in the flat layout: nothing will continue it.
 * A promise only when there is something to wait for: a folder still being listed, or a removal.
 */
export function skipSaved(planned: Planned, ctx: RunContext, tidy: boolean): Planned | Promise<Planned> {
  if (!('task' in planned) || ctx.options.layout !== 'sharded' || ctx.options.onExists !== 'skip') return planned;
  const saved = ctx.parts.savedAsListed(planned.task.finalPath);
  if (saved === undefined) return planned;
  return skipSavedLater(planned.task, saved, ctx, tidy);
}

async function skipSavedLater(task: Task, listed: string | null, ctx: RunContext, tidy: boolean): Promise<Planned> {
  const saved = listed ?? (await ctx.parts.savedAs(task.finalPath));
  if (saved === undefined) return { task };
  const part = partPath(task.finalPath);
  if (tidy && (await ctx.parts.take(part))) await removePart(part);
  return { result: skipped(task.item, task.shownUrl, 'exists', toManifestPath(saved, ctx.options.out)) };
}

function isDone(shownUrl: string, ctx: RunContext): boolean {
  return ctx.done !== undefined && ctx.done.has(fingerprint(shownUrl, doneKey));
}

/**
 * The name an item asks for before any registry has a say: the list's NAME,
 * made safe, or the URL's last segment. Throws UNSAFE_NAME for a NAME that
 * cannot be made safe.
 */
export function wantedPath(item: ListItem, url: URL, context: { source?: string; line?: number; url?: string } = {}): string {
  return item.name === undefined ? nameFromUrl(url) : safeRelativePath(item.name, context);
}

/** A name the response called for, claimed through the registry's later path when it has one. */
function claimLate(ctx: RunContext, relPath: string, url: string): string | Promise<string> {
  return ctx.names.claimLater ? ctx.names.claimLater(relPath, url) : ctx.names.claim(relPath, url);
}

/**
 * What an item's tries have learnt so far, kept from one try to the next;
 * its record is made from it. Made by {@link startTries}.
 */
export interface Tries {
  /** Requests made so far (a resume that has to start over makes two in one try). */
  count: number;
  httpStatus: number | null;
  contentType: string | null;
  /** When the item started, from `performance.now()`. */
  started: number;
}

/** The state of an item before its first try. */
export function startTries(): Tries {
  return { count: 0, httpStatus: null, contentType: null, started: performance.now() };
}

/** The wait before a task's next try: the answer of {@link tryTask} when a retryable failure has tries left. */
export interface Retry {
  retryInMs: number;
  /** What failed this try. */
  error: unknown;
}

/**
 * Downloads one task to its file, retrying what is worth retrying (see
 * retry.ts): {@link tryTask} in a loop, waiting in between. Never rejects:
 * every failure becomes a `failed` record. The scheduler runs the same tries
 * itself, so that a task waiting for its next one holds no slot.
 */
export async function runTask(task: Task, ctx: RunContext): Promise<ItemResult> {
  const tries = startTries();
  for (;;) {
    const outcome = await tryTask(task, ctx, tries);
    if (!('retryInMs' in outcome)) return outcome;
    try {
      await waitBeforeRetry(outcome.retryInMs, ctx.signal, task.shownUrl);
    } catch (error) {
      return failedTry(task, tries, error);
    }
  }
}

/**
 * One try of a task: its record, or, after a failure another try may mend
 * (see retry.ts), the wait before that try. The first try skips a file
 * already saved. Never rejects.
 */
export async function tryTask(task: Task, ctx: RunContext, tries: Tries): Promise<ItemResult | Retry> {
  try {
    if (tries.count === 0 && ctx.options.onExists === 'skip' && (await ctx.parts.exists(task.finalPath))) {
      // A part file beside a finished one is left from an older download: nothing will continue it.
      const part = partPath(task.finalPath);
      if (await ctx.parts.take(part)) await removePart(part);
      return skipped(task.item, task.shownUrl, 'exists', task.relPath);
    }
    return await attempt(task, ctx, tries);
  } catch (error) {
    try {
      const wait = ctx.signal.aborted ? undefined : nextTryIn(error, tries.count, ctx.options);
      if (wait === undefined) return failedTry(task, tries, error);
      ctx.options.logger?.debug({ url: task.shownUrl, attempt: tries.count, waitMs: wait, error: toErrorRecord(error) }, `retrying ${task.shownUrl} in ${wait} ms`);
      return { retryInMs: wait, error };
    } catch (tooLong) {
      // The server asked for a longer wait than allowed.
      return failedTry(task, tries, tooLong);
    }
  }
}

/** The failed record of a task whose tries ended with `error`. */
export function failedTry(task: Task, tries: Tries, error: unknown): ItemResult {
  const status = error instanceof ImgdlError && error.status !== undefined ? error.status : tries.httpStatus;
  return { ...failed(task.item, task.shownUrl, error, elapsed(tries.started), status, tries.count), contentType: tries.contentType };
}

/**
 * One try, from request to record: request the file (resuming a part file
 * from an earlier run on the first try), take a name the response may
 * offer, receive and judge the body, then keep it under its final name.
 * Resolves with the item's record (ok, or skipped); rejects with a
 * classified ImgdlError, which says whether another try may help
 * (`isRetryable`) and, for 429/503, the wait the server asked for. Retries
 * start clean: only the first try resumes.
 */
async function attempt(task: Task, ctx: RunContext, tries: Tries): Promise<ItemResult> {
  const resume = tries.count === 0 ? await findResumable(task, ctx) : undefined;
  // Creating the part file is the slowest file call; made while the request is in flight, it costs the item no
  // time. Only for a fresh start in a folder already made, so that a failure leaves no folder behind.
  const early = resume === undefined && ctx.folders.has(task.finalPath) ? new EarlyPart(partPath(task.finalPath), ctx.openPart) : undefined;
  try {
    const answer = await request(task, ctx, tries, resume);
    const named = await nameOffered(task, ctx, tries, answer.response);
    if (typeof named !== 'string') return named;
    const body = await receive(task, ctx, tries, answer, named, early);
    if ('status' in body) return body;
    return await keep(task, ctx, tries, body, early);
  } finally {
    // Closed and removed unless the write path took it.
    await early?.abandon();
  }
}

/** A part file from an earlier run that may be continued. */
interface Resumable {
  part: string;
  size: number;
  head: Buffer;
  meta: PartMeta;
  validator: string;
}

/** The part file an earlier run left for this task, when it can be continued (see {@link resumable}). */
async function findResumable(task: Task, ctx: RunContext): Promise<Resumable | undefined> {
  const part = partPath(task.finalPath);
  if (!(await ctx.parts.take(part))) return undefined;
  return resumable(part, partKey(task.url.href), ctx);
}

/**
 * The part file left by an earlier run, when its resume record belongs to
 * this URL, carries a validator and fits the file; otherwise the part file is
 * removed, to start over, and the log says why (at -v).
 */
async function resumable(part: string, key: string, ctx: RunContext): Promise<Resumable | undefined> {
  const found = await resumeState(part, key);
  const name = path.basename(part);
  if (typeof found === 'string') {
    ctx.options.logger?.info({ part }, `starting ${name} over: ${found}`);
    await removePart(part);
    return undefined;
  }
  ctx.options.logger?.info({ part, from: found.size }, `resuming ${name} from byte ${found.size}`);
  return { ...found, part };
}

/** The part file's state when it can be continued, else why not. */
async function resumeState(part: string, key: string): Promise<Omit<Resumable, 'part'> | string> {
  const meta = await readPartMeta(part);
  if (meta === 'missing') return 'there is no resume record beside it (the server gave no ETag or Last-Modified)';
  if (meta === 'unreadable') return 'its resume record is unreadable';
  if (meta.key !== key) return 'its resume record is for another URL';
  const validator = meta.etag ?? meta.lastModified;
  if (validator === undefined) return 'its resume record has no validator';
  try {
    const handle = await fs.open(part, 'r');
    try {
      const { size } = await handle.stat();
      if (size === 0) return 'it is empty';
      if (meta.total !== undefined && size >= meta.total) return `it holds ${size} bytes of a ${meta.total}-byte file`;
      const head = Buffer.alloc(Math.min(size, SNIFF_BYTES));
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      return { size, head: head.subarray(0, bytesRead), meta, validator };
    } finally {
      await handle.close();
    }
  } catch (error) {
    return `it cannot be read (${(error as { code?: string }).code ?? String(error)})`;
  }
}

/** A 2xx response, and the part file it continues when it is a 206 that continues one. */
interface Answer {
  response: FetchedResponse;
  resume: Resumable | undefined;
  /** The whole file's size by Content-Length (a resumed part's bytes included), when the server gave one. */
  expectedTotal: number | undefined;
}

/**
 * Requests the task's URL: with Range and If-Range when resuming, and again
 * without them when the answer does not continue the part file (which is
 * then removed). Counts the requests, and notes the status and type.
 */
async function request(task: Task, ctx: RunContext, tries: Tries, resume: Resumable | undefined): Promise<Answer> {
  const { options } = ctx;
  tries.count++;
  const ranged = resume ? { range: `bytes=${resume.size}-`, 'if-range': resume.validator } : undefined;
  let response = await fetchOne(task.url, ctx.agent, options, ctx.signal, ranged);
  let continued = resume;
  if (resume && !(response.status === 206 && rangeContinues(response, resume))) {
    // A 200 is the whole file (the validator changed, or ranges are not served): write it from the start.
    continued = undefined;
    await removePart(resume.part);
    if (response.status === 206) {
      response.body.abort();
      tries.count++;
      response = await fetchOne(task.url, ctx.agent, options, ctx.signal);
    }
  }
  tries.httpStatus = response.status;
  tries.contentType = header(response.headers, 'content-type') ?? null;
  const length = contentLength(response);
  const expected = length === undefined ? undefined : (continued?.size ?? 0) + length;
  if (options.maxSize !== undefined && expected !== undefined && expected > options.maxSize) {
    response.body.abort();
    throw new ImgdlError('TOO_LARGE', `Content-Length ${expected} is over the ${options.maxSize} bytes allowed (--max-size)`, {
      url: task.shownUrl,
      status: response.status,
    });
  }
  return { response, resume: continued, expectedTotal: expected };
}

/**
 * The file's name once the response is known: the server's Content-Disposition
 * name unless the list named the file. Returns a skipped record instead when
 * that name already holds a file that `--on-exists skip` keeps.
 */
async function nameOffered(task: Task, ctx: RunContext, tries: Tries, response: FetchedResponse): Promise<string | ItemResult> {
  if (task.named) return task.relPath;
  const offered = filenameFromContentDisposition(header(response.headers, 'content-disposition'));
  if (offered === undefined || offered === task.relPath) return task.relPath;
  const relPath = await claimLate(ctx, offered, task.url.href);
  if (ctx.options.onExists === 'skip' && (await ctx.parts.exists(resolveInside(ctx.options.out, relPath)))) {
    response.body.abort();
    return skipped(task.item, task.shownUrl, 'exists', relPath, tries.count, tries.httpStatus);
  }
  return relPath;
}

/** A body received whole and judged: what {@link keep} needs to give it its final name. */
interface Body {
  /** The file's name in the output folder: the bytes may have changed its extension. */
  relPath: string;
  part: string;
  received: Received;
  sniffed: Sniffed | undefined;
  facts: Inspection;
}

/**
 * Receives the body into memory or the part file, judging its first bytes
 * before anything is kept (the sniffed type may change the name's
 * extension), and hashing and probing the bytes as they pass. Returns a
 * skipped record instead when the sniffed name holds a file that
 * `--on-exists skip` keeps.
 */
async function receive(task: Task, ctx: RunContext, tries: Tries, answer: Answer, named: string, early: EarlyPart | undefined): Promise<Body | ItemResult> {
  const { options } = ctx;
  const { response, resume, expectedTotal } = answer;
  const part = partPath(task.finalPath);
  let relPath = named;
  let sniffed: Sniffed | undefined;
  /** Set when the name the bytes call for already holds a file that `skip` keeps. */
  let existing = false;
  const validator = strongValidator(response);
  await ctx.folders.ensureFor(part);
  // Hashing and probing happen as the bytes pass, so the file is never read back; a resumed
  // part file's earlier bytes are read once first, since the digest covers the whole file.
  const inspector = new Inspector(options.hash);
  if (resume) await inspector.absorbFile(part, resume.size);
  /** The bytes decide the extension, unless the list named the file; the new name is claimed before the rest of the body. */
  const rename = (found: Sniffed): void | Promise<void> => {
    sniffed = found;
    if (task.keepExtension) return;
    const { stem, ext } = splitExt(relPath);
    if (extensionFits(ext, found)) return;
    const claimed = claimLate(ctx, stem + found.ext, task.url.href);
    return typeof claimed === 'string' ? renamed(claimed) : claimed.then(renamed);
  };
  const renamed = (name: string): void | Promise<void> => {
    relPath = name;
    if (options.onExists !== 'skip') return;
    // Known now, before the rest of the body: a rerun reads no more than the head.
    return ctx.parts.exists(resolveInside(options.out, relPath)).then((there) => {
      if (!there) return;
      existing = true;
      throw new ImgdlError('ABORTED', 'file exists', { url: task.shownUrl });
    });
  };
  /** Set once the resume record is on disk beside the part file (a resumed part has one already). */
  let recorded = resume !== undefined;
  let received: Received;
  try {
    received = await receiveBody(response.body, part, {
      start: resume?.size ?? 0,
      existingHead: resume?.head,
      expectedTotal,
      maxSize: options.maxSize,
      headBytes: SNIFF_BYTES,
      inspectHead: options.anyType
        ? undefined
        : (head: Buffer) => {
            const judged = (found: Sniffed | undefined): void | Promise<void> => {
              if (found === undefined) throw notAnImage(head, tries.contentType, task.shownUrl);
              return rename(found);
            };
            const found = sniffImage(head);
            return found instanceof Promise ? found.then(judged) : judged(found);
          },
      // Recorded before the first byte reaches the part file, so a crash leaves a part file a rerun can continue.
      beforeFirstWrite:
        validator === undefined || recorded
          ? undefined
          : async () => {
              await writePartMeta(part, { key: partKey(task.url.href), ...validator.meta, total: expectedTotal });
              recorded = true;
            },
      keepOnAbort: recorded || validator !== undefined,
      url: task.shownUrl,
      openPart: ctx.openPart,
      early,
      through: inspector,
    });
  } catch (error) {
    if (existing) return skipped(task.item, task.shownUrl, 'exists', relPath, tries.count, tries.httpStatus);
    // The write path kept the part file (and its record) only for an abort with bytes worth continuing.
    throw error;
  }
  // Gone before the rename: a record with no part file beside it would never be cleaned up.
  if (recorded) await removeQuietly(partMetaPath(part));
  return { relPath, part, received, sniffed, facts: inspector.result() };
}

/**
 * Gives a received body its final name: written to the part file first
 * when it was held in memory (the file opened early when it could be), then
 * renamed. With `dedupe`, content already
 * saved this run is not saved again.
 */
async function keep(task: Task, ctx: RunContext, tries: Tries, body: Body, early: EarlyPart | undefined): Promise<ItemResult> {
  const { options } = ctx;
  const { part, received, facts } = body;
  const finalPath = body.relPath === task.relPath ? task.finalPath : resolveInside(options.out, body.relPath);
  const digests = options.dedupe && facts.digest !== undefined ? ctx.digests : undefined;
  if (digests !== undefined) {
    const owner = await digests.claim(facts.digest!, body.relPath);
    if (owner !== undefined) {
      if (received.held === undefined) await removeQuietly(part);
      return {
        ...skipped(task.item, task.shownUrl, 'same-content', null, tries.count, tries.httpStatus),
        contentType: tries.contentType,
        sniffedType: body.sniffed?.mime ?? null,
        ...factFields(facts),
        duplicateOf: owner,
      };
    }
  }
  let written: string;
  try {
    if (received.held !== undefined) {
      const fd = await (early?.take() ?? ctx.openPart(part, 'w')).catch((error: unknown) => {
        throw fileSystemError(error, 'writing', part, task.shownUrl);
      });
      writeWhole(fd, part, received.held, task.shownUrl);
    }
    written = await commitFile(part, finalPath, options.onExists);
  } catch (error) {
    digests?.settle(facts.digest!, null);
    throw error;
  }
  // With --on-exists rename the file may have landed under another name than the one claimed.
  if (digests !== undefined && written !== finalPath) digests.settle(facts.digest!, toManifestPath(written, options.out));
  return {
    url: task.shownUrl,
    source: task.item.source,
    line: task.item.line,
    status: 'ok',
    path: toManifestPath(written, options.out),
    bytes: received.bytes,
    ms: elapsed(tries.started),
    httpStatus: tries.httpStatus,
    attempts: tries.count,
    contentType: tries.contentType,
    sniffedType: body.sniffed?.mime ?? null,
    skipReason: null,
    error: null,
    ...factFields(facts),
  };
}

/** True when a 206 continues exactly where the part file ends, for the same file. */
function rangeContinues(response: FetchedResponse, resume: Resumable): boolean {
  const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(response.headers, 'content-range')?.trim() ?? '');
  if (!range || Number(range[1]) !== resume.size) return false;
  const etag = header(response.headers, 'etag');
  const lastModified = header(response.headers, 'last-modified');
  if (resume.meta.etag !== undefined && etag !== undefined) return etag === resume.meta.etag;
  if (resume.meta.lastModified !== undefined && lastModified !== undefined) return lastModified === resume.meta.lastModified;
  // A 206 to an If-Range request already says the validator matched.
  return true;
}

/** The response's validator usable in If-Range: a strong ETag, else Last-Modified. */
function strongValidator(response: FetchedResponse): { meta: Omit<PartMeta, 'key'> } | undefined {
  const etag = header(response.headers, 'etag');
  const lastModified = header(response.headers, 'last-modified');
  if (etag !== undefined && !etag.startsWith('W/')) return { meta: { etag } };
  if (lastModified !== undefined) return { meta: { lastModified } };
  return undefined;
}

/** Content-Length as a number, undefined when absent or malformed (undici then reads to the end). */
function contentLength(response: FetchedResponse): number | undefined {
  const value = header(response.headers, 'content-length');
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** A failed record for a task that could not run (a dead worker thread, an abort). */
export function taskFailure(task: Task, error: unknown): ItemResult {
  return failed(task.item, task.shownUrl, error, 0, null, 0);
}

/** The inspection as record fields, leaving out what is unknown. */
function factFields(facts: Inspection): Pick<ItemResult, 'digest' | 'imageType' | 'width' | 'height'> {
  const fields: Pick<ItemResult, 'digest' | 'imageType' | 'width' | 'height'> = {};
  if (facts.digest !== undefined) fields.digest = facts.digest;
  if (facts.image) {
    fields.imageType = facts.image.imageType;
    fields.width = facts.image.width;
    fields.height = facts.image.height;
  }
  return fields;
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
    sniffedType: null,
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
    sniffedType: null,
    skipReason: null,
    error: toErrorRecord(error),
  };
}
