/**
 * `imgdl bench`: the same list downloaded once per mode per repeat, each run
 * a separate process of the built CLI into a fresh temp folder, so that wall
 * time is what a user would time and peak RSS belongs to that run alone.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Mode } from '../options.js';
import { formatBytes, formatDuration, type RunSummary } from '../record/run-report.js';

/** The built CLI, run as a child for every measured run. */
export const CLI_PATH = fileURLToPath(new URL('../../bin/imgdl.js', import.meta.url));

/** What {@link runBench} measures. */
export interface BenchOptions {
  /** A list file (the CLI's format) to download in every run. */
  listFile: string;
  /** Modes to compare, in order. */
  modes: readonly Mode[];
  /** Runs per mode; the table shows medians. */
  repeat: number;
  /** Extra CLI arguments for every run (`-c 32`, `--hash sha256`, ...). */
  args: readonly string[];
  /** Keep each run's folder instead of removing it. */
  keep: boolean;
  /** Called before each run, e.g. for a progress line. */
  onRun?: ((mode: Mode, repeat: number, done: number, total: number) => void) | undefined;
}

/** One row of the bench table: medians over the repeats of one mode. */
export interface BenchRow {
  mode: Mode;
  /** Files saved (from the last run). */
  files: number;
  /** Bytes saved (from the last run). */
  bytes: number;
  /** Median whole-process wall time, start-up included, in ms. */
  wallMs: number;
  filesPerSec: number;
  /** Megabytes (10^6 bytes) per second of median wall time. */
  mbPerSec: number;
  /** Median over runs of each run's median per-file time, in ms. */
  p50Ms: number;
  /** Median over runs of each run's 95th percentile per-file time, in ms. */
  p95Ms: number;
  /** Highest peak RSS of any run of this mode, in bytes. */
  peakRssBytes: number;
  /** Sequential's median wall time over this mode's; null when sequential was not run. */
  speedup: number | null;
  /** Failed items in the last run (a bench with failures measures the wrong thing). */
  failed: number;
  /** Folders kept with `keep`. */
  kept: string[];
}

/** The CLI's `--json` summary with the process's peak RSS. */
type ChildSummary = RunSummary & { peakRssBytes: number };

/** Runs the CLI once per mode per repeat and returns a row per mode. */
export async function runBench(options: BenchOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const total = options.modes.length * options.repeat;
  let done = 0;
  for (const mode of options.modes) {
    const runs: Array<{ wallMs: number; summary: ChildSummary }> = [];
    const kept: string[] = [];
    for (let r = 0; r < options.repeat; r++) {
      options.onRun?.(mode, r + 1, done++, total);
      const out = await fs.mkdtemp(path.join(os.tmpdir(), `imgdl-bench-${mode}-`));
      try {
        runs.push(await runOnce(['-i', options.listFile, '-o', out, '-m', mode, ...options.args, '--json', '-q']));
      } finally {
        if (options.keep) kept.push(out);
        else await fs.rm(out, { recursive: true, force: true });
      }
    }
    const last = runs[runs.length - 1]!.summary;
    const wallMs = median(runs.map((r) => r.wallMs));
    rows.push({
      mode,
      files: last.ok,
      bytes: last.bytes,
      wallMs: round(wallMs),
      filesPerSec: round(last.ok / (wallMs / 1000)),
      mbPerSec: round(last.bytes / 1e6 / (wallMs / 1000)),
      p50Ms: round(median(runs.map((r) => r.summary.p50Ms))),
      p95Ms: round(median(runs.map((r) => r.summary.p95Ms))),
      peakRssBytes: Math.max(...runs.map((r) => r.summary.peakRssBytes)),
      speedup: null,
      failed: last.failed,
      kept,
    });
  }
  const sequential = rows.find((row) => row.mode === 'sequential');
  if (sequential) for (const row of rows) row.speedup = round(sequential.wallMs / row.wallMs);
  return rows;
}

/** One child run of the CLI: its whole-process wall time and its JSON summary. */
async function runOnce(args: string[]): Promise<{ wallMs: number; summary: ChildSummary }> {
  const started = performance.now();
  const summary = await runChild<ChildSummary>([CLI_PATH, ...args], args);
  return { wallMs: performance.now() - started, summary };
}

/**
 * Runs `node ...argv` with no stdin and resolves to the JSON summary it printed on stdout. Exit code 1
 * means some items failed, and the summary still says how the run went; any other exit, or a run that
 * printed no summary, rejects, naming the imgdl arguments `shown`, the exit code and what the child
 * said on stderr.
 */
export async function runChild<T>(argv: readonly string[], shown: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<T> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const said = stderr.trim() === '' ? 'nothing on stderr' : stderr.trim();
  if (code !== 0 && code !== 1) throw new Error(`imgdl ${shown.join(' ')} exited with ${code}: ${said}`);
  try {
    return JSON.parse(stdout) as T;
  } catch {
    throw new Error(
      `imgdl ${shown.join(' ')} exited with ${code} and printed no summary (${JSON.stringify(stdout.slice(0, 200))}): ${said}`,
    );
  }
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Lays rows out as an aligned text table. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The bench rows as the table `imgdl bench` prints. */
export function formatBench(rows: readonly BenchRow[]): string {
  return formatTable(
    ['mode', 'files', 'bytes', 'median wall', 'files/s', 'MB/s', 'p50', 'p95', 'peak RSS', 'speedup'],
    rows.map((r) => [
      r.mode + (r.failed > 0 ? ` (${r.failed} failed)` : ''),
      String(r.files),
      formatBytes(r.bytes),
      formatDuration(r.wallMs),
      r.filesPerSec.toFixed(1),
      r.mbPerSec.toFixed(2),
      formatDuration(r.p50Ms),
      formatDuration(r.p95Ms),
      formatBytes(r.peakRssBytes),
      r.speedup === null ? '-' : `${r.speedup.toFixed(2)}x`,
    ]),
  );
}
