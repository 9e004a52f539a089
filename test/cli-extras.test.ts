import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { fullParse, quickParse } from '../src/cli/args.js';
import { runChild } from '../src/cli/bench.js';
import { formatSummary, type RunSummary } from '../src/record/run-report.js';
import { listFiles, ROOT, runCli, serve, tempDir } from './helpers.js';

/** Runs `node ARGS` without blocking this process's event loop (the fixture server lives in it). */
function runNode(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('--dry-run', () => {
  it('prints each URL with the file a real run then writes, and requests nothing', async () => {
    const server = await serve();
    const out = await tempDir();
    const list = [
      server.url('/gen/a.jpg'),
      server.url('/gen/a.jpg?v=2'), // same name as the first: gets the run's collision suffix
      server.url('/gen/b.png') + '  shots/bee.png',
      server.url('/gen/a.jpg'), // duplicate
      'ftp://example.com/x.jpg',
    ].join('\n');
    const dry = await runCli(['-n', '-o', out], { stdin: list });
    expect(dry.code).toBe(1);
    expect(server.stats.requests).toBe(0);
    expect(await listFiles(out)).toEqual([]);
    const lines = dry.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(lines.map((l) => l[0])).toEqual([
      server.url('/gen/a.jpg'),
      server.url('/gen/a.jpg?v=2'),
      server.url('/gen/b.png'),
      server.url('/gen/a.jpg'),
      'ftp://example.com/x.jpg',
    ]);
    expect(lines[3]).toEqual([server.url('/gen/a.jpg'), '-', 'skipped: duplicate']);
    expect(lines[4]?.[2]).toMatch(/^failed: .*UNSUPPORTED_SCHEME/);
    expect(dry.stderr).toContain('dry run: 3 to download, 1 skipped, 1 invalid; nothing was requested');

    const real = await runCli(['-o', out], { stdin: list });
    expect(real.code).toBe(1);
    const planned = lines.slice(0, 3).map((l) => path.relative(out, l[1]!).split(path.sep).join('/'));
    expect(await listFiles(out)).toEqual([...planned].sort());
  });
});

describe('help, completion and version', () => {
  it('shows a default for every option in --help, and examples', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    // Each option's block runs from its flag to the next flag; --help and --version need no default.
    const blocks = help.stdout
      .split('Options:')[1]!
      .split('Examples:')[0]!
      .split(/\n(?=\s+(?:-\w, )?--)/)
      .filter((b) => b.trim());
    expect(blocks.length).toBeGreaterThan(20);
    for (const block of blocks.filter((b) => !/--(help|version)\b/.test(b))) expect(block, block).toMatch(/\[default: /);
    expect(help.stdout).toMatch(/imgdl -n -i urls.txt/);
  });

  it('prints a shell completion script', async () => {
    const run = await runCli(['completion']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('imgdl');
    expect(run.stdout).toMatch(/complete .*imgdl/);
    // What the script asks the command when Tab is pressed after --on-exists.
    const answer = await runCli(['--get-yargs-completions', 'imgdl', '--on-exists', '']);
    expect(answer.stdout.trim().split('\n')).toEqual(['skip', 'overwrite', 'rename', 'update']);
  });

  it('loads no HTTP, logging, worker or queue code for --help and --version', () => {
    const probe = `
      import { createRequire } from 'node:module';
      const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist/cli/main.js'))});
      await main(process.argv.slice(1));
      const loaded = Object.keys(createRequire(import.meta.url).cache).join('\\n') + '\\n' + process.moduleLoadList.join('\\n');
      process.stderr.write(loaded);
    `;
    const heavy = /node_modules\/(undici|pino|piscina|bullmq|ioredis)\/|NativeModule (http|https|worker_threads)$/m;
    for (const flag of ['--help', '--version']) {
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', probe, flag], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr).not.toMatch(heavy);
    }
    // The probe sees such modules when they are loaded.
    const control = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `await import(${JSON.stringify(path.join(ROOT, 'dist/run/download.js'))}); process.stderr.write(Object.keys((await import('node:module')).createRequire(import.meta.url).cache).join('\\n'))`,
      ],
      { encoding: 'utf8' },
    );
    expect(control.stderr).toMatch(heavy);
  });

  it('loads no queue code (bullmq, ioredis) with the library, nor for a run', () => {
    const queue = /node_modules\/(bullmq|ioredis)\//m;
    const cache = `process.stderr.write(Object.keys((await import('node:module')).createRequire(import.meta.url).cache).join('\\n'))`;
    const library = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(ROOT, 'dist/index.js'))}); ${cache}`],
      { encoding: 'utf8' },
    );
    expect(library.status, library.stderr).toBe(0);
    expect(library.stderr).toContain('node_modules/undici/');
    expect(library.stderr).not.toMatch(queue);
    const cluster = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(ROOT, 'dist/cluster/index.js'))}); ${cache}`],
      { encoding: 'utf8' },
    );
    expect(cluster.stderr).toMatch(queue);
    // A dry run goes through the CLI's whole set-up for a run.
    const run = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist/cli/main.js'))}); await main(['-n', 'http://h/a.jpg']); ${cache}`,
      ],
      { encoding: 'utf8' },
    );
    expect(run.stderr).toContain('1 to download');
    expect(run.stderr).not.toMatch(queue);
  });
});

