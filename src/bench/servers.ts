/**
 * The suite's fixture servers, each in a process of its own (bench/server.ts),
 * so that serving does not share a CPU's time with the measuring.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SERVER_PATH = fileURLToPath(new URL('./server.js', import.meta.url));

/** What the fixture server process has seen. */
export interface ServerStats {
  requests: number;
  /** Date.now() of the first request since start or reset, null before it. */
  firstRequestAt: number | null;
}

/** A fixture server running in a process of its own. */
export interface ServerProcess {
  origin: string;
  stats(): Promise<ServerStats>;
  reset(): void;
  stop(): Promise<void>;
}

/** Starts a fixture server process and resolves with its origin, its counters and a stop function. */
export async function startServer(latencyMs: number): Promise<ServerProcess> {
  const child = spawn(process.execPath, [SERVER_PATH, String(latencyMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  // The first line is the origin; each later one answers a `stats` asked on stdin, in order.
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => waiting.shift()?.(line.trim()));
  const origin = await new Promise<string>((resolve, reject) => {
    waiting.push(resolve);
    child.once('exit', (code) => reject(new Error(`fixture server exited with ${code}`)));
  });
  return {
    origin,
    stats: () =>
      new Promise<ServerStats>((resolve) => {
        waiting.push((line) => resolve(JSON.parse(line) as ServerStats));
        child.stdin.write('stats\n');
      }),
    reset: () => void child.stdin.write('reset\n'),
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      }),
  };
}
