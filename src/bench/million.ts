/**
 * The suite's `million` scenario: a list of a million items, to show that
 * memory does not grow with the list and that planning keeps up.
 *
 * - a real run of 1,000,000 × 300 B at -c 32 against the fixture server in
 *   its own process: files/s, peak RSS, the RSS when 100k, 500k and all
 *   items were requested (sampled from /proc every 100 ms), and how long
 *   after the process started the first request reached the server;
 * - a dry run of 1,000,000 lines: wall time, lines/s, peak RSS;
 * - dry runs of 10,000,000 lines in each layout against one of 1,000 lines:
 *   how many bytes of peak RSS each line adds.
 *
 * Commands run as they do for a user (the built CLI, a fresh process, a
 * fresh folder); the real run's folder is counted and removed after.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { CLI_PATH, formatTable, median } from '../cli/bench.js';
import { formatBytes, formatDuration } from '../record/run-report.js';

/** What the scenario needs from the suite. */
export interface MillionTools {
  /** The fixture server process (no latency): its origin and request counters. */
  server: {
    origin: string;
    stats(): Promise<{ requests: number; firstRequestAt: number | null }>;
    reset(): void;
  };
  /** Runs a command under /usr/bin/time in `dir`: whole-process wall ms and peak RSS bytes. */
  timed(argv: string[], dir: string): Promise<{ wallMs: number; rss: number; code: number | null }>;
  /** Runs of each command (the 10M-line dry runs run once). */
  runs: number;
  /** Items of the real run and lines of the first dry run. Default 1,000,000. */
  items?: number;
  /** Lines of the dry runs that measure growth. Default 10,000,000. */
  growthLines?: number;
}

/** RSS of the imgdl process (resident now, and its peak so far) when it had requested a share of the list. */
interface Sample {
  requests: number;
  rss: number;
  hwm: number;
}

/** One real run of the list. */
interface RealRun {
  wallMs: number;
  filesPerSec: number;
  peakRss: number;
  /** Milliseconds from the process's start to the first request at the server. */
  firstRequestMs: number | null;
  /** At 10 %, 50 % and 100 % of the items requested. */
  samples: Sample[];
  complete: boolean;
}

/** What the scenario measured. */
export interface MillionResult {
  scenario: 'million';
  items: number;
  growthLines: number;
  real: RealRun[];
  dry: { wallMs: number[]; rss: number[] };
  growth: Array<{ layout: 'flat' | 'sharded'; baselineRss: number; peakRss: number; wallMs: number; bytesPerLine: number }>;
}

const SIZE = 300;
const BASELINE_LINES = 1_000;

/** Runs the scenario in a temp folder of its own, removed after. */
export async function runMillion(tools: MillionTools, dir: string): Promise<MillionResult> {
  const items = tools.items ?? 1_000_000;
  const growthLines = tools.growthLines ?? 10_000_000;
  const realList = path.join(dir, 'real.txt');
  await writeList(realList, items, (i) => `${tools.server.origin}/gen/${i}.jpg?bytes=${SIZE}`);
  const real: RealRun[] = [];
  for (let run = 1; run <= tools.runs; run++) {
    progress(`million: real run ${run}/${tools.runs}`);
    real.push(await realRun(realList, path.join(dir, `out-${run}`), items, tools));
  }
  await fs.rm(realList);

  // Dry-run lists name no server: nothing is requested.
  const dryUrl = (i: number): string => `http://127.0.0.1:9/gen/${i}.jpg?bytes=${SIZE}`;
  const lists = { baseline: path.join(dir, 'baseline.txt'), dry: path.join(dir, 'dry.txt'), growth: path.join(dir, 'growth.txt') };
  await writeList(lists.baseline, BASELINE_LINES, dryUrl);
  await writeList(lists.dry, items, dryUrl);
  const empty = path.join(dir, 'empty');
  await fs.mkdir(empty);
  const dryRun = (list: string, layout: string) =>
    tools.timed([process.execPath, CLI_PATH, '-n', '-i', list, '-o', empty, '--layout', layout], dir);
  const dry = { wallMs: [] as number[], rss: [] as number[] };
  for (let run = 1; run <= tools.runs; run++) {
    progress(`million: dry run ${run}/${tools.runs}`);
    const { wallMs, rss } = await dryRun(lists.dry, 'flat');
    dry.wallMs.push(wallMs);
    dry.rss.push(rss);
  }
  await writeList(lists.growth, growthLines, dryUrl);
  const growth: MillionResult['growth'] = [];
  for (const layout of ['flat', 'sharded'] as const) {
    const baselines: number[] = [];
    for (let run = 1; run <= 3; run++) baselines.push((await dryRun(lists.baseline, layout)).rss);
    progress(`million: ${growthLines}-line dry run, ${layout}`);
    const big = await dryRun(lists.growth, layout);
    const baselineRss = median(baselines);
    growth.push({ layout, baselineRss, peakRss: big.rss, wallMs: big.wallMs, bytesPerLine: (big.rss - baselineRss) / growthLines });
  }
  progress('');
  return { scenario: 'million', items, growthLines, real, dry, growth };
}

