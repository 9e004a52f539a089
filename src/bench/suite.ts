/**
 * The benchmark suite (`npm run bench`): fixed scenarios against loopback
 * fixture servers running in their own processes, imgdl's modes next to curl,
 * wget2 and aria2c on the same list in the same run, medians of several runs,
 * and the targets as ratios against baselines measured in that same run (so
 * a busy machine slows both sides of each ratio).
 *
 *   node dist/bench/suite.js [--only latency,tls,sequential,flood,bulk,startup,hosts,cluster,million,resize,dataset] [--runs 5]
 *                            [--bulk-files 16] [--bulk-size 64MiB] [--compare CLI]
 *                            [--million-runs 3] [--million-items 1000000] [--json]
 *
 * `million` (a million-item list: src/bench/million.ts) takes about half an
 * hour, and `tls` (the latency list over HTTPS, HTTP/2 against HTTP/1.1:
 * src/bench/tls.ts) over two minutes, so they run only when named in --only;
 * so do `resize` (image work: src/bench/resize-scenario.ts) and `dataset`
 * (a CSV into resized WebDataset shards: src/bench/dataset-scenario.ts), which
 * plain lists never ask for.
 *
 * Every scenario also runs the bare-undici reference (reference.ts): the
 * smallest loop that downloads the same list with undici and writes the same
 * files, the practical limit for Node on the machine. Each imgdl command is
 * given as a ratio to it and to every peer. `--compare` adds another build's
 * CLI (say, main's `bin/imgdl.js`) to every scenario, for before/after
 * figures taken in the same run.
 *
 * Every command runs as its own process under /usr/bin/time (for peak RSS,
 * user and system CPU) into a fresh folder, which is checked (file count and
 * bytes) and removed; a folder of many files only once the suite ends, so that
 * no run pays for the deletions of the one before (measure.ts, SpentOutputs).
 * Runs are interleaved (run 1 of every command, then run 2, ...) so that
 * a burst of load from elsewhere does not land on one command only. A peer
 * tool that takes over 3× the fastest command's first run is run once only,
 * to keep the suite's time bounded.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatTable } from '../cli/bench.js';
import { parseSweep } from '../cli/sweep-output.js';
import { parseSize } from '../options.js';
import { formatDuration } from '../record/run-report.js';
import { installed } from './contenders.js';
import { spentOutputs, timed } from './measure.js';
import { formatMillion, millionTargets, runMillion, type MillionResult } from './million.js';
import { printScenario, targets } from './results.js';
import { DEFAULT_SCENARIOS, SCENARIOS, scenario, type ScenarioName, type ScenarioResult, type Settings } from './scenarios.js';
import { startServer, type ServerProcess } from './servers.js';
import { sweepAndPrint, writeSuiteReport } from './suite-report.js';
import { tlsScenario } from './tls.js';
import type { SweepPoint } from '../charts/points.js';

const USAGE = `usage: npm run bench -- [--only ${SCENARIOS.join(',')},sweep] [--runs 5] [--bulk-files 16] [--bulk-size 64MiB] [--compare CLI] [--million-runs 3] [--million-items 1000000] [--json]\n       [--report FILE.html] [--sweep 1,4,16,64] [--sweep-files 500]\n(million, tls, resize and dataset run only when named in --only)\n`;

function settings(): Settings {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        only: { type: 'string' },
        runs: { type: 'string', default: '5' },
        'bulk-files': { type: 'string', default: '16' },
        'bulk-size': { type: 'string', default: '64MiB' },
        compare: { type: 'string' },
        'million-runs': { type: 'string', default: '3' },
        'million-items': { type: 'string', default: '1000000' },
        json: { type: 'boolean', default: false },
        report: { type: 'string' },
        sweep: { type: 'string', default: '1,4,16,64' },
        'sweep-files': { type: 'string', default: '500' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    fail(`${(error as Error).message}\n${USAGE}`);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const named = values.only?.split(',').map((s) => s.trim());
  // `sweep` is not a scenario of the table kind: it runs for --report, or alone when named.
  const only = (named?.filter((name) => name !== 'sweep') ?? [...DEFAULT_SCENARIOS]) as ScenarioName[];
  let sweepConcurrencies: number[] = [];
  try {
    sweepConcurrencies = parseSweep(values.sweep);
  } catch (error) {
    fail((error as Error).message);
  }
  const sweepFiles = Number(values['sweep-files']);
  if (!Number.isInteger(sweepFiles) || sweepFiles < 1) fail(`--sweep-files must be a positive integer, got ${values['sweep-files']}`);
  const sweep = values.report !== undefined || (named?.includes('sweep') ?? false);
  for (const name of only) if (!SCENARIOS.includes(name)) fail(`--only: unknown scenario "${name}" (expected ${SCENARIOS.join(', ')})`);
  const runs = Number(values.runs);
  const millionRuns = Number(values['million-runs']);
  if (!Number.isInteger(millionRuns) || millionRuns < 1) fail(`--million-runs must be a positive integer, got ${values['million-runs']}`);
  const millionItems = Number(values['million-items']);
  if (!Number.isInteger(millionItems) || millionItems < 10)
    fail(`--million-items must be an integer of at least 10, got ${values['million-items']}`);
  const bulkFiles = Number(values['bulk-files']);
  let bulkSize: number | undefined;
  try {
    bulkSize = parseSize('bulk-size', values['bulk-size']);
  } catch {
    bulkSize = undefined;
  }
  if (!Number.isInteger(runs) || runs < 1) fail(`--runs must be a positive integer, got ${values.runs}`);
  if (!Number.isInteger(bulkFiles) || bulkFiles < 1) fail(`--bulk-files must be a positive integer, got ${values['bulk-files']}`);
  if (bulkSize === undefined || bulkSize < 200 || bulkSize > 64 * 1024 * 1024) fail(`--bulk-size must be from 200 bytes to 64MiB`);
  const compare = values.compare === undefined ? undefined : path.resolve(values.compare);
  if (compare !== undefined && !existsSync(compare)) fail(`--compare: no such file ${compare}`);
  return {
    only,
    runs,
    millionRuns,
    millionItems,
    bulkFiles,
    bulkSize: bulkSize!,
    compare,
    json: values.json,
    report: values.report,
    sweep,
    sweepConcurrencies,
    sweepFiles,
  };
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

/** What the scenarios with a shape of their own measured, besides the imgdl-against-peers tables. */
interface OwnShapes {
  cluster?: import('./cluster.js').ClusterBenchResult;
  hosts?: import('./hosts.js').HostsBenchResult;
  million?: MillionResult;
  /** The concurrency sweep's points, with the peers', when `--sweep` or `--report` asked for them. */
  sweep?: SweepPoint[];
}

