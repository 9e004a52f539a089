/**
 * Running the cluster commands as a user would: the built CLI as child
 * processes, each killed after the test if it is still running.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, expect } from 'vitest';
import type { ClusterStatus } from '../src/cluster/status.js';
import { ROOT, runCli, type CliRun } from './helpers.js';

/** A CLI process started by {@link startCli}. */
export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Everything it wrote to stdout so far. */
  stdout(): string;
  /** Resolves when it has exited. */
  done: Promise<CliRun>;
}

const children: CliProcess[] = [];
afterEach(async () => {
  for (const { child, done } of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await done;
  }
});

/** Starts `imgdl ...args` from the build, without waiting for it; killed after the test if still running. */
export function startCli(args: string[]): CliProcess {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/imgdl.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = once(child, 'close').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    stdout,
    stderr,
  }));
  const started: CliProcess = { child, stderr: () => stderr, stdout: () => stdout, done };
  children.push(started);
  return started;
}

/** `imgdl status --queue URL --json`, parsed. */
export async function statusOf(queue: string): Promise<ClusterStatus> {
  const run = await runCli(['status', '--queue', queue, '--json']);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as ClusterStatus;
}

/** Writes `urls` as a list file in `dir` and returns its path. */
export async function listFile(dir: string, urls: readonly string[], name = 'urls.txt'): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, urls.join('\n') + '\n');
  return file;
}

/** Waits until `check` holds, looking every 20 ms; fails after `ms` (a bound against hangs, not a timing assertion). */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await delay(20);
  }
}

/** True once `pid` is stopped (SIGSTOP), as /proc tells. */
export async function isStopped(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
}
