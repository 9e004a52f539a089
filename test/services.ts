/**
 * What the helpers that start a real service for a test (redis-server,
 * tinyproxy, nginx) share: a free loopback port, tried again when another
 * process takes it first, and a stop that waits for the process to be gone.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
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
