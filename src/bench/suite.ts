/**
 * The benchmark suite (`npm run bench`): fixed scenarios against loopback
 * fixture servers running in their own processes, imgdl's modes next to curl,
 * wget2 and aria2c on the same list in the same run, medians of several runs,
 * and the targets as ratios against baselines measured in that same run (so
 * a busy machine slows both sides of each ratio).
 *
 *   node dist/bench/suite.js [--only latency,sequential,flood,bulk,startup,hosts,cluster,million] [--runs 5]
 *                            [--bulk-files 16] [--bulk-size 64MiB] [--compare CLI]
 *                            [--million-runs 3] [--million-items 1000000] [--json]
 *
 * `million` (a million-item list: src/bench/million.ts) takes about half an
 * hour, so it runs only when named in --only.
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
 * bytes) and removed.
 * Runs are interleaved (run 1 of every command, then run 2, ...) so that
 * a burst of load from elsewhere does not land on one command only. A peer
 * tool that takes over 3× the fastest command's first run is run once only,
 * to keep the suite's time bounded.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { CLI_PATH, formatTable, median } from '../cli/bench.js';
import { parseSize } from '../options.js';
import { formatMillion, millionTargets, runMillion, type MillionResult } from './million.js';
import { formatBytes, formatDuration } from '../record/run-report.js';

const SERVER_PATH = fileURLToPath(new URL('./server.js', import.meta.url));
const REFERENCE_PATH = fileURLToPath(new URL('./reference.js', import.meta.url));
const REFERENCE = 'bare undici (reference)';
const TIME = '/usr/bin/time';
const SCENARIOS = ['latency', 'sequential', 'flood', 'bulk', 'startup', 'hosts', 'cluster', 'million'] as const;
type ScenarioName = (typeof SCENARIOS)[number];
/** What runs without --only: everything but the half-hour million scenario. */
const DEFAULT_SCENARIOS: readonly ScenarioName[] = SCENARIOS.filter((name) => name !== 'million');

interface Settings {
  only: readonly ScenarioName[];
  runs: number;
  millionRuns: number;
  /** Items of the million scenario's real run; its growth dry runs have ten times as many lines. */
  millionItems: number;
  bulkFiles: number;
  bulkSize: number;
  /** Another build's CLI, run as an extra imgdl command in every scenario. */
  compare: string | undefined;
  json: boolean;
}

/** One command of a scenario: how to run it into `out`. */
interface Contender {
  name: string;
  argv: (out: string) => string[];
  /** False for commands that save nothing (start-up). */
  saves: boolean;
  /** True for the other tools (curl, wget2, aria2c): run once only when far off the pace. */
  peer?: boolean;
}

interface Measured {
  name: string;
  walls: number[];
  rss: number[];
  /** User and system CPU seconds of each run. */
  user: number[];
  sys: number[];
  /** Runs whose folder did not hold every file with every byte. */
  incomplete: number;
}

interface ScenarioResult {
  scenario: ScenarioName;
  description: string;
  /** Files each run saves (per-file CPU is divided by it). */
  files: number;
  floorMs: number | undefined;
  baseline: string | undefined;
  rows: Measured[];
}

interface Target {
  what: string;
  ratio: number | undefined;
  limit: number;
  /** For "faster than X" targets, the ratio must be below 1. */
  met: boolean | undefined;
}

