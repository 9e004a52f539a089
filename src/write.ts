/**
 * Writing one file: the body streams into a temp file beside its target, and
 * only a complete file is renamed to the final name. A failed or aborted
 * write removes the temp file, so nothing partial ever sits at a final name.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { FileSystemError, ImgdlError } from './errors.js';
import { splitExt } from './naming.js';
import type { OnExists } from './options.js';

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

/** System codes that mean the disk or the quota is full. */
const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);

/** A file-system failure as an imgdl error that keeps the system code (ENOSPC, EACCES, ...) in its message; a full disk is DISK_FULL. */
export function fileSystemError(error: unknown, action: string, file: string, url?: string): ImgdlError {
  if (error instanceof ImgdlError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const label = typeof code === 'string' ? `${code} ` : '';
  const full = typeof code === 'string' && DISK_FULL_CODES.has(code);
  return new FileSystemError(`${full ? 'disk full: ' : ''}${label}while ${action} ${file}`, { url, cause: error }, full ? 'DISK_FULL' : 'FILESYSTEM');
}

/**
 * How much of a body is held in memory before any of it is written. Most
 * images are smaller: they reach the disk in one write, and only a larger
 * body, one a later run might want to continue, gets a resume record.
 */
export const HOLD_BYTES = 64 * 1024;

/** Opens the stream a part file is written through; `flags` is `'w'` (start over) or `'a'` (resume). */
export type OpenPart = (file: string, flags: 'w' | 'a') => Writable;

/** The usual {@link OpenPart}: a file write stream. */
export const openPartFile: OpenPart = (file, flags) => createWriteStream(file, { flags });

/** How {@link streamToFile} checks a body as it goes. */
export interface StreamChecks {
  /** Bytes already in the part file (resuming); the body continues from there. Default 0. */
  start?: number;
  /** The first bytes already in the part file, when resuming (up to `headBytes`). */
  existingHead?: Buffer | undefined;
  /** The whole file's size as the server announced it; fewer bytes is TRUNCATED. */
  expectedTotal?: number | undefined;
  /** Largest file allowed; more is TOO_LARGE and the part file is removed. */
  maxSize?: number | undefined;
  /** How many first bytes of the file `inspectHead` wants. */
  headBytes?: number;
  /** Judges the file's first bytes before anything past them is written; throwing fails the item. */
  inspectHead?: ((head: Buffer) => Promise<void>) | undefined;
  /**
   * Bytes held in memory before anything reaches the part file: a body that
   * ends within them is written in one go, and a stopped or crashed download
   * of it leaves nothing worth resuming. Default 0 (and always 0 when resuming).
   */
  holdBytes?: number;
  /**
   * Called once, and awaited, before the first byte reaches the part file:
   * the place to record how a later run can resume it. An error it throws
   * fails the write as a file-system error.
   */
  beforeFirstWrite?: (() => Promise<void>) | undefined;
  /** Keep the part file when the failure is ABORTED and it holds bytes, so a later run can resume it. Default false. */
  keepOnAbort?: boolean;
  /** The URL, for error messages. */
  url?: string | undefined;
  /** How the part file is opened. Default {@link openPartFile}. */
  openPart?: OpenPart | undefined;
  /** The part file, already opened with `'w'` by the caller (while the request was in flight); used instead of opening it. */
  opened?: Writable | undefined;
  /** Shown every chunk written, in order, after the checks (hashing, probing). */
  through?: { see(chunk: Buffer): void } | undefined;
}

/**
 * Streams `body` into `temp` (appending when `checks.start` > 0), returning
 * the file's size. The first bytes are held back until `inspectHead` accepts
 * them, a body past `maxSize` is cut off, and one shorter than
 * `expectedTotal` is TRUNCATED. On any failure the temp file is removed (kept
 * for an abort with `keepOnAbort`) and the error is rethrown: read-side
 * errors named by `classifyReadError`, write-side ones FILESYSTEM/DISK_FULL.
 */
export async function streamToFile(
  body: Readable,
  temp: string,
  classifyReadError: (error: unknown) => ImgdlError,
  checks: StreamChecks = {},
): Promise<number> {
  const start = checks.start ?? 0;
  const { maxSize, expectedTotal, inspectHead, url } = checks;
  const headBytes = checks.headBytes ?? 0;
  const file = checks.opened ?? (checks.openPart ?? openPartFile)(temp, start > 0 ? 'a' : 'w');
  let total = start;

  async function* checked(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    // The head is held back until judged, so a refused body leaves no bytes behind.
    const existing = checks.existingHead;
    const head: Buffer[] = existing ? [existing] : [];
    let headSize = existing?.length ?? 0;
    let pending: Buffer[] = [];
    let judged = inspectHead === undefined;
    const judge = async (): Promise<void> => {
      await inspectHead!(head.length === 1 ? head[0]! : Buffer.concat(head, headSize));
      judged = true;
    };
    if (!judged && headSize >= headBytes) await judge();
    for await (const chunk of source) {
      total += chunk.length;
      if (maxSize !== undefined && total > maxSize) {
        throw new ImgdlError('TOO_LARGE', `body is larger than the ${maxSize} bytes allowed (--max-size)`, { url });
      }
      if (judged) {
        yield chunk;
        continue;
      }
      head.push(chunk);
      pending.push(chunk);
      headSize += chunk.length;
      if (headSize < headBytes) continue;
      await judge();
      yield* pending;
      pending = [];
    }
    if (!judged) {
      await judge();
      yield* pending;
    }
    if (expectedTotal !== undefined && total < expectedTotal) throw truncated();
  }
  const truncated = (cause?: unknown): ImgdlError =>
    new ImgdlError('TRUNCATED', `body ended after ${total} of ${expectedTotal} bytes`, { url, cause });

  // Written by hand rather than through stream.pipeline: pipeline costs an AbortController per call, aborted
  // (a DOMException built) on every finish, plus a Transform per file (bulk download profile: ~4% of main-thread time).
  const through = checks.through;
  const holdBytes = start > 0 ? 0 : (checks.holdBytes ?? 0);
  // Chunks not yet handed to the file: the whole body while it stays within holdBytes.
  let held: Buffer[] = [];
  let heldBytes = 0;
  // True once bytes may be in the part file (always, when resuming one).
  let writing = start > 0;
  let writeError: { error: unknown } | undefined;
  let stopped = false;
  // Read through a call: the error listener sets it, which the compiler's narrowing cannot see.
  const writeFailure = (): { error: unknown } | undefined => writeError;
  const throwIfWriteFailed = (): void => {
    const failed = writeFailure();
    if (failed) throw failed.error;
  };
  const onFileError = (error: unknown): void => {
    // Once this side has given up on the file, its destroy may fail queued writes: not a write failure.
    if (stopped) return;
    writeError ??= { error };
    // Stops the body at once, as pipeline did: the loop below then fails on the read side, named as a write failure.
    body.destroy(error instanceof Error ? error : new Error(String(error)));
  };
  file.on('error', onFileError);
  // A file opened ahead (checks.opened) may have failed before anyone here listened.
  if (file.errored) onFileError(file.errored);
  /** Hands `chunks` to the file at once (one writev), waiting for it to drain. */
  const writeAll = async (chunks: Buffer[]): Promise<void> => {
    file.cork();
    let ready = true;
    for (const chunk of chunks) ready = file.write(chunk);
    file.uncork();
    if (!ready) await drained(file);
    throwIfWriteFailed();
  };
  try {
    for await (const chunk of checked(chunksOf(body))) {
      throwIfWriteFailed();
      through?.see(chunk);
      if (!writing) {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes <= holdBytes) continue;
        await beforeFirstWrite(checks.beforeFirstWrite, temp, url);
        writing = true;
        await writeAll(held);
        held = [];
        continue;
      }
      if (!file.write(chunk)) await drained(file);
      throwIfWriteFailed();
    }
    throwIfWriteFailed();
    if (held.length > 0) await writeAll(held);
    file.end();
    // Resolves once the file is closed (a WriteStream emits close after its fd is closed), so it can be renamed.
    await finished(file);
    throwIfWriteFailed();
    return total;
  } catch (error) {
    // Destroying an unfinished undici body emits an error nobody else listens to any more.
    body.on('error', () => undefined);
    body.destroy();
    stopped = true;
    file.on('error', () => undefined);
    if (!file.destroyed) file.destroy();
    // Closed before the part file is removed, so no write lands after the removal.
    await finished(file).catch(() => undefined);
    const written = writeFailure();
    const cause = written ? written.error : error;
    let failure = written ? fileSystemError(cause, 'writing', temp, url) : classifyReadError(error);
    // A connection closed before Content-Length is a short body, whatever the socket layer calls it.
    if (failure.code === 'NETWORK' && expectedTotal !== undefined && total < expectedTotal) failure = truncated(error);
    // Kept only when it holds bytes a later run can continue; its resume record goes with it otherwise.
    if (!(checks.keepOnAbort === true && writing && failure.code === 'ABORTED')) await removePart(temp);
    throw failure;
  } finally {
    file.off('error', onFileError);
  }
}

