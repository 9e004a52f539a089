/**
 * Writing one file: the body goes to a temp file beside its target, and only
 * a complete file is renamed to the final name. A failed or aborted write
 * removes the temp file, so nothing partial ever sits at a final name.
 *
 * Most images are small, and on this path what a file costs is system calls
 * and thread-pool round trips, not bytes. The part file is opened off the
 * loop, while the request is in flight where it can be ({@link EarlyPart}):
 * creating a file is the one call that is slow (the folder's lock, the
 * journal: ~0.3–0.5 ms here, 44 % of the loop's time in a flood profile when
 * it was synchronous). A body up to {@link MEMORY_BODY_BYTES} is held in
 * memory until it has ended and been judged, then written with one write,
 * one close and one rename, synchronously: short calls, cheaper on the loop
 * than a round trip to a pool thread each. A larger body goes to its part
 * file in batches of about {@link WRITE_BATCH_BYTES}, written off the loop
 * while the next batch arrives.
 */
import { createHash } from 'node:crypto';
import { closeSync, open, renameSync, rmSync, writev, writevSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileSystemError, ImgdlError, judgement } from '../errors.js';
import type { BodySink, ResponseBody } from '../http/body.js';
import { splitExt } from '../names/naming.js';
import type { OnExists } from '../options.js';

/** Suffix of the temp file an item is written to before it is complete. */
export const PART_SUFFIX = '.part';

/** The temp file for a final path. */
export function partPath(finalPath: string): string {
  return finalPath + PART_SUFFIX;
}

/** True when `file` exists (as anything). */
export async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** Opens a part file for writing and resolves with its descriptor; `flags` is `'w'` (start over) or `'a'` (resume). */
export type OpenPart = (file: string, flags: 'w' | 'a') => Promise<number>;

/** The usual {@link OpenPart}: an open on a pool thread. */
export const openPartFile: OpenPart = (file, flags) =>
  new Promise((resolve, reject) => open(file, flags, (error, fd) => (error ? reject(error) : resolve(fd))));

/**
 * A part file opened (`'w'`) before its body is known, so that the open
 * overlaps the request. Whoever {@link take}s it closes it; one never taken
 * is closed and removed by {@link abandon}.
 */
export class EarlyPart {
  readonly part: string;
  readonly #fd: Promise<number>;
  #taken = false;

  constructor(part: string, openPart: OpenPart = openPartFile) {
    this.part = part;
    this.#fd = openPart(part, 'w');
    // A failed open must not go unheard while the request is in flight; whoever takes the file reads it.
    this.#fd.catch(() => undefined);
  }

  /** True once the write path took the file (the body went to disk). */
  get taken(): boolean {
    return this.#taken;
  }

  /** The descriptor, now the caller's to close; rejects as the open failed. */
  take(): Promise<number> {
    this.#taken = true;
    return this.#fd;
  }

