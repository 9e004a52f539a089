import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { formatSummary, type RunSummary } from '../src/report.js';
import { listFiles, ROOT, runCli, serve, tempDir } from './helpers.js';

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
    const lines = dry.stdout.trim().split('\n').map((l) => l.split('\t'));
    expect(lines.map((l) => l[0])).toEqual([server.url('/gen/a.jpg'), server.url('/gen/a.jpg?v=2'), server.url('/gen/b.png'), server.url('/gen/a.jpg'), 'ftp://example.com/x.jpg']);
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
    const blocks = help.stdout.split('Options:')[1]!.split('Examples:')[0]!.split(/\n(?=\s+(?:-\w, )?--)/).filter((b) => b.trim());
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
    expect(answer.stdout.trim().split('\n')).toEqual(['skip', 'overwrite', 'rename']);
  });

  it('loads no HTTP, logging, worker or queue code for --help and --version', () => {
    const probe = `
      import { createRequire } from 'node:module';
      const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist/cli.js'))});
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
    const control = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(ROOT, 'dist/download.js'))}); process.stderr.write(Object.keys((await import('node:module')).createRequire(import.meta.url).cache).join('\\n'))`], { encoding: 'utf8' });
    expect(control.stderr).toMatch(heavy);
  });

  it('loads no queue code (bullmq, ioredis) with the library, nor for a run', () => {
    const queue = /node_modules\/(bullmq|ioredis)\//m;
    const cache = `process.stderr.write(Object.keys((await import('node:module')).createRequire(import.meta.url).cache).join('\\n'))`;
    const library = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(ROOT, 'dist/index.js'))}); ${cache}`], { encoding: 'utf8' });
    expect(library.status, library.stderr).toBe(0);
    expect(library.stderr).toContain('node_modules/undici/');
    expect(library.stderr).not.toMatch(queue);
    const cluster = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(ROOT, 'dist/cluster/index.js'))}); ${cache}`], { encoding: 'utf8' });
    expect(cluster.stderr).toMatch(queue);
    // A dry run goes through the CLI's whole set-up for a run.
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist/cli.js'))}); await main(['-n', 'http://h/a.jpg']); ${cache}`], { encoding: 'utf8' });
    expect(run.stderr).toContain('1 to download');
    expect(run.stderr).not.toMatch(queue);
  });
});

describe('the summary', () => {
  const summary: RunSummary = {
    mode: 'concurrent', concurrency: 16, total: 120, ok: 114, failed: 5, skipped: 1, bytes: 12_900_000,
    wallMs: 4210, filesPerSec: 27.1, bytesPerSec: 3_064_133, p50Ms: 85.2, p95Ms: 310, maxMs: 1200,
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
    await fs.writeFile(list, [1, 2, 3].map((n) => server.url(`/gone/${n}.jpg`)).concat('not-a-url').join('\n'));
    const run = await runCli(['-i', list, '-o', out]);
    expect(run.stderr).toMatch(/failures {2}HTTP_STATUS {2}×3 {2}e\.g\. http:\/\/127\.0\.0\.1:\d+\/gone\/\d\.jpg\n {12}INVALID_URL {2}×1 {2}e\.g\. not-a-url/);
  });
});
