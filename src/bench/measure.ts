/**
 * How the suite measures a command: each run its own process under
 * /usr/bin/time (peak RSS, user and system CPU, context switches) into a fresh folder, checked
 * (file count and bytes) and put aside ({@link SpentOutputs}), runs interleaved across commands.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const TIME = '/usr/bin/time';

/** One command of a scenario: how to run it into `out`. */
export interface Contender {
  name: string;
  argv: (out: string) => string[];
  /** False for commands that save nothing (start-up). */
  saves: boolean;
  /** True for the other tools (curl, wget2, aria2c): run once only when far off the pace. */
  peer?: boolean;
  /** Whether a run's folder holds what the command should have made, when a file count and bytes cannot say (tar shards). */
  check?: (out: string) => Promise<boolean>;
}

/** What the runs of one command measured, one entry per run. */
export interface Measured {
  name: string;
  walls: number[];
  rss: number[];
  /** User and system CPU seconds of each run. */
  user: number[];
  sys: number[];
  /**
   * Voluntary and involuntary context switches of each run (`%w`, `%c`): a
   * hand-off to another thread and back shows here before it shows in CPU.
   */
  voluntary: number[];
  involuntary: number[];
  /** Runs whose folder did not hold every file with every byte. */
  incomplete: number;
}

/** What {@link timed} measured of one run. */
export interface Timed {
  wallMs: number;
  /** Peak RSS, in bytes. */
  rss: number;
  /** User and system CPU, in seconds. */
  user: number;
  sys: number;
  /** Voluntary and involuntary context switches. */
  voluntary: number;
  involuntary: number;
  code: number | null;
}