/** Runs a {@link StreamChecks.beforeFirstWrite} hook, naming its failure as a file-system one. */
async function beforeFirstWrite(hook: (() => Promise<void>) | undefined, temp: string, url: string | undefined): Promise<void> {
  try {
    await hook?.();
  } catch (error) {
    throw fileSystemError(error, 'recording how to resume', temp, url);
  }
}

/** Resolves when `file` wants more, rejects when it fails or closes first. */
function drained(file: Writable): Promise<void> {
  // A destroyed stream (its open failed, say) refuses writes and will never emit drain, error or close again.
  if (file.destroyed) return Promise.reject(file.errored ?? new Error('file closed while writing'));
  return new Promise((resolve, reject) => {
    const done = (error?: unknown): void => {
      file.off('drain', onDrain).off('error', done).off('close', onClose);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new Error('file closed while writing'));
    file.once('drain', onDrain).once('error', done).once('close', onClose);
  });
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

/** What one listing of a folder tells: its part files, and every name in it folded as {@link NameRegistry} folds them. */
interface Listing {
  parts: Set<string>;
  /** Undefined when the folder could not be read (other than missing): nothing is known about it. */
  folded: Set<string> | undefined;
}

/**
 * The part files left in each folder by an earlier run, listed once per
 * folder, so that an item looks for its part file without a stat of its own.
 * The same listing answers whether a final name may already exist: with
 * `--on-exists skip` every new file would otherwise pay an lstat that fails
 * with ENOENT, and building that error costs more than the stat (bulk
 * download profile: ~5% of main-thread time, and a thread-pool round trip
 * before each request).
 */
export class PartIndex {
  readonly #folders = new Map<string, Promise<Listing>>();

  #list(dir: string): Promise<Listing> {
    let listing = this.#folders.get(dir);
    if (!listing) {
      listing = fs.readdir(dir).then(
        (names) => ({ parts: new Set(names.filter((name) => name.endsWith(PART_SUFFIX))), folded: new Set(names.map(foldName)) }),
        (error: unknown) => ({ parts: new Set<string>(), folded: (error as { code?: unknown }).code === 'ENOENT' ? new Set<string>() : undefined }),
      );
      this.#folders.set(dir, listing);
    }
    return listing;
  }

  /** True (once) when `part` existed when its folder was first listed this run. */
  async take(part: string): Promise<boolean> {
    return (await this.#list(path.dirname(part))).parts.delete(path.basename(part));
  }

  /**
   * True when `file` exists (as anything). A name absent from its folder's
   * listing is taken as absent without a stat: names are claimed once per run,
   * so the only file this run could have put there since is the asker's own.
   * The listing is compared case- and normalisation-insensitively, so on a
   * file system that folds names a near match still gets a real lstat.
   */
  async exists(file: string): Promise<boolean> {
    const { folded } = await this.#list(path.dirname(file));
    if (folded !== undefined && !folded.has(foldName(path.basename(file)))) return false;
    return exists(file);
  }
}

function foldName(name: string): string {
  return name.normalize('NFC').toLowerCase();
}

/**
 * The chunks of `stream` as they arrive, with backpressure, and without the
 * copy that a Readable's own async iterator makes: it calls `read()`, which
 * joins every buffered chunk into a new Buffer, so a fast body was copied
 * once over (bulk download profile: ~5% of CPU in Readable fromList, and the
 * extra buffers in peak RSS). Errors, and a close before the end, reject.
 */
export async function* chunksOf(stream: Readable): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let ended = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const onData = (chunk: Buffer): void => {
    queue.push(chunk);
    stream.pause();
    wake?.();
  };
  const onEnd = (): void => {
    ended = true;
    wake?.();
  };
  const onError = (error: unknown): void => {
    failure ??= { error };
    wake?.();
  };
  const onClose = (): void => {
    if (!ended) onError(Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
  };
  // The stream may have ended or failed before it got here (between the response and the file being opened).
  if (stream.errored) onError(stream.errored);
  else if (stream.readableEnded) ended = true;
  else if (stream.destroyed) onClose();
  stream.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk !== undefined) {
        yield chunk;
        continue;
      }
      if (failure) throw failure.error;
      if (ended) return;
      stream.resume();
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    stream.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
  }
}

/** Closes a part file opened ahead of its response that will not be written after all, then removes it. */
export async function abandonPart(file: Writable, temp: string): Promise<void> {
  file.on('error', () => undefined);
  file.destroy();
  // Closed (and so surely created) before the removal, or the file would appear again after it.
  await finished(file).catch(() => undefined);
  await fs.rm(temp, { force: true }).catch(() => undefined);
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
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true }).catch(() => undefined);
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
