/**
 * What the suite makes of its measurements: the ratios, the targets they are
 * held to, and each scenario's table.
 */
import { formatTable, median } from '../cli/bench.js';
import { formatBytes, formatDuration } from '../record/run-report.js';
import { REFERENCE } from './contenders.js';
import type { Measured } from './measure.js';
import type { ScenarioName, ScenarioResult } from './scenarios.js';

/** A goal: a ratio of medians and the most it may be. */
export interface Target {
  what: string;
  ratio: number | undefined;
  limit: number;
  /** For "faster than X" targets, the ratio must be below 1. */
  met: boolean | undefined;
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

/** The ratio of two rows' median CPU (the same list, so per file too). */
function cpuRatio(a: Measured | undefined, b: Measured | undefined): number | undefined {
  return a === undefined || b === undefined || a.user.length === 0 || b.user.length === 0 ? undefined : ratio(cpu(a), cpu(b));
}

/** Median voluntary / involuntary context switches per file, as `v / i`; `?` when not measured. */
function switchesPerFile(row: Measured, files: number): string {
  const voluntary = row.voluntary.length > 0 ? median(row.voluntary) : Number.NaN;
  const involuntary = row.involuntary.length > 0 ? median(row.involuntary) : Number.NaN;
  if (!Number.isFinite(voluntary) || !Number.isFinite(involuntary) || files === 0) return '?';
  return `${(voluntary / files).toFixed(2)} / ${(involuntary / files).toFixed(2)}`;
}

/** The targets of the fixed scenarios that ran. */
export function targets(results: readonly ScenarioResult[]): Target[] {
  const get = (scenario: ScenarioName, name: string): Measured | undefined =>
    results.find((r) => r.scenario === scenario)?.rows.find((row) => row.name.startsWith(name));
  const list: Target[] = [];
  const within = (what: string, value: number | undefined, limit: number): void => {
    list.push({ what, ratio: value, limit, met: value === undefined ? undefined : value <= limit });
  };
  const lat = results.find((r) => r.scenario === 'latency');
  if (lat) {
    within('latency: imgdl -c 32 / floor 3.15 s', ratio(med(get('latency', 'imgdl -c 32')), lat.floorMs), 1.15);
    within('latency: imgdl -c 32 / bare undici', ratio(med(get('latency', 'imgdl -c 32')), med(get('latency', REFERENCE))), 1.0);
    within('latency: imgdl -c 32 / wget2', ratio(med(get('latency', 'imgdl -c 32')), med(get('latency', 'wget2'))), 1.15);
    within('latency: imgdl -c 32 CPU per file / bare undici', cpuRatio(get('latency', 'imgdl -c 32'), get('latency', REFERENCE)), 1.25);
  }
  const seq = results.find((r) => r.scenario === 'sequential');
  if (seq) within('sequential: imgdl / floor 5 s', ratio(med(get('sequential', 'imgdl sequential')), seq.floorMs), 1.08);
  if (results.some((r) => r.scenario === 'flood')) {
    within('flood: imgdl -c 32 / curl -Z', ratio(med(get('flood', 'imgdl -c 32')), med(get('flood', 'curl'))), 1.5);
    within('flood: imgdl -c 32 / bare undici', ratio(med(get('flood', 'imgdl -c 32')), med(get('flood', REFERENCE))), 1.15);
    within('flood: imgdl -c 32 CPU per file / bare undici', cpuRatio(get('flood', 'imgdl -c 32'), get('flood', REFERENCE)), 1.25);
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

/** A scenario's table and its ratios, as the suite prints them. */
export function printScenario(r: ScenarioResult): string {
  const base = med(r.rows.find((row) => row.name === r.baseline));
  const ref = med(r.rows.find((row) => row.name === REFERENCE));
  const header = [
    'command',
    'runs',
    'median wall',
    'min',
    'max',
    '× floor',
    r.baseline ? `× ${r.baseline.split(' ')[0]}` : '× base',
    '× ref',
    'user+sys',
    'CPU/file',
    'ctx sw/file (vol/invol)',
    'peak RSS',
    'complete',
  ];
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
      switchesPerFile(row, r.files),
      Number.isFinite(peak) ? formatBytes(peak) : '?',
      `${row.walls.length - row.incomplete}/${row.walls.length}`,
    ];
  });
  const floor = r.floorMs ? `; floor ${formatDuration(r.floorMs)}` : '';
  // Each imgdl command against every other command that is not imgdl: the reference and each peer.
  const others = r.rows.filter((row) => !row.name.startsWith('imgdl'));
  // A scenario of imgdl's commands alone (resize, dataset) compares them in its table's × column only.
  const ratios = r.rows
    .filter((row) => row.name.startsWith('imgdl') && r.scenario !== 'startup' && others.length > 0)
    .map(
      (row) =>
        `${row.name}: ` + others.map((o) => `${(median(row.walls) / median(o.walls)).toFixed(2)}× ${o.name.split(' (')[0]}`).join(', '),
    )
    .join('\n');
  return `\n## ${r.scenario}: ${r.description}${floor}\n${formatTable(header, rows)}\n${ratios ? `${ratios}\n` : ''}`;
}
