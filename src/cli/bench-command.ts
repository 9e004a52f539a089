/**
 * `imgdl bench`'s shell: its flags, the list it writes to a temp file (from
 * URLs, inputs, or the embedded fixture server with --local), its progress
 * line and its table. The measuring itself is in bench.ts.
 *
 * Exit codes ({@link EXIT}): 0 when every run saved every item, 1 when any
 * item failed, 2 for a usage error.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { DEFAULTS, HASHES, MODES, parseSize, type Mode } from '../options.js';
import { strictParser, type YargsModule } from './args.js';
import { allItems, bindStdinDash, openInputs, type OpenedInput } from './inputs.js';
import { EXIT } from './process.js';
import { parseSweep } from './sweep-output.js';

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
  sweep: string | undefined;
  report: string | undefined;
}

function benchParser(yargs: YargsModule['default'], args: string[]) {
  const y = yargs(args)
    .scriptName('imgdl bench')
    .usage(
      '$0 [urls..] [options]\n\nDownload the same list once per mode per repeat, each run a fresh process into a fresh temp folder, and compare.',
    )
    .command('$0 [urls..]', false)
    .positional('urls', { type: 'string', array: true, default: [], describe: 'URLs to download' })
    .option('input', { alias: 'i', type: 'string', array: true, describe: 'Read URLs from FILE ("-" is stdin); repeatable' })
    .option('modes', { type: 'string', default: MODES.join(','), describe: 'Modes to compare, comma-separated' })
    .option('repeat', { type: 'number', default: 3, describe: 'Runs per mode (the table shows medians)' })
    .option('concurrency', {
      alias: 'c',
      type: 'number',
      default: DEFAULTS.concurrency,
      describe: 'Downloads in flight (concurrent and workers)',
    })
    .option('threads', { alias: 't', type: 'number', describe: 'Worker threads (workers mode)' })
    .option('hash', { type: 'string', choices: HASHES as string[], describe: 'Hash every file in every mode' })
    .option('json', { type: 'boolean', default: false, describe: 'Print the rows as JSON on stdout' })
    .option('keep', { type: 'boolean', default: false, describe: 'Keep the downloaded files (folders are listed on stderr)' })
    .option('local', { type: 'boolean', default: false, describe: 'Download from an embedded loopback server instead of URLs' })
    .option('files', { type: 'number', default: 200, describe: 'With --local: how many images' })
    .option('size', { type: 'string', default: '20k', describe: 'With --local: bytes per image (20k, 1M, 64MiB)' })
    .option('latency', { type: 'number', default: 50, describe: 'With --local: ms before each response' })
    .option('sweep', { type: 'string', describe: 'Run each mode at each of these concurrencies (1,4,16,64); sequential at 1 only' })
    .option('report', { type: 'string', describe: 'Write an HTML report with charts to FILE (with --sweep, or at -c)' })
    .example('$0 --local', '200 images of 20 kB with 50 ms latency, no internet needed')
    .example('$0 --local --sweep 1,4,16,64 --report r.html', 'Where concurrency stops paying, as charts')
    .example('$0 -i urls.txt --modes concurrent,workers --hash sha256 --repeat 5', 'Compare two modes on your own list');
  return strictParser(y, false, args);
}

function integerArg(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new UsageError(`--${name} must be an integer of at least ${min}, got ${value}`);
  return value;
}

/** Parses and checks `imgdl bench`'s arguments; undefined after --help. Throws {@link UsageError}. */
async function parseBench(args: string[]): Promise<{ argv: BenchArgv; modes: Mode[] } | undefined> {
  const { default: yargs } = await import('yargs');
  const argv = (await benchParser(yargs, bindStdinDash(args)).parseAsync()) as unknown as BenchArgv;
  if ((argv as { help?: boolean }).help) return undefined;
  const modes = argv.modes.split(',').map((m) => m.trim()) as Mode[];
  for (const mode of modes)
    if (!MODES.includes(mode)) throw new UsageError(`--modes: unknown mode "${mode}" (expected ${MODES.join(', ')})`);
  integerArg('repeat', argv.repeat, 1);
  integerArg('files', argv.files, 1);
  integerArg('latency', argv.latency, 0);
  integerArg('concurrency', argv.concurrency, 1);
  if (argv.threads !== undefined) integerArg('threads', argv.threads, 1);
  if (argv.sweep !== undefined) parseSweep(argv.sweep);
  if (argv.report === '') throw new UsageError('--report needs a file name, like --report r.html');
  if (!argv.local && argv.urls.length === 0 && (argv.input ?? []).length === 0) {
    throw new UsageError('no URLs: give them as arguments, with -i FILE, or use --local');
  }
  return { argv, modes };
}

