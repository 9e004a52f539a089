/**
 * Long lists: each URL downloaded once however it is listed, the sharded
 * layout, and `--shard K/N` slices that together make the whole list.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { planDownload, type PlannedItem } from '../src/run/dry-run.js';
import { generatedImage } from '../src/dev/fixture-server.js';
import { shardedPath } from '../src/names/naming.js';
import { resolveOptions, type Options } from '../src/options.js';
import { createRunContext } from '../src/run/download.js';
import type { SourceEntry } from '../src/input/source.js';
import { planItem } from '../src/item/plan.js';
import { collect, listFiles, runCli, serve, tempDir } from './helpers.js';

const jpeg = generatedImage('jpg', 2_000);
const png = generatedImage('png', 2_000);
const image =
  (body: Buffer, headers: Record<string, string> = {}) =>
  () =>
    new HttpResponse(body, { headers: { 'content-type': 'image/jpeg', ...headers } });

async function plan(source: SourceEntry[], options: Options): Promise<PlannedItem[]> {
  const planned: PlannedItem[] = [];
  for await (const item of planDownload(source, options)) planned.push(item);
  return planned;
}

const A = 'http://h.example/a/x.jpg';
const B = 'http://h.example/b/x.jpg';

describe('a URL listed more than once', () => {
  it.each<[string, SourceEntry[], Array<[PlannedItem['status'], string | null, string]>]>([
    [
      'twice',
      [A, A],
      [
        ['download', 'x.jpg', ''],
        ['skipped', null, 'duplicate'],
      ],
    ],
    [
      'with a NAME, then without',
      [{ url: A, name: 'mine.jpg' }, A],
      [
        ['download', 'mine.jpg', ''],
        ['skipped', null, 'duplicate'],
      ],
    ],
    [
      'without a NAME, then with one',
      [A, { url: A, name: 'mine.jpg' }],
      [
        ['download', 'x.jpg', ''],
        ['skipped', null, 'duplicate'],
      ],
    ],
    [
      'after another URL took its name',
      [A, B, B, A],
      [
        ['download', 'x.jpg', ''],
        ['download', expect.stringMatching(/^x-[0-9a-f]{8}\.jpg$/) as unknown as string, ''],
        ['skipped', null, 'duplicate'],
        ['skipped', null, 'duplicate'],
      ],
    ],
    [
      'written another way',
      ['HTTP://H.EXAMPLE/a/x.jpg', A],
      [
        ['download', 'x.jpg', ''],
        ['skipped', null, 'duplicate'],
      ],
    ],
    [
      'after its NAME was refused',
      [{ url: A, name: '../x.jpg' }, A],
      [
        ['failed', null, expect.stringContaining('UNSAFE_NAME') as unknown as string],
        ['skipped', null, 'duplicate'],
      ],
    ],
  ])('%s is planned once', async (_label, source, expected) => {
    const out = await tempDir();
    const planned = await plan(source, { out });
    expect(planned.map((p) => [p.status, p.path, p.reason])).toEqual(expected);
  });

  it('is planned once when an earlier manifest records it as done', async () => {
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    await fs.writeFile(manifest, JSON.stringify({ url: A, status: 'ok', path: 'x.jpg' }) + '\n');
    const planned = await plan([A, A, B], { out, manifest });
    expect(planned.map((p) => [p.status, p.reason])).toEqual([
      ['skipped', 'manifest'],
      ['skipped', 'duplicate'],
      ['download', ''],
    ]);
  });

  it('keeps names that differ only in case apart, as a folding file system would', async () => {
    const out = await tempDir();
    const planned = await plan(['http://h.example/X.jpg', 'http://h.example/x.jpg'], { out });
    expect(planned[0]?.path).toBe('X.jpg');
    expect(planned[1]?.path).toMatch(/^x-[0-9a-f]{8}\.jpg$/);
  });
});

describe("a registry kept elsewhere (the cluster's)", () => {
  it('is asked for every planned name, and a URL listed twice is still planned once', async () => {
    const asked: string[] = [];
    const names = { claim: (wanted: string, url: string) => `theirs/${asked.push(`${wanted} ${url}`)}-${wanted}` };
    const ctx = await createRunContext(resolveOptions({ out: await tempDir() }), undefined, { names });
    await ctx.agent.destroy();
    const planned = [A, B, A].map((url, i) => planItem({ url, source: 'api', line: i + 1 }, ctx));
    expect(planned.map((p) => (p && 'task' in p ? p.task.relPath : p?.result.skipReason))).toEqual([
      'theirs/1-x.jpg',
      'theirs/2-x.jpg',
      'duplicate',
    ]);
    expect(asked).toEqual([`x.jpg ${A}`, `x.jpg ${B}`]);
  });
});

describe('the dry run', () => {
  it('finds existing files from one listing of their folder, and checks a near match', async () => {
    const out = await tempDir();
    await fs.mkdir(path.join(out, 'sub'));
    await fs.writeFile(path.join(out, 'sub', 'here.jpg'), 'x');
    await fs.writeFile(path.join(out, 'Upper.jpg'), 'x');
    const planned = await plan(
      [
        { url: 'http://h.example/1.jpg', name: 'sub/here.jpg' },
        { url: 'http://h.example/2.jpg', name: 'sub/absent.jpg' },
        // The same name but for its case: the listing's folded match is confirmed on the file system itself.
        'http://h.example/upper.jpg',
      ],
      { out },
    );
    const caseSensitive = await fs.access(path.join(out, 'upper.jpg')).then(
      () => false,
      () => true,
    );
    expect(planned.map((p) => p.reason)).toEqual(['exists', '', caseSensitive ? '' : 'exists']);
  });
});

describe('the sharded layout', () => {
  it.each([
    [0, 'http://h.example/a.JPG', '00000/000000000.jpg'],
    [123, 'http://h.example/a.png?x=1', '00000/000000123.png'],
    [9_999, 'http://h.example/photo', '00000/000009999'],
    [10_000, 'http://h.example/a.jpeg', '00001/000010000.jpeg'],
    [123_456_789, 'http://h.example/a.webp', '12345/123456789.webp'],
    [1_234_567_890, 'http://h.example/a.tar.gz', '123456/1234567890.gz'],
    [7, 'http://h.example/a.toolongext', '00000/000000007'],
  ])('puts position %i (%s) at %s', (position, url, expected) => {
    expect(shardedPath(position, new URL(url))).toBe(expected);
  });

  it('names an item that knows its place in a longer list (a batch of a queue) by that place', async () => {
    const out = await tempDir();
    const slice: SourceEntry[] = [
      { url: 'http://h.example/a.jpg', source: 'urls.txt', line: 12_346, index: 12_345 },
      { url: 'http://h.example/b.png', source: 'urls.txt', line: 12_347, index: 12_346 },
    ];
    expect((await plan(slice, { out, layout: 'sharded' })).map((p) => p.path)).toEqual(['00001/000012345.jpg', '00001/000012346.png']);
  });

  /** A server with an image that is a PNG at a .jpg URL, one whose server offers another name, and plain ones. */
  async function imageHost() {
    return serve({
      handlers: [
        http.get('*/img/lies.jpg', image(png)),
        http.get('*/img/offered.jpg', image(jpeg, { 'content-disposition': 'attachment; filename="other.gif"' })),
        http.get('*/img/noext', image(png)),
      ],
    });
  }

  it.each(['concurrent', 'workers'] as const)(
    'names files by list position with the extension their bytes call for, and maps each URL to its file (%s)',
    async (mode) => {
      const server = await imageHost();
      const out = await tempDir();
      const manifest = path.join(out, 'run.jsonl');
      const list = [
        server.url('/gen/a.jpg?bytes=3000'),
        server.url('/img/lies.jpg'),
        'not-a-url',
        server.url('/img/offered.jpg'),
        `${server.url('/img/noext')}  given/name.png`,
        server.url('/gen/a.jpg?bytes=3000'),
      ];
      const run = await runCli(['-o', out, '--layout', 'sharded', '--manifest', manifest, '-m', mode, '-t', '2'], {
        stdin: list.join('\n') + '\n',
      });
      expect(run.code).toBe(1);
      expect(await listFiles(out)).toEqual([
        '00000/000000000.jpg',
        '00000/000000001.png',
        '00000/000000003.jpg',
        '00000/000000004.png',
        'run.jsonl',
      ]);
      const records = (await fs.readFile(manifest, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { url: string; status: string; path: string | null });
      const byUrl = new Map(records.filter((r) => r.status === 'ok').map((r) => [r.url, r.path]));
      expect(byUrl).toEqual(
        new Map([
          [server.url('/gen/a.jpg?bytes=3000'), '00000/000000000.jpg'],
          [server.url('/img/lies.jpg'), '00000/000000001.png'],
          [server.url('/img/offered.jpg'), '00000/000000003.jpg'],
          [server.url('/img/noext'), '00000/000000004.png'],
        ]),
      );
    },
  );

  it('skips on rerun what is saved, whatever extension the bytes gave it, without a request', async () => {
    const server = await imageHost();
    const out = await tempDir();
    const list = [server.url('/img/lies.jpg'), server.url('/img/noext'), server.url('/gen/b.jpg?bytes=2500')];
    const first = await collect(list, { out, layout: 'sharded' });
    expect(first.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    // Left by some older download of the first item, under the name planned from its URL.
    const stale = path.join(out, '00000', '000000000.jpg.part');
    await fs.writeFile(stale, 'old');
    server.stats.reset();
    expect((await plan(list, { out, layout: 'sharded' })).map((p) => [p.status, p.path])).toEqual([
      ['skipped', '00000/000000000.png'],
      ['skipped', '00000/000000001.png'],
      ['skipped', '00000/000000002.jpg'],
    ]);
    expect(await listFiles(out)).toContain('00000/000000000.jpg.part');
    const again = await collect(list, { out, layout: 'sharded' });
    expect(server.stats.requests).toBe(0);
    expect(again.map((r) => [r.status, r.skipReason, r.path])).toEqual([
      ['skipped', 'exists', '00000/000000000.png'],
      ['skipped', 'exists', '00000/000000001.png'],
      ['skipped', 'exists', '00000/000000002.jpg'],
    ]);
    // Nothing will continue it, so the run that planned its item removed it; the dry run did not.
    expect(await listFiles(out)).toEqual(['00000/000000000.png', '00000/000000001.png', '00000/000000002.jpg']);
  });
});