/** A progress line on a terminal's stderr for a long scenario; none otherwise. */
function progressLine(name: string): { say: ((what: string) => void) | undefined; done(): void } {
  const tty = process.stderr.isTTY;
  return {
    say: tty ? (what) => process.stderr.write(`\r\x1b[K${name}: ${what}`) : undefined,
    done: () => void (tty && process.stderr.write('\r\x1b[K')),
  };
}

/** The million scenario, in a temp folder of its own. */
async function millionScenario(s: Settings, fast: ServerProcess): Promise<MillionResult> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-million-'));
  try {
    return await runMillion({ server: fast, timed, runs: s.millionRuns, items: s.millionItems, growthLines: 10 * s.millionItems }, dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The scenarios with a shape of their own, run by {@link ownShape}. */
type OwnShape = 'million' | 'hosts' | 'cluster';

function isOwnShape(name: ScenarioName): name is OwnShape {
  return name === 'million' || name === 'hosts' || name === 'cluster';
}

/** Runs a scenario with a shape of its own, keeping what it measured in `into`. */
async function ownShape(name: OwnShape, s: Settings, slow: ServerProcess, fast: ServerProcess, into: OwnShapes): Promise<void> {
  if (name === 'million') {
    into.million = await millionScenario(s, fast);
    if (!s.json) process.stdout.write(formatMillion(into.million));
  } else if (name === 'hosts') {
    // Ten loopback hosts of its own, one slow and one answering 429: see bench/hosts.ts.
    const { hostsBench, formatHostsBench } = await import('./hosts.js');
    const line = progressLine('hosts');
    into.hosts = await hostsBench(s.runs, line.say);
    line.done();
    if (!s.json) process.stdout.write(formatHostsBench(into.hosts));
  } else {
    // Its own shape (a queue, workers, Redis memory): see bench/cluster.ts.
    if (!installed('redis-server')) {
      process.stderr.write('bench: cluster skipped: redis-server is not installed (apt-get install redis-server)\n');
      return;
    }
    const { clusterBench, formatClusterBench } = await import('./cluster.js');
    const line = progressLine('cluster');
    into.cluster = await clusterBench(slow.origin, s.runs, line.say);
    line.done();
    if (!s.json) process.stdout.write(formatClusterBench(into.cluster));
  }
}

/** The targets of every scenario that ran, as ratios of medians. */
function allTargets(results: readonly ScenarioResult[], own: OwnShapes): ReturnType<typeof targets> {
  const goals = targets(results);
  if (own.hosts) {
    const ratio = Math.round(own.hosts.slowdown * 1000) / 1000;
    goals.push({ what: "hosts: the good hosts' files/s alone ÷ beside a slow and a 429 host", ratio, limit: 1.25, met: ratio <= 1.25 });
  }
  if (own.cluster) {
    for (const [what, value] of [
      ['cluster: queue overhead, 1 worker', own.cluster.overheadOneWorker],
      ['cluster: queue overhead, 3 workers', own.cluster.overheadThreeWorkers],
    ] as const) {
      const ratio = Math.round((1 + value) * 1000) / 1000;
      goals.push({ what: `${what} (× one process)`, ratio, limit: 1.1, met: ratio <= 1.1 });
    }
  }
  return goals;
}

/** Prints the suite's end: every result as JSON, or the targets' table and how the figures were taken. */
function printEnd(
  s: Settings,
  results: readonly ScenarioResult[],
  own: OwnShapes,
  goals: ReturnType<typeof targets>,
  startedAt: number,
): void {
  if (s.json) {
    const extra = {
      ...(own.million ? { million: { ...own.million, targets: millionTargets(own.million) } } : {}),
      ...(own.sweep ? { sweep: own.sweep } : {}),
    };
    const all = {
      runs: s.runs,
      cpus: os.availableParallelism(),
      results,
      hosts: own.hosts,
      cluster: own.cluster,
      targets: goals,
      ...extra,
    };
    process.stdout.write(JSON.stringify(all, null, 2) + '\n');
    return;
  }
  const lines = goals.map((t) => [
    t.what,
    t.ratio === undefined ? 'n/a' : t.ratio.toFixed(3),
    `≤ ${t.limit}`,
    t.met === undefined ? '-' : t.met ? 'met' : 'MISSED',
  ]);
  process.stdout.write(`\n## targets (ratios of medians measured in this run)\n${formatTable(['target', 'ratio', 'goal', ''], lines)}\n`);
  process.stdout.write(
    `\n${s.runs} runs per command (start-up: ${Math.max(s.runs, 10)}), ${os.availableParallelism()} CPUs, node ${process.version}; ` +
      `wall = whole process as a user times it; peak RSS, user and system CPU from /usr/bin/time (CPU/file = median user+sys over files; ctx sw/file = median voluntary / involuntary context switches over files); ` +
      `suite took ${formatDuration(performance.now() - startedAt)}\n`,
  );
}

async function main(): Promise<void> {
  const s = settings();
  const slow = await startServer(50);
  const fast = await startServer(0);
  const results: ScenarioResult[] = [];
  const own: OwnShapes = {};
  const started = performance.now();
  try {
    for (const name of s.only) {
      if (isOwnShape(name)) {
        await ownShape(name, s, slow, fast, own);
        continue;
      }
      // tls has a server of its own, speaking HTTP/2 and HTTP/1.1 over TLS: see bench/tls.ts.
      // resize and dataset have image servers of their own: see bench/resize-scenario.ts, bench/dataset-scenario.ts.
      const result =
        name === 'tls'
          ? await tlsScenario(s)
          : name === 'resize'
            ? await (await import('./resize-scenario.js')).resizeScenario(s)
            : name === 'dataset'
              ? await (await import('./dataset-scenario.js')).datasetScenario(s)
              : await scenario(name, s, { slow: slow.origin, fast: fast.origin });
      results.push(result);
      if (!s.json) process.stdout.write(printScenario(result));
    }
    if (s.sweep) own.sweep = await sweepAndPrint(s, slow.origin);
  } finally {
    // Runs' folders deleted only now: see SpentOutputs.
    await Promise.all([slow.stop(), fast.stop(), spentOutputs.clear()]);
  }
  const goals = allTargets(results, own);
  if (s.report !== undefined && own.sweep) await writeSuiteReport(s.report, own.sweep, results, goals, s);
  printEnd(s, results, own, goals, started);
}

await main();
