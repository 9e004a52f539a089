/**
 * Runs once before the suite: the cluster tests need a real redis-server.
 * On a fresh machine, running as root with apt-get (as CI does), it is
 * installed from Debian's package; anywhere else the suite stops at once
 * with the one command to run, rather than failing test by test.
 */
import { spawnSync } from 'node:child_process';

/** The one command that makes redis-server available, for messages. */
const INSTALL_REDIS = 'apt-get install -y redis-server';

/** True when `redis-server` runs from PATH. */
function redisInstalled(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

function run(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

export default function setup(): void {
  if (redisInstalled()) return;
  const root = process.getuid?.() === 0;
  const apt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (root && apt) {
    process.stderr.write('redis-server is missing: installing Debian\'s package for the cluster tests\n');
    // The package lists may be absent on a fresh image: update once if the first try fails.
    const installed = run('apt-get', ['install', '-y', '-q', 'redis-server']) || (run('apt-get', ['update', '-q']) && run('apt-get', ['install', '-y', '-q', 'redis-server']));
    if (installed && redisInstalled()) return;
  }
  throw new Error(`the cluster tests need redis-server on PATH; install it with: ${root ? '' : 'sudo '}${INSTALL_REDIS}`);
}
