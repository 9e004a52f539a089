/**
 * The disk path through the writer thread (output/disk-writer.ts): files
 * finishing together share hand-offs and all land whole; a failure on the
 * thread reaches the item as FILESYSTEM or DISK_FULL with nothing left
 * behind; a process killed while batches are on the thread leaves nothing
 * incomplete under a final name.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { DiskWriter } from '../src/output/disk-writer.js';
import type { Sink } from '../src/output/sink.js';
import { FolderSink } from '../src/output/folder-sink.js';
import { resolveOptions } from '../src/options.js';
import type { ItemResult } from '../src/record/record.js';
import { createRunContext, downloadWith } from '../src/run/download.js';
import { listFiles, ROOT, serve, tempDir } from './helpers.js';

async function runWith(urls: string[], out: string, writer: DiskWriter, extra: Parameters<typeof resolveOptions>[0] = {}) {
  const ctx = await createRunContext(resolveOptions({ out, ...extra }));
  ctx.sink = new FolderSink(ctx.options, ctx.parts, undefined, writer);
  const results: ItemResult[] = [];
  for await (const result of downloadWith(urls, ctx)) results.push(result);
  return results;
}

describe('the writer thread', () => {
  it('keeps 64 bodies that finish together, each whole, in fewer hand-offs than files', async () => {
    // Every response waits until all 64 are asked for, so the bodies arrive together.
    const server = await serve({ holdUntilInFlight: 64 });
    const out = await tempDir();
    const writer = new DiskWriter();
    await writer.ready();
    const urls = Array.from({ length: 64 }, (_, i) => server.url(`/gen/f${i}.jpg?bytes=${3000 + i}`));
    const results = await runWith(urls, out, writer, { concurrency: 64 });
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(64);
    const files = await listFiles(out);
    expect(files).toHaveLength(64);
    for (let i = 0; i < 64; i++) expect((await fs.stat(path.join(out, `f${i}.jpg`))).size).toBe(3000 + i);
    expect(writer.operations).toBe(64);
    expect(writer.batches).toBeLessThan(64);
  });

  it('opens and keeps a large body on the thread, its bytes written in batches beside it', async () => {
    const server = await serve();
    const out = await tempDir();
    const writer = new DiskWriter();
    await writer.ready();
    const size = 3 * 1024 * 1024 + 17;
    const results = await runWith([server.url(`/gen/big.jpg?bytes=${size}`)], out, writer);
    expect(results[0]).toMatchObject({ status: 'ok', bytes: size });
    expect(await listFiles(out)).toEqual(['big.jpg']);
    // An open and the keep (close and rename); generated images carry no validator, so no resume record.
    expect(writer.operations).toBe(2);
  });

  it('fails a large body on a full disk with DISK_FULL, and leaves neither part file nor record', async () => {
    const server = await serve();
    const out = await tempDir();
    const writer = new DiskWriter();
    const ctx = await createRunContext(resolveOptions({ out, concurrency: 1 }));
    // /dev/full takes the open and fails every write with a real ENOSPC, here on the writer thread.
    ctx.sink = new FolderSink(ctx.options, ctx.parts, async () => openSync('/dev/full', 'w'), writer);
    const results: ItemResult[] = [];
    for await (const result of downloadWith([server.url('/gen/big.jpg?bytes=2000000')], ctx)) results.push(result);
    expect(results[0]).toMatchObject({ status: 'failed', error: { code: 'DISK_FULL' } });
    expect(results[0]?.error?.message).toContain('ENOSPC');
    expect(await listFiles(out)).toEqual([]);
  });

  it('fails an item whose rename the thread cannot make with FILESYSTEM, and removes its part file', async () => {
    const server = await serve();
    const out = await tempDir();
    // A folder with a file in it where the file should go: no rename can replace it.
    mkdirSync(path.join(out, 'taken.jpg'));
    writeFileSync(path.join(out, 'taken.jpg', 'inside'), 'x');
    const results = await runWith([server.url('/gen/taken.jpg'), server.url('/gen/free.jpg')], out, new DiskWriter(), {
      onExists: 'overwrite',
    });
    const byUrl = new Map(results.map((r) => [path.basename(r.url), r]));
    expect(byUrl.get('taken.jpg')).toMatchObject({ status: 'failed', error: { code: 'FILESYSTEM' } });
    expect(byUrl.get('taken.jpg')?.error?.message).toContain('renaming into');
    expect(byUrl.get('free.jpg')).toMatchObject({ status: 'ok' });
    expect(await listFiles(out)).toEqual(['free.jpg', 'taken.jpg/inside']);
  });

  it('leaves nothing incomplete under a final name when the process is killed with batches on the thread', async () => {
    const server = await serve();
    const out = await tempDir();
    const list = path.join(await tempDir(), 'list.txt');
    const sizes = Array.from({ length: 400 }, (_, i) => 30_000 + i);
    await fs.writeFile(list, sizes.map((size, i) => server.url(`/gen/k${i}.jpg?bytes=${size}`)).join('\n') + '\n');
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/imgdl.js'), '-i', list, '-o', out, '-q', '-c', '32'], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    // Killed once a quarter of the list has been asked for: bodies are arriving and batches are on the thread.
    while (server.stats.requests < 100 && child.exitCode === null) await new Promise((resolve) => setImmediate(resolve));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    const files = await listFiles(out);
    const kept = files.filter((f) => f.endsWith('.jpg'));
    expect(kept.length).toBeLessThan(400);
    for (const file of kept) {
      const index = Number(/^k(\d+)\.jpg$/.exec(file)![1]);
      expect((await fs.stat(path.join(out, file))).size).toBe(sizes[index]);
    }
    // Anything else is a part file (or its record), which a rerun clears or continues.
    for (const file of files.filter((f) => !f.endsWith('.jpg'))) expect(file).toMatch(/\.jpg\.part(\.json)?$/);
  });
});

describe("libuv's pool, until a writer thread is ready", () => {
  it('keeps bodies small and large through the same steps, one call at a time', async () => {
    const server = await serve({ holdUntilInFlight: 16 });
    const out = await tempDir();
    const writer = new DiskWriter(0);
    const sizes = Array.from({ length: 16 }, (_, i) => (i === 3 ? 2_000_000 : 3000 + i));
    const urls = sizes.map((size, i) => server.url(`/gen/p${i}.jpg?bytes=${size}`));
    const results = await runWith(urls, out, writer, { concurrency: 16 });
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(16);
    for (const [i, size] of sizes.entries()) expect((await fs.stat(path.join(out, `p${i}.jpg`))).size).toBe(size);
    expect(await listFiles(out)).toHaveLength(16);
    // Fifteen keeps with their bodies, and the large body's open and keep: no batch went to a thread.
    expect([writer.pooled, writer.batches]).toEqual([17, 0]);
  });

  it('serves a run of one file, or of large files only, without ever starting a thread', async () => {
    const server = await serve();
    const large = new DiskWriter();
    const urls = [1, 2, 3].map((i) => server.url(`/gen/l${i}.jpg?bytes=${600_000 + i}`));
    const results = await runWith(urls, await tempDir(), large, { concurrency: 1 });
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    // Each an open and a keep, one call at a time on the pool.
    expect([large.threads, large.pooled, large.batches]).toEqual([0, 6, 0]);

    const small = new DiskWriter();
    const out = await tempDir();
    await runWith([server.url('/gen/s1.jpg?bytes=3000')], out, small);
    expect([small.threads, small.pooled]).toEqual([0, 1]);
    // The second small body starts one; it too is kept on the pool while the thread starts.
    await runWith([server.url('/gen/s2.jpg?bytes=3001')], out, small);
    expect([small.threads, small.pooled]).toEqual([1, 2]);
    expect(await listFiles(out)).toEqual(['s1.jpg', 's2.jpg']);
  });

  it('gives a file a free name beside a taken one, and sets its time, as the thread does', async () => {
    const out = await tempDir();
    writeFileSync(path.join(out, 'a.jpg'), 'old');
    const writer = new DiskWriter(0);
    const part = path.join(out, 'a.jpg.part');
    const mtime = Date.parse('2020-01-02T03:04:05Z');
    const op = {
      op: 'keep',
      fd: -1,
      part,
      final: path.join(out, 'a.jpg'),
      besides: true,
      mtime,
      body: undefined,
      drop: undefined,
    } as const;
    const kept = await writer.run(op, [Buffer.from('new body')], 8);
    expect(kept).toBe(path.join(out, 'a-1.jpg'));
    expect(await fs.readFile(path.join(out, 'a-1.jpg'), 'utf8')).toBe('new body');
    expect((await fs.stat(path.join(out, 'a-1.jpg'))).mtimeMs).toBe(mtime);
    expect(await listFiles(out)).toEqual(['a-1.jpg', 'a.jpg']);
  });

  it('writes a resume record, and drops a part file with it', async () => {
    const out = await tempDir();
    const writer = new DiskWriter(0);
    const part = path.join(out, 'b.jpg.part');
    const fd = (await writer.run({ op: 'open', part, flags: 'w' })) as number;
    await writer.run({ op: 'record', file: `${part}.json`, text: '{"key":"k"}' });
    expect(await fs.readFile(`${part}.json`, 'utf8')).toBe('{"key":"k"}');
    await writer.run({ op: 'drop', fd, files: [part, `${part}.json`] });
    expect(await listFiles(out)).toEqual([]);
  });

  it('fails as the thread does: FILESYSTEM naming the rename, DISK_FULL from a full disk, nothing left', async () => {
    const out = await tempDir();
    mkdirSync(path.join(out, 'taken.jpg'));
    writeFileSync(path.join(out, 'taken.jpg', 'inside'), 'x');
    const writer = new DiskWriter(0);
    const keep = (final: string, fd = -1) =>
      writer.run(
        { op: 'keep', fd, part: `${final}.part`, final, besides: false, mtime: NaN, body: undefined, drop: undefined },
        [Buffer.from('body')],
        4,
        'http://h/x',
      );
    await expect(keep(path.join(out, 'taken.jpg'))).rejects.toMatchObject({
      code: 'FILESYSTEM',
      message: expect.stringContaining('renaming into'),
    });
    await expect(keep(path.join(out, 'full.jpg'), openSync('/dev/full', 'w'))).rejects.toMatchObject({ code: 'DISK_FULL' });
    expect(await listFiles(out)).toEqual(['taken.jpg/inside']);
  });
});

/** A folder sink whose commits wait until the test lets them go: what a slow disk looks like to the pool. */
function heldCommits(inner: Sink): { sink: Sink; entered: () => number; letGo: () => void } {
  const waiting: Array<() => void> = [];
  let entered = 0;
  let open = false;
  const sink: Sink = {
    has: (target, relPath) => inner.has(target, relPath),
    resumable: (target) => inner.resumable(target),
    open(target, resume) {
      const entry = inner.open(target, resume);
      const commit = entry.commit.bind(entry);
      entry.commit = async (relPath, facts) => {
        entered++;
        if (!open) await new Promise<void>((resolve) => waiting.push(resolve));
        return commit(relPath, facts);
      };
      return entry;
    },
  };
  const letGo = (): void => {
    open = true;
    for (const resolve of waiting.splice(0)) resolve();
  };
  return { sink, entered: () => entered, letGo };
}

