/**
 * The record: what imgdl says about one item once it has finished, and the
 * manifest that keeps those records as JSON Lines while the run goes on.
 */
import fs from 'node:fs';
import type { ErrorRecord } from './errors.js';
import { fileSystemError } from './write.js';

/** How an item ended. */
export type ItemStatus = 'ok' | 'skipped' | 'failed';

/** Why an item was skipped. */
export type SkipReason = 'exists' | 'duplicate';

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
  /** Set when status is `skipped`. */
  skipReason: SkipReason | null;
  /** Set when status is `failed`. */
  error: ErrorRecord | null;
}

/**
 * Appends one JSON line per record as records arrive. Each line is written
 * synchronously so that a run killed at any moment keeps every record it
 * finished.
 */
export class ManifestWriter {
  readonly #fd: number;
  readonly #file: string;

  constructor(file: string) {
    this.#file = file;
    try {
      this.#fd = fs.openSync(file, 'w');
    } catch (error) {
      throw fileSystemError(error, 'opening manifest', file);
    }
  }

  write(record: ItemResult): void {
    fs.writeSync(this.#fd, JSON.stringify(record) + '\n');
  }

  close(): void {
    try {
      fs.closeSync(this.#fd);
    } catch (error) {
      throw fileSystemError(error, 'closing manifest', this.#file);
    }
  }
}
