/**
 * One item's life, one try at a time. {@link tryTask} makes an
 * {@link Attempt}, which holds what the try needs (the task, the run's
 * context, what earlier tries learnt, the sink entry, the resume) and runs
 * its steps top-down: prepare → request → name → receive → keep. State flows
 * down through the attempt's fields; the result comes back once, as a
 * record, or as the wait before the next try. The run's pool schedules the
 * tries in every mode (run/download.ts; in `workers` mode run/thread.ts runs
 * each try on a worker thread), so a task waiting for its next holds no slot.
 */
import { aborted, HttpStatusError, ImgdlError, notAnImage, toErrorRecord } from '../errors.js';
import { contentLength, header, strongValidator, type FetchedResponse } from '../http/body.js';
import { fetchOne } from '../http/redirects.js';
import { extensionFits, sniffImage, type Sniffed } from '../image/sniff.js';
import { splitExt } from '../names/ext.js';
import { filenameFromContentDisposition } from '../names/naming.js';
import type { BodyStart, Resume, SinkEntry } from '../output/sink.js';
import type { ItemResult, SkipReason } from '../record/record.js';
import { itemStopSignal, type RunContext } from './context.js';
import type { Task } from './plan.js';
import { Receiver, type HeadJudge } from './receive.js';
import { carried, elapsed, factFields, failed, keepFacts, now, skipped } from './records.js';
import { nextTryIn, RETRY_AFTER_STATUSES } from './retry.js';
import { encodedAs, holding, keptBody, optsOut } from './transform.js';

/** What an item's tries have learnt so far, handed from one try to the next; plain data, so it crosses threads. */
export interface Tries {
  /** Requests made so far (a resume that has to start over makes two in one try). */
  count: number;
  httpStatus: number | null;
  contentType: string | null;
  /** When the item's first try started, from {@link now}: the same clock in every thread. */
  started: number;
}

/** The state of an item before its first try. */
export function startTries(): Tries {
  return { count: 0, httpStatus: null, contentType: null, started: now() };
}

/** The answer of {@link tryTask} when a retryable failure has tries left; plain data, so it crosses threads. */
export interface Retry {
  /** The wait before the next try. */
  retryInMs: number;
  /** What the tries have learnt, this one included. */
  tries: Tries;
  /** The status (429 or 503) when the server asked, with Retry-After, that its whole host wait that long. */
  hostWait: number | undefined;
  /** The HTTP status that ended this try, when a response ended it. */
  status: number | undefined;
}

/**
 * One try of a task: its record, or, after a failure another try may mend
 * (see retry.ts), the wait before that try. The first try skips a file
 * already kept and continues what an earlier run left. Never rejects.
 * `received` is called once the body is received and judged, when only
 * keeping it is left: the try's slot may then serve another request.
 */
export function tryTask(task: Task, ctx: RunContext, tries: Tries, received?: () => void): Promise<ItemResult | Retry> {
  return new Attempt(task, ctx, tries, received).run();
}

/** The failed record of a task whose tries ended with `error`. */
export function failedTry(task: Task, tries: Tries, error: unknown): ItemResult {
  const status = error instanceof ImgdlError && error.status !== undefined ? error.status : tries.httpStatus;
  return { ...failed(task.item, task.shownUrl, error, elapsed(tries.started), status, tries.count), contentType: tries.contentType };
}

/** A failed record for a task that could not run (a dead worker thread, an abort). */
export function taskFailure(task: Task, error: unknown): ItemResult {
  return failed(task.item, task.shownUrl, error, 0, null, 0);
}

/** ABORTED for a task stopped while it waited for its next try. */
export function stoppedWaiting(task: Task, tries: Tries): ItemResult {
  return failedTry(task, tries, aborted(task.shownUrl, 'stopped while waiting to retry'));
}

/** The response a try is answered with, and what it says about the body to come. */
interface Answer extends BodyStart {
  response: FetchedResponse;
}

/** One try of one task; see the module's comment. */
class Attempt implements HeadJudge {
  readonly task: Task;
  readonly ctx: RunContext;
  readonly #first: boolean;
  readonly #started: number;
  /** Requests made so far, this try's included. */
  #requests: number;
  #httpStatus: number | null;
  #contentType: string | null;
  /** The file's name in the output: the planned one until the response or the bytes rename it. */
  #relPath: string;
  #sniffed: Sniffed | undefined;
  /** The validators the answer carried, recorded for a later `--on-exists update`. */
  #etag: string | undefined;
  #lastModified: string | undefined;
  /** The run's signal, or the item's own joined to it (see RunContext.itemSignal). */
  readonly #signal: AbortSignal;
  readonly #received: (() => void) | undefined;

