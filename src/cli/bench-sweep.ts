/**
 * `imgdl bench --sweep`: every mode at every concurrency (sequential at 1
 * only), `repeat` runs each, each run a fresh process of the built CLI into a
 * fresh temp folder. Per point: files/s and MB/s over the run's own time,
 * per-file p50/p95/p99 from the run's manifest, CPU per file and peak RSS from
 * the process (bench-usage.ts). Medians over the repeats.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { percentileOf, type SweepPoint } from '../charts/points.js';
import type { Mode } from '../options.js';
import type { RunSummary } from '../record/run-report.js';
import { CLI_PATH, median, runChild } from './bench.js';

const USAGE_URL = pathToFileURL(fileURLToPath(new URL('./bench-usage.js', import.meta.url))).href;

/** What {@link runSweep} measures. */
export interface SweepOptions {
  /** A list file (the CLI's format) to download in every run. */
  listFile: string;
  modes: readonly Mode[];
  /** Concurrencies, ascending; sequential runs at 1 whatever they are. */
  concurrencies: readonly number[];
  /** Runs per point; points are medians. */
  repeat: number;
  /** Extra CLI arguments for every run (`-t 2`, `--hash sha256`). */
  args: readonly string[];
  /** Called before each run, e.g. for a progress line. */
  onRun?: ((what: string, done: number, total: number) => void) | undefined;
}

/** One measured run. */
interface Run {
  summary: RunSummary;
  cpuMs: number;
  peakRssBytes: number;
  /** Times of the files saved, in ms. */
  times: number[];
}

/** The (mode, concurrency) pairs a sweep measures, in order. */
export function sweepPlan(modes: readonly Mode[], concurrencies: readonly number[]): Array<{ mode: Mode; concurrency: number }> {
  const plan: Array<{ mode: Mode; concurrency: number }> = [];
  if (modes.includes('sequential')) plan.push({ mode: 'sequential', concurrency: 1 });
  for (const concurrency of concurrencies) for (const mode of modes) if (mode !== 'sequential') plan.push({ mode, concurrency });
  return plan;
}

/** Runs the sweep and returns a point per (mode, concurrency). */
export async function runSweep(options: SweepOptions): Promise<SweepPoint[]> {
  const plan = sweepPlan(options.modes, options.concurrencies);
  const total = plan.length * options.repeat + new Set(plan.map((p) => p.mode)).size;
  let done = 0;
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-sweep-'));
  try {
    // The CPU a run spends starting and stopping, with nothing to download: taken off every run's, so
    // that CPU per file is the files' cost whatever the list's length.
    const empty = path.join(work, 'empty.txt');
    await fs.writeFile(empty, '');
    const startupCpu = new Map<Mode, number>();
    for (const mode of new Set(plan.map((p) => p.mode))) {
      options.onRun?.(`${mode}: start-up alone`, done++, total);
      startupCpu.set(mode, (await runOnce(work, ['-i', empty, '-m', mode, ...options.args])).cpuMs);
    }
    const points: SweepPoint[] = [];
    for (const { mode, concurrency } of plan) {
      const runs: Run[] = [];
      for (let r = 1; r <= options.repeat; r++) {
        options.onRun?.(`${mode} -c ${concurrency} run ${r}/${options.repeat}`, done++, total);
        runs.push(await runOnce(work, ['-i', options.listFile, '-m', mode, '-c', String(concurrency), ...options.args]));
      }
      points.push(point(mode, concurrency, runs, startupCpu.get(mode) ?? 0));
    }
    return points;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A point from its runs: medians, the last run's counts, the highest peak RSS. */
function point(series: Mode, concurrency: number, runs: readonly Run[], startupCpuMs: number): SweepPoint {
  const last = runs[runs.length - 1]!.summary;
  const wallMs = median(runs.map((r) => r.summary.wallMs));
  const pct = (p: number): number | null => (last.ok === 0 ? null : round(median(runs.map((r) => percentileOf(r.times, p))), 1));
  return {
    series,
    concurrency,
    files: last.ok,
    bytes: last.bytes,
    wallMs: round(wallMs, 1),
    filesPerSec: round(wallMs > 0 ? last.ok / (wallMs / 1000) : 0),
    mbPerSec: round(wallMs > 0 ? last.bytes / 1e6 / (wallMs / 1000) : 0),
    p50Ms: pct(0.5),
    p95Ms: pct(0.95),
    p99Ms: pct(0.99),
    cpuMsPerFile: last.ok === 0 ? null : round(median(runs.map((r) => Math.max(0, r.cpuMs - startupCpuMs) / Math.max(1, r.summary.ok))), 3),
    peakRssBytes: Math.max(...runs.map((r) => r.peakRssBytes)),
    failed: last.failed,
  };
}

/** One child run of the CLI into a fresh folder under `work`, with a manifest and its resource usage. */
async function runOnce(work: string, args: string[]): Promise<Run> {
  const dir = await fs.mkdtemp(path.join(work, 'run-'));
  const manifest = path.join(dir, 'manifest.jsonl');
  const usageFile = path.join(dir, 'usage.json');
  const argv = ['--import', USAGE_URL, CLI_PATH, ...args, '-o', path.join(dir, 'out'), '--manifest', manifest, '--json', '-q'];
  try {
    const summary = await runChild<RunSummary>(argv, args, { ...process.env, IMGDL_BENCH_USAGE: usageFile });
    const usage = JSON.parse(await fs.readFile(usageFile, 'utf8')) as { cpuMs: number; maxRssBytes: number };
    const text = await fs.readFile(manifest, 'utf8').catch(() => '');
    const times = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as { status: string; ms: number })
      .filter((record) => record.status === 'ok')
      .map((record) => record.ms);
    return { summary, cpuMs: usage.cpuMs, peakRssBytes: usage.maxRssBytes, times };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
