/**
 * How the CLI reads its arguments: the option tables yargs builds --help and
 * its messages from, the quick parse of a plain run that spares it loading
 * yargs, and the settings every imgdl parser shares.
 */
import type { Argv as Yargs } from 'yargs';
import parseAsText from 'yargs-parser';
import { UsageError } from '../errors.js';
// Only what parsing needs is imported up front: --help and --version must not pay for HTTP, pino or workers.
import { DEFAULTS, MODES, VERSION } from '../options.js';
import { DATASET_OPTIONS, type DatasetArgv } from './dataset-args.js';
import { INPUT_OPTIONS, type InputArgv } from './input-args.js';
import { ITEM_OPTIONS, type ItemArgv, type RunOption } from './item-args.js';

export { itemFlags, itemOptions, type ItemArgv } from './item-args.js';

/** What a plain run reads from its arguments, once parsed. */
export interface Argv extends ItemArgv, DatasetArgv, InputArgv {
  urls: string[];
  input: string[] | undefined;
  out: string;
  mode: string;
  concurrency: number;
  threads: number | undefined;
  dedupe: boolean;
  shard: string | undefined;
  manifest: string | undefined;
  json: boolean;
  quiet: boolean;
  verbose: number;
  grace: number;
  dryRun: boolean;
  progress: boolean;
  color: boolean | undefined;
}

/**
 * Every option of a plain run, as yargs declares them. yargs builds --help,
 * completion and its error messages from this table; {@link quickParse}
 * parses a plain run with the same table, without loading yargs.
 */
const RUN_OPTIONS = {
  input: {
    alias: 'i',
    type: 'string',
    array: true,
    defaultDescription: 'stdin, when no URL is given',
    describe: 'Read URLs from FILE: one per line, or rows of a .csv, .tsv, .jsonl or .parquet ("-" is stdin); repeatable',
  },
  ...INPUT_OPTIONS,
  out: { alias: 'o', type: 'string', default: DEFAULTS.out, describe: 'Output folder (created if missing)' },
  mode: { alias: 'm', type: 'string', choices: MODES as string[], default: DEFAULTS.mode, describe: 'How downloads are scheduled' },
  concurrency: { alias: 'c', type: 'number', default: DEFAULTS.concurrency, describe: 'Downloads in flight at once' },
  threads: { alias: 't', type: 'number', defaultDescription: 'one per CPU', describe: 'Worker threads in --mode workers' },
  dedupe: {
    type: 'boolean',
    default: DEFAULTS.dedupe,
    describe: 'Do not save a file whose content was already saved this run (hashes with sha256 unless --hash)',
  },
  ...ITEM_OPTIONS,
  ...DATASET_OPTIONS,
  shard: {
    type: 'string',
    requiresArg: true,
    defaultDescription: 'the whole list',
    describe:
      'Take slice K of N (K from 0 to N-1) of the list, by URL hash, e.g. --shard $JOB_COMPLETION_INDEX/8; ' +
      'with --format webdataset, whole tar shards instead (those whose number mod N is K)',
  },
  manifest: { type: 'string', defaultDescription: 'none', describe: 'Write one JSON line per item to FILE as items finish' },
  grace: {
    type: 'number',
    default: DEFAULTS.graceMs,
    describe: 'On Ctrl-C/SIGTERM, ms downloads in flight get to finish before they are stopped',
  },
  json: { type: 'boolean', default: false, describe: 'Print the run summary as JSON on stdout' },
  quiet: { alias: 'q', type: 'boolean', default: false, describe: 'Only errors on stderr; no summary' },
  verbose: { alias: 'v', type: 'count', defaultDescription: 'failures only', describe: 'More logs (-vv for debug)' },
  'dry-run': { alias: 'n', type: 'boolean', default: false, describe: 'Print each URL and the file it would be saved as; request nothing' },
  progress: { type: 'boolean', default: true, describe: 'Live progress line on stderr when it is a terminal (--no-progress: none)' },
  color: {
    type: 'boolean',
    defaultDescription: 'on for a terminal, off when NO_COLOR is set',
    describe: 'Colour in logs, progress and summary',
  },
} as const satisfies Record<string, RunOption>;