/** Runs `argv` under /usr/bin/time; resolves with whole-process wall ms, peak RSS, CPU seconds and context switches. */
export async function timed(argv: string[], dir: string): Promise<Timed> {
  const timeFile = path.join(dir, 'time.txt');
  const withTime = existsSync(TIME) ? [TIME, '-f', '%M %U %S %w %c', '-o', timeFile, ...argv] : argv;
  const started = performance.now();
  const child = spawn(withTime[0]!, withTime.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  const wallMs = performance.now() - started;
  let [rss, user, sys, voluntary, involuntary] = [Number.NaN, Number.NaN, Number.NaN, Number.NaN, Number.NaN];
  if (withTime !== argv) {
    const text = await fs.readFile(timeFile, 'utf8').catch(() => '');
    const fields = (text.trim().split('\n').pop() ?? '').split(' ').map(Number);
    [rss, user, sys, voluntary, involuntary] = [fields[0]! * 1024, fields[1]!, fields[2]!, fields[3]!, fields[4]!];
  }
  if (code !== 0) process.stderr.write(`\n${argv.join(' ').slice(0, 200)} exited with ${code}: ${stderr.trim().slice(-500)}\n`);
  return { wallMs, rss, user, sys, voluntary, involuntary, code };
}

/** Files and bytes below `dir`. */
async function tally(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    files++;
    bytes += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return { files, bytes };
}

/** A run that wrote this many files or more has its folder put aside until the suite ends, not deleted at once. */
const SPENT_FILES = 100;

/** `statfs`'s type of tmpfs, where a deleted file's inode is free at once. */
const TMPFS_MAGIC = 0x01021994;

/** True when files deleted on a file system of `type` (from `statfs`) cost nothing to the files created next. */
export function freesAtOnce(type: number | bigint): boolean {
  return Number(type) === TMPFS_MAGIC;
}

/**
 * The folders of runs that are over, deleted when the suite ends rather
 * than before the next run. ext4 without a journal (this VM's disk) does
 * not reuse an inode for 60 s after it is deleted, 300 s while its table
 * block is dirty, and each file created meanwhile scans past every such
 * inode in its group: deleting a flood run's 20,000 files made the next
 * command's run pay 300–450 µs of system time per file, for imgdl and the
 * reference alike, and which of them ran first after a deletion decided
 * the ratio. A folder of few files (bulk's 16, start-up's one) is deleted
 * at once, and so is every folder on tmpfs, where nothing is held back.
 */
export class SpentOutputs {
  readonly #root: string;
  readonly #from: number;
  #aside: Promise<string> | undefined;
  #atOnce: Promise<boolean> | undefined;
  #count = 0;

  /**
   * Folders go aside under a folder of their own in `root` (on the runs' file system) when a run wrote
   * `from` files or more, unless `atOnce` (by default: whether `root` is on tmpfs).
   */
  constructor(root: string, { from = SPENT_FILES, atOnce }: { from?: number; atOnce?: boolean } = {}) {
    this.#root = root;
    this.#from = from;
    if (atOnce !== undefined) this.#atOnce = Promise.resolve(atOnce);
  }

  /** Done with `out`, which holds about `files` files: deleted now, or put aside until {@link clear}. */
  async put(out: string, files: number): Promise<void> {
    this.#atOnce ??= fs.statfs(this.#root).then(
      (found) => freesAtOnce(found.type),
      () => true,
    );
    if (files < this.#from || (await this.#atOnce)) return fs.rm(out, { recursive: true, force: true });
    this.#aside ??= fs.mkdtemp(path.join(this.#root, 'imgdl-suite-spent-'));
    await fs.rename(out, path.join(await this.#aside, String(++this.#count)));
  }

  /** Deletes every folder put aside; the suite calls it once every scenario is over. */
  async clear(): Promise<void> {
    const aside = this.#aside;
    this.#aside = undefined;
    if (aside !== undefined) await fs.rm(await aside, { recursive: true, force: true });
  }
}

/** The suite's own: {@link measure} puts every run's folder here, and the suite clears it at its end. */
export const spentOutputs = new SpentOutputs(os.tmpdir());

/** Runs every contender `runs` times, interleaved, each into a fresh folder, put aside in `spent` once checked. */
export async function measure(
  label: string,
  contenders: readonly Contender[],
  runs: number,
  expected: { files: number; bytes: number },
  spent: SpentOutputs = spentOutputs,
): Promise<Measured[]> {
  const results: Measured[] = contenders.map((c) => ({
    name: c.name,
    walls: [],
    rss: [],
    user: [],
    sys: [],
    voluntary: [],
    involuntary: [],
    incomplete: 0,
  }));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-'));
  try {
    const dropped = new Set<number>();
    for (let run = 1; run <= runs; run++) {
      if (run === 2) {
        // Bounded time: a peer over 3× the fastest after one run is far off the pace; one run says so.
        // imgdl's own commands and the reference always get every run: they are what the suite measures.
        const fastest = Math.min(...results.map((r) => r.walls[0] ?? Number.POSITIVE_INFINITY));
        results.forEach((r, i) => contenders[i]!.peer && (r.walls[0] ?? 0) > 3 * fastest && dropped.add(i));
      }
      for (const [i, contender] of contenders.entries()) {
        if (dropped.has(i)) continue;
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${label}: ${contender.name} run ${run}/${runs}`);
        const out = path.join(work, `out-${run}-${i}`);
        await fs.mkdir(out);
        const { wallMs, rss, user, sys, voluntary, involuntary, code } = await timed(contender.argv(out), work);
        const result = results[i]!;
        result.walls.push(wallMs);
        result.rss.push(rss);
        result.user.push(user);
        result.sys.push(sys);
        result.voluntary.push(voluntary);
        result.involuntary.push(involuntary);
        if (contender.check !== undefined) {
          if (code !== 0 || !(await contender.check(out))) result.incomplete++;
        } else if (contender.saves) {
          const got = await tally(out);
          if (code !== 0 || got.files !== expected.files || got.bytes !== expected.bytes) result.incomplete++;
        } else if (code !== 0) result.incomplete++;
        await spent.put(out, expected.files);
      }
    }
  } finally {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    await fs.rm(work, { recursive: true, force: true });
  }
  return results;
}
