/**
 * The flags of how the CLI reads its list files: the format (by extension
 * unless `--input-format` says), and which columns of a structured list
 * (CSV, TSV, JSONL, Parquet) hold the URL, the caption and what else is
 * carried into the manifest. They are the CLI's alone: the library takes
 * items, however they were read.
 */
import { UsageError } from '../errors.js';
import { LIST_FORMATS, type ListFormat, type ListReading } from '../input/open-list.js';
import type { RunOption } from './item-args.js';

/** The column holding the URL when `--url-col` is not given. */
export const DEFAULT_URL_COLUMN = 'url';

/** The flags of how lists are read, as yargs declares them. */
export const INPUT_OPTIONS = {
  'input-format': {
    type: 'string',
    choices: [...LIST_FORMATS],
    requiresArg: true,
    defaultDescription: 'by extension: .txt .csv .tsv .jsonl .parquet, each but .parquet also .gz; stdin: txt',
    describe: 'Read every -i list (and stdin) in this format',
  },
  'url-col': {
    type: 'string',
    requiresArg: true,
    default: DEFAULT_URL_COLUMN,
    describe: 'Column (CSV, TSV, Parquet) or key (JSONL) that holds the URL',
  },
  'caption-col': {
    type: 'string',
    requiresArg: true,
    defaultDescription: 'none',
    describe: 'Column carried into the manifest as fields.caption',
  },
  'save-cols': {
    type: 'string',
    requiresArg: true,
    defaultDescription: 'none',
    describe: 'Columns carried into the manifest under their own names, comma-separated: id,license',
  },
} as const satisfies Record<string, RunOption>;

/** What {@link INPUT_OPTIONS} parse. */
export interface InputArgv {
  inputFormat: string | undefined;
  urlCol: string;
  captionCol: string | undefined;
  saveCols: string | undefined;
}

/** How the lists are read, from {@link INPUT_OPTIONS}; throws {@link UsageError} for an empty column name. */
export function listReading(argv: InputArgv): ListReading {
  const url = argv.urlCol.trim();
  if (url === '') throw new UsageError('--url-col needs a column name');
  const caption = argv.captionCol?.trim();
  if (caption === '') throw new UsageError('--caption-col needs a column name');
  const save = (argv.saveCols ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (argv.saveCols !== undefined && save.length === 0)
    throw new UsageError(`--save-cols needs column names, like id,license; got "${argv.saveCols}"`);
  return { format: argv.inputFormat as ListFormat | undefined, columns: { url, caption, save } };
}
