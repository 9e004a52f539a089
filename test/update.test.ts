/**
 * `--on-exists update` against a real server: Debian's nginx answers the
 * conditional requests, and its access log counts the 304s.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import type { ItemResult } from '../src/record/record.js';
import { collect, runCli, serve, tempDir } from './helpers.js';
import { startNginx } from './nginx.js';

const COUNT = 200;
const files = Object.fromEntries(Array.from({ length: COUNT }, (_, i) => [`${i}.png`, generatedImage('png', 1_000 + i)]));
/** When the server's files were last changed: an hour ago, to the second, so it differs from the time of saving. */
const changedAt = new Date(Math.floor(Date.now() / 1000 - 3600) * 1000);

const statuses = (results: ItemResult[]): string[] => results.map((r) => `${r.status}:${r.skipReason ?? r.httpStatus}`);

describe('--on-exists update', () => {
  it('asks again about 200 saved images, gets 200 304s, and rewrites nothing; a changed one is replaced', async () => {
    const nginx = await startNginx({ files });
    for (const name of Object.keys(files)) await fs.utimes(path.join(nginx.root, name), changedAt, changedAt);
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    const urls = Object.keys(files).map((name) => `${nginx.origin}/${name}`);
    const options = { out, manifest, onExists: 'update' as const, concurrency: 16 };

    const first = await collect(urls, options);
    expect(new Set(statuses(first))).toEqual(new Set(['ok:200']));
    // Saved with the server's Last-Modified as their time, and that recorded with the ETag.
    expect(first[0]).toMatchObject({ lastModified: changedAt.toUTCString(), etag: expect.stringMatching(/^"/) });
    const before = new Map<string, { ino: number; mtimeMs: number }>();
    for (const name of Object.keys(files)) before.set(name, await fs.stat(path.join(out, name)));
    expect(before.get('0.png')!.mtimeMs).toBe(changedAt.getTime());

    const second = await collect(urls, options);
    expect(second).toHaveLength(COUNT);
    expect(new Set(statuses(second))).toEqual(new Set(['skipped:not-modified']));
    const logged = (await nginx.requests()).slice(COUNT);
    expect(logged).toHaveLength(COUNT);
    expect(logged.filter((r) => r.status === 304)).toHaveLength(COUNT);
    for (const [name, was] of before) {
      const now = await fs.stat(path.join(out, name));
      expect({ ino: now.ino, mtimeMs: now.mtimeMs }).toEqual({ ino: was.ino, mtimeMs: was.mtimeMs });
    }

    // One image changes on the server: only it comes again, replaced under a new inode.
    const changed = generatedImage('png', 5_000);
    await fs.writeFile(path.join(nginx.root, '7.png'), changed);
    const third = await collect(urls, options);
    expect(statuses(third).filter((s) => s !== 'skipped:not-modified')).toEqual(['ok:200']);
    expect(await fs.readFile(path.join(out, '7.png'))).toEqual(changed);
    expect((await fs.stat(path.join(out, '7.png'))).ino).not.toBe(before.get('7.png')!.ino);
  });

  it("sends the ETag an earlier run's manifest recorded as If-None-Match", async () => {
    const png = generatedImage('png', 3_000);
    const seen: Array<string | null> = [];
    const server = await serve({
      handlers: [
        http.get('*/a.png', ({ request }) => {
          seen.push(request.headers.get('if-none-match'));
          if (request.headers.get('if-none-match') === '"v1"') return new HttpResponse(null, { status: 304 });
          return new HttpResponse(png, { headers: { 'content-type': 'image/png', etag: '"v1"' } });
        }),
      ],
    });
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    const args = [server.url('/a.png'), '-o', out, '--manifest', manifest, '--on-exists', 'update', '--json'];
    expect(JSON.parse((await runCli(args)).stdout)).toMatchObject({ ok: 1 });
    expect(JSON.parse((await runCli(args)).stdout)).toMatchObject({ ok: 0, skipped: 1 });
    expect(seen).toEqual([null, '"v1"']);
  });

  it('with --no-remote-time keeps the time of saving', async () => {
    const nginx = await startNginx({ files: { 'a.png': files['0.png']! } });
    await fs.utimes(path.join(nginx.root, 'a.png'), changedAt, changedAt);
    const out = await tempDir();
    await collect([`${nginx.origin}/a.png`], { out, remoteTime: false });
    expect((await fs.stat(path.join(out, 'a.png'))).mtimeMs).toBeGreaterThan(changedAt.getTime() + 60_000);
  });
});
