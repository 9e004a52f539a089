import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Progress } from '../src/run/progress.js';
import { ProgressLine } from '../src/cli/progress-line.js';
import { collect, ROOT, runCli, serve, tempDir } from './helpers.js';
import { runInPty } from './pty.js';

const CLEAR = '\r\x1b[2K';

/** A stream that says it is a terminal and keeps what was written. */
function fakeTerminal(columns = 200) {
  const writes: string[] = [];
  return {
    writes,
    stream: {
      columns,
      isTTY: true,
      write: (chunk: string | Buffer) => (writes.push(String(chunk)), true),
    } as unknown as NodeJS.WritableStream,
  };
}

function snapshot(over: Partial<Progress> = {}): Progress {
  return { read: 10, listComplete: true, done: 4, ok: 3, failed: 1, skipped: 0, inFlight: 2, bytes: 4096, ...over };
}

describe('the progress line', () => {
  let clock = 0;
  beforeEach(() => {
    clock = 0;
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());
  const now = () => clock;
  const advance = (ms: number) => {
    clock += ms;
    vi.advanceTimersByTime(ms);
  };

  it('redraws at most once per interval however many updates arrive, and shows the latest', () => {
    const { stream, writes } = fakeTerminal();
    const line = new ProgressLine({ stream, now });
    for (let i = 1; i <= 1000; i++) line.update(snapshot({ done: i, read: 1000 }));
    expect(line.draws).toBe(1);
    advance(99);
    expect(line.draws).toBe(1);
    advance(1);
    expect(line.draws).toBe(2);
    expect(writes.at(-1)).toBe(`${CLEAR}1000/1000 done · 1 failed · 0 skipped · 4.0 KiB · 0 B/s · 2 in flight`);
    for (let s = 0; s < 10; s++) {
      for (let i = 0; i < 50; i++) line.update(snapshot());
      advance(100);
    }
    // Ten seconds of the limit would be 100 draws; one second of updates gives at most 10 more.
    expect(line.draws).toBeLessThanOrEqual(12);
  });

  it.each([
    ['total unknown', snapshot({ listComplete: false, read: 7, done: 3 }), '3 done, 7 read · 1 failed · 0 skipped · 4.0 KiB'],
    ['total known, with ETA', snapshot({ read: 10, done: 5 }), '5/10 done · 1 failed'],
  ])('shows %s', (_name, progress, expected) => {
    const line = new ProgressLine({ stream: fakeTerminal().stream, now });
    clock = 10_000;
    expect(line.render(progress)).toContain(expected);
    if (progress.listComplete) expect(line.render(progress)).toContain('ETA 10.00 s');
  });

  it('measures the rate and never grows wider than the terminal', () => {
    const wide = new ProgressLine({ stream: fakeTerminal().stream, now });
    wide.update(snapshot({ bytes: 0 }));
    advance(1000);
    expect(wide.render(snapshot({ bytes: 2048 }), clock)).toContain('2.0 KiB/s');
    const narrow = new ProgressLine({ stream: fakeTerminal(30).stream, now });
    expect(narrow.render(snapshot()).length).toBeLessThan(30);
  });

  it('paints only when colour is on', () => {
    const stream = fakeTerminal().stream;
    expect(new ProgressLine({ stream, now }).render(snapshot())).not.toContain('\x1b[');
    expect(new ProgressLine({ stream, now, color: true }).render(snapshot())).toContain('\x1b[31m1 failed');
  });

  it('clears itself before a log line, and comes back after it', () => {
    const { stream, writes } = fakeTerminal();
    const line = new ProgressLine({ stream, now });
    line.update(snapshot());
    line.logStream().write('warn  something broke\n');
    expect(writes.slice(-2)).toEqual([CLEAR, 'warn  something broke\n']);
    advance(100);
    expect(writes.at(-1)).toMatch(/^\r\x1b\[2K4\/10 done/);
    line.stop();
    expect(writes.at(-1)).toBe(CLEAR);
    line.update(snapshot());
    advance(1000);
    expect(writes.at(-1)).toBe(CLEAR);
  });
});

describe('progress events of download()', () => {
  it('reports reading, requests in flight, bytes and the end of the list', async () => {
    const server = await serve({ latencyMs: 20 });
    const urls = Array.from({ length: 12 }, (_, i) => server.url(`/gen/p${i}.jpg?bytes=3000`));
    const seen: Progress[] = [];
    const records = await collect([...urls, urls[0]!, 'not a url'], {
      out: await tempDir(),
      concurrency: 4,
      onProgress: (p) => seen.push(p),
    });
    expect(records).toHaveLength(14);
    expect(seen.at(-1)).toEqual({ read: 14, listComplete: true, done: 14, ok: 12, failed: 1, skipped: 1, inFlight: 0, bytes: 36_000 });
    expect(Math.max(...seen.map((p) => p.inFlight))).toBe(4);
    expect(seen.some((p) => !p.listComplete && p.done > 0)).toBe(true);
    // Snapshots are copies: a listener may keep them.
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe('the command on a terminal', () => {
  const bin = path.join(ROOT, 'bin/imgdl.js');

  it('draws the progress line on a TTY, keeps log lines whole, and leaves the summary', async () => {
    const server = await serve({ handlers: [http.get('*/bad.jpg', () => new HttpResponse(null, { status: 500 }))], latencyMs: 5 });
    const out = await tempDir();
    const urls = [server.url('/gen/a.jpg'), server.url('/bad.jpg'), server.url('/gen/b.jpg')];
    const { code, screen } = await runInPty([process.execPath, bin, ...urls, '-o', out, '-c', '1'], { NO_COLOR: '1' });
    expect(code).toBe(1);
    expect(screen).toMatch(/\r\x1b\[2K\d+\/?\d* done/);
    // A log line starts on a cleared line and is never glued to the progress text.
    expect(screen).toContain(`${CLEAR}warn `);
    for (const segment of screen.split(CLEAR)) expect(segment.includes('in flight') && segment.includes('warn')).toBe(false);
    expect(screen).toContain('2 ok, 1 failed, 0 skipped of 3');
    expect(screen).not.toMatch(/\x1b\[3\dm/);
  });

  it.each([['--no-progress'], ['--quiet']])('draws nothing with %s', async (flag) => {
    const server = await serve();
    const { code, screen } = await runInPty([process.execPath, bin, server.url('/gen/a.jpg'), '-o', await tempDir(), flag]);
    expect(code).toBe(0);
    expect(screen).not.toContain(CLEAR);
  });

  it('uses colour on a terminal unless --no-color', async () => {
    const server = await serve();
    const args = [process.execPath, bin, server.url('/gen/a.jpg'), '-o', await tempDir(), '--on-exists', 'overwrite'];
    const env = { NO_COLOR: undefined };
    expect((await runInPty(args, env)).screen).toContain('\x1b[32m1 ok');
    expect((await runInPty([...args, '--no-color'], env)).screen).not.toContain('\x1b[3');
  });

  it('draws nothing when stderr is not a terminal', async () => {
    const server = await serve();
    const run = await runCli([server.url('/gen/a.jpg'), '-o', await tempDir()]);
    expect(run.code).toBe(0);
    expect(run.stderr).not.toContain('\x1b[');
  });
});

describe('stopping download() with an AbortSignal', () => {
  it('starts nothing new and ends the requests in flight as ABORTED', async () => {
    // Responses would take far longer than the test timeout: only the abort can end this run.
    const server = await serve({ latencyMs: 120_000 });
    const controller = new AbortController();
    const urls = Array.from({ length: 20 }, (_, i) => server.url(`/gen/s${i}.jpg`));
    const records = await collect(urls, {
      out: await tempDir(),
      concurrency: 3,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.inFlight === 3) controller.abort();
      },
    });
    expect(records.map((r) => r.error?.code)).toEqual(['ABORTED', 'ABORTED', 'ABORTED']);
    expect(server.stats.requests).toBeLessThanOrEqual(3);
  });
});
