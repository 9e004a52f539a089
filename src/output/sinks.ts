/**
 * Which sink a run keeps its bodies in, decided from its options alone, so
 * that a new kind of sink (a tar shard) is chosen here and nothing in the
 * item or the run has to change.
 */
import type { ResolvedOptions } from '../options.js';
import type { PartIndex } from './folder-listing.js';
import { FolderSink } from './folder-sink.js';
import { ShardSink } from './shard-sink.js';
import type { Sink } from './sink.js';

/** The sink for a run with `options`; `parts` is what the output folders held when it started. */
export function sinkFor(options: ResolvedOptions, parts: PartIndex): Sink {
  return options.format === 'webdataset' ? new ShardSink(options) : new FolderSink(options, parts);
}