  /** Closes and removes the file unless it was taken. */
  async abandon(): Promise<void> {
    if (this.#taken) return;
    this.#taken = true;
    try {
      closeSync(await this.#fd);
    } catch {
      // Never opened, or already failing: the removal is what matters.
    }
    rmSync(this.part, { force: true });
  }
}

/** Bodies up to this size are held in memory and written in one go once complete and judged. */
export const MEMORY_BODY_BYTES = 256 * 1024;

/**
 * A larger body is written whenever this much has arrived, and paused while
 * this much waits for a write in progress. Bulk (16 × 64 MiB at -c 8): peak
 * RSS 134 MiB with 1 MiB batches, ~100 MiB with 256 KiB, at the same speed;
 * that is 256 write round trips per 64 MiB file instead of 1024.
 */
export const WRITE_BATCH_BYTES = 256 * 1024;

/** What {@link receiveBody} checks as the body arrives, and where it writes it. */
export interface BodyPlan {
  /** Bytes already in the part file (resuming); the body is appended to them. Default 0. */
  start?: number;
  /** The first bytes already in the part file, when resuming (up to `headBytes`). */
  existingHead?: Buffer | undefined;
  /** The whole file's size as the server announced it; fewer bytes is TRUNCATED. */
  expectedTotal?: number | undefined;
  /** Largest file allowed; more is TOO_LARGE, and the body is stopped. */
  maxSize?: number | undefined;
  /** How many first bytes of the file `inspectHead` wants. */
  headBytes?: number;
  /**
   * Judges the file's first bytes before anything is kept or shown to
   * `through`; throwing (or rejecting) fails the item. A promise pauses the
   * body until it settles; most verdicts are synchronous.
   */
  inspectHead?: ((head: Buffer) => void | Promise<void>) | undefined;
  /**
   * Called once, and awaited, before the first byte reaches the part file
   * (never for a body held in memory): the place to record how a later run
   * can resume it. An error it throws fails the write as a file-system error.
   */
  beforeFirstWrite?: (() => Promise<void>) | undefined;
  /** Keep the part file when the failure is ABORTED and bytes went to it, so a later run can resume it. Default false. */
  keepOnAbort?: boolean;
  /** The URL, for error messages. */
  url?: string | undefined;
  /** How the part file is opened, when it was not opened early. Default {@link openPartFile}. */
  openPart?: OpenPart | undefined;
  /** The part file, being opened early (fresh starts only); taken once the body needs the disk. */
  early?: EarlyPart | undefined;
  /** Shown every chunk of the file, in order, once the head is accepted (hashing, probing). */
  through?: { see(chunk: Buffer): void } | undefined;
}

/** A body received whole and judged. */
export interface Received {
  /** The file's size (resumed bytes included). */
  bytes: number;
  /** The body itself when it was small enough to hold (nothing is on disk yet); undefined when it is complete in the part file. */
  held: Buffer[] | undefined;
}

/**
 * Receives `body`: the first bytes are held back until `inspectHead` accepts
 * them, a body past `maxSize` is stopped, and one shorter than
 * `expectedTotal` is TRUNCATED. A small body resolves still in memory (see
 * {@link writeWhole}); a larger one resolves once its part file (`part`,
 * appended to when `plan.start` > 0) is complete and closed. On any failure
 * the part file is removed (kept for an abort with `keepOnAbort`) and the
 * error is rethrown: read-side errors as the body classified them, write-side
 * ones FILESYSTEM/DISK_FULL.
 */
export function receiveBody(body: ResponseBody, part: string, plan: BodyPlan): Promise<Received> {
  return new Promise((resolve, reject) => body.pipe(new PartWriter(body, part, plan, resolve, reject)));
}

/**
 * The sink {@link receiveBody} pipes a body into. Chunks are held in
 * `#held` (the head until judged, a small body until it ends, a large one
 * until the part file is open and the next batch is due); one write at a time
 * is in flight, and the body is paused while a whole batch waits behind it.
 */
class PartWriter implements BodySink {
  readonly #body: ResponseBody;
  readonly #part: string;
  readonly #plan: BodyPlan;
  readonly #resolve: (received: Received) => void;
  readonly #reject: (error: ImgdlError) => void;
  readonly #start: number;
  /** The file's size so far: resumed bytes plus those received. */
  #total: number;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #judged: boolean;
  #judging = false;
  /** The part file's descriptor once open and this writer's; -1 before (and after it is closed). */
  #fd = -1;
  /** True while the part file is being opened (and its resume record written) for this writer. */
  #opening = false;
  /** True once bytes may be in the part file: a write was started, or it is a resumed one. */
  #begun: boolean;
  #writing = false;
  #ended = false;
  #paused = false;
  #settled = false;
  /** The failure to report once an open or a write in flight has come back. */
  #failure: ImgdlError | undefined;

  constructor(body: ResponseBody, part: string, plan: BodyPlan, resolve: (received: Received) => void, reject: (error: ImgdlError) => void) {
    this.#body = body;
    this.#part = part;
    this.#plan = plan;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#start = plan.start ?? 0;
    this.#total = this.#start;
    this.#begun = this.#start > 0;
    this.#judged = plan.inspectHead === undefined;
  }

  write(chunk: Buffer): boolean {
    if (this.#settled) return false;
    this.#total += chunk.length;
    const { maxSize } = this.#plan;
    if (maxSize !== undefined && this.#total > maxSize) {
      this.#stop(new ImgdlError('TOO_LARGE', `body is larger than the ${maxSize} bytes allowed (--max-size)`, { url: this.#plan.url }));
      return false;
    }
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#judged) {
      this.#plan.through?.see(chunk);
      this.#writeIfDue();
    } else if (!this.#judging && (this.#plan.existingHead?.length ?? 0) + this.#heldBytes >= (this.#plan.headBytes ?? 0)) {
      this.#judge();
    }
    if (this.#settled) return false;
    const wanting = !this.#mustWait();
    if (!wanting) this.#paused = true;
    return wanting;
  }

  end(): void {
    if (this.#settled) return;
    this.#ended = true;
    if (this.#judged) this.#finish();
    else if (!this.#judging) this.#judge();
  }

  fail(error: ImgdlError): void {
    // A connection closed before Content-Length is a short body, whatever the socket layer calls it.
    const { expectedTotal } = this.#plan;
    const short = error.code === 'NETWORK' && expectedTotal !== undefined && this.#total < expectedTotal;
    this.#settle(short ? this.#truncated(error) : error);
  }

  /** True while the body must wait: its head is being judged, or a whole batch waits for the file. */
  #mustWait(): boolean {
    return this.#judging || ((this.#writing || this.#opening) && this.#heldBytes >= WRITE_BATCH_BYTES);
  }

  /** Shows the held head to `inspectHead`; the body goes on once it is accepted. */
  #judge(): void {
    const existing = this.#plan.existingHead;
    const parts = existing === undefined ? this.#held : [existing, ...this.#held];
    const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    let verdict: void | Promise<void>;
    try {
      verdict = this.#plan.inspectHead!(head);
    } catch (error) {
      return this.#stop(judgement(error, this.#plan.url));
    }
    if (verdict === undefined) return this.#accept();
    this.#judging = true;
    verdict.then(
      () => {
        this.#judging = false;
        if (!this.#settled) this.#accept();
      },
      (error: unknown) => {
        this.#judging = false;
        this.#stop(judgement(error, this.#plan.url));
      },
    );
  }

  #accept(): void {
    this.#judged = true;
    const through = this.#plan.through;
    if (through) for (const chunk of this.#held) through.see(chunk);
    if (this.#ended) return this.#finish();
    this.#writeIfDue();
    this.#resumeIfWanted();
  }

  /** Once the body is too large to hold: opens the part file, and writes when a batch is ready. */
  #writeIfDue(): void {
    if (this.#fd === -1) {
      if (!this.#opening && (this.#start > 0 || this.#total > MEMORY_BODY_BYTES)) this.#open();
      return;
    }
    if (!this.#writing && this.#heldBytes >= WRITE_BATCH_BYTES) this.#writeHeld();
  }

  #open(): void {
    this.#opening = true;
    const { early, beforeFirstWrite } = this.#plan;
    const opening = this.#start === 0 && early !== undefined ? early.take() : (this.#plan.openPart ?? openPartFile)(this.#part, this.#start > 0 ? 'a' : 'w');
    opening.then(
      (fd) => {
        this.#fd = fd;
        if (this.#settled || beforeFirstWrite === undefined) return this.#opened();
        // The resume record is on disk before any byte is in the part file, so a crash leaves a part a rerun can continue.
        beforeFirstWrite().then(
          () => this.#opened(),
          (error: unknown) => {
            this.#opening = false;
            if (this.#settled) return this.#cleanUp();
            this.#stop(fileSystemError(error, 'recording how to resume', this.#part, this.#plan.url));
          },
        );
      },
      (error: unknown) => {
        this.#opening = false;
        if (this.#settled) return this.#cleanUp();
        this.#stop(fileSystemError(error, 'writing', this.#part, this.#plan.url));
      },
    );
  }

  #opened(): void {
    this.#opening = false;
    if (this.#settled) return this.#cleanUp();
    if (this.#ended) return this.#finish();
    this.#writeIfDue();
    this.#resumeIfWanted();
  }

  #writeHeld(): void {
    const chunks = this.#held;
    const bytes = this.#heldBytes;
    this.#held = [];
    this.#heldBytes = 0;
    this.#writing = true;
    this.#begun = true;
    writeAll(this.#fd, chunks, bytes, (error) => this.#written(error));
  }

  #written(error: unknown): void {
    this.#writing = false;
    if (this.#settled) return this.#cleanUp();
    if (error !== null) return this.#stop(fileSystemError(error, 'writing', this.#part, this.#plan.url));
    if (this.#ended) return this.#finish();
    if (this.#heldBytes >= WRITE_BATCH_BYTES) this.#writeHeld();
    this.#resumeIfWanted();
  }

  #resumeIfWanted(): void {
    if (this.#paused && !this.#mustWait()) {
      this.#paused = false;
      this.#body.resume();
    }
  }

  /** The body has ended and been accepted: check its length, then hand it over whole or finish the part file. */
  #finish(): void {
    const { expectedTotal } = this.#plan;
    if (expectedTotal !== undefined && this.#total < expectedTotal) return this.#settle(this.#truncated());
    if (this.#fd === -1 && !this.#opening && this.#start === 0) {
      this.#settled = true;
      return this.#resolve({ bytes: this.#total, held: this.#held });
    }
    if (this.#fd === -1) {
      // Resuming a short rest: the part file is opened (to append) only now.
      if (!this.#opening) this.#open();
      return;
    }
    if (this.#writing) return;
    if (this.#heldBytes > 0) return this.#writeHeld();
    let closing: unknown = null;
    try {
      closeSync(this.#fd);
    } catch (error) {
      closing = error;
    }
    this.#fd = -1;
    if (closing !== null) return this.#settle(fileSystemError(closing, 'writing', this.#part, this.#plan.url));
    this.#settled = true;
    this.#resolve({ bytes: this.#total, held: undefined });
  }

  #truncated(cause?: unknown): ImgdlError {
    return new ImgdlError('TRUNCATED', `body ended after ${this.#total} of ${this.#plan.expectedTotal} bytes`, { url: this.#plan.url, cause });
  }

  /** Fails on this side (a refused head, too large, a write error): the body is stopped too. */
  #stop(failure: ImgdlError): void {
    if (this.#settled) return;
    this.#body.abort();
    this.#settle(failure);
  }

  #settle(failure: ImgdlError): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#failure = failure;
    this.#held = [];
    // An open or a write in flight comes back first, so that nothing lands in the file after its removal.
    if (!this.#writing && !this.#opening) this.#cleanUp();
  }

  #cleanUp(): void {
    const failure = this.#failure!;
    const opened = this.#fd !== -1;
    if (opened) {
      try {
        closeSync(this.#fd);
      } catch {
        // Already failing; the removal below is what matters.
      }
      this.#fd = -1;
    }
    // Kept, with its resume record, only when it holds bytes a later run can continue. A body that never
    // reached its file left nothing this writer owns (an early part file is abandoned by its owner).
    const keep = this.#plan.keepOnAbort === true && this.#begun && failure.code === 'ABORTED';
    if ((opened || this.#start > 0) && !keep) {
      rmSync(this.#part, { force: true });
      rmSync(partMetaPath(this.#part), { force: true });
    }
    this.#reject(failure);
  }
}

/** Writes `chunks` (`bytes` in all) at the file's position, going on after a short write; off the loop. */
function writeAll(fd: number, chunks: Buffer[], bytes: number, done: (error: unknown) => void): void {
  writev(fd, chunks, (error, written) => {
    if (error) return done(error);
    if (written === bytes) return done(null);
    const rest = remainder(chunks, written);
    writeAll(fd, rest, bytes - written, done);
  });
}

/** The part of `chunks` after the first `skip` bytes. */
function remainder(chunks: Buffer[], skip: number): Buffer[] {
  let left = skip;
  let i = 0;
  while (left >= chunks[i]!.length) left -= chunks[i++]!.length;
  return [chunks[i]!.subarray(left), ...chunks.slice(i + 1)];
}

/**
 * Writes a body held in memory to its part file, open as `fd`, and closes
 * it: one write, one close, synchronously. On failure the part file is
 * removed and a FILESYSTEM or DISK_FULL error is thrown.
 */
export function writeWhole(fd: number, part: string, chunks: readonly Buffer[], url?: string): void {
  let open = true;
  try {
    let rest = chunks as Buffer[];
    let bytes = rest.reduce((n, chunk) => n + chunk.length, 0);
    while (bytes > 0) {
      const written = writevSync(fd, rest);
      bytes -= written;
      if (bytes > 0) rest = remainder(rest, written);
    }
    open = false;
    closeSync(fd);
  } catch (error) {
    if (open) {
      try {
        closeSync(fd);
      } catch {
        // Already failing.
      }
    }
    rmSync(part, { force: true });
    throw fileSystemError(error, 'writing', part, url);
  }
}

/**
 * What is kept beside a part file so a later run can check the server still
 * has the same file. Written, and flushed to disk, before the first byte
 * reaches the part file, so it survives a crash as well as a stop.
 */
export interface PartMeta {
  /** First 16 hex of sha1 of the URL: a part file belongs to one URL. */
  key: string;
  /** Strong ETag of the response the part came from. */
  etag?: string | undefined;
  /** Last-Modified of that response. */
  lastModified?: string | undefined;
  /** The whole file's size as that response announced it, when it did. */
  total?: number | undefined;
}

/** The file beside a part file holding its {@link PartMeta}. */
export function partMetaPath(part: string): string {
  return `${part}.json`;
}

/** The key that ties a part file to its URL, without writing the URL (or its credentials) to disk. */
export function partKey(url: string): string {
  return createHash('sha1').update(url).digest('hex').slice(0, 16);
}

/**
 * Writes the resume record beside a part file and flushes it to disk, so that
 * after a crash (kill -9, power cut) the part file is never newer than it.
 */
export async function writePartMeta(part: string, meta: PartMeta): Promise<void> {
  const handle = await fs.open(partMetaPath(part), 'w');
  try {
    await handle.writeFile(JSON.stringify(meta));
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** The resume record beside `part`, or why there is none to use: `missing` or `unreadable`. */
export async function readPartMeta(part: string): Promise<PartMeta | 'missing' | 'unreadable'> {
  let text: string;
  try {
    text = await fs.readFile(partMetaPath(part), 'utf8');
  } catch (error) {
    return (error as { code?: unknown }).code === 'ENOENT' ? 'missing' : 'unreadable';
  }
  try {
    const meta = JSON.parse(text) as Partial<PartMeta> | null;
    const total = meta?.total;
    if (typeof meta?.key !== 'string' || (total !== undefined && !Number.isSafeInteger(total))) return 'unreadable';
    return meta as PartMeta;
  } catch {
    return 'unreadable';
  }
}

/** Removes a part file and its meta. */
export async function removePart(part: string): Promise<void> {
  await Promise.all([fs.rm(part, { force: true }), fs.rm(partMetaPath(part), { force: true })]).catch(() => undefined);
}

/** Removes a file that is no longer wanted, ignoring any failure (it may already be gone). */
export async function removeQuietly(file: string): Promise<void> {
  await fs.rm(file, { force: true }).catch(() => undefined);
}

/**
 * Moves a complete temp file to its final place. With `rename`, an existing
 * file keeps its name and the new one gets `stem-1.ext`, `stem-2.ext`, ...;
 * otherwise the final name is replaced. Returns the path actually written.
 */
export async function commitFile(temp: string, finalPath: string, onExists: OnExists): Promise<string> {
  let target = finalPath;
  if (onExists === 'rename') {
    const { stem, ext } = splitExt(finalPath);
    for (let n = 1; await exists(target); n++) target = `${stem}-${n}${ext}`;
  }
  try {
    // Synchronous: a local rename is a short system call, cheaper than a round trip to a pool thread.
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw fileSystemError(error, 'renaming into', target);
  }
  return target;
}

/** Creates the folders a file needs, remembering those made so each is created once per run. */
export class FolderMaker {
  readonly #made = new Set<string>();
  /** True when the folder `file` goes in was made (or found) this run. */
  has(file: string): boolean {
    return this.#made.has(path.dirname(file));
  }
  async ensureFor(file: string): Promise<void> {
    const dir = path.dirname(file);
    if (this.#made.has(dir)) return;
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (error) {
      throw fileSystemError(error, 'creating folder', dir);
    }
    this.#made.add(dir);
  }
}
