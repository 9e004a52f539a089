/**
 * What the helpers that start a real service for a test (redis-server,
 * tinyproxy, nginx) share: a free loopback port, tried again when another
 * process takes it first, and a stop that waits for the process to be gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from '../src/bench/redis.js';

/**
 * Starts a service with `launch(port)` on a free loopback port. Another
 * process may take the probed port before the service binds it, so a few
 * ports are tried; after the last failure `dir` is removed and the error thrown.
 */
export async function launchOnFreePort(
  dir: string,
  launch: (port: number) => Promise<ChildProcess>,
): Promise<{ port: number; child: ChildProcess }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { port, child: await launch(port) };
    } catch (error) {
      if (attempt === 5) {
        await fs.rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

/** Sends `signal` to `child` unless it has already ended, and waits until it has. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

/**
 * Spawns `command` and resolves once `ready()` says it serves, polled rather
 * than timed, however slow the machine. When it exits first (or never gets
 * ready) it is killed and the promise rejects with its output and the end of
 * `log`, the file where it says why.
 */
export async function spawnUntilReady(
  command: string,
  args: readonly string[],
  ready: () => Promise<boolean>,
  log: string,
): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  for (const stream of [child.stdout!, child.stderr!])
    stream.setEncoding('utf8').on('data', (text: string) => (output = (output + text).slice(-4000)));
  const exited = once(child, 'exit');
  const spawnFailed = once(child, 'error').then(([error]) => Promise.reject(error as Error));
  spawnFailed.catch(() => {});
  for (let polls = 0; polls < 1000; polls++) {
    if (await ready()) return child;
    if (child.exitCode !== null || child.signalCode !== null) break;
    await Promise.race([delay(20), exited, spawnFailed]);
  }
  child.kill('SIGKILL');
  const said = await fs.readFile(log, 'utf8').catch(() => '');
  throw new Error(`${command} did not start: ${output}${said.slice(-4000)}`);
}
