/**
 * Opening a list file in its format: text lines, CSV, TSV, JSON Lines or
 * Parquet, by extension or as told, gunzipped as it streams when it ends in
 * `.gz`. Opening reads as far as the columns (a header, the first JSON
 * object, a Parquet footer), so a missing column is a usage error before
 * the run makes any request.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UsageError } from '../errors.js';
import { DEFAULT_COLUMNS, RowLayout, type ColumnChoice } from './columns.js';
import type { ListItem } from './source.js';
import { readListBatches } from './text-list.js';

/** The formats a list can be read in. */
export const LIST_FORMATS = ['txt', 'csv', 'tsv', 'jsonl', 'parquet'] as const;

/** A list's format: `txt` is one URL (and optional NAME) per line. */
export type ListFormat = (typeof LIST_FORMATS)[number];

/** How lists are read. */
export interface ListReading {
  /** Every list's format; by default each file's extension says, and stdin is text. */
  format?: ListFormat | undefined;
  /** The columns read from structured lists; by default `url`, nothing carried. */
  columns?: ColumnChoice | undefined;
}

/** A list opened for reading, named as messages name it (`stdin` for `-`). */
export interface OpenedList {
  name: string;
  /** Its items, an array at a time, as they are read. */
  batches(): AsyncIterable<ListItem[]>;
  /** Lets go of the file when the list will not be read (stdin is left alone). */
  close(): Promise<void>;
}

/** Extensions that say a format; anything else is a text list, as every list was before. */
const EXTENSIONS: Record<string, ListFormat> = { txt: 'txt', csv: 'csv', tsv: 'tsv', jsonl: 'jsonl', ndjson: 'jsonl', parquet: 'parquet' };

/** The format a file's name says (`a.csv.gz` is gzipped CSV), `txt` when it says none. */
export function formatOf(file: string): { format: ListFormat; gzip: boolean } {
  const lower = file.toLowerCase();
  const gzip = lower.endsWith('.gz');
  const base = gzip ? lower.slice(0, -3) : lower;
  const dot = base.lastIndexOf('.');
  const slash = Math.max(base.lastIndexOf('/'), base.lastIndexOf('\\'));
  const format = dot > slash ? EXTENSIONS[base.slice(dot + 1)] : undefined;
  return { format: format ?? 'txt', gzip };
}

/**
 * Opens `file` (`-` for stdin) to be read in its format, throwing a
 * {@link UsageError} for what cannot be read: a missing or unreadable file,
 * Parquet from stdin or gzipped, a missing column.
 */
export async function openList(file: string, reading: ListReading = {}): Promise<OpenedList> {
  const stdin = file === '-';
  const name = stdin ? 'stdin' : file;
  const named = stdin ? { format: 'txt' as const, gzip: false } : formatOf(file);
  const format = reading.format ?? named.format;
  const layout = new RowLayout(reading.columns ?? DEFAULT_COLUMNS);
  if (format === 'parquet') {
    if (stdin) throw new UsageError('a Parquet list cannot be read from stdin (it is read from its end): give it with -i FILE');
    if (named.gzip) throw new UsageError(`${file}: a Parquet list cannot be gzipped (it compresses its own columns)`);
    // Each reader is loaded when a list needs it: a text run does not pay for hyparquet or csv-parse.
    const { openParquetFile } = await import('./parquet-list.js');
    const list = await openParquetFile(file, name, layout);
    return { name, batches: () => list.batches(), close: () => list.close() };
  }
  const stream = stdin ? process.stdin : await openStream(file, named.gzip);
  const close = async (): Promise<void> => {
    if (!stdin) stream.destroy();
  };
  try {
    const batches = await openBatches(stream, name, format, layout);
    return { name, batches: () => batches, close };
  } catch (error) {
    await close();
    // A gzip or read error before the run started is the list's problem, told as one.
    throw error instanceof UsageError ? error : new UsageError(`cannot read ${name}: ${(error as Error).message}`);
  }
}

/** A file's bytes as they stream, gunzipped when `gzip`. */
async function openStream(file: string, gzip: boolean): Promise<Readable> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (error) {
    throw new UsageError(`cannot read input file ${file}: ${(error as { code?: string }).code ?? 'error'}`);
  }
  const stream = createReadStream('', { fd: handle });
  if (!gzip) return stream;
  // A gzip error surfaces on the gunzip stream, which the reader iterates; the callback only keeps it from being thrown twice.
  return pipeline(stream, createGunzip(), () => {});
}

/** A stream's items in `format`, read up to its columns now and the rest as iterated. */
async function openBatches(stream: Readable, name: string, format: ListFormat, layout: RowLayout): Promise<AsyncIterable<ListItem[]>> {
  switch (format) {
    case 'csv':
    case 'tsv':
      return (await import('./csv-list.js')).openDelimited(stream, name, layout, format === 'csv' ? ',' : '\t');
    case 'jsonl':
      return (await import('./jsonl-list.js')).openJsonLines(stream, name, layout);
    default:
      return readListBatches(stream, name);
  }
}
