/**
 * The options of what a run's output looks like as a dataset: plain files,
 * or WebDataset tar shards with a Parquet table and stats beside each
 * (`--format`, `--shard-size`). Their fields join {@link ItemOptions} in
 * options.ts, their defaults its `DEFAULTS`, and {@link resolveDataset}
 * checks them inside `resolveOptions()`.
 */
import { integer, oneOf, type Layout } from './option-values.js';

/** What the output is made of. */
export type Format = 'files' | 'webdataset';

/** Every `format`. */
export const FORMATS: readonly Format[] = ['files', 'webdataset'];

/** The fixed defaults of {@link DatasetOptions}, spread into options.ts' `DEFAULTS`. */
export const DATASET_DEFAULTS = Object.freeze({
  format: 'files',
  shardSize: 10_000,
} as const);

/** The largest `shardSize`: a shard's table is held in memory until the shard ends. */
const MAX_SHARD_SIZE = 1_000_000;

/** How the output is laid out as a dataset; part of `ItemOptions`. */
export interface DatasetOptions {
  /**
   * What the output is made of [`--format`]. `'files'`: one file per image, as `layout` names it.
   * `'webdataset'`: tar shards `00000.tar`, `00001.tar`, … in `out`, each sample `KEY.EXT`
   * (the image), `KEY.json` and `KEY.txt` (the caption), where KEY is the row's list position in 9
   * digits; beside each tar a Parquet table with one row per list row (`00000.parquet`) and its
   * stats (`00000_stats.json`, written last). Items are then named by position, as the sharded layout
   * names them (`layout` is ignored), `shard` takes whole tar shards (those whose number modulo N is K),
   * and a rerun skips the shards whose stats exist. In `mode: 'workers'` the threads forward their
   * samples to the main thread, the one writer of the shards.
   * @default 'files'
   */
  format?: Format | undefined;
  /**
   * Rows per tar shard with `format: 'webdataset'` [`--shard-size`], from 1 to 1,000,000: the row at
   * position P goes to shard `floor(P / shardSize)`.
   * @default 10000
   */
  shardSize?: number | undefined;
}

/** {@link DatasetOptions} checked, with their defaults applied. */
export interface ResolvedDataset {
  format: Format;
  shardSize: number;
}

/**
 * Checks {@link DatasetOptions}; throws `OptionError` naming the option and the value. With
 * `'webdataset'` the result also sets `layout` to `'sharded'` (it is spread after the layout in
 * options.ts), since a shard's samples are named by position and need no registry of names.
 */
export function resolveDataset(options: DatasetOptions): ResolvedDataset & { layout?: Layout } {
  const format = oneOf('format', options.format, FORMATS, DATASET_DEFAULTS.format);
  const shardSize = integer('shardSize', options.shardSize, DATASET_DEFAULTS.shardSize, 1, MAX_SHARD_SIZE);
  return format === 'files' ? { format, shardSize } : { format, shardSize, layout: 'sharded' };
}
