/**
 * What `imgdl bench --sweep` prints and writes: its flag's list, the points
 * as a table, and the HTML report (loaded only with --report, since it brings
 * Vega).
 */
import fs from 'node:fs/promises';
import type { SweepPoint } from '../charts/points.js';
import { seriesLabel } from '../charts/points.js';
import { UsageError } from '../errors.js';
import { formatBytes } from '../record/run-report.js';
import { formatTable } from './bench.js';

/** `--sweep 1,4,16,64` as ascending distinct concurrencies. Throws {@link UsageError}. */
export function parseSweep(text: string): number[] {
  const values = text.split(',').map((part) => part.trim());
  const numbers = values.map(Number);
  const bad = values.find((part, i) => part === '' || !Number.isInteger(numbers[i]) || numbers[i]! < 1);
  if (bad !== undefined) throw new UsageError(`--sweep takes concurrencies of at least 1, comma-separated, like 1,4,16,64; got "${text}"`);
  return [...new Set(numbers)].sort((a, b) => a - b);
}

const dash = (value: number | null, unit = ''): string => (value === null ? '-' : `${value}${unit}`);

/** The points as the table `imgdl bench --sweep` prints. */
export function formatSweep(points: readonly SweepPoint[]): string {
  return formatTable(
    ['mode', 'c', 'files', 'files/s', 'MB/s', 'p50', 'p95', 'p99', 'CPU/file', 'peak RSS'],
    points.map((p) => [
      seriesLabel(p.series) + (p.failed > 0 ? ` (${p.failed} failed)` : ''),
      String(p.concurrency),
      String(p.files),
      p.filesPerSec.toFixed(1),
      p.mbPerSec.toFixed(2),
      dash(p.p50Ms, ' ms'),
      dash(p.p95Ms, ' ms'),
      dash(p.p99Ms, ' ms'),
      dash(p.cpuMsPerFile, ' ms'),
      p.peakRssBytes === null ? '-' : formatBytes(p.peakRssBytes),
    ]),
  );
}

/** A command line as it would be typed again: arguments with spaces or quotes are quoted. */
export function commandLine(words: readonly string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Writes the HTML report of `points` to `file`; resolves to the first chart's caption. */
export async function writeSweepReport(file: string, report: { command: string; workload: string; points: SweepPoint[] }): Promise<string> {
  const { reportHtml, reportContext, thisMachine } = await import('../charts/report.js');
  const { caption } = await import('../charts/verdict.js');
  const full = {
    title: 'imgdl bench: throughput against concurrency',
    ...report,
    machine: thisMachine(),
    notes: [
      'files/s and MB/s are over each run’s own time (first request to last file), without the process’s start-up; p50/p95/p99 are per-file times from the run’s manifest; CPU per file is the process’s user + system time, less what a run of an empty list spends starting and stopping, over the files saved; medians over the repeats, peak RSS the highest.',
    ],
  };
  await fs.writeFile(file, await reportHtml(full));
  return caption(full.points, reportContext(full));
}