function parser(yargs: YargsModule['default'], args: string[]) {
  const y = yargs(args)
    .scriptName('imgdl')
    .usage('$0 [urls..] [options]\n\nDownload images from URLs given as arguments, in list files, or piped on stdin.')
    .command('$0 [urls..]', false)
    .command('bench', 'Time sequential, concurrent and workers modes on one list (imgdl bench --help)')
    .command('report', 'Merge manifests (shards, reruns) into one summary (imgdl report --help)')
    .command('enqueue', 'Add a list to a Redis queue as batches, for workers on many machines (imgdl enqueue --help)')
    .command('worker', "Download a Redis queue's batches into a folder (imgdl worker --help)")
    .command('status', "Show a Redis queue's progress across all workers (imgdl status --help)")
    .command('dashboard', "Serve bull-board and the queue's counts in a browser (imgdl dashboard --help)")
    .positional('urls', { type: 'string', array: true, default: [], describe: 'URLs to download' })
    .options(RUN_OPTIONS)
    .completion('completion', 'Print a shell completion script (bash/zsh): imgdl completion >> ~/.bashrc')
    .example('$0 https://example.com/a.jpg https://example.com/b.png -o photos', 'Two images into photos/')
    .example('$0 -i urls.txt -o photos -c 32', 'A list, 32 at a time')
    .example('cat urls.txt | $0 -o photos', 'A list piped on stdin')
    .example('$0 -i urls.txt --manifest run.jsonl --json > summary.json', 'Keep a manifest and a JSON summary')
    .example('$0 -i list.parquet --caption-col text --save-cols id --manifest run.jsonl', "A dataset's rows, captions and ids carried")
    .example('$0 -n -i urls.txt -o photos', 'Show where each URL would be saved, download nothing')
    .example('$0 -i urls.txt -o photos --layout sharded --shard 0/4 --manifest m0.jsonl', 'Slice 0 of 4 of a long list, named by position')
    .example('$0 -i urls.txt -o shards --format webdataset --shard 0/4', 'WebDataset tar shards 0, 4, 8… of the list, with their tables')
    .example('$0 -i urls.txt -H "Authorization: Bearer $TOKEN" --referer https://example.com/', 'Send extra headers')
    .example('$0 -i urls.txt --proxy http://proxy.lan:3128', 'Go through a proxy')
    .example('$0 https://10.0.0.5/a.jpg --cacert ca.pem', 'Trust a private CA');
  return strictParser(y, VERSION, args);
}

/**
 * What every imgdl parser shares: unknown flags refused, `-h`, help as wide as the terminal (100 columns at
 * most), and usage errors thrown as {@link UsageError} instead of printed with an exit, so that each command
 * chooses its own exit code. `version` is false for subcommands, which have none of their own.
 */
export function strictParser<T>(y: Yargs<T>, version: string | false, args: readonly string[]): Yargs<T> {
  return (
    (version === false ? y.strict().version(false) : y.strict().version(version))
      // getOptions() is yargs' own record of the options declared so far; its types leave it out.
      .middleware((argv) => keepTypedText(argv, args, (y as unknown as { getOptions(): ParserSettings }).getOptions()), true)
      .help()
      .alias('help', 'h')
      .wrap(Math.min(100, process.stdout.columns || 100))
      .exitProcess(false)
      .fail((message, error) => {
        throw error ?? new UsageError(message);
      })
  );
}

/** yargs' settings that {@link keepTypedText} parses with again. */
interface ParserSettings {
  alias: Record<string, string[]>;
  boolean: string[];
  count: string[];
  array: string[];
}

