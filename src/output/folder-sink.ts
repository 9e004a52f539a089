/**
 * The folder sink: a body goes to a part file beside its target, and only a
 * complete file is renamed to the final name. A failed or aborted body
 * removes the part file, so nothing partial ever sits at a final name; one
 * stopped with bytes a later run can continue keeps it, with its resume record.
 *
 * Most images are small, and on this path what a file costs is system calls
 * and hand-offs between threads, not bytes. Every call that touches the disk
 * on the way to keeping a body runs on the writer thread (disk-writer.ts;
 * on libuv's pool until it has started), batched with those of other files
 * finishing at the same time: a body up to
 * {@link MEMORY_BODY_BYTES} is held in memory until it is committed, then
 * opened, written, closed and renamed there in one hand-off. A larger body's
 * part file is opened (and its resume record written) there, and closed and
 * renamed there; its bytes go in batches of about {@link WRITE_BATCH_BYTES},
 * one in flight on libuv's pool while the next arrives (no copy), so a slow
 * disk slows the socket. Nothing on the loop waits for the disk.
 *
 * A run of one slot (sequential mode, `-c 1`) finishes no files together:
 * it starts no writer thread (one cost 0.07 s of CPU and 9 MB of peak RSS
 * on the sequential list, 100 files) and runs the same steps on libuv's
 * pool. Sequential mode, whose next request waits until the file is kept,
 * also opens each part file as its request is sent, so that creating it
 * (0.3–0.5 ms on ext4 here) overlaps the wait for the response instead of
 * following the body. Elsewhere the next request overlaps the commit
 * anyway, and an early open would only let a later file be kept first.
 */
import { stat } from 'node:fs/promises';
import { fileSystemError, type ImgdlError } from '../errors.js';
import { resolveInside } from '../names/naming.js';
import type { ResolvedOptions } from '../options.js';
import { DiskWriter, diskWriter } from './disk-writer.js';
import type { PartIndex } from './folder-listing.js';
import { writeAll } from './disk-ops.js';
import { FolderMaker, partPath, toManifestPath, type OpenPart } from './part-files.js';
import { findResume, partKey, partMetaPath, removePart } from './resume-record.js';
import type { BodyStart, Resume, Sink, SinkEntry, SinkHandler, SinkTarget } from './sink.js';

/** Bodies up to this size are held in memory and written in one go when committed. */
export const MEMORY_BODY_BYTES = 256 * 1024;

/**
 * A larger body is written whenever this much has arrived, and paused while
 * this much waits for a write in progress. Bulk (16 × 64 MiB at -c 8): peak
 * RSS 134 MiB with 1 MiB batches, ~100 MiB with 256 KiB, at the same speed;
 * that is 256 write round trips per 64 MiB file instead of 1024.
 */
export const WRITE_BATCH_BYTES = 256 * 1024;

/** One settled answer, shared: asking whether a new name is taken allocates nothing. */
const ABSENT: Promise<boolean> = Promise.resolve(false);

/** What a {@link FolderSink} reads of the options (`remoteTime` is off unless given). */
type FolderSinkOptions = Pick<ResolvedOptions, 'out' | 'onExists' | 'logger'> &
  Partial<Pick<ResolvedOptions, 'remoteTime' | 'concurrency' | 'mode'>>;

/** Today's sink: files in the output folder, named as planned (or as the response renamed them). */
export class FolderSink implements Sink {
  readonly options: FolderSinkOptions;
  /** What the output folders held when the run started, listed once per folder. */
  readonly parts: PartIndex;
  readonly folders = new FolderMaker();
  /**
   * How part files are opened when not by the writer thread: a seam for tests
   * that need a real write failure (e.g. ENOSPC from /dev/full), which the
   * writer thread then meets. A descriptor is good in every thread.
   */
  readonly openPart: OpenPart | undefined;
  readonly writer: DiskWriter;
  /** True in sequential mode: each part file is opened as its request is sent (see the module's comment). */
  readonly #opensEarly: boolean;

