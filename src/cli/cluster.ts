/**
 * The shell of the cluster commands, `imgdl enqueue`, `imgdl worker` and
 * `imgdl status`: their flags, output and exit codes; what they do on a
 * signal is process.ts's rule, as for every command. The main CLI loads this
 * module only for them, so nothing else pays for BullMQ.
 *
 * Exit codes ({@link EXIT}): 0 done, 1 when Redis cannot be reached or
 * refuses (or a worker stops on an error), 2 for a usage error, 130 after
 * SIGINT and 143 after SIGTERM.
 */
import yargs from 'yargs';
import { describeError, UsageError } from '../errors.js';
import { DEFAULTS, OptionError } from '../options.js';
import { ClusterError } from '../cluster/connection.js';
import { itemFlags, itemOptions, strictParser, type ItemArgv } from './args.js';
import { DATASET_OPTIONS, datasetOptions, type DatasetArgv } from './dataset-args.js';
import { INPUT_OPTIONS, listReading, type InputArgv } from './input-args.js';
import { allItems, bindStdinDash, openInputs, type OpenedInput } from './inputs.js';
import { EXIT, exitCodeAfter, guardOutputs, inputNames, releaseStdin, stopOnSignals, useColor } from './process.js';

/** A cluster command. */
export type Command = 'enqueue' | 'worker' | 'status';

function base(command: Command, args: string[], usage: string) {
  const bound = bindStdinDash(args);
  return strictParser(
    yargs(bound).scriptName(`imgdl ${command}`).usage(usage).option('queue', {
      type: 'string',
      requiresArg: true,
      demandOption: true,
      describe: 'The queue: redis://HOST:PORT[/DB] (rediss:// for TLS)',
    }),
    false,
    bound,
  );
}

function enqueueParser(args: string[]) {
  return itemFlags(
    base(
      'enqueue',
      args,
      '$0 --queue URL [urls..] [-i LIST]... [options]\n\nAdd a list to the queue in jobs of --batch items. The download options given here travel with the jobs, so every worker applies them. ' +
        'With --format webdataset a job is one tar shard of --shard-size rows, which the worker that takes it writes whole into its -o folder.',
    )
      .command('$0 [urls..]', false)
      .positional('urls', { type: 'string', array: true, default: [], describe: 'URLs to add' })
      .option('input', {
        alias: 'i',
        type: 'string',
        array: true,
        defaultDescription: 'stdin, when no URL is given',
        describe: 'Read URLs from FILE: lines, or a CSV, TSV, JSONL or Parquet table ("-" is stdin); repeatable',
      })
      .options(INPUT_OPTIONS)
      .option('batch', {
        type: 'number',
        defaultDescription: '1000',
        describe: 'Items per job; refused with --format webdataset, whose jobs are one shard each',
      })
      .options(DATASET_OPTIONS)
      .option('json', { type: 'boolean', default: false, describe: 'Print what was added as JSON' })
      .example('$0 --queue redis://redis:6379 -i urls.txt', 'Add a list in jobs of 1000')
      .example('$0 --queue redis://redis:6379/2 -i urls.txt --hash sha256 --max-size 20M', 'Every worker hashes and caps sizes')
      .example('$0 --queue redis://redis:6379 -i urls.txt --format webdataset --shard-size 1000 --resize 256', 'One job per tar shard')
      .example(
        '$0 --queue redis://redis:6379 -i list.parquet --caption-col caption --save-cols id --format webdataset',
        'Captions and ids ride with the rows',
      ),
  );
}

