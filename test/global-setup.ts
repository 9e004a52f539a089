/**
 * Runs once before the suite: the cluster tests need a real redis-server,
 * the proxy tests a real tinyproxy, the throttling tests a real nginx, the
 * page tests Debian's chromium. On a fresh machine, running as root with
 * apt-get (as CI does), the missing ones are installed from Debian's
 * packages; anywhere else the suite stops at once with the one command to
 * run, rather than failing test by test.
 */
import { spawnSync } from 'node:child_process';

/** Each service the suite starts: its Debian package (and binary), and what the tests use it for. */
const SERVICES = [
  { name: 'redis-server', versionFlag: '--version', for: 'the cluster tests' },
  { name: 'tinyproxy', versionFlag: '-v', for: 'the proxy tests' },
  { name: 'chromium', versionFlag: '--version', for: 'the page tests (report and dashboard, in a real browser)' },
  { name: 'nginx', versionFlag: '-v', for: 'the throttling tests' },
] as const;

/** True when `command` runs from PATH. */
function installed(command: string, versionFlag: string): boolean {
  return spawnSync(command, [versionFlag], { stdio: 'ignore' }).status === 0;
}

function run(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

export default function setup(): void {
  const missing = SERVICES.filter((service) => !installed(service.name, service.versionFlag));
  if (missing.length === 0) return;
  const names = missing.map((service) => service.name);
  const root = process.getuid?.() === 0;
  const apt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (root && apt) {
    process.stderr.write(`${names.join(' and ')} missing: installing Debian's packages for ${missing.map((s) => s.for).join(' and ')}\n`);
    // The package lists may be absent on a fresh image: update once if the first try fails.
    const install = ['install', '-y', '-q', ...names];
    const done = run('apt-get', install) || (run('apt-get', ['update', '-q']) && run('apt-get', install));
    if (done && missing.every((service) => installed(service.name, service.versionFlag))) return;
  }
  const needs = missing.map((service) => `${service.for} need ${service.name} on PATH`).join('; ');
  throw new Error(`${needs}; install with: ${root ? '' : 'sudo '}apt-get install -y ${names.join(' ')}`);
}