describe('a slot while its body is kept', () => {
  it('takes the next request once the body is received, up to as many bodies as slots waiting for the disk', async () => {
    // The first two answers wait for each other, so both slots are seen in use.
    const server = await serve({ holdUntilInFlight: 2 });
    const out = await tempDir();
    const ctx = await createRunContext(resolveOptions({ out, concurrency: 2 }));
    const held = heldCommits(ctx.sink);
    ctx.sink = held.sink;
    const urls = Array.from({ length: 8 }, (_, i) => server.url(`/gen/s${i}.jpg`));
    const run = (async () => {
      const results: ItemResult[] = [];
      for await (const result of downloadWith(urls, ctx)) results.push(result);
      return results;
    })();
    // Two bodies wait for the disk with their slots given back, two more hold their slots: four requests, no fifth.
    await expect.poll(() => held.entered()).toBe(4);
    expect(server.stats.requests).toBe(4);
    expect(server.stats.peakInFlight).toBeLessThanOrEqual(2);
    expect(await listFiles(out)).toEqual([]);
    held.letGo();
    const results = await run;
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(8);
    expect(server.stats.requests).toBe(8);
    expect(server.stats.peakInFlight).toBe(2);
    expect(await listFiles(out)).toEqual(urls.map((_, i) => `s${i}.jpg`).sort());
  });
});

