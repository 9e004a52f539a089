/**
 * A redis-server of the project's own, started from PATH on a loopback port
 * in a given folder: the cluster benchmark's, and (through test/redis.ts)
 * the tests'. Never part of the package.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';

/** A port free on 127.0.0.1 now (the OS's pick for port 0). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * Starts redis-server on `port` with its files in `dir`, no snapshots, and
 * `args` added (AOF settings, limits); resolves once it accepts connections,
 * rejects with its log when it exits first, and kills it after 20 s of silence.
 */
export async function launchRedis(port: number, dir: string, args: readonly string[] = []): Promise<ChildProcess> {
  const argv = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
    '--logfile',
    '',
    ...args,
  ];
  const child = spawn('redis-server', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      log = (log + text).slice(-4000);
      if (log.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${log}`)));
    child.once('error', reject);
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    await ready;
  } finally {
    clearTimeout(timeout);
  }
  child.stdout!.resume();
  child.stderr!.resume();
  return child;
}
