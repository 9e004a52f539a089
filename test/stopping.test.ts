/**
 * The command under interruption and hostile input: signals, a closed
 * stdout, a full disk, and lists written to hurt. Each test runs the built
 * CLI as a child process, as a user would.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { http, HttpResponse, type RequestHandler } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { listFiles, runCli, serve, tempDir } from './helpers.js';

// Larger than what is held in memory until complete, so that part of it reaches its part file.
const jpeg = generatedImage('jpg', 3 * 1024 * 1024);
const HALF = jpeg.length / 2;

async function until(check: () => Promise<boolean> | boolean): Promise<void> {
  while (!(await check())) await delay(10);
}

/** A body that sends its first half, then waits for `release` before the rest. */
function held(release: Promise<void>): Response {
  const stream = new ReadableStream({
    async start(controller) {
      controller.enqueue(jpeg.subarray(0, HALF));
      await release;
      controller.enqueue(jpeg.subarray(HALF));
      controller.close();
    },
  });
  return new HttpResponse(stream, { headers: { 'content-type': 'image/jpeg', 'content-length': String(jpeg.length), etag: '"e1"' } });
}

/** A list file of `/slow.jpg` followed by `more` quick items. */
async function listOf(out: string, server: { url(p: string): string }, more = 5): Promise<string> {
  const file = path.join(out, 'urls.txt');
  const urls = [server.url('/slow.jpg'), ...Array.from({ length: more }, (_, i) => server.url(`/gen/${i}.jpg`))];
  await fs.writeFile(file, urls.join('\n'));
  return file;
}

describe('stopping', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    'on %s starts nothing new, stops what is in flight after the grace period, keeps its part file, and exits %i',
    async (signal, code) => {
      const never = new Promise<void>(() => undefined);
      const server = await serve({ handlers: [http.get('*/slow.jpg', () => held(never))] });
      const dir = await tempDir();
      const out = path.join(dir, 'img');
      const manifest = path.join(dir, 'run.jsonl');
      const list = await listOf(dir, server);
      const run = await runCli(['-i', list, '-o', out, '-c', '1', '--grace', '100', '--manifest', manifest], {
        onSpawn: (child) =>
          void until(async () => ((await fs.stat(path.join(out, 'slow.jpg.part')).catch(() => undefined))?.size ?? 0) > 0).then(() =>
            child.kill(signal),
          ),
      });
      expect(run.code).toBe(code);
      expect(server.stats.requests).toBe(1);
      expect(run.stderr).toContain('0 ok, 1 failed, 0 skipped of 1');
      expect(await listFiles(out)).toEqual(['slow.jpg.part', 'slow.jpg.part.json']);
      const records = (await fs.readFile(manifest, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { error: { code: string } });
      expect(records.map((r) => r.error.code)).toEqual(['ABORTED']);
    },
  );

  it('lets a download in flight finish within the grace period', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const server = await serve({ handlers: [http.get('*/slow.jpg', () => held(released))] });
    const dir = await tempDir();
    const out = path.join(dir, 'img');
    const list = await listOf(dir, server);
    const run = await runCli(['-i', list, '-o', out, '-c', '1', '--grace', '60000', '--json'], {
      onSpawn: (child, output) => {
        void until(() => server.stats.requests === 1)
          .then(() => child.kill('SIGINT'))
          .then(() => until(() => output.stderr.includes('no new downloads')))
          .then(release);
      },
    });
    expect(run.code).toBe(130);
    expect(JSON.parse(run.stdout)).toMatchObject({ total: 1, ok: 1 });
    expect(await listFiles(out)).toEqual(['slow.jpg']);
    expect((await fs.readFile(path.join(out, 'slow.jpg'))).equals(jpeg)).toBe(true);
    expect(server.stats.requests).toBe(1);
  });

  it('exits at once on a second Ctrl-C, with no incomplete file at a final name', async () => {
    const server = await serve({ handlers: [http.get('*/slow.jpg', () => held(new Promise(() => undefined)))] });
    const dir = await tempDir();
    const out = path.join(dir, 'img');
    const list = await listOf(dir, server, 0);
    // A grace period longer than the test's timeout: only the second signal can end this run in time.
    const run = await runCli(['-i', list, '-o', out, '--grace', '600000'], {
      onSpawn: (child, output) => {
        void until(() => server.stats.requests === 1)
          .then(() => child.kill('SIGINT'))
          .then(() => until(() => output.stderr.includes('no new downloads')))
          .then(() => child.kill('SIGINT'));
      },
    });
    expect(run.code).toBe(130);
    expect(run.stderr).toContain('SIGINT again');
    // Only a part file and, when it has bytes, its resume record: nothing at a final name.
    const left = await listFiles(out);
    expect(left.filter((f) => !/\.part(\.json)?$/.test(f))).toEqual([]);
    for (const record of left.filter((f) => f.endsWith('.part.json'))) expect(left).toContain(record.slice(0, -'.json'.length));
  });

  it('stops reading a list from stdin that is still open', async () => {
    const server = await serve();
    const out = await tempDir();
    const run = await runCli(['-o', out, '--json'], {
      stdin: `${server.url('/gen/a.jpg')}\n`,
      keepStdinOpen: true,
      onSpawn: (child) => void until(async () => (await listFiles(out)).includes('a.jpg')).then(() => child.kill('SIGTERM')),
    });
    expect(run.code).toBe(143);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: 1 });
  });
});