describe('a run of one slot', () => {
  /** True once `file` exists, waiting for it up to two seconds. */
  async function appears(file: string): Promise<boolean> {
    for (let i = 0; i < 200; i++) {
      if (await fs.stat(file).catch(() => undefined)) return true;
      await delay(10);
    }
    return false;
  }

  /** A sequential run of `urls` into `out` through the sink the run makes itself; its records and that sink's writer. */
  async function sequential(urls: string[], out: string, extra: Parameters<typeof resolveOptions>[0] = {}) {
    const ctx = await createRunContext(resolveOptions({ out, mode: 'sequential', ...extra }));
    const results: ItemResult[] = [];
    for await (const result of downloadWith(urls, ctx)) results.push(result);
    return { results, writer: (ctx.sink as FolderSink).writer };
  }

  it("creates each part file while its request waits, and keeps every file on libuv's pool with no thread", async () => {
    const out = await tempDir();
    const seen: boolean[] = [];
    const body = generatedImage('jpg', 4000);
    // b's answer waits for its part file; a run that opens it only with the body would never make it.
    const server = await serve({
      handlers: [
        http.get('*/held/:name', async ({ params }) => {
          seen.push(await appears(path.join(out, `${String(params.name)}.part`)));
          return new HttpResponse(body, { headers: { 'content-type': 'image/jpeg' } });
        }),
      ],
    });
    // a.jpg makes the folder: a part file is opened early only in a folder made already.
    const urls = [server.url('/gen/a.jpg'), server.url('/held/b.jpg'), server.url('/held/c.jpg')];
    const { results, writer } = await sequential(urls, out);
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    expect(seen).toEqual([true, true]);
    expect(await listFiles(out)).toEqual(['a.jpg', 'b.jpg', 'c.jpg']);
    expect((await fs.readFile(path.join(out, 'c.jpg'))).equals(body)).toBe(true);
    expect(writer.threads).toBe(0);
    expect(writer.pooled).toBeGreaterThan(0);
  });

  it('removes a part file opened early when its body is not kept', async () => {
    const out = await tempDir();
    const server = await serve({
      handlers: [
        http.get('*/missing.jpg', () => new HttpResponse('gone', { status: 404 })),
        http.get('*/page.jpg', () => new HttpResponse('<html></html>', { headers: { 'content-type': 'text/html' } })),
      ],
    });
    const urls = [server.url('/gen/a.jpg'), server.url('/missing.jpg'), server.url('/page.jpg'), server.url('/gen/d.jpg')];
    const { results } = await sequential(urls, out, { retries: 0 });
    expect(results.map((r) => r.error?.code ?? r.status)).toEqual(['ok', 'HTTP_STATUS', 'NOT_AN_IMAGE', 'ok']);
    expect(await listFiles(out)).toEqual(['a.jpg', 'd.jpg']);
  });

  it('records how to resume a large body before its first byte, in a part file opened early', async () => {
    const out = await tempDir();
    const big = generatedImage('jpg', 3 * 1024 * 1024);
    const half = big.subarray(0, big.length / 2);
    let stalls = true;
    const server = await serve({
      handlers: [
        http.get('*/big.jpg', ({ request }) => {
          const headers = { 'content-type': 'image/jpeg', etag: '"v1"' };
          const from = /^bytes=(\d+)-$/.exec(request.headers.get('range') ?? '');
          if (!stalls && from !== null) {
            const start = Number(from[1]);
            const rest = big.subarray(start);
            const range = `bytes ${start}-${big.length - 1}/${big.length}`;
            return new HttpResponse(rest, { status: 206, headers: { ...headers, 'content-range': range } });
          }
          // Half the body, then nothing until the client goes away.
          const stream = new ReadableStream({ start: (controller) => controller.enqueue(half) });
          return new HttpResponse(stream, { headers: { ...headers, 'content-length': String(big.length) } });
        }),
      ],
    });
    const urls = [server.url('/gen/a.jpg'), server.url('/big.jpg')];
    const stop = new AbortController();
    const part = path.join(out, 'big.jpg.part');
    const running = sequential(urls, out, { stopSignal: stop.signal, graceMs: 0 });
    while (((await fs.stat(part).catch(() => undefined))?.size ?? 0) === 0) await delay(10);
    stop.abort();
    const { results } = await running;
    expect(results.map((r) => r.error?.code ?? r.status)).toEqual(['ok', 'ABORTED']);
    expect(await listFiles(out)).toEqual(['a.jpg', 'big.jpg.part', 'big.jpg.part.json']);
    stalls = false;
    const again = await sequential([server.url('/big.jpg')], out);
    expect(again.results[0]).toMatchObject({ status: 'ok', httpStatus: 206, bytes: big.length });
    expect((await fs.readFile(path.join(out, 'big.jpg'))).equals(big)).toBe(true);
    expect(await listFiles(out)).toEqual(['a.jpg', 'big.jpg']);
  });
});