  constructor(task: Task, ctx: RunContext, tries: Tries, received: (() => void) | undefined) {
    this.task = task;
    this.ctx = ctx;
    this.#signal = itemStopSignal(task.item, ctx);
    this.#first = tries.count === 0;
    this.#started = tries.started;
    this.#requests = tries.count;
    this.#httpStatus = tries.httpStatus;
    this.#contentType = tries.contentType;
    this.#relPath = task.relPath;
    this.#received = received;
  }

  async run(): Promise<ItemResult | Retry> {
    // Stopped, or taken back by its caller, before this try: it does not start, not even to look at the disk.
    if (this.#signal.aborted) return this.#failedTry(aborted(this.task.shownUrl, 'stopped before it started', this.#signal.reason));
    try {
      return await this.#steps();
    } catch (error) {
      return this.#failedTry(error);
    }
  }

  /**
   * The steps of a try. Resolves with the item's record (ok, or skipped);
   * rejects with a classified ImgdlError, which says whether another try may
   * help and, for 429/503, the wait the server asked for. Retries start
   * clean: only the first try resumes.
   */
  async #steps(): Promise<ItemResult> {
    const { task, ctx } = this;
    const { sink } = ctx;
    if (this.#first && ctx.options.onExists === 'skip' && (await sink.has(task)))
      return skipped(task.item, task.shownUrl, 'exists', task.relPath);
    // An update asks whether the kept file changed; it has nothing to resume then.
    const conditions = this.#first && ctx.options.onExists === 'update' ? await this.#conditions() : undefined;
    const resume = this.#first && conditions === undefined && !ctx.options.imageWork ? await sink.resumable(task) : undefined;
    // Opened now, so that whatever the sink does to get ready overlaps the request; held (and not resumed) when images are worked on.
    const entry = holding(sink.open(task, resume), ctx.options);
    // Bytes a later run can continue are kept when the run stops, or when the item turns out to be kept already.
    let keepResumable = true;
    try {
      const answer = await this.#request(resume, conditions);
      if (optsOut(answer.response, ctx.options)) return this.#skipped('opted-out', null);
      if (!(await this.#nameOffered(answer.response))) return this.#exists();
      const receiver = await this.#receive(answer, entry);
      if (receiver === undefined) return this.#exists();
      keepResumable = false;
      return await this.#keep(receiver, entry);
    } catch (error) {
      if (conditions !== undefined && error instanceof HttpStatusError && error.status === 304) return this.#notModified();
      keepResumable = (error as { code?: unknown } | null)?.code === 'ABORTED';
      throw error;
    } finally {
      await entry.abort(keepResumable);
    }
  }

  /**
   * Requests the task's URL: with Range and If-Range when resuming, and again
   * without them when the answer does not continue the kept bytes (which are
   * then dropped). Counts the requests, and notes the status and type.
   */
  async #request(resume: Resume | undefined, conditions: Record<string, string> | undefined): Promise<Answer> {
    const { task, ctx } = this;
    const { options } = ctx;
    this.#requests++;
    const ranged = resume ? { range: `bytes=${resume.size}-`, 'if-range': resume.validator } : conditions;
    let response = await fetchOne(task.url, ctx.agent, options, this.#signal, ranged);
    let continued = resume;
    if (resume && !(response.status === 206 && rangeContinues(response, resume))) {
      // A 200 is the whole file (the validator changed, or ranges are not served): write it from the start.
      continued = undefined;
      await resume.discard();
      if (response.status === 206) {
        response.body.abort();
        this.#requests++;
        response = await fetchOne(task.url, ctx.agent, options, this.#signal);
      }
    }
    this.#httpStatus = response.status;
    this.#contentType = header(response.headers, 'content-type') ?? null;
    const length = contentLength(response);
    const expectedTotal = length === undefined ? undefined : (continued?.size ?? 0) + length;
    if (options.maxSize !== undefined && expectedTotal !== undefined && expectedTotal > options.maxSize) {
      response.body.abort();
      throw new ImgdlError('TOO_LARGE', `Content-Length ${expectedTotal} is over the ${options.maxSize} bytes allowed (--max-size)`, {
        url: task.shownUrl,
        status: response.status,
      });
    }
    this.#etag = header(response.headers, 'etag');
    const lastModified = (this.#lastModified = header(response.headers, 'last-modified'));
    return { response, resume: continued, validator: strongValidator(response), expectedTotal, lastModified };
  }

  /**
   * Takes the server's Content-Disposition name unless the list named the
   * file. False when that name already holds a file that `--on-exists skip` keeps.
   */
  async #nameOffered(response: FetchedResponse): Promise<boolean> {
    const { task, ctx } = this;
    if (task.named) return true;
    const offered = filenameFromContentDisposition(header(response.headers, 'content-disposition'));
    if (offered === undefined || offered === task.relPath) return true;
    this.#relPath = await this.#claimLate(offered);
    if (ctx.options.onExists === 'skip' && (await ctx.sink.has(task, this.#relPath))) {
      response.body.abort();
      return false;
    }
    return true;
  }

  /**
   * Receives the body into the sink entry, its first bytes judged before
   * anything is kept ({@link judgeHead}), hashed and probed as the bytes
   * pass. Undefined when the name the bytes call for is kept already.
   */
  async #receive(answer: Answer, entry: SinkEntry): Promise<Receiver | undefined> {
    const { options } = this.ctx;
    const { resume } = answer;
    const judge = options.anyType && !options.imageWork?.encode ? undefined : this;
    const limits = {
      url: this.task.shownUrl,
      maxSize: options.maxSize,
      expectedTotal: answer.expectedTotal,
      existingHead: resume?.head,
      start: resume?.size ?? 0,
      speedLimit: options.speedLimit,
      speedTimeMs: options.speedTime * 1000,
      bandwidth: this.ctx.bandwidth,
    };
    const receiver = new Receiver(answer.response.body, entry, judge, limits, options.hash);
    await entry.begin(answer, receiver);
    // The digest covers the whole file: the bytes kept before are shown first.
    if (resume) await resume.replay(receiver.inspector);
    return (await receiver.receive()) ? receiver : undefined;
  }

  /**
   * The body's first bytes: refused unless they are an image; otherwise they
   * decide the extension (unless the list named the file), and the new name
   * is claimed before the rest of the body. False when that name already
   * holds a file that `--on-exists skip` keeps.
   */
  judgeHead(head: Buffer): boolean | Promise<boolean> {
    const found = sniffImage(head);
    return found instanceof Promise ? found.then((sniffed) => this.#sniffedAs(head, sniffed)) : this.#sniffedAs(head, found);
  }

  #sniffedAs(head: Buffer, found: Sniffed | undefined): boolean | Promise<boolean> {
    if (found === undefined) throw notAnImage(head, this.#contentType, this.task.shownUrl);
    this.#sniffed = found;
    if (this.task.keepExtension) return true;
    const { stem, ext } = splitExt(this.#relPath);
    const kept = encodedAs(this.ctx.options) ?? found;
    if (extensionFits(ext, kept)) return true;
    const claimed = this.#claimLate(stem + kept.ext);
    return typeof claimed === 'string' ? this.#renamed(claimed) : claimed.then((name) => this.#renamed(name));
  }

  #renamed(relPath: string): boolean | Promise<boolean> {
    this.#relPath = relPath;
    if (this.ctx.options.onExists !== 'skip') return true;
    // Known now, before the rest of the body: a rerun reads no more than the head.
    return this.ctx.sink.has(this.task, relPath).then((there) => !there);
  }

  /** A name the response called for, claimed through the registry's later path when it has one. */
  #claimLate(relPath: string): string | Promise<string> {
    const { names } = this.ctx;
    return names.claimLater ? names.claimLater(relPath, this.task.url.href) : names.claim(relPath, this.task.url.href);
  }

  /** Commits the received body under its name. With `dedupe`, content already saved this run is not saved again. */
  async #keep(receiver: Receiver, entry: SinkEntry): Promise<ItemResult> {
    const { task, ctx } = this;
    const body = await keptBody(entry, receiver, task.shownUrl);
    if ('refused' in body) return { ...this.#skipped(body.refused, null), ...factFields(body.facts) };
    const digest = ctx.options.dedupe ? body.facts.digest : undefined;
    const digests = digest === undefined ? undefined : ctx.digests;
    if (digests !== undefined) {
      const owner = await digests.claim(digest!, this.#relPath);
      if (owner !== undefined) {
        return {
          ...this.#skipped('same-content', null),
          contentType: this.#contentType,
          sniffedType: this.#sniffed?.mime ?? null,
          ...factFields(body.facts),
          duplicateOf: owner,
        };
      }
    }
    let kept: string;
    try {
      // No more requests: the file's slot may take the next while the disk keeps this body.
      this.#received?.();
      kept = await entry.commit(this.#relPath, keepFacts(task.item, task.position, body.facts, body.original));
    } catch (error) {
      digests?.settle(digest!, null);
      throw error;
    }
    // With --on-exists rename the file may have landed under another name than the one claimed.
    if (digests !== undefined && kept !== this.#relPath) digests.settle(digest!, kept);
    return carried(task.item, {
      url: task.shownUrl,
      source: task.item.source,
      line: task.item.line,
      status: 'ok',
      path: kept,
      bytes: body.bytes,
      ms: elapsed(this.#started),
      httpStatus: this.#httpStatus,
      attempts: this.#requests,
      contentType: this.#contentType,
      sniffedType: this.#sniffed?.mime ?? null,
      skipReason: null,
      error: null,
      ...factFields(body.facts),
      ...body.original,
      ...(this.#etag === undefined ? {} : { etag: this.#etag }),
      ...(this.#lastModified === undefined ? {} : { lastModified: this.#lastModified }),
    });
  }

  /**
   * The conditions of an update: If-Modified-Since from the kept file's time, If-None-Match from the
   * ETag an earlier run recorded; undefined when nothing is kept (a plain request then).
   */
  async #conditions(): Promise<Record<string, string> | undefined> {
    const keptAt = await this.ctx.sink.keptAt?.(this.task);
    if (keptAt === undefined) return undefined;
    const since = { 'if-modified-since': new Date(keptAt).toUTCString() };
    return this.task.etag === undefined ? since : { ...since, 'if-none-match': this.task.etag };
  }

  /** The server answered 304 to an update: the kept file stays as it is. */
  #notModified(): ItemResult {
    this.#httpStatus = 304;
    return this.#skipped('not-modified', this.task.relPath);
  }

  /** Skipped because the name the response or the bytes call for already holds a file. */
  #exists(): ItemResult {
    return this.#skipped('exists', this.#relPath);
  }

  #skipped(reason: SkipReason, path: string | null): ItemResult {
    return skipped(this.task.item, this.task.shownUrl, reason, path, this.#requests, this.#httpStatus);
  }

  /** The try failed: the wait before the next one when it may help, else the item's failed record. */
  #failedTry(error: unknown): ItemResult | Retry {
    const { task, ctx } = this;
    const tries: Tries = { count: this.#requests, httpStatus: this.#httpStatus, contentType: this.#contentType, started: this.#started };
    try {
      const wait = this.#signal.aborted ? undefined : nextTryIn(error, tries.count, ctx.options);
      if (wait === undefined) return failedTry(task, tries, error);
      ctx.options.logger?.debug(
        { url: task.shownUrl, attempt: tries.count, waitMs: wait, error: toErrorRecord(error) },
        `retrying ${task.shownUrl} in ${wait} ms`,
      );
      const status = error instanceof ImgdlError && error.code === 'HTTP_STATUS' ? error.status : undefined;
      return { retryInMs: wait, tries, hostWait: hostWaitOf(error), status };
    } catch (tooLong) {
      // The server asked for a longer wait than allowed.
      return failedTry(task, tries, tooLong);
    }
  }
}

/** The status of a 429 or 503 whose Retry-After asks the whole host to wait. */
function hostWaitOf(error: unknown): number | undefined {
  if (!(error instanceof HttpStatusError) || error.retryAfterMs === undefined || error.status === undefined) return undefined;
  return RETRY_AFTER_STATUSES.has(error.status) ? error.status : undefined;
}

/** True when a 206 continues exactly where the kept bytes end, for the same file. */
function rangeContinues(response: FetchedResponse, resume: Resume): boolean {
  const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(response.headers, 'content-range')?.trim() ?? '');
  if (!range || Number(range[1]) !== resume.size) return false;
  const etag = header(response.headers, 'etag');
  const lastModified = header(response.headers, 'last-modified');
  if (resume.etag !== undefined && etag !== undefined) return etag === resume.etag;
  if (resume.lastModified !== undefined && lastModified !== undefined) return lastModified === resume.lastModified;
  // A 206 to an If-Range request already says the validator matched.
  return true;
}
