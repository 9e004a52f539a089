/**
 * A real forward proxy for the proxy tests: Debian's tinyproxy, started from
 * PATH in the foreground on a free loopback port, with a config generated in
 * a temp folder, and stopped (the folder removed) after the test. It never
 * reads /etc/tinyproxy, so a system instance, running or not, plays no part.
 * Its log has a line per request it was sent, which is how the tests count
 * CONNECT tunnels and absolute-URL requests.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { launchOnFreePort, spawnUntilReady, stopProcess } from './services.js';

/** One request as tinyproxy logged it: `CONNECT 127.0.0.1:443`, `GET http://host/a.png`. */
export interface ProxiedRequest {
  method: string;
  target: string;
}

/** A running tinyproxy of a test. */
export interface Tinyproxy {
  port: number;
  /** `http://127.0.0.1:PORT`, without credentials. */
  url: string;
  /** The requests it was sent so far, in order, read from its log. */
  requests(): Promise<ProxiedRequest[]>;
  /** The `host:port` of each CONNECT it was sent so far. */
  connects(): Promise<string[]>;
  /** Stops it and removes its folder. */
  stop(): Promise<void>;
}

/** Options of {@link startTinyproxy}. */
export interface TinyproxyOptions {
  /** Require these credentials (tinyproxy's `BasicAuth`); it answers 407 without them. */
  basicAuth?: { user: string; password: string };
}

const running: Tinyproxy[] = [];
afterEach(async () => {
  for (const proxy of running.splice(0)) await proxy.stop();
});

/** What tinyproxy logs once it listens. */
const READY = 'Accepting connections';
/** `Request (file descriptor 5): CONNECT 127.0.0.1:443 HTTP/1.1` */
const REQUEST_LINE = /: Request \(file descriptor \d+\): (\S+) (\S+) HTTP\//;

function config(port: number, dir: string, options: TinyproxyOptions): string {
  const lines = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Allow 127.0.0.1',
    // No ConnectPort line: CONNECT to any port, as the HTTPS fixture's is random.
    `LogFile "${path.join(dir, 'tinyproxy.log')}"`,
    // Info, not Connect: the "Accepting connections" line that says it is ready is an Info one.
    'LogLevel Info',
    `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
    'DisableViaHeader Yes',
    'MaxClients 100',
    'Timeout 60',
  ];
  // As root (CI), stay root: dropping to nobody would lose the log and pid files in a 0700 folder.
  if (process.getuid?.() === 0) lines.push('User root', 'Group root');
  if (options.basicAuth) lines.push(`BasicAuth ${options.basicAuth.user} ${options.basicAuth.password}`);
  return `${lines.join('\n')}\n`;
}

/** Starts tinyproxy with its config and log in `dir`; resolves once it listens, rejects with its output when it exits first. */
async function launch(port: number, dir: string, options: TinyproxyOptions): Promise<ChildProcess> {
  const conf = path.join(dir, 'tinyproxy.conf');
  await fs.writeFile(conf, config(port, dir, options));
  const log = path.join(dir, 'tinyproxy.log');
  // Its log line is the proof it listens.
  const ready = async (): Promise<boolean> => (await fs.readFile(log, 'utf8').catch(() => '')).includes(READY);
  return spawnUntilReady('tinyproxy', ['-d', '-c', conf], ready, log);
}

/** Starts tinyproxy for this test; it is stopped and its folder removed after the test. */
export async function startTinyproxy(options: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-tinyproxy-'));
  const { port, child } = await launchOnFreePort(dir, (port) => launch(port, dir, options));
  const requests = async (): Promise<ProxiedRequest[]> => {
    const log = await fs.readFile(path.join(dir, 'tinyproxy.log'), 'utf8');
    return [...log.matchAll(new RegExp(REQUEST_LINE, 'g'))].map((m) => ({ method: m[1]!, target: m[2]! }));
  };
  const proxy: Tinyproxy = {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    connects: async () => (await requests()).filter((r) => r.method === 'CONNECT').map((r) => r.target),
    async stop() {
      // Nothing of it is worth a clean shutdown: its log is on disk, written as each request arrived.
      await stopProcess(child, 'SIGKILL');
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
  running.push(proxy);
  return proxy;
}
