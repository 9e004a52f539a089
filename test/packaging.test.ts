import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { listFiles, ROOT, serve, tempDir } from './helpers.js';

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

describe('the README library example', () => {
  it('is test/library-example.mjs verbatim, and it runs', async () => {
    const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
    const example = await fs.readFile(path.join(ROOT, 'test/library-example.mjs'), 'utf8');
    expect(readme).toContain('```js\n' + example + '```');

    const server = await serve();
    const cwd = await tempDir();
    const urls = [server.url('/gen/a.jpg'), server.url('/gen/b.png'), server.url('/nope.jpg')];
    // `import 'imgdl'` resolves to this package itself (a package may import its own name through `exports`).
    const child = await run(process.execPath, [path.join(ROOT, 'test/library-example.mjs'), ...urls], { cwd }).catch((e: { code: number; stdout: string }) => e);
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
    expect(files.filter((f) => !/^(bin\/|dist\/(cluster\/)?[\w-]+\.(js|d\.ts)$|README\.md$|package\.json$)/.test(f))).toEqual([]);
    expect(files).toContain('dist/cluster/index.js');
    expect(files.some((f) => /demo|\.map$|^src\/|^test\/|^dist\/bench\//.test(f))).toBe(false);
    // `imgdl bench --local` serves its images from the fixture server, so it ships.
    expect(files).toContain('dist/fixture-server.js');

    // A global install into a private prefix, from npm's cache only: no network.
    const prefix = path.join(dir, 'global');
    await run(npm, ['install', '--global', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', path.join(dir, packed!.filename)], {
      env: { ...process.env, npm_config_loglevel: 'error' },
    });
    const bin = path.join(prefix, 'bin', 'imgdl');
    const version = await run(bin, ['--version']);
    const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(version.stdout.trim()).toBe(pkg.version);
    const help = await run(bin, ['--help']);
    expect(help.stdout).toContain('--user-agent');

    // The installed library works too, with its own dependencies.
    const server = await serve();
    const out = path.join(dir, 'out');
    const installed = path.join(prefix, 'lib', 'node_modules', 'imgdl', 'dist', 'index.js');
    const script = `const { download } = await import(${JSON.stringify(installed)}); for await (const r of download([${JSON.stringify(server.url('/gen/x.jpg'))}], { out: ${JSON.stringify(out)} })) console.log(r.status);`;
    const lib = await run(process.execPath, ['--input-type=module', '-e', script]);
    expect(lib.stdout.trim()).toBe('ok');
    // So does its cluster entry, with bullmq and ioredis installed beside it.
    const clusterEntry = path.join(prefix, 'lib', 'node_modules', 'imgdl', 'dist', 'cluster', 'index.js');
    const cluster = await run(process.execPath, ['--input-type=module', '-e', `const c = await import(${JSON.stringify(clusterEntry)}); console.log(typeof c.enqueue, typeof c.runWorker, typeof c.queueStatus);`]);
    expect(cluster.stdout.trim()).toBe('function function function');
  });
});