  /** `writer` by default: the thread's shared writer, or in a run of one slot one that runs on libuv's pool alone. */
  constructor(options: FolderSinkOptions, parts: PartIndex, openPart?: OpenPart, writer?: DiskWriter) {
    this.options = options;
    this.parts = parts;
    this.openPart = openPart;
    this.#opensEarly = options.mode === 'sequential';
    this.writer = writer ?? (options.concurrency === 1 ? new DiskWriter(0) : diskWriter());
  }

  has(target: SinkTarget, relPath?: string): Promise<boolean> {
    if (relPath !== undefined)
      return this.parts.exists(relPath === target.relPath ? target.finalPath : resolveInside(this.options.out, relPath));
    // The usual answer in a run into a new folder, told by its listing without a promise of its own.
    if (this.parts.surelyAbsent(target.finalPath)) return ABSENT;
    return this.#hasPlanned(target);
  }

  async #hasPlanned(target: SinkTarget): Promise<boolean> {
    if (!(await this.parts.exists(target.finalPath))) return false;
    // A part file beside a finished one is left from an older download: nothing will continue it.
    const part = partPath(target.finalPath);
    if (await this.parts.take(part)) await removePart(part);
    return true;
  }

  async keptAt(target: SinkTarget): Promise<number | undefined> {
    if (this.parts.surelyAbsent(target.finalPath)) return undefined;
    const found = await stat(target.finalPath).catch(() => undefined);
    return found?.isFile() ? found.mtimeMs : undefined;
  }

  async resumable(target: SinkTarget): Promise<Resume | undefined> {
    const part = partPath(target.finalPath);
    if (!(await this.parts.take(part))) return undefined;
    return findResume(part, partKey(target.url.href), this.options.logger);
  }

  open(target: SinkTarget, resume: Resume | undefined): SinkEntry {
    // Nothing touches the disk yet: a small body's part file is created with its only write, in one hand-off.
    // In sequential mode it is opened now instead (see the module's comment), for a fresh start in a
    // folder made already only, so that a failure leaves no folder behind.
    return new PartEntry(this, target, this.#opensEarly && resume === undefined && this.folders.has(target.finalPath));
  }
}

/**
 * One body on its way to its part file. Chunks wait in `#held` (a small
 * body until it is committed, a large one until the part file is open and
 * the next batch is due); one write at a time is in flight, and the writer
 * is asked to wait while a whole batch waits behind it.
 */
class PartEntry implements SinkEntry {
  readonly #sink: FolderSink;
  readonly #target: SinkTarget;
  readonly #part: string;
  /** The part file being opened while the request is in flight, in sequential mode; whoever takes it closes it. */
  #early: Promise<number> | undefined;
  #handler: SinkHandler | undefined;
  #start = 0;
  /** The file's size so far: resumed bytes plus those written to this entry. */
  #size = 0;
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** The part file's descriptor once open and this entry's; -1 before (and after it is closed). */
  #fd = -1;
  /** True while the part file is being opened (and its resume record written). */
  #opening = false;
  #writing = false;
  /** True once bytes may be in the part file: a write was started, or it is a resumed one. */
  #begun = false;
  /** Set once the resume record is on disk beside the part file (a resumed part has one already). */
  #recorded = false;
  /** True when a stopped body's bytes are worth keeping: a later run can check they still match. */
  #resumable = false;
  #validator: BodyStart['validator'];
  #expectedTotal: number | undefined;
  /** The modification time the kept file takes (the server's Last-Modified, in ms); NaN to leave it as written. */
  #mtime = NaN;
  /** True after a write returned false, until the handler is told it may go on. */
  #full = false;
  /** Set once committed or aborted: nothing more is taken. */
  #closed = false;
  #failure: ImgdlError | undefined;
  #keep = false;
  /** A commit waiting for the part file to be complete and closed. */
  #flush: { resolve: () => void; reject: (error: ImgdlError) => void } | undefined;
  /** An abort waiting for an open or a write in flight to come back, and the part file's removal. */
  #cleaned: (() => void) | undefined;
  /** The part file's closing and removal, once under way. */
  #dropped: Promise<void> | undefined;