function workerParser(args: string[]) {
  return base(
    'worker',
    args,
    "$0 --queue URL -o DIR [options]\n\nTake batches from the queue and download them into DIR (a shared folder, or this machine's disk). Ctrl-C or SIGTERM finishes or hands back the current batch.",
  )
    .option('out', { alias: 'o', type: 'string', default: DEFAULTS.out, describe: 'Output folder (created if missing)' })
    .option('concurrency', {
      alias: 'c',
      type: 'number',
      default: DEFAULTS.concurrency,
      describe: 'Downloads in flight at once in this worker',
    })
    .option('lock-ms', { type: 'number', default: 30_000, describe: 'How long a silent worker keeps a batch before another takes it over' })
    .option('exit-when-empty', { type: 'boolean', default: false, describe: 'Exit 0 once nothing is waiting or active in the queue' })
    .option('grace', {
      type: 'number',
      default: DEFAULTS.graceMs,
      describe: 'On Ctrl-C/SIGTERM, ms downloads in flight get to finish before the batch is handed back',
    })
    .option('json', { type: 'boolean', default: false, describe: "Print this worker's summary as JSON on stdout" })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only errors on stderr; no summary' })
    .option('verbose', { alias: 'v', type: 'count', describe: 'More logs: -v every batch and item, -vv debug' })
    .option('color', { type: 'boolean', describe: 'Colour in logs and summary' })
    .example('$0 --queue redis://redis:6379 -o /data/images -c 32', 'Work until stopped')
    .example('$0 --queue redis://redis:6379 -o out --exit-when-empty', 'Exit once the queue is done');
}

function statusParser(args: string[]) {
  return base('status', args, "$0 --queue URL [--json] [--watch]\n\nShow the queue's jobs and items across all workers.")
    .option('json', { type: 'boolean', default: false, describe: 'Print the status as JSON (one line per refresh with --watch)' })
    .option('watch', { type: 'boolean', default: false, describe: 'Redraw as a live line until Ctrl-C' })
    .option('interval', { type: 'number', default: 1000, describe: 'With --watch: ms between refreshes' });
}

/** The commands this module runs. */
export const COMMANDS: readonly Command[] = ['enqueue', 'worker', 'status'];

/**
 * Parses `imgdl <command> ...args` as the command would, without running it
 * (no connection, no file opened); throws UsageError for what the command
 * would refuse. The README's manifests are checked with it.
 */
export async function parseArgs(command: Command, args: string[]): Promise<Record<string, unknown>> {
  const parser = { enqueue: enqueueParser, worker: workerParser, status: statusParser }[command];
  return (await parser(args).parseAsync()) as Record<string, unknown>;
}

/** Runs `imgdl <command> ...args`; resolves to the exit code. */
export async function clusterMain(command: Command, args: string[]): Promise<number> {
  try {
    if (command === 'enqueue') return await enqueueMain(args);
    if (command === 'worker') return await workerMain(args);
    return await statusMain(args);
  } catch (error) {
    if (error instanceof UsageError || error instanceof OptionError) {
      process.stderr.write(`imgdl ${command}: ${error.message}\nTry 'imgdl ${command} --help'.\n`);
      return EXIT.usage;
    }
    if (error instanceof ClusterError) {
      process.stderr.write(`imgdl ${command}: ${error.message}\n`);
      return error.code === 'INVALID_QUEUE_URL' ? EXIT.usage : EXIT.failed;
    }
    process.stderr.write(`imgdl ${command}: ${describeError(error)}\n`);
    return EXIT.failed;
  }
}

interface EnqueueArgv extends ItemArgv, DatasetArgv, InputArgv {
  queue: string;
  urls: string[];
  input: string[] | undefined;
  batch: number | undefined;
  json: boolean;
  help?: boolean;
}

async function enqueueMain(args: string[]): Promise<number> {
  const argv = (await enqueueParser(args).parseAsync()) as unknown as EnqueueArgv;
  if (argv.help) return EXIT.ok;
  const options = { ...itemOptions(argv), ...datasetOptions(argv) };
  const inputs: OpenedInput[] = await openInputs(inputNames(argv.urls, argv.input), listReading(argv));
  const { enqueue } = await import('../cluster/enqueue.js');
  const { createLogger, levelFor } = await import('./log.js');
  const logger = createLogger({ level: levelFor(0, false), color: false });
  guardOutputs();
  try {
    const added = await enqueue(allItems(argv.urls, inputs), { queue: argv.queue, batch: argv.batch, options, logger });
    if (argv.json) process.stdout.write(JSON.stringify(added) + '\n');
    else {
      const before = added.jobs - added.addedJobs;
      const note =
        before > 0 ? ` (${before} job${before === 1 ? '' : 's'} of ${added.items - added.addedItems} items were already queued)` : '';
      process.stdout.write(
        `added ${added.addedItems} items in ${added.addedJobs} job${added.addedJobs === 1 ? '' : 's'} to ${argv.queue}${note}\n`,
      );
    }
  } finally {
    releaseStdin(inputs);
  }
  return EXIT.ok;
}

