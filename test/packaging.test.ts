import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { listFiles, ROOT, serve, tempDir } from './helpers.js';

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface LockEntry {
  dev?: boolean;
  [field: string]: unknown;
}

/**
 * A project in `dir` that depends on the packed tarball `tgz` (already in `dir`'s parent), with a lockfile holding
 * this repository's locked runtime dependencies. `npm ci --offline` then installs it from the tarballs `npm ci` of
 * this repository cached. Without a lockfile npm would need each package's registry metadata, which that cache lacks.
 */
async function writeConsumer(dir: string, tgz: string): Promise<void> {
  await fs.mkdir(dir);
  const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const lock = JSON.parse(await fs.readFile(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const spec = `file:../${tgz}`;
  const packages: Record<string, unknown> = {
    '': { dependencies: { imgdl: spec } },
    'node_modules/imgdl': {
      version: pkg.version,
      resolved: spec,
      license: pkg.license,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [where, entry] of Object.entries(lock.packages)) if (where !== '' && entry.dev !== true) packages[where] = entry;
  await fs.writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, dependencies: { imgdl: spec } }));
  await fs.writeFile(
    path.join(dir, 'package-lock.json'),
    JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }),
  );
}

describe('the README library example', () => {
  it('is test/library-example.mjs verbatim, and it runs', async () => {
    const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
    const example = await fs.readFile(path.join(ROOT, 'test/library-example.mjs'), 'utf8');
    expect(readme).toContain('```js\n' + example + '```');

    const server = await serve();
    const cwd = await tempDir();
    const urls = [server.url('/gen/a.jpg'), server.url('/gen/b.png'), server.url('/nope.jpg')];
    // `import 'imgdl'` resolves to this package itself (a package may import its own name through `exports`).
    const child = await run(process.execPath, [path.join(ROOT, 'test/library-example.mjs'), ...urls], { cwd }).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect('code' in child ? child.code : 0).toBe(1);
    expect(child.stdout).toContain(`ok a.jpg ${urls[0]}`);
    expect(child.stdout).toContain(`failed HTTP_STATUS ${urls[2]}`);
    expect(await listFiles(path.join(cwd, 'photos'))).toEqual(['a.jpg', 'b.png']);
  });
});

describe('the package', () => {
  it('runs as `npx imgdl` from the clone', async () => {
    const { stdout } = await run(npm, ['exec', '--offline', '--', 'imgdl', '--help'], { cwd: ROOT });
    expect(stdout).toContain('imgdl [urls..] [options]');
  });

  it('packs only what it needs, and installs from the tarball into a working command', { timeout: 120_000 }, async () => {
    const dir = await tempDir();
    // The suite has just built dist/; skipping `prepare` keeps pack from rewriting it under other tests.
    const { stdout } = await run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT });
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed!.files.map((f) => f.path);
    expect(files).toContain('bin/imgdl.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files.filter((f) => !/^(bin\/|dist\/([\w-]+\/)?[\w-]+\.(js|d\.ts)$|README\.md$|package\.json$)/.test(f))).toEqual([]);
    expect(files).toContain('dist/cluster/index.js');
    expect(files.some((f) => /demo|\.map$|^src\/|^test\/|^dist\/bench\//.test(f))).toBe(false);
    // `imgdl bench --local` serves its images from the fixture server, so it ships.
    expect(files).toContain('dist/dev/fixture-server.js');

    // Installed as a user's project would, from npm's cache only: no network. The cache holds what `npm ci` of this
    // repository put there (tarballs, no registry metadata), so the consumer gets a lockfile pinning the same versions.
    const consumer = path.join(dir, 'consumer');
    await writeConsumer(consumer, packed!.filename);
    await run(npm, ['ci', '--offline', '--no-audit', '--no-fund'], {
      cwd: consumer,
      env: { ...process.env, npm_config_loglevel: 'error' },
    });
    const bin = path.join(consumer, 'node_modules', '.bin', 'imgdl');
    const version = await run(bin, ['--version']);
    const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(version.stdout.trim()).toBe(pkg.version);
    const help = await run(bin, ['--help']);
    expect(help.stdout).toContain('--user-agent');

    // The installed library works too, imported by its package name, with its own dependencies.
    const server = await serve();
    const out = path.join(dir, 'out');
    const script = `const { download } = await import('imgdl'); for await (const r of download([${JSON.stringify(server.url('/gen/x.jpg'))}], { out: ${JSON.stringify(out)} })) console.log(r.status);`;
    const lib = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: consumer });
    expect(lib.stdout.trim()).toBe('ok');
    // So does its cluster entry, with bullmq and ioredis installed beside it.
    const cluster = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const c = await import('imgdl/cluster'); console.log(typeof c.enqueue, typeof c.runWorker, typeof c.queueStatus);",
      ],
      { cwd: consumer },
    );
    expect(cluster.stdout.trim()).toBe('function function function');
  });
});
