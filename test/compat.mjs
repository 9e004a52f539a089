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

/**
 * The path of the Node binary the `node@<major>` package provides (`npm exec`
 * puts that package's bin first on PATH). The suite then runs that binary
 * directly, outside `npm exec`, whose npm_config_package would leak into the
 * tests' own npm commands.
 */
function nodeBinary(major) {
  const probe = spawnSync(
    npm,
    ['exec', '--yes', `--package=node@${major}`, '--', 'node', '-p', 'process.execPath + " " + process.version'],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
  const [binary, version] = (probe.stdout ?? '').trim().split(' ');
  if (probe.status !== 0 || !binary || !version?.startsWith(`v${major}.`)) {
    console.error(
      `test:compat: could not get Node ${major} from the npm registry (got ${JSON.stringify(probe.stdout?.trim())}):\n${probe.stderr ?? ''}`,
    );
    return undefined;
  }
  return { binary, version };
}

if (run(npm, ['run', 'build', '--silent']) !== 0) process.exit(1);

const failed = [];
for (const major of majors) {
  const node = nodeBinary(major);
  if (!node) {
    failed.push(major);
    continue;
  }
  console.log(`\n== Node ${node.version} (${node.binary}) ==`);
  if (run(node.binary, ['node_modules/vitest/vitest.mjs', 'run']) !== 0) failed.push(major);
}
if (failed.length > 0) {
  console.error(`\ntest:compat: failed on Node ${failed.join(', ')}`);
  process.exit(1);
}
console.log(`\ntest:compat: passed on Node ${majors.join(', ')}`);
