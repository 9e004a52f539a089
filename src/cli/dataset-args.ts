/**
 * The flags of what the output looks like as a dataset (`--format`,
 * `--shard-size`), declared for a plain run, and {@link datasetOptions},
 * which turns them into the library's {@link DatasetOptions}.
 */
import { DATASET_DEFAULTS, FORMATS, type DatasetOptions, type Format } from '../dataset-options.js';
import type { RunOption } from './item-args.js';

/** What {@link DATASET_OPTIONS} parse. */
export interface DatasetArgv {
  format: string;
  shardSize: number;
}

/** The flags of {@link DatasetOptions}, with the library's defaults. */
export const DATASET_OPTIONS = {
  format: {
    type: 'string',
    choices: FORMATS as string[],
    default: DATASET_DEFAULTS.format,
    describe:
      'files: one file per image; webdataset: tar shards 00000.tar… in -o (KEY.jpg, KEY.json, KEY.txt; KEY the row position), ' +
      'each with a .parquet table of every row and a _stats.json. With --shard K/N it takes whole tar shards (number mod N = K)',
  },
  'shard-size': {
    type: 'number',
    default: DATASET_DEFAULTS.shardSize,
    describe: 'Rows per tar shard with --format webdataset',
  },
} as const satisfies Record<string, RunOption>;

/** The {@link DatasetOptions} that {@link DATASET_OPTIONS} set. */
export function datasetOptions(argv: DatasetArgv): Required<{ [K in keyof DatasetOptions]: DatasetOptions[K] }> {
  return { format: argv.format as Format, shardSize: argv.shardSize };
}
