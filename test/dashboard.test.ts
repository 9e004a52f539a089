/**
 * `imgdl dashboard` against a real redis-server with work in the queue,
 * checked in a real browser: imgdl's counts, bull-board's view of the queue,
 * and HTTP Basic on every route when --auth is given.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { enqueue } from '../src/cluster/enqueue.js';
import { isLoopback, parseAuth } from '../src/cli/dashboard-command.js';
import { openPage, screenshot } from './browser.js';
import { ROOT, runCli } from './helpers.js';
import { startRedis } from './redis.js';

const children: ChildProcessWithoutNullStreams[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
});

/** Starts `imgdl dashboard ARGS` and resolves once it says where it serves. */
async function startDashboard(args: string[]): Promise<{ child: ChildProcessWithoutNullStreams; url: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/imgdl.js'), 'dashboard', '--port', '0', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      const found = /serving (http:\/\/\S+?)\/ /.exec(stderr);
      if (found) resolve(found[1]!);
    });
    child.once('exit', (code) => reject(new Error(`dashboard exited with ${code}: ${stderr}`)));
  });
  return { child, url };
}

/** Ten items in five jobs, nothing done yet. */
async function queueWithWork(url: string): Promise<void> {
  const items = Array.from({ length: 10 }, (_, i) => ({ url: `http://127.0.0.1:9/img/${i}.jpg` }));
  const added = await enqueue(items, { queue: url, batch: 2 });
  expect(added).toMatchObject({ items: 10, jobs: 5 });
}

describe('imgdl dashboard', () => {
  it('shows the queue and its counts, behind the password on every route', { timeout: 60_000 }, async () => {
    const redis = await startRedis();
    await queueWithWork(redis.url);
    const { child, url } = await startDashboard(['--queue', redis.url, '--auth', 'ops:s3cret']);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
    for (const route of ['/', '/api/status', '/queues/', '/queues/api/queues', '/queues/static/nothing.js']) {
      expect((await fetch(url + route)).status, route).toBe(401);
      expect((await fetch(url + route, { headers: basic('ops', 'wrong') })).status, route).toBe(401);
    }
    const status = await fetch(url + '/api/status', { headers: basic('ops', 's3cret') });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({
      total: 10,
      pending: 10,
      ok: 0,
      failed: 0,
      skipped: 0,
      jobs: { waiting: 5 },
      pausedHosts: [],
    });

    const { page, errors } = await openPage({ httpCredentials: { username: 'ops', password: 's3cret' } });
    await page.goto(url + '/');
    expect(await page.locator('#pending').innerText()).toBe('10');
    expect(await page.locator('#total').innerText()).toBe('10');
    for (const id of ['ok', 'failed', 'skipped']) expect(await page.locator(`#${id}`).innerText(), id).toBe('0');
    expect(await page.locator('#jobs-waiting').innerText()).toBe('5');
    expect(await page.locator('#hosts').innerText()).toContain('keeps no item counts per host');
    await screenshot(page, 'dashboard-counts');

    // bull-board's own page, drawn by its scripts: the queue, its five waiting jobs, no worker yet.
    await page.locator('#board').click();
    await page
      .getByText(/^5 Jobs$/i)
      .first()
      .waitFor();
    const board = await page.locator('body').innerText();
    expect(board).toContain('imgdl');
    expect(board).toMatch(/WAITING\s+5/i);
    expect(board).toMatch(/No workers/i);
    await screenshot(page, 'dashboard-bull-board');
    expect(errors).toEqual([]);

    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(143);
  });

  it('refuses a non-loopback address without --auth, saying why', async () => {
    const run = await runCli(['dashboard', '--queue', 'redis://127.0.0.1:1', '--host', '0.0.0.0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('refusing to serve on 0.0.0.0 without --auth USER:PASS');
    expect(run.stderr).toMatch(/anyone who reaches that address could read the jobs/);
  });

  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.5', false],
    ['dashboard.lan', false],
  ])('treats %s as loopback: %s', (host, loopback) => {
    expect(isLoopback(host)).toBe(loopback);
  });

  it.each([['ops'], [':pass'], ['ops:'], ['']])('refuses --auth %j', (text) => {
    expect(() => parseAuth(text)).toThrow(/USER:PASS/);
  });

  it('keeps a colon in the password', () => {
    expect(parseAuth('ops:a:b')).toEqual({ username: 'ops', password: 'a:b' });
  });
});

describe('what the main command loads', () => {
  it('loads no dashboard or chart code (bull-board, Hono, Vega) for a run, nor for a plain bench', () => {
    const extras = /node_modules\/(@bull-board|hono|@hono|vega|vega-lite)\//m;
    const cache = `process.stderr.write(Object.keys((await import('node:module')).createRequire(import.meta.url).cache).join('\\n'))`;
    const main = JSON.stringify(path.join(ROOT, 'dist/cli/main.js'));
    const run = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `const { main } = await import(${main}); await main(['-n', 'http://h/a.jpg']); ${cache}`],
      { encoding: 'utf8' },
    );
    expect(run.stderr).toContain('1 to download');
    expect(run.stderr).not.toMatch(extras);
    const help = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `const { main } = await import(${main}); await main(['bench', '--help']); ${cache}`],
      { encoding: 'utf8' },
    );
    expect(help.stdout).toContain('--sweep');
    expect(help.stderr).not.toMatch(extras);
    // The probe does see them once the dashboard's server is loaded.
    const dashboard = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(ROOT, 'dist/cluster/dashboard.js'))}); ${cache}`],
      { encoding: 'utf8' },
    );
    expect(dashboard.stderr).toMatch(extras);
  });
});