  constructor(sink: FolderSink, target: SinkTarget, early: boolean) {
    this.#sink = sink;
    this.#target = target;
    this.#part = partPath(target.finalPath);
    if (early) {
      this.#early = this.#takeFile();
      // A failed open must not go unheard while the request is in flight: whoever takes the file hears it.
      this.#early.catch(() => undefined);
    }
  }

  begin(start: BodyStart, handler: SinkHandler): Promise<void> {
    this.#handler = handler;
    this.#start = this.#size = start.resume?.size ?? 0;
    this.#begun = this.#start > 0;
    this.#recorded = start.resume !== undefined;
    this.#resumable = this.#recorded || start.validator !== undefined;
    this.#validator = start.validator;
    this.#expectedTotal = start.expectedTotal;
    if (this.#sink.options.remoteTime && start.lastModified !== undefined) this.#mtime = Date.parse(start.lastModified);
    return this.#sink.folders.ensureFor(this.#part);
  }

  write(chunk: Buffer): boolean {
    if (this.#failure !== undefined || this.#closed) return false;
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    this.#size += chunk.length;
    this.#writeIfDue();
    if (!this.#mustWait()) return true;
    this.#full = true;
    return false;
  }

  async commit(relPath: string): Promise<string> {
    if (this.#failure !== undefined) throw this.#failure;
    this.#closed = true;
    const { out, onExists } = this.#sink.options;
    const url = this.#target.shownUrl;
    let body: Buffer[] | undefined;
    let fd = -1;
    if (this.#fd === -1 && !this.#opening && this.#start === 0) {
      // Held whole in memory: written with its open (unless opened early), close and rename, in one hand-off.
      body = this.#held;
      this.#held = [];
      // Opened already (early), or by the tests' seam; else the keep opens it.
      if (this.#early !== undefined || this.#sink.openPart !== undefined)
        fd = await this.#takeFile().catch((error: unknown) => {
          throw fileSystemError(error, 'writing', this.#part, url);
        });
    } else {
      await new Promise<void>((resolve, reject) => {
        this.#flush = { resolve, reject };
        this.#finish();
      });
      fd = this.#fd;
      this.#fd = -1;
    }
    const final = relPath === this.#target.relPath ? this.#target.finalPath : resolveInside(out, relPath);
    const written = await this.#sink.writer.run(
      {
        op: 'keep',
        fd,
        part: this.#part,
        final,
        besides: onExists === 'rename',
        mtime: this.#mtime,
        body: undefined,
        drop: this.#recorded ? partMetaPath(this.#part) : undefined,
      },
      body,
      this.#heldBytes,
      url,
    );
    return toManifestPath(written as string, out);
  }

  abort(keepResumable: boolean): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#keep = keepResumable && this.#begun && this.#resumable;
    this.#held = [];
    if (!this.#writing && !this.#opening) {
      // A failure has cleaned up already, or is cleaning up.
      if (this.#failure === undefined) this.#cleanUp();
      return this.#dropped ?? Promise.resolve();
    }
    // An open or a write in flight comes back first, so that nothing lands in the file after its removal.
    return new Promise((resolve) => (this.#cleaned = resolve));
  }

  /** True while the writer must wait: a whole batch waits for the file. */
  #mustWait(): boolean {
    return (this.#writing || this.#opening) && this.#heldBytes >= WRITE_BATCH_BYTES;
  }

  /** The part file opened early, when there is one; else opens it: to continue it when resuming, else from its first byte. */
  #takeFile(): Promise<number> {
    const early = this.#early;
    if (early !== undefined) {
      this.#early = undefined;
      return early;
    }
    const flags = this.#start > 0 ? 'a' : 'w';
    const opener = this.#sink.openPart;
    if (opener !== undefined) return opener(this.#part, flags);
    return this.#sink.writer.run({ op: 'open', part: this.#part, flags }) as Promise<number>;
  }

  /** Once the body is too large to hold: opens the part file, and writes when a batch is ready. */
  #writeIfDue(): void {
    if (this.#fd === -1) {
      if (!this.#opening && (this.#start > 0 || this.#size > MEMORY_BODY_BYTES)) this.#open();
      return;
    }
    if (!this.#writing && this.#heldBytes >= WRITE_BATCH_BYTES) this.#writeHeld();
  }

  #open(): void {
    this.#opening = true;
    this.#takeFile().then(
      (fd) => {
        this.#fd = fd;
        const validator = this.#validator;
        if (this.#settled() || validator === undefined || this.#recorded) return this.#opened();
        // The resume record is on disk before any byte is in the part file, so a crash leaves a part a rerun can continue.
        const meta = { key: partKey(this.#target.url.href), ...validator, total: this.#expectedTotal };
        this.#sink.writer.run({ op: 'record', file: partMetaPath(this.#part), text: JSON.stringify(meta) }).then(
          () => {
            this.#recorded = true;
            this.#opened();
          },
          (error: unknown) => this.#failed(error, 'recording how to resume'),
        );
      },
      (error: unknown) => this.#failed(error, 'writing'),
    );
  }

  #opened(): void {
    this.#opening = false;
    if (this.#settled()) return this.#cleanUp();
    if (this.#flush !== undefined) return this.#finish();
    this.#writeIfDue();
    this.#drainIfWanted();
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
    if (this.#settled()) return this.#cleanUp();
    if (error !== null) return this.#fail(fileSystemError(error, 'writing', this.#part, this.#target.shownUrl));
    if (this.#flush !== undefined) return this.#finish();
    if (this.#heldBytes >= WRITE_BATCH_BYTES) this.#writeHeld();
    this.#drainIfWanted();
  }

  #drainIfWanted(): void {
    if (this.#full && !this.#mustWait()) {
      this.#full = false;
      this.#handler?.onSinkDrain();
    }
  }

  /** Committing: writes what is held, then closes the part file. */
  #finish(): void {
    if (this.#fd === -1) {
      // Resuming a short rest: the part file is opened (to append) only now.
      if (!this.#opening) this.#open();
      return;
    }
    if (this.#writing) return;
    if (this.#heldBytes > 0) return this.#writeHeld();
    // Complete: the writer thread closes it as it renames it.
    this.#flush!.resolve();
  }

  /** True once the body will not be kept: cleaned up as soon as nothing is in flight. */
  #settled(): boolean {
    return this.#failure !== undefined || (this.#closed && this.#flush === undefined);
  }

  /** An open (or the resume record) failed: a file-system failure, unless the body was given up meanwhile. */
  #failed(error: unknown, action: string): void {
    this.#opening = false;
    if (this.#settled()) return this.#cleanUp();
    this.#fail(fileSystemError(error, action, this.#part, this.#target.shownUrl));
  }

  /** Fails on the sink's side: the part file goes, and whoever waits on this entry hears why. */
  #fail(failure: ImgdlError): void {
    this.#failure = failure;
    this.#held = [];
    if (!this.#writing && !this.#opening) this.#cleanUp();
    const flush = this.#flush;
    this.#flush = undefined;
    if (flush !== undefined) flush.reject(failure);
    else this.#handler?.onSinkError(failure);
  }

  /** Closes the part file and, unless it is kept to resume, removes it: on the writer thread, which opened it. */
  #cleanUp(): void {
    const early = this.#early;
    this.#early = undefined;
    let dropping: Promise<unknown>;
    if (early !== undefined) {
      // Opened early and never taken: closed and removed once its open is back (nothing to remove if it failed).
      dropping = early.then((fd) => this.#sink.writer.run({ op: 'drop', fd, files: [this.#part] }));
    } else {
      const fd = this.#fd;
      this.#fd = -1;
      // Kept, with its resume record, only when it holds bytes a later run can continue.
      const files = (fd !== -1 || this.#start > 0) && !this.#keep ? [this.#part, partMetaPath(this.#part)] : [];
      if (fd === -1 && files.length === 0) return this.#cleanedUp();
      dropping = this.#sink.writer.run({ op: 'drop', fd, files });
    }
    const done = (): void => this.#cleanedUp();
    this.#dropped = dropping.then(done, done);
  }

  #cleanedUp(): void {
    this.#cleaned?.();
    this.#cleaned = undefined;
  }
}
