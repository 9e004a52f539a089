/**
 * The record: what imgdl says about one item once it has finished, and the
 * manifest that keeps those records as JSON Lines while the run goes on.
 */
import fs from 'node:fs';
import { createInterface } from 'node:readline';
import { fileSystemError, type ErrorRecord } from '../errors.js';
import { fingerprint, FingerprintSet, type Fingerprint } from '../names/fingerprints.js';

/** How an item ended. */
export type ItemStatus = 'ok' | 'skipped' | 'failed';

/**
 * Why an item was skipped: its file exists, it was listed before, the manifest of an earlier run says it is done,
 * (with dedupe) its content was already saved this run, its server opted it out of datasets (`X-Robots-Tag`),
 * or (with image checks) it is smaller than `minSize` or more elongated than `maxAspectRatio`.
 */
export type SkipReason = 'exists' | 'duplicate' | 'manifest' | 'same-content' | 'not-modified' | 'opted-out' | 'too-small' | 'aspect-ratio';

/** One finished item: a line of the manifest, a value yielded by `download()`. */
export interface ItemResult {
  /** The URL as listed, credentials redacted. */
  url: string;
  /** Where the item came from: a list file path, `stdin`, `argv` or `api`. */
  source: string;
  /** 1-based line in `source` (argument position for `argv`, index for `api`). */
  line: number;
  status: ItemStatus;
  /** The saved file relative to the output folder, with `/` separators; null when nothing was saved. */
  path: string | null;
  /** Bytes written (0 when nothing was saved). */
  bytes: number;
  /** Time spent on the item, from the start of its first request to the file's rename, in ms. */
  ms: number;
  /** Status of the last response received, null when none was. */
  httpStatus: number | null;
  /** Requests made for the item (0 when it was decided without one). */
  attempts: number;
  /** Content-Type the server declared, null when unknown. */
  contentType: string | null;
  /** The type the body's first bytes showed (`image/png`), null when not sniffed (`anyType`, or no body). */
  sniffedType: string | null;
  /** Set when status is `skipped`. */
  skipReason: SkipReason | null;
  /** Set when status is `failed`. */
  error: ErrorRecord | null;
  /** `algorithm:hex` of the bytes received, when `hash` (or `dedupe`) is on. */
  digest?: string;
  /** Image type read from the header bytes (`jpeg`, `png`, `gif`, `webp`, `bmp`), when recognised. */
  imageType?: string;
  /** Width in pixels from the header, when recognised (of the bytes kept, when the image was resized). */
  width?: number;
  /** Height in pixels from the header, when recognised (of the bytes kept, when the image was resized). */
  height?: number;
  /** With image work (resizing, re-encoding): the image's width as received, after its EXIF orientation. */
  originalWidth?: number;
  /** With image work: the image's height as received, after its EXIF orientation. */
  originalHeight?: number;
  /** With `dedupe`: the saved file (relative path) whose content this item repeats; the item is skipped as `same-content`. */
  duplicateOf?: string;
  /** The response's ETag, when it sent one: a later `--on-exists update` run sends it as If-None-Match. */
  etag?: string;
  /** The response's Last-Modified, when it sent one. */
  lastModified?: string;
  /** The fields its source gave the item, as given; absent when it gave none. */
  fields?: Readonly<Record<string, unknown>>;
}

/**
 * Appends one JSON line per record as records arrive. Each line is written
 * synchronously so that a run killed at any moment keeps every record it
 * finished. An existing manifest is appended to, never truncated: it is the
 * memory of earlier runs that {@link readDoneKeys} reads.
 */
export class ManifestWriter {
  readonly #fd: number;
  readonly #file: string;

  constructor(file: string) {
    this.#file = file;
    try {
      this.#fd = fs.openSync(file, 'a');
    } catch (error) {
      throw fileSystemError(error, 'opening manifest', file);
    }
  }

  /** Appends `record`; throws FILESYSTEM (or DISK_FULL) when the line cannot be written. */
  write(record: ItemResult): void {
    try {
      fs.writeSync(this.#fd, JSON.stringify(record) + '\n');
    } catch (error) {
      throw fileSystemError(error, 'writing manifest', this.#file);
    }
  }

  close(): void {
    try {
      fs.closeSync(this.#fd);
    } catch (error) {
      throw fileSystemError(error, 'closing manifest', this.#file);
    }
  }
}

/**
 * The items an earlier run's manifest records as done: `ok`, or skipped
 * because their file existed, by the fingerprint of their URL as recorded
 * (credentials redacted). The last record of a URL wins, so an item that
 * failed after succeeding is tried again. Streams the file and keeps 8 bytes
 * per done item (about 9–11 with the table's free slots), so a manifest of
 * millions of lines fits. Undefined when `file` is missing or not a regular
 * file (e.g. `/dev/stdout`); unreadable lines are ignored.
 */
export async function readDoneKeys(file: string): Promise<FingerprintSet | undefined> {
  let stream: fs.ReadStream;
  try {
    if (!fs.statSync(file).isFile()) return undefined;
    stream = fs.createReadStream(file, { encoding: 'utf8' });
  } catch {
    return undefined;
  }
  const done = new FingerprintSet();
  const key: Fingerprint = { hi: 0, lo: 0 };
  try {
    for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
      const record = parseRecord(line);
      if (record === undefined) continue;
      fingerprint(record.url, key);
      if (record.status === 'ok' || (record.status === 'skipped' && record.skipReason !== 'duplicate')) done.add(key);
      else if (record.status === 'failed') done.delete(key);
    }
  } catch (error) {
    throw fileSystemError(error, 'reading manifest', file);
  }
  return done;
}

/**
 * The last ETag an earlier run's manifest recorded for each URL (credentials redacted), for the
 * If-None-Match of `--on-exists update`; a later line without one (a 304) keeps it. Empty when `file`
 * is missing. Holds a string pair per URL with an ETag, so it is read only in that mode.
 */
export async function readEtags(file: string): Promise<Map<string, string>> {
  const etags = new Map<string, string>();
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return etags;
  try {
    const input = fs.createReadStream(file, { encoding: 'utf8' });
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      const record = parseRecord(line);
      if (typeof record?.etag === 'string') etags.set(record.url, record.etag);
    }
  } catch (error) {
    throw fileSystemError(error, 'reading manifest', file);
  }
  return etags;
}

const STATUSES: ReadonlySet<string> = new Set(['ok', 'skipped', 'failed']);

/** A manifest record as read back: its URL and status checked, every other field as it was written. */
export type ReadRecord = Partial<ItemResult> & Pick<ItemResult, 'url' | 'status'>;

/**
 * A manifest line as the record it holds, or undefined when it holds none (a
 * blank line, one cut short by a crash): the one reader of manifest lines,
 * for a rerun's done items and a report alike.
 */
export function parseRecord(line: string): ReadRecord | undefined {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof record !== 'object' || record === null) return undefined;
  const { url, status } = record as Partial<ItemResult>;
  return typeof url === 'string' && STATUSES.has(status as string) ? (record as ReadRecord) : undefined;
}
