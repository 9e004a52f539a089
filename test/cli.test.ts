import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { listFiles, runCli, serve, tempDir } from './helpers.js';

describe('imgdl command', () => {
  it('downloads a list piped on stdin and exits 0', async () => {
    const server = await serve();
    const out = await tempDir();
    const list = `# cats\n${server.url('/gen/a.jpg')}\n\n${server.url('/gen/b.png')}  bee.png\r\n`;
    const run = await runCli(['-o', out], { stdin: list });
    expect(run.code).toBe(0);
    expect(await listFiles(out)).toEqual(['a.jpg', 'bee.png']);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('2 ok, 0 failed, 0 skipped of 2');
  });

  it('reads -i files and "-" for stdin, in order, in sequential mode', async () => {
    const server = await serve();
    const out = await tempDir();
    const listFile = path.join(out, 'urls.txt');
    await fs.writeFile(listFile, `${server.url('/gen/one.jpg')}\n`);
    const run = await runCli(['-i', listFile, '-i', '-', '-o', path.join(out, 'img'), '--mode', 'sequential', '--json'], {
      stdin: server.url('/gen/two.jpg'),
    });
    expect(run.code).toBe(0);
    expect(await listFiles(path.join(out, 'img'))).toEqual(['one.jpg', 'two.jpg']);
    expect(JSON.parse(run.stdout)).toMatchObject({ mode: 'sequential', concurrency: 1, total: 2, ok: 2 });
  });

  it('prints the summary as one JSON object on stdout with --json', async () => {
    const server = await serve();
    const out = await tempDir();
    const run = await runCli([server.url('/gen/a.jpg?bytes=4000'), '-o', out, '--json', '-c', '3']);
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ mode: 'concurrent', concurrency: 3, total: 1, ok: 1, failed: 0, skipped: 0, bytes: 4000 });
    for (const key of ['wallMs', 'filesPerSec', 'bytesPerSec', 'p50Ms', 'p95Ms', 'maxMs']) {
      expect(typeof summary[key], key).toBe('number');
    }
  });

  it('exits 1 when an item fails, names its source line, and keeps the rest', async () => {
    const server = await serve({ handlers: [http.get('*/gone.jpg', () => new HttpResponse('nope', { status: 404 }))] });
    const out = await tempDir();
    const listFile = path.join(out, 'urls.txt');
    await fs.writeFile(listFile, [server.url('/gone.jpg'), 'javascript:alert(1)', server.url('/gen/ok.jpg')].join('\n'));
    const run = await runCli(['-i', listFile, '-o', path.join(out, 'img')]);
    expect(run.code).toBe(1);
    expect(await listFiles(path.join(out, 'img'))).toEqual(['ok.jpg']);
    expect(run.stderr).toContain(`${listFile}:2`);
    expect(run.stderr).toContain('HTTP_STATUS');
  });

  it('exits 0 on an empty list', async () => {
    const out = await tempDir();
    const run = await runCli(['-o', out, '--json'], { stdin: '# nothing here\n\n' });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ total: 0, ok: 0, failed: 0 });
  });

  it.each([
    [['--bogus-flag'], 'bogus-flag'],
    [['-c', 'lots', 'http://127.0.0.1/a.jpg'], 'concurrency'],
    [['-c', '0', 'http://127.0.0.1/a.jpg'], 'concurrency'],
    [['--mode', 'fast', 'http://127.0.0.1/a.jpg'], 'fast'],
    [['-i', '/no/such/list.txt'], '/no/such/list.txt'],
  ])('exits 2 for the usage error in %j, naming %s', async (args, named) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(named);
  });

  it('downloads nothing new when rerun', async () => {
    const server = await serve();
    const out = await tempDir();
    const args = [server.url('/gen/a.jpg'), server.url('/gen/b.jpg'), '-o', out, '--json'];
    expect((await runCli(args)).code).toBe(0);
    server.stats.reset();
    const again = await runCli(args);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: 0, skipped: 2 });
    expect(server.stats.requests).toBe(0);
  });

  it('writes the manifest as JSON Lines', async () => {
    const server = await serve();
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    const run = await runCli([server.url('/gen/a.jpg'), '-o', path.join(out, 'img'), '--manifest', manifest]);
    expect(run.code).toBe(0);
    const [record] = (await fs.readFile(manifest, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(record).toMatchObject({ status: 'ok', path: 'a.jpg', attempts: 1, error: null });
  });

  it('prints its version and help without downloading', async () => {
    const version = await runCli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--concurrency');
  });
});
