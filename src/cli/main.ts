/**
 * The shell: the only module that reads `process.argv`, stdin's TTY state and
 * sets the exit code. Everything else is the library, called through
 * `download()`.
 *
 * Exit codes: 0 when every item is ok or skipped (an empty list included),
 * 1 when any item failed or the run could not go on (e.g. the manifest's disk
 * is full), 2 for a usage error, 130 after SIGINT and 143 after SIGTERM.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import v8 from 'node:v8';
import type { Logger } from 'pino';
import type { Argv as Yargs } from 'yargs';
import parseAsText from 'yargs-parser';
import { describeError, UsageError } from '../errors.js';

export { UsageError };
import type { BatchedSource } from '../input/source.js';
import { itemsFromArgs, readListBatches, type ListItem } from '../input/text-list.js';
// Only what parsing needs is imported up front: --help and --version must not pay for HTTP, pino or workers.
import { HASHES, LAYOUTS, MODES, ON_EXISTS, OptionError, VERSION, parseSize, resolveOptions, type HashAlgorithm, type Layout, type Mode, type OnExists, type Options } from '../options.js';


/** What {@link itemFlags} parses. */
export interface ItemArgv {
  hash: string | undefined;
  perHost: number | undefined;
  rate: string | undefined;
  onExists: string;
  layout: string;
  timeout: number;
  retries: number;
  retryDelay: number;
  maxRetryAfter: number;
  maxSize: string;
  anyType: boolean;
  header: string[] | undefined;
  userAgent: string | undefined;
  referer: string | undefined;
  cookie: string | undefined;
  locationTrusted: boolean;
  proxy: string | false | undefined;
  insecure: boolean;
  cacert: string | undefined;
}