interface WorkerArgv {
  queue: string;
  out: string;
  concurrency: number;
  lockMs: number;
  exitWhenEmpty: boolean;
  grace: number;
  json: boolean;
  quiet: boolean;
  verbose: number;
  color: boolean | undefined;
  help?: boolean;
}

async function workerMain(args: string[]): Promise<number> {
  const argv = (await workerParser(args).parseAsync()) as unknown as WorkerArgv;
  if (argv.help) return EXIT.ok;
  const { runWorker } = await import('../cluster/worker.js');
  const { createLogger, levelFor } = await import('./log.js');
  const { formatSummary } = await import('../record/run-report.js');
  const color = useColor(argv.color);
  const logger = createLogger({ level: levelFor(argv.verbose, argv.quiet), color });
  guardOutputs();
  const stop = new AbortController();
  const stopping = stopOnSignals(
    stop,
    (signal) =>
      logger.warn(
        `${signal}: taking no new batch; downloads in flight get ${argv.grace} ms, then the batch is handed back (again to exit now)`,
      ),
    (signal) => `imgdl worker: ${signal} again, exiting now; the batch is taken over by another worker after --lock-ms\n`,
  );
  try {
    const done = await runWorker({
      queue: argv.queue,
      out: argv.out,
      concurrency: argv.concurrency,
      lockMs: argv.lockMs,
      exitWhenEmpty: argv.exitWhenEmpty,
      graceMs: argv.grace,
      stopSignal: stop.signal,
      logger,
    });
    if (argv.json) process.stdout.write(JSON.stringify({ ...done.summary, batches: done.batches, handedBack: done.handedBack }) + '\n');
    else if (!argv.quiet)
      process.stderr.write(
        `${formatSummary(done.summary, { color })}\n  batches   ${done.batches} finished, ${done.handedBack} handed back\n`,
      );
  } finally {
    stopping.dispose();
  }
  return stopping.by === undefined ? EXIT.ok : exitCodeAfter(stopping.by);
}

interface StatusArgv {
  queue: string;
  json: boolean;
  watch: boolean;
  interval: number;
  help?: boolean;
}

async function statusMain(args: string[]): Promise<number> {
  const argv = (await statusParser(args).parseAsync()) as unknown as StatusArgv;
  if (argv.help) return EXIT.ok;
  if (!Number.isInteger(argv.interval) || argv.interval < 100)
    throw new UsageError(`--interval must be an integer of at least 100, got ${argv.interval}`);
  const { formatStatus, formatStatusLine, queueStatus } = await import('../cluster/status.js');
  guardOutputs();
  if (!argv.watch) {
    const status = await queueStatus(argv.queue);
    process.stdout.write(argv.json ? JSON.stringify(status) + '\n' : formatStatus(status) + '\n');
    return EXIT.ok;
  }
  // --watch: a fresh snapshot per refresh, the rate from the last two; stops on Ctrl-C/SIGTERM.
  const stop = new AbortController();
  const stopping = stopOnSignals(stop, () => undefined);
  const tty = process.stdout.isTTY === true;
  let last: { ok: number; at: number } | undefined;
  try {
    while (!stop.signal.aborted) {
      try {
        const status = await queueStatus(argv.queue);
        const now = performance.now();
        const rate = last && now > last.at ? Math.round(((status.ok - last.ok) / (now - last.at)) * 10_000) / 10 : status.filesPerSec;
        last = { ok: status.ok, at: now };
        if (argv.json) process.stdout.write(JSON.stringify(status) + '\n');
        else process.stdout.write(tty ? `\r\x1b[K${formatStatusLine(status, rate)}` : `${formatStatusLine(status, rate)}\n`);
      } catch (error) {
        // A watch outlives a Redis restart: say so and look again.
        const text = `Redis unavailable: ${describeError(error)}`;
        process.stdout.write(tty ? `\r\x1b[K${text}` : `${text}\n`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, argv.interval);
        stop.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
  } finally {
    stopping.dispose();
    if (tty && !argv.json) process.stdout.write('\n');
  }
  return stopping.by === undefined ? EXIT.ok : exitCodeAfter(stopping.by);
}
