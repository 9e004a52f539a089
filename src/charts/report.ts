/**
 * A sweep's report as one self-contained HTML file: the charts as inline SVG
 * (rendered here, in Node), the caption derived from the points, the table,
 * the machine and the exact command. No script and no network are needed to
 * view it, so it can be mailed, archived or attached to a CI run as is.
 */
import os from 'node:os';
import { baseLatencyMs, seriesLabel, type SweepPoint } from './points.js';
import { cpuChart, p95Chart, throughputChart, type Chart } from './specs.js';
import { renderSvg } from './svg.js';
import { caption, type VerdictContext } from './verdict.js';

/** The machine a sweep ran on. */
export interface Machine {
  cpus: number;
  cpuModel: string;
  node: string;
  platform: string;
}

/** What {@link reportHtml} writes up. */
export interface SweepReport {
  title: string;
  /** The exact command that produced it. */
  command: string;
  /** The list and how it was measured, in a line. */
  workload: string;
  machine: Machine;
  points: SweepPoint[];
  /** Cores each series can keep busy (default: the CPUs for `workers`, 1 for anything else). */
  cores?: (series: string) => number;
  /** Further lines under the table (what a column means, what was skipped). */
  notes?: string[];
  /** Preformatted text sections after the table (e.g. the suite's own tables). */
  sections?: Array<{ title: string; text: string }>;
}

/** This machine. */
export function thisMachine(): Machine {
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
  };
}

/** The verdict's context for a report: the base latency from its points, and its cores rule. */
export function reportContext(report: SweepReport): VerdictContext {
  return { latencyMs: baseLatencyMs(report.points), cores: report.cores ?? ((series) => (series === 'workers' ? report.machine.cpus : 1)) };
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** `text` safe inside HTML. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const num = (value: number | null, digits = 1): string => (value === null ? '–' : value.toFixed(digits));
const mib = (bytes: number | null): string => (bytes === null || !Number.isFinite(bytes) ? '–' : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);

function table(points: readonly SweepPoint[]): string {
  const head = ['series', 'concurrency', 'files', 'files/s', 'MB/s', 'p50 ms', 'p95 ms', 'p99 ms', 'CPU/file ms', 'peak RSS', 'failed'];
  const rows = points.map((p) =>
    [
      seriesLabel(p.series),
      String(p.concurrency),
      String(p.files),
      num(p.filesPerSec),
      num(p.mbPerSec, 2),
      num(p.p50Ms),
      num(p.p95Ms),
      num(p.p99Ms),
      num(p.cpuMsPerFile, 2),
      mib(p.peakRssBytes),
      String(p.failed),
    ]
      .map((cell, i) => (i === 0 ? `<th scope="row">${escapeHtml(cell)}</th>` : `<td>${escapeHtml(cell)}</td>`))
      .join(''),
  );
  return `<table><thead><tr>${head.map((h) => `<th scope="col">${h}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r}</tr>`).join('\n')}</tbody></table>`;
}

async function figure(chart: Chart, text: string | undefined): Promise<string> {
  if (chart.points === 0) return '';
  const svg = await renderSvg(chart.spec);
  const note = text === undefined ? '' : `<figcaption id="${chart.id}-caption">${escapeHtml(text)}</figcaption>`;
  return `<figure class="chart" id="${chart.id}" data-points="${chart.points}"><h2>${escapeHtml(chart.title)}</h2>${svg}${note}</figure>`;
}

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:980px;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:.2rem 0}figure{margin:1.5rem 0}figcaption{max-width:760px;margin-top:.4rem}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}th,td{padding:.2rem .5rem;border-bottom:1px solid #ddd;text-align:right}
th[scope=row],thead th:first-child{text-align:left}code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}pre{overflow-x:auto;font-size:12px}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dd{margin:0}`;

/** The report as one HTML document. */
export async function reportHtml(report: SweepReport): Promise<string> {
  const context = reportContext(report);
  const words = caption(report.points, context);
  const ceilingNote =
    context.latencyMs === null
      ? ' No series ran one file at a time, so no latency-only ceiling is drawn.'
      : ` The dashed line is the latency-only ceiling: concurrency ÷ ${context.latencyMs.toFixed(1)} ms, the median time per file at concurrency 1.`;
  const figures = [
    await figure(throughputChart(report.points, context.latencyMs), words + ceilingNote),
    await figure(p95Chart(report.points), undefined),
    await figure(cpuChart(report.points), 'User + system CPU of the whole process over the files it saved.'),
  ];
  const m = report.machine;
  const notes = (report.notes ?? []).map((n) => `<p>${escapeHtml(n)}</p>`).join('\n');
  const sections = (report.sections ?? []).map((x) => `<h2>${escapeHtml(x.title)}</h2><pre>${escapeHtml(x.text)}</pre>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(report.title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(report.title)}</h1>
${figures.join('\n')}
<h2>Points</h2>
${table(report.points)}
${notes}
${sections}
<h2>How it was measured</h2>
<dl><dt>command</dt><dd><code id="command">${escapeHtml(report.command)}</code></dd>
<dt>workload</dt><dd>${escapeHtml(report.workload)}</dd>
<dt>machine</dt><dd id="machine">${m.cpus} CPUs (${escapeHtml(m.cpuModel)}), Node ${escapeHtml(m.node)}, ${escapeHtml(m.platform)}</dd></dl>
</body></html>
`;
}
