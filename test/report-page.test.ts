/**
 * `imgdl bench --sweep --report` in a real browser: every chart drawn with a
 * mark per measured point, the caption's words, nothing fetched, no console
 * error, and a screenshot kept in test-artifacts/.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { SweepPoint } from '../src/charts/points.js';
import { openPage, screenshot } from './browser.js';
import { ROOT, runCli, tempDir } from './helpers.js';
import { installed } from '../src/bench/contenders.js';

describe('imgdl bench --sweep --report', () => {
  it('writes a page whose charts show every point, with a caption from the figures', { timeout: 90_000 }, async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'r.html');
    // Tiny on purpose: two cores are shared with other work.
    const run = await runCli([
      'bench',
      '--local',
      '--sweep',
      '1,4',
      '--files',
      '20',
      '--latency',
      '20',
      '--repeat',
      '1',
      '--report',
      file,
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const points = JSON.parse(run.stdout) as SweepPoint[];
    // Sequential at 1 only; the two pools at 1 and 4.
    expect(points.map((p) => `${p.series}@${p.concurrency}`)).toEqual([
      'sequential@1',
      'concurrent@1',
      'workers@1',
      'concurrent@4',
      'workers@4',
    ]);
    for (const p of points) {
      expect(p.files).toBe(20);
      expect(p.p50Ms! <= p.p95Ms! && p.p95Ms! <= p.p99Ms!).toBe(true);
      expect(p.cpuMsPerFile).toBeGreaterThanOrEqual(0);
      expect(p.peakRssBytes).toBeGreaterThan(10e6);
    }
    expect(run.stderr).toContain(`report written to ${file}`);

    const html = await fs.readFile(file, 'utf8');
    // Viewable with no script and no network.
    expect(html).not.toMatch(/<script|<link|<img|https?:\/\/(?!www\.w3\.org)/i);

    const { page, errors } = await openPage();
    const requests: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(file).href);
    const charts = page.locator('figure.chart');
    expect(await charts.count()).toBe(3);
    for (const id of ['throughput', 'p95', 'cpu']) {
      const chart = page.locator(`figure#${id}`);
      expect(await chart.locator('svg').count()).toBe(1);
      // One symbol per measured point, all five series-points on every chart.
      expect(await chart.locator('g.mark-symbol.role-mark path').count(), id).toBe(points.length);
      expect(await chart.locator('g.mark-line.role-mark path').count(), id).toBeGreaterThanOrEqual(3);
      expect(await chart.getAttribute('data-points')).toBe(String(points.length));
    }
    // The dashed latency-only ceiling, and a legend naming the three ways.
    const legend = await page
      .locator('figure#throughput g.role-legend')
      .innerText()
      .catch(async () => page.locator('figure#throughput').innerText());
    for (const name of ['sequential', 'event-loop pool', 'worker-thread pool', 'latency-only ceiling']) expect(legend).toContain(name);
    const words = await page.locator('#throughput-caption').innerText();
    expect(words).toMatch(/^Sequential: [\d.]+ files\/s, one file at a time/);
    expect(words).toMatch(/Event-loop pool \(concurrent\) (still pays at 4|flattens after 1|starts to flatten after 1)/);
    expect(words).toMatch(/Worker-thread pool \(workers\) (still pays at 4|flattens after 1|starts to flatten after 1)/);
    expect(await page.locator('#machine').innerText()).toContain(`Node ${process.version}`);
    expect(await page.locator('#command').innerText()).toContain('imgdl bench --local --sweep 1,4');
    expect(await page.locator('table tbody tr').count()).toBe(points.length);
    expect(requests).toEqual([pathToFileURL(file).href]);
    expect(errors).toEqual([]);
    const shot = await screenshot(page, 'bench-report');
    expect((await fs.stat(shot)).size).toBeGreaterThan(10_000);
  });
});

describe('npm run bench -- --report', () => {
  it("draws the suite's sweep with the peers that are installed in the same charts", { timeout: 120_000 }, async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'suite.html');
    const suite = path.join(ROOT, 'dist/bench/suite.js');
    const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [suite, '--only', 'sweep', '--runs', '1', '--sweep', '1,2', '--sweep-files', '10', '--report', file],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(run.code, run.stderr).toBe(0);
    const peers = ['curl', 'wget2', 'aria2c'].filter(installed);
    // imgdl sequential at 1; at 1 and 2 each: concurrent, workers, the reference and every peer.
    const expected = 1 + 2 * (3 + peers.length);
    const { page, errors } = await openPage();
    await page.goto(pathToFileURL(file).href);
    expect(await page.locator('figure#throughput g.mark-symbol.role-mark path').count()).toBe(expected);
    // Only imgdl records per-file times: its five points.
    expect(await page.locator('figure#p95 g.mark-symbol.role-mark path').count()).toBe(5);
    const legend = await page.locator('figure#throughput').innerText();
    for (const name of ['sequential', 'event-loop pool', 'worker-thread pool', 'bare undici (reference)', ...peers])
      expect(legend).toContain(name);
    expect(await page.locator('#command').innerText()).toContain('npm run bench -- --only sweep');
    expect(errors).toEqual([]);
    await screenshot(page, 'suite-report');
  });
});
