/**
 * The suite's fixture servers, each in a process of its own (bench/server.ts,
 * or bench/h2-server.ts for HTTP/2 and HTTP/1.1 over TLS), so that serving
 * does not share a CPU's time with the measuring.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SERVER_PATH = fileURLToPath(new URL('./server.js', import.meta.url));
const H2_SERVER_PATH = fileURLToPath(new URL('./h2-server.js', import.meta.url));
const IMAGE_SERVER_PATH = fileURLToPath(new URL('./image-server.js', import.meta.url));
/** The private CA that signed the TLS server's certificate (fixtures/tls): its clients are given it to trust. */
export const TLS_CA = fileURLToPath(new URL('../../fixtures/tls/ca.pem', import.meta.url));

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

/**
 * Starts a fixture server process and resolves with its origin, its counters
 * and a stop function. `tls: 'h2'` starts the HTTPS one that speaks HTTP/2
 * and HTTP/1.1 (certificate signed by {@link TLS_CA}) instead of plain HTTP; `images` (a folder) the one
 * that serves its JPEGs (bench/image-server.ts), which keeps no counters.
 */
export async function startServer(latencyMs: number, options: { tls?: 'h2'; images?: string } = {}): Promise<ServerProcess> {
  const script = options.images !== undefined ? IMAGE_SERVER_PATH : options.tls === 'h2' ? H2_SERVER_PATH : SERVER_PATH;
  const args = options.images !== undefined ? [options.images] : [String(latencyMs)];
  const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
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
