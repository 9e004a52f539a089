#!/usr/bin/env node
/**
 * `npm run test:compat [-- 22 24]`: builds once, then runs the test suite
 * under each Node major taken from the npm registry's `node` package (which
 * ships the official binaries), so the package is checked on every Node it
 * claims in `engines` without a version manager. The binaries land in npm's
 * npx cache, so a second run needs no download.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const majors = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['22', '24'];
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

/** `node` as provided by the `node@<major>` package: `npm exec` puts that package's bin first on PATH. */
function withNode(major, args, options = {}) {
  return spawnSync(npm, ['exec', '--yes', `--package=node@${major}`, '--', 'node', ...args], { cwd: root, encoding: 'utf8', ...options });
}

if (run(npm, ['run', 'build', '--silent']) !== 0) process.exit(1);

const failed = [];
for (const major of majors) {
  const probe = withNode(major, ['--version']);
  const version = probe.stdout?.trim() ?? '';
  if (probe.status !== 0 || !version.startsWith(`v${major}.`)) {
    console.error(`test:compat: could not get Node ${major} from the npm registry (got ${JSON.stringify(version)}):\n${probe.stderr ?? ''}`);
    failed.push(major);
    continue;
  }
  console.log(`\n== Node ${version} ==`);
  const result = withNode(major, ['node_modules/vitest/vitest.mjs', 'run'], { stdio: 'inherit' });
  if (result.status !== 0) failed.push(major);
}
if (failed.length > 0) {
  console.error(`\ntest:compat: failed on Node ${failed.join(', ')}`);
  process.exit(1);
}
console.log(`\ntest:compat: passed on Node ${majors.join(', ')}`);
