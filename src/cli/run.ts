/**
 * `imgdl [urls..]`, the plain run: its arguments to {@link Options}, a logger
 * and progress line on stderr, the run through `download()`, and its summary.
 *
 * Exit codes ({@link EXIT}): 0 when every item is ok or skipped (an empty
 * list included), 1 when any item failed or the run could not go on (e.g.
 * the manifest's disk is full), 2 for a usage error, 130 after SIGINT and 143
 * after SIGTERM.
 */
import { once } from 'node:events';
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';
import { describeError, UsageError } from '../errors.js';
import type { ListItem } from '../input/text-list.js';
import { HostFigures } from '../record/host-figures.js';
import { OptionError, resolveOptions, type Mode, type Options, type ResolvedOptions } from '../options.js';
import { fullParse, itemOptions, quickParse, type Argv } from './args.js';
import { datasetOptions } from './dataset-args.js';
import { listReading } from './input-args.js';
import { allItems, bindStdinDash, openInputs, type OpenedInput } from './inputs.js';
import type { ProgressLine } from './progress-line.js';
import { EXIT, exitCodeAfter, guardOutputs, inputNames, releaseStdin, stopOnSignals, useColor } from './process.js';

/** What the run writes to stderr with, set up from its flags before anything is read. */
interface Shell {
  color: boolean;
  logger: Logger;
  progressLine: ProgressLine | undefined;
  /** The per-host figures of the summary, which the run's host events feed. */
  hosts: HostFigures;
}

/** Runs `imgdl [urls..] [options]` (`args` without node and script); resolves to the exit code. */
export async function runCommand(args: string[]): Promise<number> {
  let argv: Argv;
  try {
    const bound = bindStdinDash(args);
    argv = (await quickParse(bound)) ?? (await fullParse(bound));
  } catch (error) {
    process.stderr.write(`imgdl: ${(error as Error).message}\nTry 'imgdl --help'.\n`);
    return EXIT.usage;
  }
  // --help, --version and completion print and return without a run.
  if (
    (argv as { help?: boolean }).help ||
    args.includes('--version') ||
    args[0] === 'completion' ||
    args.includes('--get-yargs-completions')
  )
    return EXIT.ok;

  const shell = await openShell(argv);
  // Part of the options, so that they are resolved (and checked) once, before anything is read; signals come later.
  const stop = new AbortController();
  let options: ResolvedOptions;
  let inputs: OpenedInput[];
  try {
    options = resolveOptions(runOptions(argv, shell, stop.signal));
    inputs = await openInputs(inputNames(argv.urls, argv.input), listReading(argv));
  } catch (error) {
    if (error instanceof UsageError || error instanceof OptionError) {
      shell.progressLine?.stop();
      process.stderr.write(`imgdl: ${error.message}\n`);
      return EXIT.usage;
    }
    throw error;
  }

  if (argv.dryRun) return dryRun(allItems(argv.urls, inputs), options, argv.out);
  return run(argv, shell, options, inputs, stop);
}

/** The logger, and the progress line when stderr is a terminal that wants one. */
async function openShell(argv: Argv): Promise<Shell> {
  const { createLogger, levelFor } = await import('./log.js');
  const color = useColor(argv.color);
  // The progress line and log lines share stderr: logs go through the renderer, which clears and redraws around them.
  const showProgress = argv.progress && !argv.quiet && !argv.dryRun && process.stderr.isTTY === true;
  const progressLine = showProgress ? new (await import('./progress-line.js')).ProgressLine({ stream: process.stderr, color }) : undefined;
  const logger = createLogger({
    level: levelFor(argv.verbose, argv.quiet),
    color,
    ...(progressLine ? { destination: progressLine.logStream() } : {}),
  });
  return { color, logger, progressLine, hosts: new HostFigures() };
}

/** The run's {@link Options}: the item options, then how the run is scheduled, reported and stopped. */
function runOptions(argv: Argv, { logger, progressLine, hosts }: Shell, stopSignal: AbortSignal): Options {
  return {
    ...itemOptions(argv),
    ...datasetOptions(argv),
    out: argv.out,
    mode: argv.mode as Mode,
    concurrency: argv.concurrency,
    threads: argv.threads,
    dedupe: argv.dedupe,
    shard: argv.shard,
    manifest: argv.manifest,
    logger,
    graceMs: argv.grace,
    stopSignal,
    onProgress: progressLine ? (progress) => progressLine.update(progress) : undefined,
    onHost: (event) => hosts.event(event),
  };
}

