/**
 * What a WebDataset shard says about its rows beside its tar: a Parquet
 * table with one row per list row, whatever happened to it, and the shard's
 * stats (counts by status, error code and skip reason, bytes, wall time).
 * Column names follow img2dataset's (`original_width`, `sha256`…), so that
 * tools written for its output read ours.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import type { ColumnSource } from 'hyparquet-writer';
import { fileSystemError } from '../errors.js';
import type { ItemResult } from '../record/record.js';

/** A shard's number as its files are named: `00042`. */
export function shardName(shard: number): string {
  return String(shard).padStart(5, '0');
}

/** A row's key: its list position in 9 digits. */
export function sampleKey(position: number): string {
  return String(position).padStart(9, '0');
}

/** How a record's status reads in a dataset's table (img2dataset says `success`). */
export function datasetStatus(status: ItemResult['status']): string {
  return status === 'ok' ? 'success' : status;
}

/** The caption and the saved columns a row carried, apart. */
export function splitFields(fields: Readonly<Record<string, unknown>> | undefined): {
  caption: string | null;
  saved: Record<string, unknown>;
} {
  if (fields === undefined) return { caption: null, saved: {} };
  const { caption, ...saved } = fields;
  return { caption: caption === undefined || caption === null ? null : String(caption), saved };
}

/** One row of a shard's table. */
interface TableRow {
  key: string;
  url: string;
  caption: string | null;
  saved: Record<string, unknown>;
  status: string;
  errorCode: string | null;
  errorMessage: string | null;
  skipReason: string | null;
  width: number | null;
  height: number | null;
  originalWidth: number | null;
  originalHeight: number | null;
  sha256: string | null;
}

/**
 * hyparquet-writer, imported on a shard's first table. Loaded up front (even unused) it made a plain
 * run of large files collect its old generation 35 times instead of twice, doubling its user CPU.
 */
let writerModule: Promise<typeof import('hyparquet-writer')> | undefined;
function parquetWriter(): Promise<typeof import('hyparquet-writer')> {
  return (writerModule ??= import('hyparquet-writer'));
}

/** A shard's stats as `NNNNN_stats.json` holds them. */
export interface ShardStats {
  shard: string;
  /** Rows of the list in the shard (every status). */
  count: number;
  /** Rows by status: `success`, `failed`, `skipped`. */
  status: Record<string, number>;
  /** Failed rows by error code. */
  errors: Record<string, number>;
  /** Skipped rows by reason. */
  skipReasons: Record<string, number>;
  /** Bytes of the images in the tar. */
  bytes: number;
  /** From the shard's first row to its files' rename, in ms; with the times, in ms since the epoch. */
  wallMs: number;
  startTime: number;
  endTime: number;
}

/** A shard's table and counts as its rows end. */
export class ShardTable {
  readonly #rows: TableRow[] = [];
  readonly #savedNames = new Set<string>();
  readonly #status: Record<string, number> = {};
  readonly #errors: Record<string, number> = {};
  readonly #skipReasons: Record<string, number> = {};
  #bytes = 0;

  /** Rows added so far. */
  get size(): number {
    return this.#rows.length;
  }

  /** Adds the row at `position`, ended with `result`; `sha256` is that of its sample's image when it has one. */
  add(position: number, result: ItemResult, sha256: string | undefined, bytes: number): void {
    const { caption, saved } = splitFields(result.fields);
    for (const name of Object.keys(saved)) this.#savedNames.add(name);
    const status = datasetStatus(result.status);
    this.#rows.push({
      key: sampleKey(position),
      url: result.url,
      caption,
      saved,
      status,
      errorCode: result.error?.code ?? null,
      errorMessage: result.error?.message ?? null,
      skipReason: result.skipReason,
      width: result.width ?? null,
      height: result.height ?? null,
      originalWidth: result.originalWidth ?? result.width ?? null,
      originalHeight: result.originalHeight ?? result.height ?? null,
      sha256: sha256 ?? null,
    });
    count(this.#status, status);
    if (result.error) count(this.#errors, result.error.code);
    if (result.skipReason) count(this.#skipReasons, result.skipReason);
    this.#bytes += bytes;
  }

  /** Writes the table as Parquet to `file`, through a temporary name, so that `file` is whole or absent. */
  async writeParquet(file: string): Promise<void> {
    const { parquetWriteBuffer } = await parquetWriter();
    const rows = this.#rows;
    const strings = (pick: (row: TableRow) => string | null): ColumnSource['data'] => rows.map(pick);
    const ints = (pick: (row: TableRow) => number | null): ColumnSource['data'] => rows.map(pick);
    const columns: ColumnSource[] = [
      { name: 'key', data: strings((r) => r.key), type: 'STRING' },
      { name: 'url', data: strings((r) => r.url), type: 'STRING' },
      { name: 'caption', data: strings((r) => r.caption), type: 'STRING' },
      // Saved columns keep their names; a value that is not text is written as its JSON.
      ...[...this.#savedNames].map((name): ColumnSource => ({ name, data: strings((r) => columnText(r.saved[name])), type: 'STRING' })),
      { name: 'status', data: strings((r) => r.status), type: 'STRING' },
      { name: 'error_code', data: strings((r) => r.errorCode), type: 'STRING' },
      { name: 'error_message', data: strings((r) => r.errorMessage), type: 'STRING' },
      { name: 'skip_reason', data: strings((r) => r.skipReason), type: 'STRING' },
      { name: 'width', data: ints((r) => r.width), type: 'INT32' },
      { name: 'height', data: ints((r) => r.height), type: 'INT32' },
      { name: 'original_width', data: ints((r) => r.originalWidth), type: 'INT32' },
      { name: 'original_height', data: ints((r) => r.originalHeight), type: 'INT32' },
      { name: 'sha256', data: strings((r) => r.sha256), type: 'STRING' },
    ];
    writeAtomically(file, Buffer.from(parquetWriteBuffer({ columnData: columns })));
  }

  /** The shard's stats, from `startTime` to `endTime` (ms since the epoch). */
  stats(shard: number, startTime: number, endTime: number): ShardStats {
    return {
      shard: shardName(shard),
      count: this.#rows.length,
      status: { ...this.#status },
      errors: { ...this.#errors },
      skipReasons: { ...this.#skipReasons },
      bytes: this.#bytes,
      wallMs: Math.round(endTime - startTime),
      startTime: Math.round(startTime),
      endTime: Math.round(endTime),
    };
  }
}

/** Writes `bytes` to `file` through a temporary name beside it, then renames: a reader sees all of it or nothing. */
export function writeAtomically(file: string, bytes: Buffer | string): void {
  const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, bytes);
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw fileSystemError(error, 'writing', file);
  }
}

/** A saved column's value as table text: text as it is, anything else as its JSON; null when absent. */
function columnText(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function count(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
