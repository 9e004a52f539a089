/**
 * Adaptive per-host throttling against a real rate limiter: Debian's nginx
 * with `limit_req`, which answers 429 without `Retry-After` above its rate,
 * as most limiters do. Counts, not times: what nginx's access log saw.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HostSummary } from '../src/record/host-figures.js';
import { listFiles, ROOT, runCli, tempDir } from './helpers.js';
import { startNginx } from './nginx.js';

const JPEG = await fs.readFile(path.join(ROOT, 'fixtures/images/tiny.jpg'));

/** `count` images, `img/0.jpg` on, for nginx to serve. */
function images(count: number): Record<string, Buffer> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`img/${i}.jpg`, JPEG]));
}

describe('adaptive throttling against nginx limit_req', () => {
  it('saves 300 images from a 20 r/s, burst 10 limit over HTTPS at -c 16 with no --rate; ≤ 10 % answered 429', async () => {
    const nginx = await startNginx({ tls: true, limitReq: { rate: 20, burst: 10 }, files: images(300) });
    const out = await tempDir();
    const list = Array.from({ length: 300 }, (_, i) => `${nginx.origin}/img/${i}.jpg`).join('\n');
    const run = await runCli(['-c', '16', '-o', out, '--cacert', nginx.caFile, '--json', '-v'], { stdin: list });
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    expect(await listFiles(out)).toHaveLength(300);
    const requests = await nginx.requests();
    const answered429 = requests.filter((r) => r.status === 429).length;
    expect(answered429).toBeLessThanOrEqual(requests.length * 0.1);
    // The summary's figures for the host are nginx's own counts.
    const summary = JSON.parse(run.stdout) as { hosts: HostSummary[] };
    const host = summary.hosts.find((h) => h.host === new URL(nginx.origin).host)!;
    expect(host).toMatchObject({ requests: requests.length, ok: 300, failed: 0, http429: answered429, http503: 0 });
    if (answered429 > 0) {
      expect(host.rate).toBeGreaterThan(0);
      // -v says each cut once.
      expect(run.stderr).toMatch(/answered HTTP 429: slowing to [\d.]+ requests\/s/);
    }
    // The limit alone takes 15 s for 300 requests: a bound against hangs on a slow machine, not a timing assertion.
  }, 120_000);

  it('with --no-adapt, a host that answers 429 is not slowed (the per-item backoff alone)', async () => {
    const nginx = await startNginx({ limitReq: { rate: '1r/m', burst: 0 }, files: images(8) });
    const out = await tempDir();
    const list = Array.from({ length: 8 }, (_, i) => `${nginx.origin}/img/${i}.jpg`).join('\n');
    const run = await runCli(['-c', '8', '-o', out, '--no-adapt', '--retries', '0', '--json'], { stdin: list });
    expect(run.code).toBe(1);
    const summary = JSON.parse(run.stdout) as { hosts: HostSummary[] };
    expect(summary.hosts[0]).toMatchObject({ requests: 8, rate: null });
    expect(summary.hosts[0]!.http429).toBe((await nginx.requests()).filter((r) => r.status === 429).length);
  });

  it('a host that only answers 429 fails its items cleanly within the retry budget, and the text summary names it', async () => {
    const nginx = await startNginx({ limitReq: { rate: '1r/m', burst: 0 }, files: images(6) });
    const out = await tempDir();
    const list = Array.from({ length: 6 }, (_, i) => `${nginx.origin}/img/${i}.jpg`).join('\n');
    const run = await runCli(['-c', '6', '-o', out, '--retries', '1', '--retry-delay', '10'], { stdin: list });
    expect(run.code).toBe(1);
    const requests = await nginx.requests();
    // One try and one retry for each item at most: no loop.
    expect(requests.length).toBeLessThanOrEqual(12);
    expect(run.stderr).toMatch(new RegExp(`hosts\\n.*host.*429.*\\n\\s+${new URL(nginx.origin).host.replace('.', '\\.')}`));
  });
});
