/**
 * The summary: percentiles from a histogram that does not grow with the
 * run, and `imgdl report` merging the manifests of shards and reruns.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { linesBackwards } from '../src/record/merge.js';
import { parseRecord, readDoneKeys, type ItemResult } from '../src/record/record.js';
import { percentile, RunReport } from '../src/record/run-report.js';
import { runCli, serve, tempDir } from './helpers.js';

const record = (ms: number): ItemResult => ({
  url: 'http://h.example/x.jpg',
  source: 'api',
  line: 1,
  status: 'ok',
  path: 'x.jpg',
  bytes: 1,
  ms,
  httpStatus: 200,
  attempts: 1,
  contentType: null,
  sniffedType: null,
  skipReason: null,
  error: null,
});

describe('the run summary', () => {
  const spread = Array.from({ length: 10_001 }, (_, i) => Math.round(((i * 7919) % 10_001) * 3.7) / 10);
  it.each([
    ['one file', [42.5]],
    ['a few, out of order', [5, 1.2, 300.4, 17, 17, 0]],
    ['ten thousand spread over 3.7 s', spread],
    ['times of minutes and hours', [250_000.1, 3_600_000, 12.3, 7_200_000.5, 99_999.9]],
  ])('gives the nearest-rank p50, p95 and max of the times (%s)', (_label, times) => {
    const report = new RunReport('concurrent', 8);
    for (const ms of times) report.add(record(ms));
    const sorted = Float64Array.from(times).sort();
    const summary = report.summary();
    const near = (actual: number, expected: number): void => {
      // Exact to the tenth of a millisecond up to about 105 s; within 1/1024 of the time beyond.
      if (expected < 100_000) expect(actual).toBe(Math.round(expected * 10) / 10);
      else expect(Math.abs(actual - expected) / expected).toBeLessThanOrEqual(1 / 1024);
    };
    near(summary.p50Ms, percentile(sorted, 0.5));
    near(summary.p95Ms, percentile(sorted, 0.95));
    // The host's own figures: kept as they are while few, in the same histogram past 64 files.
    near(summary.hosts![0]!.p50Ms, percentile(sorted, 0.5));
    near(summary.hosts![0]!.p95Ms, percentile(sorted, 0.95));
    expect(summary.maxMs).toBe(Math.round(sorted[sorted.length - 1]! * 10) / 10);
  });
});

describe('per-host figures', () => {
  // Hosts are told from the last URL's prefix when a record's URL begins with it: every case here must count
  // as a parse of each URL would, whatever came before it.
  it.each([
    ['one host, many paths', ['http://a.example/1.jpg', 'http://a.example/2.jpg?x=1', 'http://a.example/d/3.jpg']],
    [
      'hosts that share a beginning',
      ['http://a.example/1.jpg', 'http://a.example.evil/2.jpg', 'http://a.example:8080/3.jpg', 'http://a.example/4'],
    ],
    [
      'a default port, upper case, credentials',
      ['http://A.example:80/1.jpg', 'http://a.example/2.jpg', 'http://***@b.example/3.jpg', 'http://b.example/4'],
    ],
    ['https beside http, and a URL that is not one', ['https://a.example/1', 'http://a.example/2', 'not a url', 'https://a.example/3']],
  ])('counts each record under its URL host (%s)', (_label, urls) => {
    const report = new RunReport('concurrent', 8);
    for (const url of urls) report.add({ ...record(1), url });
    const expected = new Map<string, number>();
    for (const url of urls) {
      if (!URL.canParse(url)) continue;
      const { host } = new URL(url);
      expected.set(host, (expected.get(host) ?? 0) + 1);
    }
    const told = new Map(report.summary().hosts!.map((h) => [h.host, h.ok]));
    expect(told).toEqual(expected);
  });
});

describe('reading a manifest from its end', () => {
  const long = `{"url":"${'x'.repeat(600_000)}"}`;
  it.each([
    ['lines ending in a newline', 'a\nbb\nccc\n', ['ccc', 'bb', 'a']],
    ['a last line without one', 'a\nbb', ['bb', 'a']],
    ['blank lines and CRLF', 'a\r\n\r\nb\r\n', ['b\r', '\r', 'a\r']],
    ['lines longer than a block', `a\n${long}\nb\n${long}`, [long, 'b', long, 'a']],
    [
      'many short lines across blocks',
      Array.from({ length: 60_000 }, (_, i) => `line ${i}`).join('\n'),
      Array.from({ length: 60_000 }, (_, i) => `line ${59_999 - i}`),
    ],
    ['UTF-8 split by a block boundary', `${'é'.repeat(200_000)}\n猫`, ['猫', 'é'.repeat(200_000)]],
  ])('gives every line, last first (%s)', async (_label, text, expected) => {
    const dir = await tempDir();
    const file = path.join(dir, 'm.jsonl');
    await fs.writeFile(file, text);
    const lines: string[] = [];
    for await (const line of linesBackwards(file)) lines.push(line);
    expect(lines).toEqual(expected);
  });
});

describe('imgdl report', () => {
  const jpeg = generatedImage('jpg', 1_500);

  /** A server where /gone/* is 404 and, while `failing` holds, /flaky.jpg is a 503. */
  async function host(state: { failing: boolean }) {
    return serve({
      handlers: [
        http.get('*/gone/:name', () => new HttpResponse('no', { status: 404 })),
        http.get('*/flaky.jpg', () =>
          state.failing ? new HttpResponse('busy', { status: 503 }) : new HttpResponse(jpeg, { headers: { 'content-type': 'image/jpeg' } }),
        ),
      ],
    });
  }

  type Summary = Record<string, unknown> & {
    ok: number;
    failed: number;
    skipped: number;
    total: number;
    bytes: number;
    errors: Record<string, { count: number }>;
  };

  it('merges the manifests of the shards of a list into the summary of one run over it', async () => {
    const server = await host({ failing: false });
    const out = await tempDir();
    const urls = [
      ...Array.from({ length: 20 }, (_, i) => server.url(`/gen/${i}.jpg?bytes=${1_000 + i}`)),
      server.url('/gone/a.jpg'),
      server.url('/gone/b.jpg'),
      // Listed twice: the report counts URLs, each once.
      server.url('/gen/3.jpg?bytes=1003'),
    ];
    const list = urls.join('\n') + '\n';
    const whole = await runCli(['-o', path.join(out, 'whole'), '--json', '--retries', '0', '--manifest', path.join(out, 'whole.jsonl')], {
      stdin: list,
    });
    const shards = await Promise.all(
      [0, 1, 2].map((k) =>
        runCli(['-o', path.join(out, 'shards'), '--shard', `${k}/3`, '--manifest', path.join(out, `m${k}.jsonl`), '--retries', '0', '-q'], {
          stdin: list,
        }),
      ),
    );
    for (const run of shards) expect([0, 1]).toContain(run.code);
    const report = await runCli(['report', ...[0, 1, 2].map((k) => path.join(out, `m${k}.jsonl`)), '--json']);
    expect(report.code).toBe(1);
    const merged = JSON.parse(report.stdout) as Summary;
    const single = JSON.parse((await runCli(['report', path.join(out, 'whole.jsonl'), '--json'])).stdout) as Summary;
    const run = JSON.parse(whole.stdout) as Summary;
    for (const key of ['total', 'ok', 'failed', 'skipped', 'bytes'] as const) expect(merged[key], key).toBe(single[key]);
    expect(merged).toMatchObject({ total: 22, ok: 20, failed: 2, skipped: 0, bytes: run.bytes, records: 23, manifests: 3, unreadable: 0 });
    expect(merged.errors).toEqual({ HTTP_STATUS: { count: 2, example: expect.stringContaining('/gone/') as unknown } });
    // The shape of a run's --json, with what manifests cannot tell as null.
    expect(Object.keys(merged).slice(0, 14)).toEqual(Object.keys(run).slice(0, 14));
    expect(merged).toMatchObject({ mode: 'report', concurrency: null, wallMs: null, filesPerSec: null, bytesPerSec: null });
    expect(typeof merged.p50Ms).toBe('number');
  });

  it('counts each URL by its last record, over reruns appended to one manifest', async () => {
    const state = { failing: true };
    const server = await host(state);
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    const list = [server.url('/flaky.jpg'), server.url('/gen/1.jpg?bytes=1200')].join('\n');
    const first = await runCli(['-o', out, '--manifest', manifest, '--retries', '0', '-q'], { stdin: list });
    expect(first.code).toBe(1);
    const before = await runCli(['report', manifest, '--json']);
    expect(JSON.parse(before.stdout)).toMatchObject({ total: 2, ok: 1, failed: 1, errors: { HTTP_STATUS: { count: 1 } } });
    expect(before.code).toBe(1);

    state.failing = false;
    const second = await runCli(['-o', out, '--manifest', manifest, '-q'], { stdin: list });
    expect(second.code).toBe(0);
    // A run killed mid-line leaves half a record at the end.
    await fs.appendFile(manifest, '{"url":"http://h.exa');
    const after = await runCli(['report', manifest, '--json']);
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({ total: 2, ok: 2, failed: 0, errors: {}, records: 3, unreadable: 1 });
    const words = await runCli(['report', manifest]);
    expect(words.stderr).toContain('2 ok, 0 failed, 0 skipped of 2 URLs');
    expect(words.stderr).toContain('1 line was not a record');
  });

  it.each([
    [[], 'Not enough'],
    [['/nonexistent/run.jsonl'], 'ENOENT'],
    [['x.jsonl', '--bogus'], 'bogus'],
  ])('exits 2 for %j, saying why', async (args, why) => {
    const run = await runCli(['report', ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(why);
  });
});

describe('reading a manifest line back', () => {
  it.each([
    ['a record', '{"url":"http://h.example/a.jpg","status":"ok","bytes":3}', { url: 'http://h.example/a.jpg', status: 'ok', bytes: 3 }],
    ['a blank line', '', undefined],
    ['a line cut short by a crash', '{"url":"http://h.example/a.jpg","sta', undefined],
    ['JSON null', 'null', undefined],
    ['a number', '42', undefined],
    ['a record without a URL', '{"status":"ok"}', undefined],
    ['an unknown status', '{"url":"http://h.example/a.jpg","status":"maybe"}', undefined],
  ])('%s', (_name, line, expected) => {
    expect(parseRecord(line)).toEqual(expected);
  });

  it('passes over a line holding JSON null when a rerun reads what is done', async () => {
    const manifest = path.join(await tempDir(), 'manifest.jsonl');
    await fs.writeFile(manifest, 'null\n{"url":"http://h.example/a.jpg","status":"ok"}\n');
    expect((await readDoneKeys(manifest))?.size).toBe(1);
  });
});
