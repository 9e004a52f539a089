/**
 * The report's charts as Vega-Lite specs, built from a sweep's points: what
 * is drawn, not how (svg.ts renders them). Each measured point is one symbol
 * mark, so a reader (or a test) can count them.
 */
import type { TopLevelSpec } from 'vega-lite';
import { ceiling, seriesLabel, type SweepPoint } from './points.js';

/** The series drawn for the latency-only ceiling. */
export const CEILING_LABEL = 'latency-only ceiling';

/** Colours for the measured series, in order (Tableau 10), and the ceiling's grey. */
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f'];
const CEILING_COLOUR = '#9a9a9a';

type Row = Record<string, string | number | null>;

/** One chart: its spec and how many points (symbol marks) it should show. */
export interface Chart {
  id: string;
  title: string;
  spec: TopLevelSpec;
  points: number;
}

function labels(points: readonly SweepPoint[]): string[] {
  return [...new Set(points.map((p) => seriesLabel(p.series)))];
}

function colour(names: readonly string[], withCeiling: boolean) {
  const domain = withCeiling ? [...names, CEILING_LABEL] : [...names];
  const range = names.map((_, i) => PALETTE[i % PALETTE.length]!);
  if (withCeiling) range.push(CEILING_COLOUR);
  return {
    field: 'label',
    type: 'nominal' as const,
    title: null,
    scale: { domain, range },
    legend: { orient: 'bottom' as const, direction: 'vertical' as const, labelLimit: 400 },
  };
}

function xAxis(concurrencies: readonly number[]) {
  return {
    field: 'concurrency',
    type: 'quantitative' as const,
    title: 'concurrency (downloads in flight)',
    scale: { type: 'log' as const, base: 2, nice: false, padding: 12 },
    axis: { values: [...concurrencies], format: 'd', grid: true },
  };
}

/** A line per series with a symbol per point, plus any extra layers; `value` is the y field. */
function lineChart(
  id: string,
  title: string,
  rows: Row[],
  y: { field: string; title: string; log?: boolean },
  names: string[],
  extra: object[] = [],
): Chart {
  const concurrencies = [...new Set(rows.map((r) => r['concurrency'] as number))].sort((a, b) => a - b);
  const withCeiling = extra.length > 0;
  // Sequential's single point sits where the pools start: drawn last, as a square, so it stays in sight.
  rows.sort((a, b) => Number(a['label'] === 'sequential') - Number(b['label'] === 'sequential'));
  const domain = colour(names, withCeiling).scale.domain;
  const shapes = domain.map((name) => (name === 'sequential' ? 'square' : 'circle'));
  const encoding = {
    x: xAxis(concurrencies),
    y: { field: y.field, type: 'quantitative' as const, title: y.title, scale: y.log ? { type: 'log' as const } : { zero: true } },
    color: colour(names, withCeiling),
  };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description: title,
    width: 560,
    height: 300,
    background: 'white',
    data: { values: rows },
    encoding,
    layer: [
      ...extra,
      { mark: { type: 'line', strokeWidth: 2 } },
      {
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          shape: {
            field: 'label',
            type: 'nominal',
            title: null,
            scale: { domain, range: shapes },
            legend: colour(names, withCeiling).legend,
          },
          tooltip: [{ field: 'label' }, { field: 'concurrency' }, { field: y.field }],
        },
      },
    ],
  } as TopLevelSpec;
  return { id, title, spec, points: rows.length };
}

/** Files/s against concurrency per series, with the latency-only ceiling beside it (dashed) when a base latency is known. */
export function throughputChart(points: readonly SweepPoint[], latencyMs: number | null): Chart {
  const names = labels(points);
  const rows: Row[] = points.map((p) => ({ label: seriesLabel(p.series), concurrency: p.concurrency, filesPerSec: p.filesPerSec }));
  const concurrencies = [...new Set(points.map((p) => p.concurrency))].sort((a, b) => a - b);
  const extra =
    latencyMs === null
      ? []
      : [
          {
            data: {
              values: concurrencies.map((c) => ({
                label: CEILING_LABEL,
                concurrency: c,
                filesPerSec: Math.round(ceiling(c, latencyMs) * 10) / 10,
              })),
            },
            mark: { type: 'line', strokeDash: [6, 4], strokeWidth: 1.5 },
          },
        ];
  return lineChart(
    'throughput',
    'Throughput against concurrency',
    rows,
    { field: 'filesPerSec', title: 'files/s (log scale)', log: true },
    names,
    extra,
  );
}

/** p95 time per file against concurrency, for the series that record per-file times. */
export function p95Chart(points: readonly SweepPoint[]): Chart {
  const timed = points.filter((p) => p.p95Ms !== null);
  const rows: Row[] = timed.map((p) => ({ label: seriesLabel(p.series), concurrency: p.concurrency, p95Ms: p.p95Ms }));
  return lineChart(
    'p95',
    'p95 time per file against concurrency',
    rows,
    { field: 'p95Ms', title: 'p95 time per file (ms)' },
    labels(timed),
  );
}

/** CPU (user + system) per file against concurrency. */
export function cpuChart(points: readonly SweepPoint[]): Chart {
  const measured = points.filter((p) => p.cpuMsPerFile !== null);
  const rows: Row[] = measured.map((p) => ({ label: seriesLabel(p.series), concurrency: p.concurrency, cpuMsPerFile: p.cpuMsPerFile }));
  return lineChart(
    'cpu',
    'CPU per file against concurrency',
    rows,
    { field: 'cpuMsPerFile', title: 'CPU per file, user + system (ms)' },
    labels(measured),
  );
}