describe('a crash (kill -9) mid-body', () => {
  const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

  /** /big.jpg answered by whichever handler the test puts in place, so both runs ask the same URL. */
  async function swappable() {
    const handlers: RequestHandler[] = [];
    const server = await serve({ handlers });
    return { server, use: (handler: RequestHandler) => handlers.splice(0, handlers.length, handler) };
  }

  /**
   * Runs the built CLI on /big.jpg, which sends half of `jpeg` and stalls, and kills it with SIGKILL once part of
   * it is on disk; `first` is what the part file then holds (what was still in memory is lost with the process).
   */
  async function crashed(validators: Record<string, string>) {
    const { server, use } = await swappable();
    use(
      http.get('*/big.jpg', () => {
        const stream = new ReadableStream({ start: (controller) => controller.enqueue(jpeg.subarray(0, HALF)) });
        return new HttpResponse(stream, {
          headers: { 'content-type': 'image/jpeg', 'content-length': String(jpeg.length), ...validators },
        });
      }),
    );
    const out = await tempDir();
    const part = path.join(out, 'big.jpg.part');
    const run = await runCli([server.url('/big.jpg'), '-o', out], {
      onSpawn: (child) =>
        void until(async () => ((await fs.stat(part).catch(() => undefined))?.size ?? 0) > 0).then(() => child.kill('SIGKILL')),
    });
    expect(run.signal).toBe('SIGKILL');
    const first = (await fs.stat(part)).size;
    expect(first).toBeGreaterThan(0);
    return { server, use, out, part, first };
  }

  /** A /big.jpg that serves `body` with `etag`, honouring Range and If-Range, and records what each request asked. */
  function serving(body: Buffer, etag?: string) {
    const asked: Array<{ range: string | null; ifRange: string | null }> = [];
    const handler = http.get('*/big.jpg', ({ request }) => {
      const range = request.headers.get('range');
      const ifRange = request.headers.get('if-range');
      asked.push({ range, ifRange });
      const from = /^bytes=(\d+)-$/.exec(range ?? '');
      const headers: Record<string, string> = { 'content-type': 'image/jpeg', ...(etag === undefined ? {} : { etag }) };
      if (!from || etag === undefined || ifRange !== etag)
        return new HttpResponse(body, { headers: { ...headers, 'content-length': String(body.length) } });
      const start = Number(from[1]);
      return new HttpResponse(body.subarray(start), {
        status: 206,
        headers: {
          ...headers,
          'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
          'content-length': String(body.length - start),
        },
      });
    });
    return { handler, asked };
  }

  it('leaves a resume record, and the rerun continues the part file with Range and If-Range', async () => {
    const { server, use, out, part, first } = await crashed({ etag: '"v1"' });
    expect(JSON.parse(await fs.readFile(`${part}.json`, 'utf8'))).toMatchObject({ etag: '"v1"', total: jpeg.length });
    const { handler, asked } = serving(jpeg, '"v1"');
    use(handler);
    const rerun = await runCli([server.url('/big.jpg'), '-o', out, '-v']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(asked).toEqual([{ range: `bytes=${first}-`, ifRange: '"v1"' }]);
    expect(rerun.stderr).toContain(`resuming big.jpg.part from byte ${first}`);
    expect(sha256(await fs.readFile(path.join(out, 'big.jpg')))).toBe(sha256(jpeg));
    expect(await listFiles(out)).toEqual(['big.jpg']);
  });

  it('starts over with the new bytes when the file changed on the server in between', async () => {
    const { server, use, out, first } = await crashed({ etag: '"v1"' });
    const changed = generatedImage('jpg', 150_000);
    const { handler, asked } = serving(changed, '"v2"');
    use(handler);
    const rerun = await runCli([server.url('/big.jpg'), '-o', out]);
    expect(rerun.code, rerun.stderr).toBe(0);
    // If-Range with the old ETag: the server answers 200 with the whole new file.
    expect(asked).toEqual([{ range: `bytes=${first}-`, ifRange: '"v1"' }]);
    expect(sha256(await fs.readFile(path.join(out, 'big.jpg')))).toBe(sha256(changed));
    expect(await listFiles(out)).toEqual(['big.jpg']);
  });

  it('starts over, and removes the part file, when the server gave no validator', async () => {
    const { server, use, out, part } = await crashed({});
    expect(await listFiles(out)).toEqual(['big.jpg.part']);
    const { handler, asked } = serving(jpeg);
    use(handler);
    const rerun = await runCli([server.url('/big.jpg'), '-o', out, '-v']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(asked).toEqual([{ range: null, ifRange: null }]);
    expect(rerun.stderr).toContain(`starting ${path.basename(part)} over: there is no resume record beside it`);
    expect(sha256(await fs.readFile(path.join(out, 'big.jpg')))).toBe(sha256(jpeg));
    expect(await listFiles(out)).toEqual(['big.jpg']);
  });
});

describe('closed outputs and full disks', () => {
  it('ends cleanly with a message when stdout is closed by its reader (EPIPE)', async () => {
    const server = await serve({ latencyMs: 100 });
    const out = await tempDir();
    const run = await runCli([server.url('/gen/a.jpg'), '-o', out, '--json'], { onSpawn: (child) => child.stdout.destroy() });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('EPIPE');
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await listFiles(out)).toEqual(['a.jpg']);
  });

  it('stops with a clear message when the manifest cannot be written (ENOSPC)', async () => {
    const server = await serve();
    const out = await tempDir();
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    const urls = ['a', 'b', 'c', 'd', 'e'].map((name) => server.url(`/gen/${name}.jpg`));
    const run = await runCli([...urls, '-o', out, '-c', '1', '--manifest', '/dev/full']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/imgdl: disk full: ENOSPC while writing manifest \/dev\/full/);
    // The first record fails to write: only the request started while its body went to disk came after it.
    expect(server.stats.requests).toBeLessThanOrEqual(2);
  });
});

describe('hostile input', () => {
  it('fails each hostile line with its line number, writes nothing outside the output folder, and saves the rest', async () => {
    const server = await serve({
      handlers: [
        http.get(
          '*/cd/:name',
          ({ params }) =>
            new HttpResponse(generatedImage('jpg', 500), {
              headers: { 'content-disposition': `attachment; filename="${decodeURIComponent(String(params.name))}"` },
            }),
        ),
      ],
    });
    const root = await tempDir();
    const out = path.join(root, 'out');
    const ok = (name: string) => server.url(`/gen/${name}.jpg`);
    const lines = [
      `${ok('a')} ../up.jpg`, // 1
      `${ok('b')} /etc/abs.jpg`, // 2
      `${ok('c')} ..\\\\win.jpg`, // 3
      `${ok('d')} CON`, // 4 reserved: made safe, saved
      `${ok('e')} ${'x'.repeat(300)}.jpg`, // 5 long: cut, saved
      'not a url', // 6
      'file:///etc/passwd', // 7
      'ftp://host/a.jpg', // 8
      'data:image/png;base64,AAAA', // 9
      'javascript:alert(1)', // 10
      server.url('/cd/..%2F..%2Fevil.jpg'), // 11 traversal in Content-Disposition: basename kept
      server.url('/cd/nul.jpg'), // 12 reserved name in Content-Disposition
      `http://${'a'.repeat(1024 * 1024)}.example/x.jpg`, // 13 a 1 MB line
      ok('last'), // 14
    ];
    const list = path.join(root, 'urls.txt');
    await fs.writeFile(list, lines.join('\n'));
    const manifest = path.join(root, 'run.jsonl');
    const run = await runCli(['-i', list, '-o', out, '--manifest', manifest, '-c', '4']);
    expect(run.code).toBe(1);
    const records = (await fs.readFile(manifest, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; status: string; path: string | null; error: { code: string } | null });
    const byLine = Object.fromEntries(records.map((r) => [r.line, r.error?.code ?? r.path]));
    expect(byLine).toEqual({
      1: 'UNSAFE_NAME',
      2: 'UNSAFE_NAME',
      3: 'UNSAFE_NAME',
      4: '_CON', // a NAME from the list is kept as given, made safe
      5: expect.stringMatching(/^x{190,}\.jpg$/),
      6: 'INVALID_URL',
      7: 'UNSUPPORTED_SCHEME',
      8: 'UNSUPPORTED_SCHEME',
      9: 'UNSUPPORTED_SCHEME',
      10: 'UNSUPPORTED_SCHEME',
      11: 'evil.jpg',
      12: '_nul.jpg',
      13: 'INVALID_URL',
      14: 'last.jpg',
    });
    for (const n of [1, 6, 7, 13]) expect(run.stderr).toContain(`${list}:${n}`);
    expect((await listFiles(root)).every((f) => f.startsWith('out/') || f === 'urls.txt' || f === 'run.jsonl')).toBe(true);
  });

  it('fails binary garbage and invalid UTF-8 on stdin line by line, and goes on', async () => {
    const server = await serve();
    const out = await tempDir();
    const garbage = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x9c, 0x80, 0x0a]);
    const stdin = Buffer.concat([garbage, Buffer.from(`http://h/\xff\n${server.url('/gen/ok.jpg')}\n`, 'latin1')]);
    const run = await runCli(['-o', out, '--json'], { stdin });
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: 1, failed: 2, errors: { INVALID_URL: { count: 2 } } });
    expect(await listFiles(out)).toEqual(['ok.jpg']);
  });

  it('never logs or records the credentials of a URL', async () => {
    const server = await serve();
    const dir = await tempDir();
    const manifest = path.join(dir, 'run.jsonl');
    const secretUrl = server.url('/gen/a.jpg').replace('http://', 'http://alice:s3cr3t@');
    const failing = server.url('/nope.jpg').replace('http://', 'http://bob:hunter2@');
    const run = await runCli([secretUrl, failing, '-o', path.join(dir, 'img'), '--manifest', manifest, '-vv', '--retries', '0']);
    expect(run.code).toBe(1);
    const written = run.stderr + run.stdout + (await fs.readFile(manifest, 'utf8'));
    expect(written).toContain('***@');
    expect(written).not.toMatch(/s3cr3t|hunter2|alice|bob/);
  });
});

describe('flags', () => {
  it.each([
    [['--max-size', '1k'], 'TOO_LARGE'],
    [['--max-size', 'huge'], 'maxSize'],
    [['--retries', '-1'], 'retries'],
  ])('with %j reports %s', async (flags, expected) => {
    const server = await serve();
    const out = await tempDir();
    const run = await runCli([server.url('/gen/a.jpg?bytes=5000'), '-o', out, ...flags]);
    expect(run.stderr).toContain(expected);
  });

  it('keeps an HTML page with --any-type and refuses it without', async () => {
    const server = await serve({ handlers: [http.get('*/page.jpg', () => HttpResponse.html('<p>hello</p>'))] });
    const out = await tempDir();
    const refused = await runCli([server.url('/page.jpg'), '-o', out]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('NOT_AN_IMAGE');
    const kept = await runCli([server.url('/page.jpg'), '-o', out, '--any-type']);
    expect(kept.code).toBe(0);
    expect(await listFiles(out)).toEqual(['page.jpg']);
  });
});