const USAGE = `usage: npm run bench -- [--only ${SCENARIOS.join(',')}] [--runs 5] [--bulk-files 16] [--bulk-size 64MiB] [--compare CLI] [--million-runs 3] [--million-items 1000000] [--json]\n`;

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
  const only = (values.only?.split(',').map((s) => s.trim()) ?? [...DEFAULT_SCENARIOS]) as ScenarioName[];
  for (const name of only) if (!SCENARIOS.includes(name)) fail(`--only: unknown scenario "${name}" (expected ${SCENARIOS.join(', ')})`);
  const runs = Number(values.runs);
  const millionRuns = Number(values['million-runs']);
  if (!Number.isInteger(millionRuns) || millionRuns < 1) fail(`--million-runs must be a positive integer, got ${values['million-runs']}`);
  const millionItems = Number(values['million-items']);
  if (!Number.isInteger(millionItems) || millionItems < 10) fail(`--million-items must be an integer of at least 10, got ${values['million-items']}`);
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
  return { only, runs, millionRuns, millionItems, bulkFiles, bulkSize: bulkSize!, compare, json: values.json };
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function installed(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** What the fixture server process has seen. */
interface ServerStats {
  requests: number;
  /** Date.now() of the first request since start or reset, null before it. */
  firstRequestAt: number | null;
}

/** A fixture server running in a process of its own. */
interface ServerProcess {
  origin: string;
  stats(): Promise<ServerStats>;
  reset(): void;
  stop(): Promise<void>;
}

/** Starts a fixture server process and resolves with its origin, its counters and a stop function. */
async function startServer(latencyMs: number): Promise<ServerProcess> {
  const child = spawn(process.execPath, [SERVER_PATH, String(latencyMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  // The first line is the origin; each later one answers a `stats` asked on stdin, in order.
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => waiting.shift()?.(line.trim()));
  const origin = await new Promise<string>((resolve, reject) => {
    waiting.push(resolve);
    child.once('exit', (code) => reject(new Error(`fixture server exited with ${code}`)));
  });
  return {
    origin,
    stats: () =>
      new Promise<ServerStats>((resolve) => {
        waiting.push((line) => resolve(JSON.parse(line) as ServerStats));
        child.stdin.write('stats\n');
      }),
    reset: () => void child.stdin.write('reset\n'),
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      }),
  };
}

/** Runs `argv` under /usr/bin/time; resolves with whole-process wall ms, peak RSS bytes and CPU seconds. */
async function timed(argv: string[], dir: string): Promise<{ wallMs: number; rss: number; user: number; sys: number; code: number | null }> {
  const timeFile = path.join(dir, 'time.txt');
  const withTime = existsSync(TIME) ? [TIME, '-f', '%M %U %S', '-o', timeFile, ...argv] : argv;
  const started = performance.now();
  const child = spawn(withTime[0]!, withTime.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  const wallMs = performance.now() - started;
  let [rss, user, sys] = [Number.NaN, Number.NaN, Number.NaN];
  if (withTime !== argv) {
    const text = await fs.readFile(timeFile, 'utf8').catch(() => '');
    const fields = (text.trim().split('\n').pop() ?? '').split(' ').map(Number);
    [rss, user, sys] = [fields[0]! * 1024, fields[1]!, fields[2]!];
  }
  if (code !== 0) process.stderr.write(`\n${argv.join(' ').slice(0, 200)} exited with ${code}: ${stderr.trim().slice(-500)}\n`);
  return { wallMs, rss, user, sys, code };
}

/** Files and bytes below `dir`. */
async function tally(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    files++;
    bytes += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return { files, bytes };
}

/** Runs every contender `runs` times, interleaved, each into a fresh folder. */
async function measure(
  label: string,
  contenders: readonly Contender[],
  runs: number,
  expected: { files: number; bytes: number },
): Promise<Measured[]> {
  const results: Measured[] = contenders.map((c) => ({ name: c.name, walls: [], rss: [], user: [], sys: [], incomplete: 0 }));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-'));
  try {
    const dropped = new Set<number>();
    for (let run = 1; run <= runs; run++) {
      if (run === 2) {
        // Bounded time: a peer over 3× the fastest after one run is far off the pace; one run says so.
        // imgdl's own commands and the reference always get every run: they are what the suite measures.
        const fastest = Math.min(...results.map((r) => r.walls[0] ?? Number.POSITIVE_INFINITY));
        results.forEach((r, i) => contenders[i]!.peer && (r.walls[0] ?? 0) > 3 * fastest && dropped.add(i));
      }
      for (const [i, contender] of contenders.entries()) {
        if (dropped.has(i)) continue;
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${label}: ${contender.name} run ${run}/${runs}`);
        const out = path.join(work, `out-${run}-${i}`);
        await fs.mkdir(out);
        const { wallMs, rss, user, sys, code } = await timed(contender.argv(out), work);
        const result = results[i]!;
        result.walls.push(wallMs);
        result.rss.push(rss);
        result.user.push(user);
        result.sys.push(sys);
        if (contender.saves) {
          const got = await tally(out);
          if (code !== 0 || got.files !== expected.files || got.bytes !== expected.bytes) result.incomplete++;
        } else if (code !== 0) result.incomplete++;
        await fs.rm(out, { recursive: true, force: true });
      }
    }
  } finally {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    await fs.rm(work, { recursive: true, force: true });
  }
  return results;
}

/** Writes the list in the formats each tool reads; names are `N.jpg` everywhere. */
async function writeLists(dir: string, urls: readonly string[]): Promise<{ plain: string; curl: string; aria2: string; named: string }> {
  const names = urls.map((_, i) => `${i + 1}.jpg`);
  const files = {
    plain: path.join(dir, 'urls.txt'),
    named: path.join(dir, 'named.txt'),
    curl: path.join(dir, 'curl.cfg'),
    aria2: path.join(dir, 'aria2.txt'),
  };
  await fs.writeFile(files.plain, urls.join('\n') + '\n');
  await fs.writeFile(files.named, urls.map((u, i) => `${u} ${names[i]}`).join('\n') + '\n');
  await fs.writeFile(files.curl, urls.map((u, i) => `url = "${u}"\noutput = "${names[i]}"\n`).join(''));
  await fs.writeFile(files.aria2, urls.map((u, i) => `${u}\n  out=${names[i]}\n`).join(''));
  return files;
}

const node = process.execPath;

function peers(lists: { plain: string; curl: string; aria2: string }, c: number): Contender[] {
  const found: Contender[] = [];
  if (installed('curl')) {
    found.push({
      name: c === 1 ? 'curl (sequential)' : `curl -Z --parallel-max ${c}`,
      argv: (out) => ['curl', '-s', '--no-progress-meter', ...(c === 1 ? [] : ['-Z', '--parallel-max', String(c)]), '--output-dir', out, '-K', lists.curl],
      saves: true,
      peer: true,
    });
  }
  if (installed('wget2')) {
    found.push({
      name: `wget2 --max-threads=${c}`,
      argv: (out) => ['wget2', '-q', '--no-config', `--max-threads=${c}`, '-P', out, '-i', lists.plain],
      saves: true,
      peer: true,
    });
  }
  if (installed('aria2c')) {
    found.push({
      name: `aria2c -j ${c}`,
      argv: (out) => [
        'aria2c', '-q', '-j', String(c), '-d', out, '-i', lists.aria2,
        // Defaults that would measure something else: preallocation, a session summary, 5 connections per server.
        '--file-allocation=none', '--max-connection-per-server=16', '--auto-file-renaming=false', '--summary-interval=0',
      ],
      saves: true,
      peer: true,
    });
  }
  return found;
}

function imgdl(name: string, list: string, args: string[], cli: string = CLI_PATH): Contender {
  return { name, argv: (out) => [node, cli, '-i', list, '-o', out, '-q', ...args], saves: true };
}

function reference(list: string, c: number): Contender {
  return { name: REFERENCE, argv: (out) => [node, REFERENCE_PATH, list, out, String(c)], saves: true };
}

async function scenario(
  name: Exclude<ScenarioName, 'hosts' | 'cluster' | 'million'>,
  s: Settings,
  servers: { slow: string; fast: string },
): Promise<ScenarioResult> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `imgdl-suite-${name}-`));
  try {
    if (name === 'startup') {
      // One real download (the smallest image, no latency) as well as --version: what a run loads, not only the shell.
      const one = `${servers.fast}/gen/1.jpg?bytes=200`;
      const contenders: Contender[] = [
        { name: 'node -e 0', argv: () => [node, '-e', '0'], saves: false },
        { name: 'imgdl --version', argv: () => [node, CLI_PATH, '--version'], saves: false },
        { name: 'imgdl URL (one file)', argv: (out) => [node, CLI_PATH, one, '-o', out, '-q'], saves: true },
      ];
      if (s.compare !== undefined) contenders.push({ name: `imgdl URL (one file) @compare`, argv: (out) => [node, s.compare!, one, '-o', out, '-q'], saves: true });
      // Start-up runs are short; more of them steady the median at little cost.
      const rows = await measure(name, contenders, Math.max(s.runs, 10), { files: 1, bytes: 200 });
      return { scenario: name, description: 'imgdl --version and a one-file download, against node -e 0', files: 1, floorMs: undefined, baseline: 'node -e 0', rows };
    }
    const spec = {
      latency: { files: 2000, size: 20_000, origin: servers.slow, c: 32, floor: Math.ceil(2000 / 32) * 50 },
      sequential: { files: 100, size: 20_000, origin: servers.slow, c: 1, floor: 100 * 50 },
      flood: { files: 20_000, size: 2_000, origin: servers.fast, c: 32, floor: undefined },
      bulk: { files: s.bulkFiles, size: s.bulkSize, origin: servers.fast, c: 8, floor: undefined },
    }[name];
    const urls = Array.from({ length: spec.files }, (_, i) => `${spec.origin}/gen/${i + 1}.jpg?bytes=${spec.size}`);
    const lists = await writeLists(dir, urls);
    const c = String(spec.c);
    const contenders: Contender[] = [];
    if (name === 'sequential') contenders.push(imgdl('imgdl sequential', lists.plain, ['-m', 'sequential']));
    else {
      contenders.push(imgdl(`imgdl -c ${c}`, lists.plain, ['-c', c]));
      contenders.push(imgdl(`imgdl workers -c ${c}`, lists.plain, ['-m', 'workers', '-c', c]));
    }
    if (s.compare !== undefined) {
      const args = name === 'sequential' ? ['-m', 'sequential'] : ['-c', c];
      contenders.push(imgdl(`imgdl ${name === 'sequential' ? 'sequential' : `-c ${c}`} @compare`, lists.plain, args, s.compare));
    }
    contenders.push(reference(lists.plain, spec.c));
    if (name === 'bulk') {
      contenders.push(imgdl(`imgdl -c ${c} --hash sha256`, lists.plain, ['-c', c, '--hash', 'sha256']));
      contenders.push(imgdl(`imgdl workers -c ${c} --hash sha256`, lists.plain, ['-m', 'workers', '-c', c, '--hash', 'sha256']));
    }
    contenders.push(...peers(lists, spec.c));
    const rows = await measure(name, contenders, s.runs, { files: spec.files, bytes: spec.files * spec.size });
    const description = `${spec.files} × ${formatBytes(spec.size)}, ${spec.origin === servers.slow ? '50 ms' : 'no'} latency, concurrency ${c}`;
    const baseline = rows.find((r) => r.name.startsWith('curl'))?.name;
    return { scenario: name, description, files: spec.files, floorMs: spec.floor, baseline, rows };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

function med(row: Measured | undefined): number | undefined {
  return row && row.walls.length > 0 ? median(row.walls) : undefined;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : Math.round((a / b) * 1000) / 1000;
}

/** Median user + system CPU of a row's runs, in seconds. */
function cpu(row: Measured): number {
  return median(row.user.map((u, i) => u + row.sys[i]!));
}

function targets(results: readonly ScenarioResult[]): Target[] {
  const get = (scenario: ScenarioName, name: string): Measured | undefined =>
    results.find((r) => r.scenario === scenario)?.rows.find((row) => row.name.startsWith(name));
  const list: Target[] = [];
  const within = (what: string, value: number | undefined, limit: number): void => {
    list.push({ what, ratio: value, limit, met: value === undefined ? undefined : value <= limit });
  };
  const lat = results.find((r) => r.scenario === 'latency');
  if (lat) {
    within('latency: imgdl -c 32 / floor 3.15 s', ratio(med(get('latency', 'imgdl -c 32')), lat.floorMs), 1.15);
    within('latency: imgdl -c 32 / bare undici', ratio(med(get('latency', 'imgdl -c 32')), med(get('latency', REFERENCE))), 1.3);
  }
  const seq = results.find((r) => r.scenario === 'sequential');
  if (seq) within('sequential: imgdl / floor 5 s', ratio(med(get('sequential', 'imgdl sequential')), seq.floorMs), 1.08);
  if (results.some((r) => r.scenario === 'flood')) {
    within('flood: imgdl -c 32 / curl -Z', ratio(med(get('flood', 'imgdl -c 32')), med(get('flood', 'curl'))), 1.5);
    within('flood: imgdl -c 32 / bare undici', ratio(med(get('flood', 'imgdl -c 32')), med(get('flood', REFERENCE))), 1.3);
  }
  if (results.some((r) => r.scenario === 'bulk')) {
    within('bulk: imgdl -c 8 / curl -Z', ratio(med(get('bulk', 'imgdl -c 8')), med(get('bulk', 'curl'))), 1.3);
    const rss = get('bulk', 'imgdl -c 8');
    within('bulk: imgdl -c 8 peak RSS / 80 MiB', rss ? ratio(Math.max(...rss.rss), 80 * 1024 * 1024) : undefined, 1);
  }
  if (results.some((r) => r.scenario === 'startup')) {
    within('start-up: imgdl --version / node -e 0', ratio(med(get('startup', 'imgdl --version')), med(get('startup', 'node'))), 1.5);
  }
  return list;
}

function printScenario(r: ScenarioResult): string {
  const base = med(r.rows.find((row) => row.name === r.baseline));
  const ref = med(r.rows.find((row) => row.name === REFERENCE));
  const header = ['command', 'runs', 'median wall', 'min', 'max', '× floor', r.baseline ? `× ${r.baseline.split(' ')[0]}` : '× base', '× ref', 'user+sys', 'CPU/file', 'peak RSS', 'complete'];
  const rows = r.rows.map((row) => {
    const m = median(row.walls);
    const peak = Math.max(...row.rss);
    const seconds = cpu(row);
    return [
      row.name,
      String(row.walls.length),
      formatDuration(m),
      formatDuration(Math.min(...row.walls)),
      formatDuration(Math.max(...row.walls)),
      r.floorMs ? (m / r.floorMs).toFixed(3) : '-',
      base ? (m / base).toFixed(3) : '-',
      ref ? (m / ref).toFixed(3) : '-',
      Number.isFinite(seconds) ? `${seconds.toFixed(2)} s` : '?',
      Number.isFinite(seconds) && r.files > 0 ? `${Math.round((seconds / r.files) * 1e6)} µs` : '?',
      Number.isFinite(peak) ? formatBytes(peak) : '?',
      `${row.walls.length - row.incomplete}/${row.walls.length}`,
    ];
  });
  const floor = r.floorMs ? `; floor ${formatDuration(r.floorMs)}` : '';
  // Each imgdl command against every other command that is not imgdl: the reference and each peer.
  const others = r.rows.filter((row) => !row.name.startsWith('imgdl'));
  const ratios = r.rows
    .filter((row) => row.name.startsWith('imgdl') && r.scenario !== 'startup')
    .map((row) => `${row.name}: ` + others.map((o) => `${(median(row.walls) / median(o.walls)).toFixed(2)}× ${o.name.split(' (')[0]}`).join(', '))
    .join('\n');
  return `\n## ${r.scenario}: ${r.description}${floor}\n${formatTable(header, rows)}\n${ratios ? `${ratios}\n` : ''}`;
}

async function main(): Promise<void> {
  const s = settings();
  const slow = await startServer(50);
  const fast = await startServer(0);
  const results: ScenarioResult[] = [];
  let clusterResult: import('./cluster.js').ClusterBenchResult | undefined;
  let hostsResult: import('./hosts.js').HostsBenchResult | undefined;
  let million: MillionResult | undefined;
  const started = performance.now();
  try {
    for (const name of s.only) {
      if (name === 'million') {
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-million-'));
        try {
          million = await runMillion({ server: fast, timed, runs: s.millionRuns, items: s.millionItems, growthLines: 10 * s.millionItems }, dir);
        } finally {
          await fs.rm(dir, { recursive: true, force: true });
        }
        if (!s.json) process.stdout.write(formatMillion(million));
        continue;
      }
      if (name === 'hosts') {
        // Ten loopback hosts of its own, one slow and one answering 429: see bench/hosts.ts.
        const { hostsBench, formatHostsBench } = await import('./hosts.js');
        const tty = process.stderr.isTTY;
        hostsResult = await hostsBench(s.runs, tty ? (what) => process.stderr.write(`\r\x1b[Khosts: ${what}`) : undefined);
        if (tty) process.stderr.write('\r\x1b[K');
        if (!s.json) process.stdout.write(formatHostsBench(hostsResult));
        continue;
      }
      if (name === 'cluster') {
        // Its own shape (a queue, workers, Redis memory): see bench/cluster.ts.
        if (!installed('redis-server')) {
          process.stderr.write('bench: cluster skipped: redis-server is not installed (apt-get install redis-server)\n');
          continue;
        }
        const { clusterBench, formatClusterBench } = await import('./cluster.js');
        const tty = process.stderr.isTTY;
        const result = await clusterBench(slow.origin, s.runs, tty ? (what) => process.stderr.write(`\r\x1b[Kcluster: ${what}`) : undefined);
        if (tty) process.stderr.write('\r\x1b[K');
        clusterResult = result;
        if (!s.json) process.stdout.write(formatClusterBench(result));
        continue;
      }
      const result = await scenario(name, s, { slow: slow.origin, fast: fast.origin });
      results.push(result);
      if (!s.json) process.stdout.write(printScenario(result));
    }
  } finally {
    await Promise.all([slow.stop(), fast.stop()]);
  }
  const goals = targets(results);
  if (hostsResult) {
    const ratio = Math.round(hostsResult.slowdown * 1000) / 1000;
    goals.push({ what: "hosts: the good hosts' files/s alone ÷ beside a slow and a 429 host", ratio, limit: 1.25, met: ratio <= 1.25 });
  }
  if (clusterResult) {
    for (const [what, value] of [['cluster: queue overhead, 1 worker', clusterResult.overheadOneWorker], ['cluster: queue overhead, 3 workers', clusterResult.overheadThreeWorkers]] as const) {
      const ratio = Math.round((1 + value) * 1000) / 1000;
      goals.push({ what: `${what} (× one process)`, ratio, limit: 1.1, met: ratio <= 1.1 });
    }
  }
  if (s.json) {
    const extra = million ? { million: { ...million, targets: millionTargets(million) } } : {};
    process.stdout.write(JSON.stringify({ runs: s.runs, cpus: os.availableParallelism(), results, hosts: hostsResult, cluster: clusterResult, targets: goals, ...extra }, null, 2) + '\n');
    return;
  }
  const lines = goals.map((t) => [t.what, t.ratio === undefined ? 'n/a' : t.ratio.toFixed(3), `≤ ${t.limit}`, t.met === undefined ? '-' : t.met ? 'met' : 'MISSED']);
  process.stdout.write(`\n## targets (ratios of medians measured in this run)\n${formatTable(['target', 'ratio', 'goal', ''], lines)}\n`);
  process.stdout.write(
    `\n${s.runs} runs per command (start-up: ${Math.max(s.runs, 10)}), ${os.availableParallelism()} CPUs, node ${process.version}; ` +
      `wall = whole process as a user times it; peak RSS, user and system CPU from /usr/bin/time (CPU/file = median user+sys over files); ` +
      `suite took ${formatDuration(performance.now() - started)}\n`,
  );
}

await main();
