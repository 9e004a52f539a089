/**
 * The suite's side of `--report`: run the sweep (sweep.ts) and print it, then
 * write the same HTML report `imgdl bench --sweep --report` writes, with the
 * peers in the same charts and the suite's tables and targets below them.
 */
import fs from 'node:fs/promises';
import type { SweepPoint } from '../charts/points.js';
import { reportHtml, thisMachine } from '../charts/report.js';
import { formatTable } from '../cli/bench.js';
import { commandLine, formatSweep } from '../cli/sweep-output.js';
import { printScenario, type Target } from './results.js';
import type { ScenarioResult, Settings } from './scenarios.js';
import { runSuiteSweep } from './sweep.js';

/** Bytes per file of the sweep's list. */
const SWEEP_SIZE = 20_000;

/** Runs the sweep against the 50 ms server and prints its table (unless --json). */
export async function sweepAndPrint(s: Settings, slowOrigin: string): Promise<SweepPoint[]> {
  const tty = process.stderr.isTTY === true;
  const points = await runSuiteSweep(
    { origin: slowOrigin, files: s.sweepFiles, size: SWEEP_SIZE, concurrencies: s.sweepConcurrencies, runs: s.runs },
    tty ? (what) => process.stderr.write(`\r\x1b[Ksweep: ${what}`) : undefined,
  );
  if (tty) process.stderr.write('\r\x1b[K');
  if (!s.json)
    process.stdout.write(
      `\n## sweep: ${s.sweepFiles} × 20 kB, 50 ms latency, at concurrency ${s.sweepConcurrencies.join(', ')}\n${formatSweep(points)}\n`,
    );
  return points;
}

/** Writes the suite's HTML report to `file`. */
export async function writeSuiteReport(
  file: string,
  points: SweepPoint[],
  results: readonly ScenarioResult[],
  goals: readonly Target[],
  s: Settings,
): Promise<void> {
  const machine = thisMachine();
  const targets = formatTable(
    ['target', 'ratio', 'goal', ''],
    goals.map((t) => [
      t.what,
      t.ratio === undefined ? 'n/a' : t.ratio.toFixed(3),
      `≤ ${t.limit}`,
      t.met === undefined ? '-' : t.met ? 'met' : 'MISSED',
    ]),
  );
  const html = await reportHtml({
    title: 'imgdl benchmark suite: imgdl and its peers against concurrency',
    command: commandLine(['npm', 'run', 'bench', '--', ...process.argv.slice(2)]),
    workload: `${s.sweepFiles} × 20 kB from a loopback server answering in 50 ms, at concurrency ${s.sweepConcurrencies.join(', ')}; medians of ${s.runs} run${s.runs === 1 ? '' : 's'}, each command its own process, runs interleaved`,
    machine,
    points,
    // Worker threads and wget2's threads can use every core; the others run one thread.
    cores: (series) => (series === 'workers' || series === 'wget2' ? machine.cpus : 1),
    notes: [
      'Every command alike: files/s over the whole process’s wall time (start-up included, as a user times it), CPU per file the process’s user + system time over the files saved, peak RSS from /usr/bin/time. Per-file times come from imgdl’s manifests; the other commands record none, so they are absent from the p95 chart.',
    ],
    sections: [
      ...results.map((r) => ({ title: r.scenario, text: printScenario(r).trim() })),
      ...(goals.length > 0 ? [{ title: 'targets', text: targets }] : []),
    ],
  });
  await fs.writeFile(file, html);
  process.stderr.write(`report written to ${file}\n`);
}