/** One real run: polls the process's RSS and the server's count until it exits. */
async function realRun(list: string, out: string, items: number, tools: MillionTools): Promise<RealRun> {
  tools.server.reset();
  const startedAt = Date.now();
  const started = performance.now();
  const child = spawn(process.execPath, [CLI_PATH, '-i', list, '-o', out, '-c', '32', '-q', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const exited = once(child, 'close');
  let done = false;
  void exited.then(() => (done = true));

  const marks = [Math.round(items / 10), Math.round(items / 2), items];
  const samples: Sample[] = [];
  let last: Sample = { requests: 0, rss: 0, hwm: 0 };
  let firstRequestAt: number | null = null;
  while (!done) {
    const memory = await processMemory(child.pid!);
    const stats = await tools.server.stats();
    firstRequestAt ??= stats.firstRequestAt;
    if (memory) last = { requests: stats.requests, ...memory };
    while (samples.length < marks.length && last.requests >= marks[samples.length]!) samples.push(last);
    await Promise.race([delay(100), exited]);
  }
  // The last mark is often reached between a sample and the exit: the last sample stands for it.
  while (samples.length < marks.length) samples.push(last);
  const wallMs = performance.now() - started;
  const [code] = (await exited) as [number | null];
  let summary: { ok?: number; bytes?: number; filesPerSec?: number; peakRssBytes?: number } = {};
  try {
    summary = JSON.parse(stdout) as typeof summary;
  } catch {
    process.stderr.write(`\nmillion: imgdl exited with ${code}: ${stderr.trim().slice(-500)}\n`);
  }
  const files = await countFiles(out);
  await fs.rm(out, { recursive: true, force: true });
  return {
    wallMs,
    filesPerSec: summary.filesPerSec ?? 0,
    peakRss: summary.peakRssBytes ?? Number.NaN,
    firstRequestMs: firstRequestAt === null ? null : firstRequestAt - startedAt,
    samples,
    complete: code === 0 && files === items && summary.ok === items && summary.bytes === items * SIZE,
  };
}

/** VmRSS and VmHWM of a process, in bytes; undefined once it is gone. */
async function processMemory(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (status === undefined) return undefined;
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Files in `dir`, counted as its listing streams (a million stats would take longer than the run). */
async function countFiles(dir: string): Promise<number> {
  let files = 0;
  try {
    for await (const entry of await fs.opendir(dir, { recursive: true })) if (entry.isFile()) files++;
  } catch {
    // No folder: no files.
  }
  return files;
}

/** Writes `count` lines made by `line` (numbered from 1), streaming. */
async function writeList(file: string, count: number, line: (i: number) => string): Promise<void> {
  const stream = createWriteStream(file);
  let chunk = '';
  for (let i = 1; i <= count; i++) {
    chunk += line(i) + '\n';
    if (chunk.length >= 1 << 20) {
      if (!stream.write(chunk)) await once(stream, 'drain');
      chunk = '';
    }
  }
  stream.end(chunk);
  await once(stream, 'finish');
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
}

/** The issue's targets for long lists, checked against this run's figures. */
export function millionTargets(r: MillionResult): Array<{ what: string; value: string; goal: string; met: boolean }> {
  const mib = 1024 * 1024;
  const peak = Math.max(...r.real.map((run) => run.peakRss));
  const dryWall = median(r.dry.wallMs);
  const dryRss = Math.max(...r.dry.rss);
  const perSecond = (r.items / dryWall) * 1000;
  const targets = [
    { what: `real run of ${r.items} items: peak RSS`, value: formatBytes(peak), goal: '< 150 MiB', met: peak < 150 * mib },
    {
      what: `dry run of ${r.items} lines: median wall`,
      value: `${formatDuration(dryWall)} (${Math.round(perSecond)} lines/s)`,
      goal: '≥ 200,000 lines/s',
      met: perSecond >= 200_000,
    },
    { what: `dry run of ${r.items} lines: peak RSS`, value: formatBytes(dryRss), goal: '< 150 MiB', met: dryRss < 150 * mib },
    ...r.growth.map((g) => ({
      what: `dry run of ${r.growthLines} lines (${g.layout}): growth`,
      value: `${g.bytesPerLine.toFixed(1)} bytes/line`,
      goal: '≤ 24 bytes/line',
      met: g.bytesPerLine <= 24,
    })),
  ];
  const first = r.real.map((run) => run.firstRequestMs).filter((ms): ms is number => ms !== null);
  if (first.length > 0) {
    const ms = median(first);
    targets.push({ what: 'real run: first request after start', value: formatDuration(ms), goal: '≤ 200 ms', met: ms <= 200 });
  }
  return targets;
}

/** The scenario's tables, in the suite's style. */
export function formatMillion(r: MillionResult): string {
  const real = r.real.map((run, i) => [
    String(i + 1),
    formatDuration(run.wallMs),
    run.filesPerSec.toFixed(0),
    formatBytes(run.peakRss),
    ...run.samples.map((s) => `${formatBytes(s.rss)} (peak ${formatBytes(s.hwm)})`),
    run.firstRequestMs === null ? '-' : formatDuration(run.firstRequestMs),
    run.complete ? 'yes' : 'NO',
  ]);
  const marks = [r.items / 10, r.items / 2, r.items].map((n) => `RSS at ${n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`}`);
  const growth = r.growth.map((g) => [
    g.layout,
    formatBytes(g.baselineRss),
    formatBytes(g.peakRss),
    formatDuration(g.wallMs),
    g.bytesPerLine.toFixed(1),
  ]);
  const targets = millionTargets(r).map((t) => [t.what, t.value, t.goal, t.met ? 'met' : 'MISSED']);
  return [
    `\n## million: ${r.items} × ${SIZE} B, no latency, concurrency 32, flat layout`,
    formatTable(['run', 'wall', 'files/s', 'peak RSS', ...marks, 'first request', 'complete'], real),
    `\ndry run of ${r.items} lines: median ${formatDuration(median(r.dry.wallMs))} over ${r.dry.wallMs.length} runs, peak RSS ${formatBytes(Math.max(...r.dry.rss))}`,
    `\ndry runs of ${r.growthLines} lines against ${BASELINE_LINES} (median of 3), peak RSS from /usr/bin/time`,
    formatTable(['layout', 'baseline RSS', 'peak RSS', 'wall', 'bytes/line'], growth),
    `\n${formatTable(['target', 'value', 'goal', ''], targets)}\n`,
  ].join('\n');
}
