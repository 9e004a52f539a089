/**
 * The suite's sweep (`npm run bench -- --report FILE.html`): imgdl's three
 * modes, the bare-undici reference and the peer tools (curl, wget2, aria2c
 * where installed) on one list at each concurrency, drawn in the same charts.
 * Every command runs as its own process under /usr/bin/time (measure.ts's
 * `timed`), runs interleaved; files/s is over the whole process's wall time
 * for every command alike, since the peers give no other. Per-file times come
 * from imgdl's manifests; the other commands record none.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { percentileOf, type SweepPoint } from '../charts/points.js';
import { CLI_PATH, median } from '../cli/bench.js';
import { node, peers, reference, writeLists } from './contenders.js';
import { timed, type Contender } from './measure.js';

/** What the sweep runs. */
export interface SuiteSweep {
  origin: string;
  files: number;
  size: number;
  concurrencies: readonly number[];
  runs: number;
}

/** One command of the sweep at one concurrency, and the series it belongs to. */
interface Entry {
  series: string;
  concurrency: number;
  contender: Contender;
  manifest: boolean;
}

/** The series a peer's or the reference's row name belongs to (its tool, without the concurrency). */
function seriesOf(name: string): string {
  return name.startsWith('bare undici') ? 'bare undici (reference)' : name.split(' ')[0]!;
}

function entries(lists: Awaited<ReturnType<typeof writeLists>>, concurrencies: readonly number[]): Entry[] {
  const imgdl = (mode: string, c: number): Entry => ({
    series: mode,
    concurrency: c,
    manifest: true,
    contender: {
      name: `imgdl ${mode} -c ${c}`,
      argv: (out) => [node, CLI_PATH, '-i', lists.plain, '-o', out, '-q', '-m', mode, '-c', String(c), '--manifest', `${out}.jsonl`],
      saves: true,
    },
  });
  const list: Entry[] = [imgdl('sequential', 1)];
  for (const c of concurrencies) {
    list.push(imgdl('concurrent', c), imgdl('workers', c));
    for (const contender of [reference(lists.plain, c), ...peers(lists, c)])
      list.push({ series: seriesOf(contender.name), concurrency: c, contender, manifest: false });
  }
  return list;
}

/** Runs the sweep: every command at every concurrency, `runs` times, interleaved. */
export async function runSuiteSweep(sweep: SuiteSweep, onRun?: (what: string) => void): Promise<SweepPoint[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-sweep-'));
  try {
    const urls = Array.from({ length: sweep.files }, (_, i) => `${sweep.origin}/gen/${i + 1}.jpg?bytes=${sweep.size}`);
    const plan = entries(await writeLists(dir, urls), sweep.concurrencies);
    const runs = plan.map(() => [] as Array<{ wallMs: number; cpuMs: number; rss: number; files: number; bytes: number; times: number[] }>);
    for (let run = 1; run <= sweep.runs; run++) {
      for (const [i, entry] of plan.entries()) {
        onRun?.(`${entry.contender.name} run ${run}/${sweep.runs}`);
        const out = path.join(dir, `out-${run}-${i}`);
        await fs.mkdir(out);
        const { wallMs, rss, user, sys } = await timed(entry.contender.argv(out), dir);
        const names = await fs.readdir(out);
        let bytes = 0;
        for (const name of names) bytes += (await fs.stat(path.join(out, name))).size;
        const times = entry.manifest ? await manifestTimes(`${out}.jsonl`) : [];
        runs[i]!.push({ wallMs, cpuMs: (user + sys) * 1000, rss, files: names.length, bytes, times });
        await fs.rm(out, { recursive: true, force: true });
        await fs.rm(`${out}.jsonl`, { force: true });
      }
    }
    return plan.map((entry, i) => toPoint(entry, runs[i]!, sweep.files));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function manifestTimes(file: string): Promise<number[]> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { status: string; ms: number })
    .filter((record) => record.status === 'ok')
    .map((record) => record.ms);
}

const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits;

function toPoint(
  entry: Entry,
  runs: ReadonlyArray<{ wallMs: number; cpuMs: number; rss: number; files: number; bytes: number; times: number[] }>,
  expected: number,
): SweepPoint {
  const last = runs[runs.length - 1]!;
  const wallMs = median(runs.map((r) => r.wallMs));
  const pct = (p: number): number | null =>
    entry.manifest && last.times.length > 0 ? round(median(runs.map((r) => percentileOf(r.times, p))), 1) : null;
  const cpu = runs.map((r) => r.cpuMs).filter(Number.isFinite);
  const rss = runs.map((r) => r.rss).filter(Number.isFinite);
  return {
    series: entry.series,
    concurrency: entry.concurrency,
    files: last.files,
    bytes: last.bytes,
    wallMs: round(wallMs, 1),
    filesPerSec: round(last.files / (wallMs / 1000)),
    mbPerSec: round(last.bytes / 1e6 / (wallMs / 1000)),
    p50Ms: pct(0.5),
    p95Ms: pct(0.95),
    p99Ms: pct(0.99),
    cpuMsPerFile: cpu.length > 0 && last.files > 0 ? round(median(cpu) / last.files, 3) : null,
    peakRssBytes: rss.length > 0 ? Math.max(...rss) : null,
    failed: Math.max(0, expected - last.files),
  };
}
