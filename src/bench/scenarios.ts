/**
 * The suite's scenarios, and the fixed ones it runs through {@link scenario}:
 * latency, sequential, flood, bulk and start-up. tls, hosts, cluster,
 * million, resize and dataset have modules of their own.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLI_PATH } from '../cli/bench.js';
import { formatBytes } from '../record/run-report.js';
import { imgdl, node, peers, reference, writeLists } from './contenders.js';
import { measure, type Contender, type Measured } from './measure.js';

/** Every scenario, in the order the suite runs them. */
export const SCENARIOS = [
  'latency',
  'tls',
  'sequential',
  'flood',
  'bulk',
  'startup',
  'hosts',
  'cluster',
  'million',
  'resize',
  'dataset',
] as const;
/** A scenario's name, as --only takes it. */
export type ScenarioName = (typeof SCENARIOS)[number];
/**
 * What runs without --only: everything but the half-hour million scenario,
 * tls (over two minutes at --runs 5, five commands on a server of its own)
 * resize and dataset (the image work and shards of datasets, which most lists never ask for).
 */
export const DEFAULT_SCENARIOS: readonly ScenarioName[] = SCENARIOS.filter(
  (name) => name !== 'million' && name !== 'tls' && name !== 'resize' && name !== 'dataset',
);

/** The suite's settings, from its flags. */
export interface Settings {
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
  /** `--report FILE.html`: write the sweep (run for it) and the tables as an HTML report. */
  report: string | undefined;
  /** Whether the sweep runs: `--report`, or `sweep` named in `--only`. */
  sweep: boolean;
  /** `--sweep`: its concurrencies. */
  sweepConcurrencies: number[];
  /** `--sweep-files`: items of the sweep's list. */
  sweepFiles: number;
}

/** One scenario's rows, with what its ratios are taken against. */
export interface ScenarioResult {
  scenario: ScenarioName;
  description: string;
  /** Files each run saves (per-file CPU is divided by it). */
  files: number;
  floorMs: number | undefined;
  baseline: string | undefined;
  rows: Measured[];
}

/** Runs one fixed scenario against the fixture servers' origins: every contender, `s.runs` times. */
export async function scenario(
  name: Exclude<ScenarioName, 'tls' | 'hosts' | 'cluster' | 'million' | 'resize' | 'dataset'>,
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
      if (s.compare !== undefined)
        contenders.push({ name: `imgdl URL (one file) @compare`, argv: (out) => [node, s.compare!, one, '-o', out, '-q'], saves: true });
      // Start-up runs are short; more of them steady the median at little cost.
      const rows = await measure(name, contenders, Math.max(s.runs, 10), { files: 1, bytes: 200 });
      return {
        scenario: name,
        description: 'imgdl --version and a one-file download, against node -e 0',
        files: 1,
        floorMs: undefined,
        baseline: 'node -e 0',
        rows,
      };
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
