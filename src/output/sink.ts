/**
 * The seam between an item's life and where its bytes end up. A sink takes a
 * body that has been judged worth keeping and keeps it: `open` (as the
 * request is sent) → `write` (chunk by chunk, with backpressure) → `commit`
 * under its final name, or `abort`. The item never knows which sink it
 * holds, as a caller of Node's `Writable` does not know what is behind
 * `_write`/`_final`/`_destroy`, nor a caller of undici's `Dispatcher` what is
 * behind `dispatch`. A folder of files ({@link FolderSink} in folder-sink.ts)
 * is the first; a tar shard is another.
 *
 * The sink decides how a body is kept, small bodies included: whether it is
 * held in memory until `commit` or streamed to disk as it arrives is the
 * sink's business alone.
 */
import type { ImgdlError } from '../errors.js';

/** Where one item's body is meant to go, as planned (a response may still change the name). */
export interface SinkTarget {
  /** The URL as requested: a sink may tie what it keeps for a later run to it. */
  readonly url: URL;
  /** The URL as it may be shown (credentials redacted), for error messages. */
  readonly shownUrl: string;
  /** The planned name, relative to the output, `/`-separated. */
  readonly relPath: string;
  /** `relPath` resolved inside the output folder when the item was planned (refused there when unsafe). */
  readonly finalPath: string;
}

/** What a sink kept of a body from an earlier run, which a ranged request may continue. */
export interface Resume {
  /** Bytes already kept. */
  readonly size: number;
  /** The first bytes already kept (up to what judging a head needs). */
  readonly head: Buffer;
  /** The validator to send in If-Range. */
  readonly validator: string;
  /** The ETag the kept bytes came with, when there was one. */
  readonly etag?: string | undefined;
  /** The Last-Modified the kept bytes came with, when there was one. */
  readonly lastModified?: string | undefined;
  /** Shows the kept bytes to `through`, in order (a digest covers the whole body). */
  replay(through: { see(chunk: Buffer): void }): Promise<void>;
  /** Drops the kept bytes: the server no longer continues them. */
  discard(): Promise<void>;
}

/** What is known of a body once its response has arrived. */
export interface BodyStart {
  /** The earlier bytes this body continues (a 206 that matched), or undefined for a body from its first byte. */
  resume: Resume | undefined;
  /** How a later run could check the server still has the same body: a strong ETag, else Last-Modified. */
  validator: { etag: string } | { lastModified: string } | undefined;
  /** The whole body's size (earlier bytes included), when the server announced it. */
  expectedTotal: number | undefined;
  /** The response's Last-Modified, which the kept file's modification time follows (see `remoteTime`). */
  lastModified?: string | undefined;
}

/** Who hears from an entry between writes, as a Dispatcher's handler hears from it. */
export interface SinkHandler {
  /** A write that returned false may now be followed by more. */
  onSinkDrain(): void;
  /** Keeping failed on the sink's side (a full disk): no more writes are taken. */
  onSinkError(error: ImgdlError): void;
}

/** One body being kept; made by {@link Sink.open}. */
export interface SinkEntry {
  /** The response has arrived: what it is, and who to tell when writes may go on or have failed. */
  begin(start: BodyStart, handler: SinkHandler): Promise<void>;
  /** Takes the next judged chunk; false asks for no more until {@link SinkHandler.onSinkDrain}. */
  write(chunk: Buffer): boolean;
  /**
   * The body is complete and wanted under `relPath`: keeps it there and
   * resolves with the name it was kept under, relative to the output and
   * `/`-separated (another one when the sink would not replace a file).
   * Rejects with FILESYSTEM or DISK_FULL.
   */
  commit(relPath: string): Promise<string>;
  /**
   * The body is not kept (a failure, a skip, or the run stopping); a no-op
   * after {@link commit}. With `keepResumable`, bytes a later run can
   * continue stay where it will find them. Resolves once nothing is left in
   * flight.
   */
  abort(keepResumable: boolean): Promise<void>;
}

/** Where a run's bodies are kept. */
export interface Sink {
  /**
   * True when a body is already kept under `relPath` (by default the
   * target's planned name), so that `--on-exists skip` leaves it. For the
   * planned name, what an older try left unfinished beside it is cleared:
   * nothing will continue it.
   */
  has(target: SinkTarget, relPath?: string): Promise<boolean>;
  /**
   * When the body kept under the target's planned name was last modified, in ms since the epoch, for
   * `--on-exists update`'s If-Modified-Since; undefined when none is kept. A sink without it is always asked afresh.
   */
  keptAt?(target: SinkTarget): Promise<number | undefined>;
  /** What an earlier run kept of `target` that a ranged request may continue; asked before a first try only. */
  resumable(target: SinkTarget): Promise<Resume | undefined>;
  /** Opens a place for one body as its request is sent, so that a slow open overlaps the request. */
  open(target: SinkTarget, resume: Resume | undefined): SinkEntry;
}