/**
 * Downloads every item, then prints the summary; a failure that stops the run
 * is reported, not thrown. A signal aborts `stop`, the options' `stopSignal`.
 */
async function run(argv: Argv, shell: Shell, resolved: ResolvedOptions, inputs: OpenedInput[], stop: AbortController): Promise<number> {
  const { color, logger, progressLine } = shell;
  const { download } = await import('../run/download.js');
  const { RunReport, formatSummary } = await import('../record/run-report.js');
  const report = new RunReport(resolved.mode, resolved.concurrency, shell.hosts);
  const stopping = stopOnSignals(
    stop,
    (signal) => logger.warn(`${signal}: no new downloads; waiting up to ${resolved.graceMs} ms for those in flight (again to exit now)`),
    // Final names only ever hold complete files, since they appear by rename, so nothing incomplete is left there.
    (signal) => `imgdl: ${signal} again, exiting now; unfinished downloads stay as .part files\n`,
  );
  guardOutputs();
  let fatal = false;
  try {
    // The resolved object itself: download() takes it as it is, without checking it again.
    for await (const result of download(allItems(argv.urls, inputs), resolved)) report.add(result);
  } catch (error) {
    progressLine?.stop();
    process.stderr.write(`imgdl: ${describeError(error)}\n`);
    fatal = true;
  } finally {
    progressLine?.stop();
    stopping.dispose();
  }
  // A run that stopped early (signal, full disk) may leave stdin half read.
  releaseStdin(inputs, stopping.by !== undefined || fatal);
  const summary = report.summary();
  // Peak memory of the whole process (all threads), so `imgdl bench` can compare modes from outside.
  if (argv.json) process.stdout.write(JSON.stringify({ ...summary, peakRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
  else if (!argv.quiet) process.stderr.write(formatSummary(summary, { color }) + '\n');
  if (stopping.by) return exitCodeAfter(stopping.by);
  return fatal || summary.failed > 0 ? EXIT.failed : EXIT.ok;
}

/**
 * Items a dry run plans between two full collections. Its live data is a
 * few tens of MB, but V8 lets the old generation fill with what planning
 * and the list readers leave behind (hyparquet makes an object per text
 * value) before collecting it: a 1M-row Parquet dry run with a caption and
 * a saved column peaked at 170-175 MB of RSS, and at 134-146 MB with a
 * collection every 50,000 items (about 10 ms each, 20 in such a run).
 */
const COLLECT_EVERY = 50_000;

/** A full garbage collection on demand, without asking the user for `--expose-gc`. */
function fullCollection(): () => void {
  v8.setFlagsFromString('--expose-gc');
  // A new context gets the `gc` global the flag enables; the main one was made before it.
  return runInNewContext('gc') as () => void;
}

/** `--dry-run`: one `URL<TAB>FILE` line per item on stdout, decided exactly as a run would, with no request made. */
async function dryRun(items: AsyncIterable<ListItem>, options: ResolvedOptions, out: string): Promise<number> {
  const { planBatches } = await import('../run/dry-run.js');
  const { join, sep } = path;
  const counts = { download: 0, skipped: 0, failed: 0 };
  // Planned paths are plain relative paths: prefixing the folder once gives what joining each would.
  const base = join(out, '.');
  const prefix = base === '.' ? '' : base.endsWith(sep) ? base : base + sep;
  const shown = sep === '/' ? (file: string): string => prefix + file : (file: string): string => join(out, file);
  const collect = fullCollection();
  let sinceCollected = 0;
  // Lines go out in batches: a write per line was a tenth of a million-line dry run.
  for await (const plans of planBatches(items, options)) {
    sinceCollected += plans.length;
    if (sinceCollected >= COLLECT_EVERY) {
      collect();
      sinceCollected = 0;
    }
    let text = '';
    for (const planned of plans) {
      counts[planned.status]++;
      const file = planned.path === null ? '-' : shown(planned.path);
      const note = planned.status === 'download' ? '' : `\t${planned.status}: ${planned.reason}`;
      text += `${planned.url}\t${file}${note}\n`;
    }
    // A pipe's reader may be slower than planning: without waiting, a million lines queued up in memory.
    if (!process.stdout.write(text)) await once(process.stdout, 'drain');
  }
  process.stderr.write(
    `dry run: ${counts.download} to download, ${counts.skipped} skipped, ${counts.failed} invalid; nothing was requested\n`,
  );
  return counts.failed > 0 ? EXIT.failed : EXIT.ok;
}