interface Argv extends ItemArgv {
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
 * The options that say how each item is fetched, checked and saved (as
 * opposed to how a run is scheduled or reported), as yargs declares them. The
 * main command has them, and so does `imgdl enqueue`, whose jobs carry them
 * to every worker.
 */
const ITEM_OPTIONS = {
  hash: { type: 'string', choices: HASHES as string[], defaultDescription: 'none', describe: 'Record a digest of each saved file, computed as it streams' },
  'per-host': { type: 'number', defaultDescription: 'no cap beyond --concurrency', describe: 'Most requests in flight to one host (name:port)' },
  rate: { type: 'string', requiresArg: true, defaultDescription: 'no limit', describe: 'Most requests started per host: N/s, N/m, N/h or N/d, spaced evenly' },
  'on-exists': { type: 'string', choices: ON_EXISTS as string[], default: 'skip', describe: 'When the file already exists' },
  layout: { type: 'string', choices: LAYOUTS as string[], default: 'flat', describe: 'flat: named from the URL (or NAME); sharded: by list position, 00000/000000123.jpg, 10,000 a folder' },
  timeout: { type: 'number', default: 30_000, describe: 'Connect, headers and body-idle timeout in ms (each)' },
  retries: { type: 'number', default: 3, describe: 'Tries after the first for network errors, timeouts, truncated bodies, 408, 429, 5xx' },
  'retry-delay': { type: 'number', default: 500, describe: 'Base backoff in ms (exponential, full jitter, at most 30 s)' },
  'max-retry-after': { type: 'number', default: 60, describe: 'Longest Retry-After (429/503) obeyed, in seconds; longer fails the item' },
  'max-size': { type: 'string', default: '1G', describe: 'Largest file saved: bytes or with k, M, G (0: no limit)' },
  'any-type': { type: 'boolean', default: false, describe: 'Keep any body, not only images (no sniffing, no extension fix)' },
  header: { alias: 'H', type: 'string', array: true, requiresArg: true, defaultDescription: 'none', describe: 'Extra request header "Name: value"; repeatable' },
  'user-agent': { alias: 'A', type: 'string', requiresArg: true, defaultDescription: `imgdl/${VERSION}`, describe: 'User-Agent header' },
  referer: { type: 'string', requiresArg: true, defaultDescription: 'none', describe: 'Referer header sent with every request' },
  cookie: { type: 'string', requiresArg: true, defaultDescription: 'none', describe: 'Cookie header sent with every request ("a=b; c=d")' },
  'location-trusted': { type: 'boolean', default: false, describe: 'Send Authorization, Cookie and URL credentials on redirects to OTHER hosts too (they can read them)' },
  proxy: { type: 'string', defaultDescription: '$HTTPS_PROXY / $HTTP_PROXY, minus $NO_PROXY', describe: 'HTTP(S) proxy URL (--no-proxy: ignore the environment)' },
  insecure: { alias: 'k', type: 'boolean', default: false, describe: 'Do NOT verify TLS certificates (a warning is logged)' },
  cacert: { type: 'string', requiresArg: true, defaultDescription: "Node's bundled CAs", describe: 'PEM file of extra CA certificates to trust' },
} as const satisfies Record<string, RunOption>;

/** The {@link Options} that {@link ITEM_OPTIONS} set; throws {@link UsageError} for a malformed `-H`. */
export function itemOptions(argv: ItemArgv): Options {
  return {
    hash: argv.hash as HashAlgorithm | undefined,
    perHost: argv.perHost,
    rate: argv.rate,
    onExists: argv.onExists as OnExists,
    layout: argv.layout as Layout,
    timeoutMs: argv.timeout,
    headers: parseHeaders(argv.header ?? []),
    userAgent: argv.userAgent,
    referer: argv.referer,
    cookie: argv.cookie,
    locationTrusted: argv.locationTrusted,
    proxy: argv.proxy,
    insecure: argv.insecure,
    cacert: argv.cacert,
    retries: argv.retries,
    retryDelayMs: argv.retryDelay,
    maxRetryAfterMs: Number.isFinite(argv.maxRetryAfter) ? Math.round(argv.maxRetryAfter * 1000) : argv.maxRetryAfter,
    maxSize: argv.maxSize,
    anyType: argv.anyType,
  };
}

/** Declares {@link ITEM_OPTIONS} on a yargs parser. */
export function itemFlags<T>(y: Yargs<T>) {
  return y.options(ITEM_OPTIONS);
}

/**
 * Every option of a plain run, as yargs declares them. yargs builds --help,
 * completion and its error messages from this table; {@link quickParse}
 * parses a plain run with the same table, without loading yargs.
 */
const RUN_OPTIONS = {
  input: { alias: 'i', type: 'string', array: true, defaultDescription: 'stdin, when no URL is given', describe: 'Read URLs from FILE, one per line ("-" is stdin); repeatable' },
  out: { alias: 'o', type: 'string', default: '.', describe: 'Output folder (created if missing)' },
  mode: { alias: 'm', type: 'string', choices: MODES as string[], default: 'concurrent', describe: 'How downloads are scheduled' },
  concurrency: { alias: 'c', type: 'number', default: 16, describe: 'Downloads in flight at once' },
  threads: { alias: 't', type: 'number', defaultDescription: 'one per CPU', describe: 'Worker threads in --mode workers' },
  dedupe: { type: 'boolean', default: false, describe: 'Do not save a file whose content was already saved this run (hashes with sha256 unless --hash)' },
  ...ITEM_OPTIONS,
  shard: { type: 'string', requiresArg: true, defaultDescription: 'the whole list', describe: 'Take slice K of N (K from 0 to N-1) of the list, by URL hash, e.g. --shard $JOB_COMPLETION_INDEX/8' },
  manifest: { type: 'string', defaultDescription: 'none', describe: 'Write one JSON line per item to FILE as items finish' },
  grace: { type: 'number', default: 5000, describe: 'On Ctrl-C/SIGTERM, ms downloads in flight get to finish before they are stopped' },
  json: { type: 'boolean', default: false, describe: 'Print the run summary as JSON on stdout' },
  quiet: { alias: 'q', type: 'boolean', default: false, describe: 'Only errors on stderr; no summary' },
  verbose: { alias: 'v', type: 'count', defaultDescription: 'failures only', describe: 'More logs (-vv for debug)' },
  'dry-run': { alias: 'n', type: 'boolean', default: false, describe: 'Print each URL and the file it would be saved as; request nothing' },
  progress: { type: 'boolean', default: true, describe: 'Live progress line on stderr when it is a terminal (--no-progress: none)' },
  color: { type: 'boolean', defaultDescription: 'on for a terminal, off when NO_COLOR is set', describe: 'Colour in logs, progress and summary' },
} as const satisfies Record<string, RunOption>;

/** What {@link RUN_OPTIONS} says of one option: the part of yargs' option settings imgdl uses. */
interface RunOption {
  alias?: string;
  type: 'string' | 'number' | 'boolean' | 'count';
  array?: boolean;
  default?: string | number | boolean;
  choices?: string[];
  requiresArg?: boolean;
  defaultDescription?: string;
  describe: string;
}

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
    .positional('urls', { type: 'string', array: true, default: [], describe: 'URLs to download' })
    .options(RUN_OPTIONS)
    .completion('completion', 'Print a shell completion script (bash/zsh): imgdl completion >> ~/.bashrc')
    .example('$0 https://example.com/a.jpg https://example.com/b.png -o photos', 'Two images into photos/')
    .example('$0 -i urls.txt -o photos -c 32', 'A list, 32 at a time')
    .example('cat urls.txt | $0 -o photos', 'A list piped on stdin')
    .example('$0 -i urls.txt --manifest run.jsonl --json > summary.json', 'Keep a manifest and a JSON summary')
    .example('$0 -n -i urls.txt -o photos', 'Show where each URL would be saved, download nothing')
    .example('$0 -i urls.txt -o photos --layout sharded --shard 0/4 --manifest m0.jsonl', 'Slice 0 of 4 of a long list, named by position')
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
  return (version === false ? y.strict().version(false) : y.strict().version(version))
    // getOptions() is yargs' own record of the options declared so far; its types leave it out.
    .middleware((argv) => keepTypedText(argv, args, (y as unknown as { getOptions(): ParserSettings }).getOptions()), true)
    .help()
    .alias('help', 'h')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? new UsageError(message);
    });
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