describe('parsing a plain run without yargs', () => {
  /** The fields a run reads from argv (yargs adds aliases and `$0`, which nothing reads). */
  const fields = (argv: object) =>
    Object.fromEntries(Object.entries(argv).filter(([key]) => /^[a-z]+([A-Z][a-z]+)*$/.test(key) && key.length > 1));

  it.each([
    [[]],
    [['https://a.example/x.jpg']],
    [['https://a.example/x.jpg', 'https://b.example/y.png', '-o', 'out', '-c', '32']],
    [['-i', 'list.txt', '-i', 'more.txt', '--out=photos', '-c8', '-q']],
    [['--input=-', '-m', 'sequential', '--hash', 'sha256', '--dedupe', '--per-host', '4']],
    [['-vv', '--on-exists', 'rename', '--manifest', 'run.jsonl', '--json', '--timeout', '5000']],
    [['--retries', '0', '--retry-delay', '1', '--max-retry-after', '2.5', '--max-size', '10M', '--any-type']],
    [['--grace', '0', '-H', 'Authorization: Bearer x', '-H', 'X-A: 1', '-A', 'ua/1', '--referer', 'https://r.example/']],
    [['--cookie', 'a=b', '--proxy', 'http://p.example:3128', '-k', '--cacert', 'ca.pem', '-n', '--location-trusted']],
    [['--no-progress', '--no-color', '--no-proxy', '--color']],
    [['-t', '3', '--mode=workers']],
  ])('reads %j as yargs does', async (args) => {
    const quick = await quickParse(args);
    expect(quick).toBeDefined();
    expect(fields(quick!)).toEqual(fields(await fullParse(args)));
  });

  it.each([
    [['--help']],
    [['-qh']],
    [['--version']],
    [['completion']],
    [['--unknown-flag']],
    [['--mode', 'fast']],
    [['--hash', 'crc32']],
    [['-H']],
    [['--cookie', '']],
    [['--', '-not-a-flag']],
    [['--concurrency', 'abc', '12345']],
  ])('leaves %j to yargs', async (args) => {
    expect(await quickParse(args)).toBeUndefined();
  });

  it('reads no more code than the run needs: no yargs, pino, file-type or undici fetch for a one-file download', async () => {
    const server = await serve();
    const out = await tempDir();
    // Node's own debug trace names every module it loads, ES (esm) and CommonJS (module).
    const loaded = async (args: string[]) => (await runCli(args, { env: { NODE_DEBUG: 'esm,module' } })).stderr;
    const run = await loaded([server.url('/gen/a.jpg'), '-o', out]);
    expect(await listFiles(out)).toEqual(['a.jpg']);
    expect(run).toMatch(/node_modules\/undici\/lib\/dispatcher\/agent/);
    expect(run).not.toMatch(/node_modules\/(yargs|pino|file-type|undici\/lib\/web)\//);
    // The trace does show them when they are used: yargs for --help, pino once something is logged.
    expect(await loaded(['--help'])).toMatch(/node_modules\/yargs\//);
    expect(await loaded([server.url('/missing.jpg'), '-o', out])).toMatch(/node_modules\/pino\//);
  });
});

describe('a number option given something else', () => {
  // Regression: yargs reads `-c abc` as NaN, and the message said `null`.
  const queue = ['--queue', 'redis://127.0.0.1:1'];
  it.each([
    [['-c', 'abc', 'http://h/a.jpg'], 'abc'],
    [['--timeout=12x', 'http://h/a.jpg'], '12x'],
    [['--per-host', 'two', 'http://h/a.jpg'], 'two'],
    [['--retries', '3a', '-t', '2', 'http://h/a.jpg'], '3a'],
    [['bench', '--repeat', 'abc'], 'abc'],
    [['bench', '--local', '-c', 'many'], 'many'],
    [['enqueue', ...queue, '--batch', 'lots', 'http://h/a.jpg'], 'lots'],
    [['worker', ...queue, '--lock-ms', '1s'], '1s'],
    [['status', ...queue, '--interval', 'often'], 'often'],
  ])('%j is refused naming what was typed', async (args, typed) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(typed);
    expect(run.stderr).not.toMatch(/\bnull\b|NaN/);
  });
});

describe('how the CLI starts', () => {
  it("keeps undici's WebAssembly HTTP parser on V8's baseline compiler, unlike a plain process", async () => {
    const server = await serve();
    const dir = await tempDir();
    const urls = Array.from({ length: 1500 }, (_, i) => server.url(`/gen/${i}.jpg?bytes=2000`));
    const list = path.join(dir, 'urls.txt');
    await fs.writeFile(list, urls.join('\n'));
    // V8 prints a line per WebAssembly function compiled, naming the compiler.
    const trace = ['--trace-wasm-compilation-times'];
    const cli = await runNode([...trace, path.join(ROOT, 'bin/imgdl.js'), '-i', list, '-o', path.join(dir, 'cli'), '-q']);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/Liftoff/);
    expect(cli.stdout).not.toMatch(/TurboFan/i);
    // The same downloads through the library, without the CLI's flags: the parser gets hot enough to tier up.
    const library = `
      import { download } from ${JSON.stringify(path.join(ROOT, 'dist/index.js'))};
      const urls = (await import('node:fs')).readFileSync(${JSON.stringify(list)}, 'utf8').split('\\n');
      for await (const r of download(urls, { out: ${JSON.stringify(path.join(dir, 'lib'))} })) if (r.status !== 'ok') process.exit(1);
    `;
    const plain = await runNode([...trace, '--input-type=module', '-e', library]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/TurboFan/i);
  });
});

describe('the summary', () => {
  const summary: RunSummary = {
    mode: 'concurrent',
    concurrency: 16,
    total: 120,
    ok: 114,
    failed: 5,
    skipped: 1,
    bytes: 12_900_000,
    wallMs: 4210,
    filesPerSec: 27.1,
    bytesPerSec: 3_064_133,
    p50Ms: 85.2,
    p95Ms: 310,
    maxMs: 1200,
    errors: {
      NETWORK: { count: 1, example: 'https://b.example/x.jpg' },
      HTTP_STATUS: { count: 4, example: 'https://a.example/gone.jpg' },
    },
  };

  it('reads at a glance: counts, bytes, rate, latency, then failures by code, most frequent first', () => {
    expect(formatSummary(summary)).toBe(
      [
        '114 ok, 5 failed, 1 skipped of 120 in 4.21 s (concurrent, concurrency 16)',
        '  saved     12.3 MiB · 2.9 MiB/s · 27.1 files/s',
        '  per file  p50 85 ms · p95 310 ms · max 1.20 s',
        '  failures  HTTP_STATUS  ×4  e.g. https://a.example/gone.jpg',
        '            NETWORK      ×1  e.g. https://b.example/x.jpg',
      ].join('\n'),
    );
    expect(formatSummary(summary, { color: true })).toContain('\x1b[31mHTTP_STATUS');
  });

  it('groups failures of a real run by code with one example each', async () => {
    const server = await serve({ handlers: [http.get('*/gone/:n', () => new HttpResponse(null, { status: 404 }))] });
    const out = await tempDir();
    const list = path.join(out, 'urls.txt');
    await fs.writeFile(
      list,
      [1, 2, 3]
        .map((n) => server.url(`/gone/${n}.jpg`))
        .concat('not-a-url')
        .join('\n'),
    );
    const run = await runCli(['-i', list, '-o', out]);
    expect(run.stderr).toMatch(
      /failures {2}HTTP_STATUS {2}×3 {2}e\.g\. http:\/\/127\.0\.0\.1:\d+\/gone\/\d\.jpg\n {12}INVALID_URL {2}×1 {2}e\.g\. not-a-url/,
    );
  });
});

describe("bench's child runs", () => {
  it('fail naming the arguments, the exit code and stderr when a run prints no summary', async () => {
    const crash = runChild(['-e', 'console.error("thrown in the child"); process.exit(1)'], ['-i', 'list.txt']);
    await expect(crash).rejects.toThrow('imgdl -i list.txt exited with 1 and printed no summary (""): thrown in the child');
    await expect(runChild(['-e', 'console.log(JSON.stringify({ ok: 3 })); process.exit(1)'], [])).resolves.toEqual({ ok: 3 });
    await expect(runChild(['-e', 'process.exit(3)'], ['-c', '4'])).rejects.toThrow('imgdl -c 4 exited with 3: nothing on stderr');
  });
});