describe('--shard K/N', () => {
  const list = [...Array.from({ length: 300 }, (_, i) => `https://img.example/${i}.jpg`), 'not a url', 'ftp://img.example/x.jpg'];

  it.each([1, 2, 3, 7])('cuts a list into %i slices that together hold every item once', async (count) => {
    const out = await tempDir();
    const taken: string[] = [];
    for (let index = 0; index < count; index++) {
      for (const item of await plan(list, { out, shard: `${index}/${count}` })) taken.push(item.url);
    }
    expect(taken.sort()).toEqual([...list].sort());
  });

  it('takes the same slice on every machine and every version', async () => {
    const out = await tempDir();
    const slices = await Promise.all(
      [0, 1, 2, 3].map(async (index) => (await plan(list.slice(0, 8), { out, shard: { index, count: 4 } })).map((p) => p.url)),
    );
    // The partition is MurmurHash3 of the URL: changing it would re-cut every sharded run under way.
    expect(slices).toEqual([
      ['https://img.example/3.jpg', 'https://img.example/7.jpg'],
      ['https://img.example/1.jpg', 'https://img.example/2.jpg', 'https://img.example/5.jpg', 'https://img.example/6.jpg'],
      ['https://img.example/4.jpg'],
      ['https://img.example/0.jpg'],
    ]);
  });

  it('lets the slices of one list share a folder in the sharded layout', async () => {
    const server = await serve();
    const out = await tempDir();
    const urls = Array.from({ length: 12 }, (_, i) => server.url(`/gen/${i}.jpg?bytes=1000`));
    const runs = await Promise.all(
      [0, 1, 2].map((index) => runCli(['-o', out, '--layout', 'sharded', '--shard', `${index}/3`, '--json'], { stdin: urls.join('\n') })),
    );
    expect(runs.map((run) => run.code)).toEqual([0, 0, 0]);
    expect(runs.reduce((sum, run) => sum + (JSON.parse(run.stdout) as { ok: number }).ok, 0)).toBe(12);
    expect(await listFiles(out)).toEqual(urls.map((_, i) => shardedPath(i, new URL(urls[i]!))).sort());
    expect(server.stats.requests).toBe(12);
  });

  it.each(['4/4', '-1/4', '1/0', '0/0', 'a/b', '2', '1/2/3'])('refuses --shard %s as a usage error naming it', async (value) => {
    const run = await runCli(['--shard', value, '-n', 'https://img.example/a.jpg']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('"shard"');
    expect(run.stderr).toContain(JSON.stringify(value));
  });
});