/** Opens each input before the run starts, so an unreadable file is a usage error, not a failure halfway. */
export async function openInputs(inputs: readonly string[]): Promise<Array<{ name: string; stream: Readable }>> {
  const opened: Array<{ name: string; stream: Readable }> = [];
  for (const name of inputs) {
    if (name === '-') {
      opened.push({ name: 'stdin', stream: process.stdin });
      continue;
    }
    try {
      const handle = await fs.open(name, 'r');
      opened.push({ name, stream: createReadStream('', { fd: handle }) });
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'error';
      throw new UsageError(`cannot read input file ${name}: ${code}`);
    }
  }
  return opened;
}

/**
 * The arguments' items, then each input's in turn: one at a time, or (for the dry run, which plans
 * many at once) an array per chunk read, which spares each item an await.
 */
export function allItems(urls: readonly string[], inputs: Array<{ name: string; stream: Readable }>): BatchedSource<ListItem> {
  async function* batches(): AsyncGenerator<ListItem[]> {
    if (urls.length > 0) yield itemsFromArgs(urls);
    for (const input of inputs) yield* readListBatches(input.stream, input.name);
  }
  return {
    batches,
    async *[Symbol.asyncIterator]() {
      for await (const items of batches()) yield* items;
    },
  };
}

/** yargs reads a lone `-` as a positional; `-i -` means stdin, so bind it to the flag before parsing. */
export function bindStdinDash(args: readonly string[]): string[] {
  const bound: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if ((arg === '-i' || arg === '--input') && args[i + 1] === '-') {
      bound.push('--input=-');
      i++;
    } else bound.push(arg);
  }
  return bound;
}

/** The V8 flags the CLI sets when it starts: undici's HTTP parser stays on V8's baseline WebAssembly compiler. */
const WASM_FLAGS: readonly string[] = ['--liftoff-only', '--no-wasm-tier-up', '--no-wasm-dynamic-tiering'];

type YargsModule = typeof import('yargs');

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

