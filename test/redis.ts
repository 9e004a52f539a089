/**
 * A real redis-server for the cluster tests: started from PATH on a free
 * loopback port in a temp folder, stopped (and the folder removed) after the
 * test. No mock and no in-process fake: the queue's Lua scripts, BullMQ's
 * locks and reconnection are what the tests exercise.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { launchRedis } from '../src/bench/redis.js';
import { launchOnFreePort, stopProcess } from './services.js';

/** A running redis-server of a test. */
export interface RedisServer {
  port: number;
  /** `redis://127.0.0.1:PORT` */
  url: string;
  /** Its folder (AOF, logs). */
  dir: string;
  /** Kills it with SIGKILL, as a crash would, and waits for it to be gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder (so an AOF is replayed). */
  restart(): Promise<void>;
  /** Stops it and removes its folder. */
  stop(): Promise<void>;
}

/** Options of {@link startRedis}. */
export interface RedisOptions {
  /** Append-only file on, fsynced on every write, so a SIGKILL loses nothing acknowledged. Default false. */
  aof?: boolean;
  /** Extra `--name value` arguments, e.g. `['--maxmemory', '100mb']`. */
  args?: string[];
}

const running: RedisServer[] = [];
afterEach(async () => {
  for (const server of running.splice(0)) await server.stop();
});

/** AOF on or off (fsynced on every write, so a SIGKILL loses nothing acknowledged), and the test's own arguments. */
function launch(port: number, dir: string, options: RedisOptions): Promise<ChildProcess> {
  return launchRedis(port, dir, ['--appendonly', options.aof ? 'yes' : 'no', '--appendfsync', 'always', ...(options.args ?? [])]);
}

/** Starts a redis-server for this test; it is stopped and its folder removed after the test. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-redis-'));
  const started = await launchOnFreePort(dir, (port) => launch(port, dir, options));
  const { port } = started;
  // Replaced by restart(): the kill that ends a server ends the one running now.
  let child = started.child;
  const gone = (): Promise<void> => stopProcess(child, 'SIGKILL');
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    kill: gone,
    async restart() {
      await gone();
      child = await launch(port, dir, options);
    },
    async stop() {
      await gone();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
  running.push(server);
  return server;
}