/**
 * yargs reads `-c abc` for a number option as NaN, so the message about it would
 * say `null` or `NaN` where the user typed `abc`. Parsing the same arguments
 * again with no option read as a number gives back what was typed, which then
 * reaches the option's own check and its message.
 */
function keepTypedText(argv: Record<string, unknown>, args: readonly string[], settings: ParserSettings): void {
  const nan = Object.keys(argv).filter((key) => [argv[key]].flat().some((value) => Number.isNaN(value)));
  if (nan.length === 0) return;
  const typed = parseAsText([...args], {
    alias: settings.alias,
    boolean: settings.boolean,
    count: settings.count,
    array: settings.array,
    configuration: { 'parse-numbers': false, 'parse-positional-numbers': false },
  });
  for (const key of nan) if (typed[key] !== undefined) argv[key] = typed[key];
}

/** The yargs module, loaded on demand by each command that needs its help and messages. */
export type YargsModule = typeof import('yargs');

/** What yargs-parser, the parser yargs itself runs, returns. */
type Parsed = Record<string, unknown> & { _: Array<string | number> };
type ParseArgs = (args: string[], options: Record<string, unknown>) => Parsed;

/** Arguments that only yargs answers (help, version, completion), or reads its own way (`--`). */
const YARGS_ONLY = new Set(['--help', '-h', '--version', 'completion', '--get-yargs-completions', '--']);

/**
 * A plain run's arguments, parsed without yargs: by yargs-parser, the parser
 * yargs itself runs, fed {@link RUN_OPTIONS} and yargs' own parser settings,
 * then checked as yargs' strict mode checks them (unknown options, choices,
 * options that need a value). Resolves to undefined whenever anything is off,
 * or help, version, completion or `--` is given, so that yargs parses again and
 * says what in its own words. yargs and its help machinery cost ~70–110 ms
 * of CPU to import on this kind of machine; its parser alone ~8 ms.
 */
export async function quickParse(args: readonly string[]): Promise<Argv | undefined> {
  if (args.some((arg) => YARGS_ONLY.has(arg))) return undefined;
  const { default: parse } = (await import('yargs-parser')) as unknown as { default: ParseArgs };
  const settings: Record<string, unknown> = { alias: {}, array: [], boolean: [], number: [], string: [], count: [], default: {} };
  const lists = settings as Record<'array' | 'boolean' | 'number' | 'string' | 'count', string[]>;
  const known = new Set(['_', '$0', 'urls']);
  for (const [name, option] of Object.entries(RUN_OPTIONS) as Array<[string, RunOption]>) {
    known.add(name).add(camel(name));
    if (option.alias !== undefined) {
      (settings.alias as Record<string, string[]>)[name] = [option.alias];
      known.add(option.alias);
    }
    lists[option.type].push(name);
    if (option.array) lists.array.push(name);
    if (option.default !== undefined) (settings.default as Record<string, unknown>)[name] = option.default;
  }
  // As yargs configures its parser for a command with positional arguments.
  settings.configuration = { 'parse-positional-numbers': false };
  const parsed = parse([...args], settings);
  for (const key of Object.keys(parsed)) if (!known.has(key) || Number.isNaN(parsed[key])) return undefined;
  for (const [name, option] of Object.entries(RUN_OPTIONS) as Array<[string, RunOption]>) {
    const value = parsed[name];
    if (option.choices !== undefined && value !== undefined && !option.choices.includes(value as string)) return undefined;
    const values = [value].flat();
    if (option.requiresArg && value !== undefined && (values.length === 0 || values.includes(''))) return undefined;
  }
  return { ...(parsed as unknown as Argv), urls: parsed._.map(String) };
}

/** `per-host` as yargs spells it on argv: `perHost`. */
function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** Parses `args` with yargs: --help, --version, completion, and every error message. */
export async function fullParse(args: readonly string[]): Promise<Argv> {
  const { default: yargs } = await import('yargs');
  return (await parser(yargs, [...args]).parseAsync()) as unknown as Argv;
}
