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
 *
 * A sink that keeps every row of the list, not only the bodies (a tar shard
 * with its table of what happened to each row), also hears of rows by their
 * list position: {@link Sink.rowAt} as each is planned, {@link Sink.settle}
 * as each ends, whether or not an entry was ever opened for it, and
 * {@link Sink.end} when the run is over. A folder of files needs none of them.
 */
import type { ImgdlError } from '../errors.js';
import type { ListItem } from '../input/source.js';
import type { ItemResult } from '../record/record.js';

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

/** What is known of a body as it is kept, for a sink that keeps more than bytes (a tar shard's sample). */
export interface KeepFacts {
  /** The row's 0-based position in the whole list, which keys it in a dataset. */
  readonly position: number;
  /** The row as listed: its URL as written and its fields (caption, saved columns). */
  readonly item: ListItem;
  /** The type of the bytes being kept (`jpeg`, `png`, `webp`…), when recognised. */
  readonly imageType?: string | undefined;
  /** The size in pixels of the bytes being kept, when known. */
  readonly width?: number | undefined;
  readonly height?: number | undefined;
  /** The size before any resize (equal to `width`/`height` when none). */
  readonly originalWidth?: number | undefined;
  readonly originalHeight?: number | undefined;
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
   * `facts` say what the bytes are, for a sink that keeps them with more than
   * a name. Rejects with FILESYSTEM or DISK_FULL.
   */
  commit(relPath: string, facts: KeepFacts): Promise<string>;
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
  /**
   * Whether the row at list position `position` is this run's, asked once per row in list order
   * before it is planned: `'fetch'` to plan it as usual; `{ kept }` when an earlier run kept it
   * already (it is skipped as `exists` under that name, with no request); undefined when it is not
   * this run's at all (another machine's slice), which leaves it out as another shard's row is.
   * Absent, every row is the run's.
   */
  rowAt?(position: number): 'fetch' | { kept: string } | undefined;
  /**
   * The row at `position` has ended with `result`, whatever happened to it (planned, failed before
   * any entry was opened, skipped, kept): called for every record of the run, in completion order,
   * after the entry's commit or abort. Never throws: a failure of the sink's own files comes from {@link end}.
   */
  settle?(position: number, result: ItemResult): void;
  /**
   * The run is over: `rows` is the list's length when it was read to its end, undefined when the
   * run stopped before. Resolves once what the sink writes is on disk; whatever could not be
   * completed is left as a part file. Rejects with FILESYSTEM or DISK_FULL.
   */
  end?(rows: number | undefined): Promise<void>;
}