/** Runs the CLI with `args` (without node and script); resolves to the exit code. */
export async function main(args: string[] = process.argv.slice(2)): Promise<number> {
  // undici parses HTTP with a WebAssembly build of llhttp. V8's optimising tier
  // recompiles it once it is hot, which costs ~35 MB of peak RSS and no measurable
  // speed (2000 × 20 kB at -c 32: same CPU time either way). The baseline
  // compiler alone keeps a run near 60 MB. Process-wide, so set only by the CLI,
  // never by the library, and before undici compiles its parser (at the first
  // connection). All three flags, since a flag set at run time does not bring
  // the ones it implies at start: on Node 24 --liftoff-only alone still tiers up.
  // Flags for the JS heap's size (--max-semi-space-size) only work at start and
  // were not worth a launcher: see the README's "Memory" section.
  for (const flag of WASM_FLAGS) v8.setFlagsFromString(flag);
  if (args[0] === 'bench') return benchMain(args.slice(1));
  if (args[0] === 'report') return reportMain(args.slice(1));
  // Loaded only for these commands: the main command never loads the queue's code (bullmq, ioredis).
  if (args[0] === 'enqueue' || args[0] === 'worker' || args[0] === 'status') return (await import('./cluster.js')).clusterMain(args[0], args.slice(1));
  let argv: Argv;
  try {
    const bound = bindStdinDash(args);
    argv = (await quickParse(bound)) ?? (await fullParse(bound));
  } catch (error) {
    process.stderr.write(`imgdl: ${(error as Error).message}\nTry 'imgdl --help'.\n`);
    return 2;
  }
  // --help, --version and completion print and return without a run.
  if ((argv as { help?: boolean }).help || args.includes('--version') || args[0] === 'completion' || args.includes('--get-yargs-completions')) return 0;

  const { createLogger, levelFor } = await import('./log.js');
  const color = argv.color ?? (process.stderr.isTTY === true && !('NO_COLOR' in process.env));
  // The progress line and log lines share stderr: logs go through the renderer, which clears and redraws around them.
  const showProgress = argv.progress && !argv.quiet && !argv.dryRun && process.stderr.isTTY === true;
  const progressLine = showProgress
    ? new (await import('./progress-line.js')).ProgressLine({ stream: process.stderr, color })
    : undefined;
  const logger = createLogger({
    level: levelFor(argv.verbose, argv.quiet),
    color,
    ...(progressLine ? { destination: progressLine.logStream() } : {}),
  });
  let options: Options;
  let inputs: Array<{ name: string; stream: Readable }>;
  try {
    options = {
      ...itemOptions(argv),
      out: argv.out,
      mode: argv.mode as Mode,
      concurrency: argv.concurrency,
      threads: argv.threads,
      dedupe: argv.dedupe,
      shard: argv.shard,
      manifest: argv.manifest,
      logger,
      graceMs: argv.grace,
      onProgress: progressLine ? (progress) => progressLine.update(progress) : undefined,
    };
    resolveOptions(options);
    const names = argv.input ?? [];
    if (argv.urls.length === 0 && names.length === 0) {
      if (process.stdin.isTTY) throw new UsageError('no URLs: give them as arguments, with -i FILE, or pipe a list on stdin');
      names.push('-');
    }
    inputs = await openInputs(names);
  } catch (error) {
    if (error instanceof UsageError || error instanceof OptionError) {
      progressLine?.stop();
      process.stderr.write(`imgdl: ${error.message}\n`);
      return 2;
    }
    throw error;
  }

  if (argv.dryRun) return dryRun(allItems(argv.urls, inputs), options, argv.out);

  const { download } = await import('../run/download.js');
  const { RunReport, formatSummary } = await import('../record/run-report.js');
  const resolved = resolveOptions(options);
  const report = new RunReport(resolved.mode, resolved.concurrency);
  const stopping = stopOnSignals(logger, resolved.graceMs);
  guardOutputs();
  let fatal = false;
  try {
    for await (const result of download(allItems(argv.urls, inputs), { ...options, stopSignal: stopping.signal })) report.add(result);
  } catch (error) {
    progressLine?.stop();
    process.stderr.write(`imgdl: ${describeError(error)}\n`);
    fatal = true;
  } finally {
    progressLine?.stop();
    stopping.dispose();
  }
  // A run that stopped early (signal, full disk) may leave stdin half read; it must not keep the process alive.
  if (stopping.by || fatal || inputs.some((input) => input.name === 'stdin')) process.stdin.destroy();
  const summary = report.summary();
  // Peak memory of the whole process (all threads), so `imgdl bench` can compare modes from outside.
  if (argv.json) process.stdout.write(JSON.stringify({ ...summary, peakRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
  else if (!argv.quiet) process.stderr.write(formatSummary(summary, { color }) + '\n');
  if (stopping.by) return stopping.by === 'SIGTERM' ? 143 : 130;
  return fatal || summary.failed > 0 ? 1 : 0;
}

/**
 * First SIGINT or SIGTERM: start no new items and give those in flight
 * `graceMs` to finish (the library aborts them after that, keeping their part
 * files). A second signal exits at once: final names only ever hold complete
 * files, since they appear by rename, so nothing incomplete is left there.
 */
function stopOnSignals(logger: Logger, graceMs: number): { signal: AbortSignal; by: NodeJS.Signals | undefined; dispose(): void } {
  const controller = new AbortController();
  const state = {
    signal: controller.signal,
    by: undefined as NodeJS.Signals | undefined,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
  function onSignal(signal: NodeJS.Signals): void {
    if (state.by !== undefined) {
      process.stderr.write(`imgdl: ${signal} again, exiting now; unfinished downloads stay as .part files\n`);
      process.exit(signal === 'SIGTERM' ? 143 : 130);
    }
    state.by = signal;
    logger.warn(`${signal}: no new downloads; waiting up to ${graceMs} ms for those in flight (again to exit now)`);
    controller.abort(new Error(signal));
  }
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return state;
}

/**
 * A reader that goes away (`imgdl --json | head -c1`) makes writes to stdout
 * fail with EPIPE, emitted as an error event that would otherwise crash the
 * process with a stack trace. Say so once on stderr and let the run end.
 */
export function guardOutputs(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.stderr.write('imgdl: stdout was closed by its reader (EPIPE); the summary was not printed\n');
  });
  // Nowhere left to report an error about stderr itself.
  process.stderr.on('error', () => undefined);
}

/** `-H "Name: value"` flags as a header record; a name given twice gets both values, comma-joined as HTTP allows. */
function parseHeaders(flags: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const flag of flags) {
    const colon = flag.indexOf(':');
    if (colon <= 0) throw new UsageError(`invalid --header ${JSON.stringify(flag)} (expected "Name: value")`);
    const name = flag.slice(0, colon).trim().toLowerCase();
    const value = flag.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return headers;
}

/** `--dry-run`: one `URL<TAB>FILE` line per item on stdout, decided exactly as a run would, with no request made. */
async function dryRun(items: AsyncIterable<ListItem>, options: Options, out: string): Promise<number> {
  const { planBatches } = await import('../run/dry-run.js');
  const { join, sep } = path;
  const counts = { download: 0, skipped: 0, failed: 0 };
  // Planned paths are plain relative paths: prefixing the folder once gives what joining each would.
  const base = join(out, '.');
  const prefix = base === '.' ? '' : base.endsWith(sep) ? base : base + sep;
  const shown = sep === '/' ? (file: string): string => prefix + file : (file: string): string => join(out, file);
  // Lines go out in batches: a write per line was a tenth of a million-line dry run.
  for await (const plans of planBatches(items, options)) {
    let text = '';
    for (const planned of plans) {
      counts[planned.status]++;
      const file = planned.path === null ? '-' : shown(planned.path);
      const note = planned.status === 'download' ? '' : `\t${planned.status}: ${planned.reason}`;
      text += `${planned.url}\t${file}${note}\n`;
    }
    process.stdout.write(text);
  }
  process.stderr.write(`dry run: ${counts.download} to download, ${counts.skipped} skipped, ${counts.failed} invalid; nothing was requested\n`);
  return counts.failed > 0 ? 1 : 0;
}

interface ReportArgv {
  manifests: string[];
  json: boolean;
  color: boolean | undefined;
}

function reportParser(yargs: YargsModule['default'], args: string[]) {
  const y = yargs(args)
    .scriptName('imgdl report')
    .usage(
      '$0 MANIFEST... [options]\n\nMerge the manifests of several runs (the shards of one list, a run and its reruns) into one summary. ' +
        'Each URL counts once, by its last record; give the files oldest first.',
    )
    .command('$0 <manifests..>', false)
    .positional('manifests', { type: 'string', array: true, describe: 'Manifest files (--manifest of each run)' })
    .option('json', { type: 'boolean', default: false, describe: 'Print the summary as JSON on stdout, in the shape of a run\'s --json' })
    .option('color', { type: 'boolean', defaultDescription: 'on for a terminal, off when NO_COLOR is set', describe: 'Colour in the summary' })
    .example('$0 shard-*.jsonl --json', 'One summary for every shard of a list');
  return strictParser(y, false, args);
}

/** `imgdl report`: exit 0 when every URL ended ok or skipped, 1 when any failed, 2 for a usage error or an unreadable manifest. */
async function reportMain(args: string[]): Promise<number> {
  let argv: ReportArgv;
  try {
    const { default: yargs } = await import('yargs');
    argv = (await reportParser(yargs, args).parseAsync()) as unknown as ReportArgv;
    if ((argv as { help?: boolean }).help) return 0;
  } catch (error) {
    process.stderr.write(`imgdl report: ${(error as Error).message}\nTry 'imgdl report --help'.\n`);
    return 2;
  }
  const { summarizeManifests, formatManifestSummary } = await import('../record/merge.js');
  let summary;
  try {
    summary = await summarizeManifests(argv.manifests);
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'error';
    process.stderr.write(`imgdl report: cannot read manifest ${(error as { path?: string }).path ?? ''}: ${code}\n`);
    return 2;
  }
  const color = argv.color ?? (process.stderr.isTTY === true && !('NO_COLOR' in process.env));
  if (argv.json) process.stdout.write(JSON.stringify({ ...summary, peakRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
  else process.stderr.write(formatManifestSummary(summary, { color }) + '\n');
  return summary.failed > 0 ? 1 : 0;
}

interface BenchArgv {
  urls: string[];
  input: string[] | undefined;
  modes: string;
  repeat: number;
  concurrency: number;
  threads: number | undefined;
  hash: string | undefined;
  json: boolean;
  keep: boolean;
  local: boolean;
  files: number;
  size: string;
  latency: number;
}

function benchParser(yargs: YargsModule['default'], args: string[]) {
  const y = yargs(args)
    .scriptName('imgdl bench')
    .usage('$0 [urls..] [options]\n\nDownload the same list once per mode per repeat, each run a fresh process into a fresh temp folder, and compare.')
    .command('$0 [urls..]', false)
    .positional('urls', { type: 'string', array: true, default: [], describe: 'URLs to download' })
    .option('input', { alias: 'i', type: 'string', array: true, describe: 'Read URLs from FILE ("-" is stdin); repeatable' })
    .option('modes', { type: 'string', default: MODES.join(','), describe: 'Modes to compare, comma-separated' })
    .option('repeat', { type: 'number', default: 3, describe: 'Runs per mode (the table shows medians)' })
    .option('concurrency', { alias: 'c', type: 'number', default: 16, describe: 'Downloads in flight (concurrent and workers)' })
    .option('threads', { alias: 't', type: 'number', describe: 'Worker threads (workers mode)' })
    .option('hash', { type: 'string', choices: HASHES as string[], describe: 'Hash every file in every mode' })
    .option('json', { type: 'boolean', default: false, describe: 'Print the rows as JSON on stdout' })
    .option('keep', { type: 'boolean', default: false, describe: 'Keep the downloaded files (folders are listed on stderr)' })
    .option('local', { type: 'boolean', default: false, describe: 'Download from an embedded loopback server instead of URLs' })
    .option('files', { type: 'number', default: 200, describe: 'With --local: how many images' })
    .option('size', { type: 'string', default: '20k', describe: 'With --local: bytes per image (20k, 1M, 64MiB)' })
    .option('latency', { type: 'number', default: 50, describe: 'With --local: ms before each response' })
    .example('$0 --local', '200 images of 20 kB with 50 ms latency, no internet needed')
    .example('$0 -i urls.txt --modes concurrent,workers --hash sha256 --repeat 5', 'Compare two modes on your own list');
  return strictParser(y, false, args);
}

function integerArg(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new UsageError(`--${name} must be an integer of at least ${min}, got ${value}`);
  return value;
}

/** `imgdl bench`: argv, the temp list, the progress line and the table; the measuring is in bench.ts. */
async function benchMain(args: string[]): Promise<number> {
  const { runBench, formatBench } = await import('./bench.js');
  let argv: BenchArgv;
  let modes: Mode[];
  try {
    const { default: yargs } = await import('yargs');
    argv = (await benchParser(yargs, bindStdinDash(args)).parseAsync()) as unknown as BenchArgv;
    if ((argv as { help?: boolean }).help) return 0;
    modes = argv.modes.split(',').map((m) => m.trim()) as Mode[];
    for (const mode of modes) if (!MODES.includes(mode)) throw new UsageError(`--modes: unknown mode "${mode}" (expected ${MODES.join(', ')})`);
    integerArg('repeat', argv.repeat, 1);
    integerArg('files', argv.files, 1);
    integerArg('latency', argv.latency, 0);
    integerArg('concurrency', argv.concurrency, 1);
    if (argv.threads !== undefined) integerArg('threads', argv.threads, 1);
    if (!argv.local && argv.urls.length === 0 && (argv.input ?? []).length === 0) {
      throw new UsageError('no URLs: give them as arguments, with -i FILE, or use --local');
    }
  } catch (error) {
    process.stderr.write(`imgdl bench: ${(error as Error).message}\nTry 'imgdl bench --help'.\n`);
    return 2;
  }

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-bench-list-'));
  const listFile = path.join(dir, 'urls.txt');
  let server: { origin: string; close(): Promise<void> } | undefined;
  try {
    let lines: string[];
    if (argv.local) {
      const { startFixtureServer, MAX_GENERATED_BYTES } = await import('../dev/fixture-server.js');
      let size: number | undefined;
      try {
        size = parseSize('size', argv.size);
      } catch {
        size = undefined;
      }
      if (size === undefined || size < 200 || size > MAX_GENERATED_BYTES) {
        process.stderr.write(`imgdl bench: --size must be from 200 bytes to 64MiB, like 20k or 1M; got "${argv.size}"\n`);
        return 2;
      }
      server = await startFixtureServer({ latencyMs: argv.latency });
      const origin = server.origin;
      lines = Array.from({ length: argv.files }, (_, i) => `${origin}/gen/${i + 1}.jpg?bytes=${size}`);
    } else {
      let inputs: Array<{ name: string; stream: Readable }>;
      try {
        inputs = await openInputs(argv.input ?? []);
      } catch (error) {
        process.stderr.write(`imgdl bench: ${(error as Error).message}\n`);
        return 2;
      }
      lines = [];
      for await (const item of allItems(argv.urls, inputs)) lines.push(item.name === undefined ? item.url : `${item.url} ${item.name}`);
    }
    await fs.writeFile(listFile, lines.join('\n') + '\n');

    const extra = ['-c', String(argv.concurrency)];
    if (argv.threads !== undefined) extra.push('-t', String(argv.threads));
    if (argv.hash !== undefined) extra.push('--hash', argv.hash);
    const tty = process.stderr.isTTY === true;
    const rows = await runBench({
      listFile,
      modes,
      repeat: argv.repeat,
      args: extra,
      keep: argv.keep,
      onRun: tty
        ? (mode, repeat, done, total) => process.stderr.write(`\r\x1b[Kbench: ${mode} run ${repeat}/${argv.repeat} (${done + 1} of ${total})`)
        : undefined,
    });
    if (tty) process.stderr.write('\r\x1b[K');
    if (argv.json) process.stdout.write(JSON.stringify(rows) + '\n');
    else {
      const where = argv.local ? `${argv.files} images of ${argv.size}, ${argv.latency} ms latency, loopback` : `${lines.length} URLs`;
      process.stdout.write(`${where}; concurrency ${argv.concurrency}; medians of ${argv.repeat} runs, each a fresh process\n${formatBench(rows)}\n`);
    }
    if (argv.keep) for (const row of rows) for (const folder of row.kept) process.stderr.write(`kept ${folder}\n`);
    return rows.some((row) => row.failed > 0) ? 1 : 0;
  } finally {
    await server?.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