/** Runs `imgdl bench ...args`; resolves to the exit code. */
export async function benchCommand(args: string[]): Promise<number> {
  const { runBench, formatBench } = await import('./bench.js');
  let parsed: { argv: BenchArgv; modes: Mode[] } | undefined;
  try {
    parsed = await parseBench(args);
    if (parsed === undefined) return EXIT.ok;
  } catch (error) {
    process.stderr.write(`imgdl bench: ${(error as Error).message}\nTry 'imgdl bench --help'.\n`);
    return EXIT.usage;
  }
  const { argv, modes } = parsed;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-bench-list-'));
  const listFile = path.join(dir, 'urls.txt');
  const servers: Array<{ close(): Promise<void> }> = [];
  try {
    let lines: string[];
    try {
      lines = await listLines(argv, servers);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      process.stderr.write(`imgdl bench: ${error.message}\n`);
      return EXIT.usage;
    }
    await fs.writeFile(listFile, lines.join('\n') + '\n');

    if (argv.sweep !== undefined || argv.report !== undefined) return await sweep(argv, modes, lines.length, listFile, args);
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
        ? (mode, repeat, done, total) =>
            process.stderr.write(`\r\x1b[Kbench: ${mode} run ${repeat}/${argv.repeat} (${done + 1} of ${total})`)
        : undefined,
    });
    if (tty) process.stderr.write('\r\x1b[K');
    if (argv.json) process.stdout.write(JSON.stringify(rows) + '\n');
    else {
      const where = argv.local ? `${argv.files} images of ${argv.size}, ${argv.latency} ms latency, loopback` : `${lines.length} URLs`;
      process.stdout.write(
        `${where}; concurrency ${argv.concurrency}; medians of ${argv.repeat} runs, each a fresh process\n${formatBench(rows)}\n`,
      );
    }
    if (argv.keep) for (const row of rows) for (const folder of row.kept) process.stderr.write(`kept ${folder}\n`);
    return rows.some((row) => row.failed > 0) ? EXIT.failed : EXIT.ok;
  } finally {
    for (const server of servers) await server.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/**
 * The list's lines: generated images on a fixture server started here (added
 * to `servers`, for the caller to close) with --local, else the URLs and
 * inputs given. Throws {@link UsageError} for a bad --size or an unreadable input.
 */
async function listLines(argv: BenchArgv, servers: Array<{ close(): Promise<void> }>): Promise<string[]> {
  if (argv.local) {
    const { startFixtureServer, MAX_GENERATED_BYTES } = await import('../dev/fixture-server.js');
    let size: number | undefined;
    try {
      size = parseSize('size', argv.size);
    } catch {
      size = undefined;
    }
    if (size === undefined || size < 200 || size > MAX_GENERATED_BYTES) {
      throw new UsageError(`--size must be from 200 bytes to 64MiB, like 20k or 1M; got "${argv.size}"`);
    }
    const server = await startFixtureServer({ latencyMs: argv.latency });
    servers.push(server);
    return Array.from({ length: argv.files }, (_, i) => `${server.origin}/gen/${i + 1}.jpg?bytes=${size}`);
  }
  const inputs: OpenedInput[] = await openInputs(argv.input ?? []);
  const lines: string[] = [];
  for await (const item of allItems(argv.urls, inputs)) lines.push(item.name === undefined ? item.url : `${item.url} ${item.name}`);
  return lines;
}

/** `--sweep` (or `--report` alone, at -c): the points as a table or JSON, and the report. */
async function sweep(argv: BenchArgv, modes: Mode[], count: number, listFile: string, args: string[]): Promise<number> {
  const { runSweep } = await import('./bench-sweep.js');
  const { commandLine, formatSweep, writeSweepReport } = await import('./sweep-output.js');
  const extra: string[] = [];
  if (argv.threads !== undefined) extra.push('-t', String(argv.threads));
  if (argv.hash !== undefined) extra.push('--hash', argv.hash);
  const tty = process.stderr.isTTY === true;
  const points = await runSweep({
    listFile,
    modes,
    concurrencies: argv.sweep === undefined ? [argv.concurrency] : parseSweep(argv.sweep),
    repeat: argv.repeat,
    args: extra,
    onRun: tty ? (what, done, total) => process.stderr.write(`\r\x1b[Kbench: ${what} (${done + 1} of ${total})`) : undefined,
  });
  if (tty) process.stderr.write('\r\x1b[K');
  const where = argv.local ? `${argv.files} images of ${argv.size}, ${argv.latency} ms latency, loopback` : `${count} URLs`;
  const workload = `${where}; medians of ${argv.repeat} run${argv.repeat === 1 ? '' : 's'} per point, each a fresh process`;
  if (argv.json) process.stdout.write(JSON.stringify(points) + '\n');
  else process.stdout.write(`${workload}\n${formatSweep(points)}\n`);
  if (argv.report !== undefined) {
    const words = await writeSweepReport(argv.report, { command: commandLine(['imgdl', 'bench', ...args]), workload, points });
    process.stderr.write(`${words}\nreport written to ${argv.report}\n`);
  }
  return points.some((p) => p.failed > 0) ? EXIT.failed : EXIT.ok;
}
