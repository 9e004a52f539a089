/**
 * `--format webdataset` through the built CLI (and once through the library,
 * for captions and saved columns) against a loopback server serving real
 * images made with sharp: every tar read back with tar-stream and `tar -t`,
 * every table with hyparquet, the stats counted, reruns, a kill -9 mid-run,
 * `--shard K/N`, and `imgdl report` over the stats.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { http, HttpResponse } from 'msw';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FixtureServer } from '../src/dev/fixture-server.js';
import { collect, runCli, serve, tempDir } from './helpers.js';
import { readJson, readTable, readTar } from './shards.js';

/** The images the server answers with, by extension: a solid colour of a chosen size. */
const IMAGES: Record<string, { bytes: Buffer; width: number; height: number }> = {};

beforeAll(async () => {
  const make = async (format: 'jpeg' | 'png' | 'webp', width: number, height: number) => ({
    bytes: await sharp({ create: { width, height, channels: 3, background: { r: 200, g: 90, b: 40 } } })
      .toFormat(format)
      .toBuffer(),
    width,
    height,
  });
  IMAGES.jpg = await make('jpeg', 40, 30);
  IMAGES.png = await make('png', 32, 32);
  IMAGES.webp = await make('webp', 20, 50);
});

/** What the held route does: hold every request until released, or answer at once. */
interface Holding {
  hold: boolean;
  release: () => void;
}

/**
 * A server for the tests: `/img/N.EXT` an image, `/optout/N.EXT` one sent with `X-Robots-Tag: noai`,
 * `/hold/N.EXT` one held until released (or at once when not holding), anything else 404.
 */
async function imageServer(holding: Holding = { hold: false, release: () => undefined }): Promise<FixtureServer> {
  let released!: () => void;
  const held = new Promise<void>((resolve) => (released = resolve));
  holding.release = released;
  const answer = (file: string): HttpResponse<ArrayBuffer> => {
    const image = IMAGES[path.extname(file).slice(1)]!;
    return new HttpResponse(new Uint8Array(image.bytes).buffer, { headers: { 'content-type': 'application/octet-stream' } });
  };
  return serve({
    handlers: [
      http.get('*/img/:file', ({ params }) => answer(String(params.file))),
      http.get('*/optout/:file', ({ params }) => {
        const response = answer(String(params.file));
        response.headers.set('x-robots-tag', 'noai');
        return response;
      }),
      http.get('*/hold/:file', async ({ params }) => {
        if (holding.hold) await held;
        return answer(String(params.file));
      }),
    ],
  });
}

/** The URL of row `i` as the tests list it: an image of a type that cycles, or a 404 where `missing` says. */
function rowUrl(server: FixtureServer, i: number, route = 'img'): string {
  return server.url(`/${route}/${i}.${['jpg', 'png', 'webp'][i % 3]}`);
}

async function writeList(dir: string, urls: string[]): Promise<string> {
  const file = path.join(dir, 'list.txt');
  await fs.writeFile(file, urls.join('\n') + '\n');
  return file;
}

/** The member names `tar -t` lists. */
async function tarList(file: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)('tar', ['-tf', file]);
  return stdout.split('\n').filter((line) => line !== '');
}

/** The requests the server saw for the rows in `rows` (of `route`). */
function requestsFor(server: FixtureServer, rows: number[], route = 'img'): number {
  return rows.reduce((sum, i) => sum + (server.stats.byPath.get(new URL(rowUrl(server, i, route)).pathname) ?? 0), 0);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('--format webdataset', () => {
  it('writes complete tars of samples, a table of every row and stats beside each, then reports them', async () => {
    const server = await imageServer();
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    // 11 rows, shards of 4: rows 5 and 9 are 404s, row 7 is not a URL.
    const urls = range(0, 11).map((i) => (i === 5 || i === 9 ? server.url(`/missing/${i}.jpg`) : i === 7 ? 'nope' : rowUrl(server, i)));
    const run = await runCli([
      '-i',
      await writeList(dir, urls),
      '-o',
      out,
      '--format',
      'webdataset',
      '--shard-size',
      '4',
      '--retries',
      '0',
      '--json',
    ]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ total: 11, ok: 8, failed: 3 });
    expect((await fs.readdir(out)).sort()).toEqual(
      ['00000', '00001', '00002'].flatMap((s) => [`${s}.parquet`, `${s}.tar`, `${s}_stats.json`]).sort(),
    );

    const ok = range(0, 11).filter((i) => ![5, 7, 9].includes(i));
    let tableRows = 0;
    for (const shard of [0, 1, 2]) {
      const name = String(shard).padStart(5, '0');
      const rows = range(shard * 4, Math.min(11, shard * 4 + 4));
      const members = await readTar(path.join(out, `${name}.tar`));
      const wanted = rows.filter((i) => ok.includes(i));
      const key = (i: number): string => String(i).padStart(9, '0');
      const ext = (i: number): string => ['jpg', 'png', 'webp'][i % 3]!;
      expect([...members.keys()].sort()).toEqual(wanted.flatMap((i) => [`${key(i)}.${ext(i)}`, `${key(i)}.json`]).sort());
      expect((await tarList(path.join(out, `${name}.tar`))).sort()).toEqual([...members.keys()].sort());
      for (const i of wanted) {
        const image = IMAGES[ext(i)]!;
        expect(members.get(`${key(i)}.${ext(i)}`)).toEqual(image.bytes);
        expect(JSON.parse(members.get(`${key(i)}.json`)!.toString())).toMatchObject({
          key: key(i),
          url: urls[i],
          caption: null,
          status: 'success',
          width: image.width,
          height: image.height,
          original_width: image.width,
          original_height: image.height,
          sha256: createHash('sha256').update(image.bytes).digest('hex'),
        });
      }

      const table = await readTable(path.join(out, `${name}.parquet`));
      tableRows += table.length;
      expect(table.map((r) => r.key).sort()).toEqual(rows.map(key));
      for (const row of table) {
        const i = Number(row.key);
        if (ok.includes(i)) expect(row).toMatchObject({ status: 'success', error_code: null, width: IMAGES[ext(i)]!.width });
        else expect(row).toMatchObject({ status: 'failed', error_code: i === 7 ? 'INVALID_URL' : 'HTTP_STATUS', sha256: null });
      }
      const stats = await readJson(path.join(out, `${name}_stats.json`));
      const failed = rows.length - wanted.length;
      expect(stats).toMatchObject({
        shard: name,
        count: rows.length,
        status: failed ? { success: wanted.length, failed } : { success: wanted.length },
      });
      expect(stats.bytes).toBe(wanted.reduce((sum, i) => sum + IMAGES[ext(i)]!.bytes.length, 0));
    }
    expect(tableRows).toBe(11);

    const report = await runCli(['report', out, '--json']);
    expect(report.code).toBe(1);
    expect(JSON.parse(report.stdout)).toMatchObject({
      shards: 3,
      total: 11,
      ok: 8,
      failed: 3,
      errors: { HTTP_STATUS: 2, INVALID_URL: 1 },
    });
    expect(JSON.parse(report.stdout).samplesPerSec).toBeGreaterThan(0);
  });

  it('puts captions and saved columns in each sample and in the table (library)', async () => {
    const server = await imageServer();
    const out = await tempDir();
    const source = [0, 1, 2].map((i) => ({
      url: rowUrl(server, i),
      fields: i === 1 ? { id: 'b-1' } : { caption: `a cat, number ${i}`, id: `x-${i}` },
    }));
    const results = await collect(source, { out, format: 'webdataset', shardSize: 2, retries: 0 });
    expect(results.map((r) => [r.status, r.path]).sort()).toEqual([
      ['ok', '00000.tar/000000000.jpg'],
      ['ok', '00000.tar/000000001.png'],
      ['ok', '00001.tar/000000002.webp'],
    ]);
    const members = await readTar(path.join(out, '00000.tar'));
    expect(members.get('000000000.txt')?.toString()).toBe('a cat, number 0');
    expect(members.has('000000001.txt')).toBe(false);
    expect(JSON.parse(members.get('000000000.json')!.toString())).toMatchObject({ caption: 'a cat, number 0', id: 'x-0' });
    expect(JSON.parse(members.get('000000001.json')!.toString())).toMatchObject({ caption: null, id: 'b-1' });
    const table = (await readTable(path.join(out, '00000.parquet'))).sort((a, b) => String(a.key).localeCompare(String(b.key)));
    expect(table.map((r) => [r.key, r.caption, r.id, r.status])).toEqual([
      ['000000000', 'a cat, number 0', 'x-0', 'success'],
      ['000000001', null, 'b-1', 'success'],
    ]);
  });

  it('keeps images as image work leaves them, with their original sizes, and skips opted-out rows by default', async () => {
    const server = await imageServer();
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    const urls = [rowUrl(server, 0), rowUrl(server, 1), rowUrl(server, 2, 'optout'), rowUrl(server, 5)];
    const list = await writeList(dir, urls);
    const run = await runCli([
      '-i',
      list,
      '-o',
      out,
      '--format',
      'webdataset',
      '--resize',
      '16',
      '--resize-mode',
      'keep_ratio_largest',
      '--json',
    ]);
    expect(JSON.parse(run.stdout)).toMatchObject({ total: 4, ok: 3, skipped: 1 });
    const members = await readTar(path.join(out, '00000.tar'));
    // 40×30 jpeg, 32×32 png and 20×50 webp, each 16 px on its longer side now, and a jpeg (as img2dataset's default).
    const expected: Array<[number, number, number, number, number]> = [
      [0, 16, 12, 40, 30],
      [1, 16, 16, 32, 32],
      [3, 6, 16, 20, 50],
    ];
    expect([...members.keys()].filter((name) => !name.endsWith('.json')).sort()).toEqual(
      expected.map(([i]) => `${String(i).padStart(9, '0')}.jpg`),
    );
    for (const [i, width, height, originalWidth, originalHeight] of expected) {
      const key = String(i).padStart(9, '0');
      const image = members.get(`${key}.jpg`)!;
      expect(await sharp(image).metadata()).toMatchObject({ format: 'jpeg', width, height });
      expect(JSON.parse(members.get(`${key}.json`)!.toString())).toMatchObject({
        width,
        height,
        original_width: originalWidth,
        original_height: originalHeight,
        sha256: createHash('sha256').update(image).digest('hex'),
      });
    }
    expect(members.has('000000002.json')).toBe(false);
    const table = await readTable(path.join(out, '00000.parquet'));
    expect(table.find((r) => r.key === '000000002')).toMatchObject({ status: 'skipped', skip_reason: 'opted-out', sha256: null });
    expect(table.find((r) => r.key === '000000000')).toMatchObject({ width: 16, height: 12, original_width: 40, original_height: 30 });
    expect(await readJson(path.join(out, '00000_stats.json'))).toMatchObject({
      count: 4,
      status: { success: 3, skipped: 1 },
      skipReasons: { 'opted-out': 1 },
    });
  });

  it('leaves no incomplete .tar after kill -9, and a rerun skips the complete shards and redoes the other', async () => {
    const holding: Holding = { hold: true, release: () => undefined };
    const server = await imageServer(holding);
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    // Shards of 3: shard 1 (rows 3-5) has one row the server holds, so it cannot end before the kill.
    const urls = range(0, 9).map((i) => rowUrl(server, i, i === 4 ? 'hold' : 'img'));
    const list = await writeList(dir, urls);
    // With a manifest too: a redone shard fetches all its rows again, those the manifest calls done included.
    const args = [
      '-i',
      list,
      '-o',
      out,
      '--format',
      'webdataset',
      '--shard-size',
      '3',
      '--retries',
      '0',
      '--manifest',
      path.join(dir, 'm.jsonl'),
    ];
    try {
      const killed = await runCli([...args, '-v'], {
        onSpawn: (child, output) => {
          const check = (): void => {
            const done = output.stderr.includes('shard 00000 complete') && output.stderr.includes('shard 00002 complete');
            if (done && requestsFor(server, [4], 'hold') === 1) child.kill('SIGKILL');
            else setTimeout(check, 5);
          };
          check();
        },
      });
      expect(killed.signal).toBe('SIGKILL');
    } finally {
      holding.release();
    }
    const left = (await fs.readdir(out)).sort();
    expect(left.filter((f) => f.startsWith('00001'))).toEqual(['00001.tar.part']);
    for (const tar of left.filter((f) => f.endsWith('.tar'))) {
      const shard = Number(tar.slice(0, 5));
      expect([0, 2]).toContain(shard);
      const keys = [...(await readTar(path.join(out, tar))).keys()].filter((n) => n.endsWith('.json'));
      expect(keys.sort()).toEqual(range(shard * 3, shard * 3 + 3).map((i) => `${String(i).padStart(9, '0')}.json`));
    }

    holding.hold = false;
    server.stats.reset();
    const rerun = await runCli([...args, '--json']);
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ total: 9, ok: 3, skipped: 6 });
    // The complete shards' rows made no request; the other's were all asked again.
    expect(requestsFor(server, [0, 1, 2, 6, 7, 8])).toBe(0);
    expect(requestsFor(server, [3, 5]) + requestsFor(server, [4], 'hold')).toBe(3);
    expect((await fs.readdir(out)).filter((f) => f.endsWith('.part'))).toEqual([]);
    expect([...(await readTar(path.join(out, '00001.tar'))).keys()].filter((n) => n.endsWith('.json'))).toHaveLength(3);
    expect(await readJson(path.join(out, '00001_stats.json'))).toMatchObject({ count: 3, status: { success: 3 } });
  });

  it('--shard K/N takes whole tar shards: two runs write disjoint shards that make up the list', async () => {
    const server = await imageServer();
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    const list = await writeList(
      dir,
      range(0, 10).map((i) => rowUrl(server, i)),
    );
    const args = ['-i', list, '-o', out, '--format', 'webdataset', '--shard-size', '2', '--json'];
    // A dry run names each sample as the member of its tar it would become, for this machine's shards alone.
    const dry = await runCli(['-n', ...args.filter((a) => a !== '--json'), '--shard', '0/2']);
    expect(
      dry.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => path.relative(out, line.split('\t')[1]!)),
    ).toEqual([0, 1, 4, 5, 8, 9].map((i) => `0000${Math.floor(i / 2)}.tar/${String(i).padStart(9, '0')}.${['jpg', 'png', 'webp'][i % 3]}`));
    expect(server.stats.requests).toBe(0);
    const first = await runCli([...args, '--shard', '0/2']);
    expect(JSON.parse(first.stdout)).toMatchObject({ total: 6, ok: 6 });
    // Shards 0, 2 and 4 (rows 0-1, 4-5, 8-9) and nothing of the others.
    expect(requestsFor(server, [0, 1, 4, 5, 8, 9])).toBe(6);
    expect(requestsFor(server, [2, 3, 6, 7])).toBe(0);
    const tars = async (): Promise<string[]> => (await fs.readdir(out)).filter((f) => f.endsWith('.tar')).sort();
    expect(await tars()).toEqual(['00000.tar', '00002.tar', '00004.tar']);
    const second = await runCli([...args, '--shard', '1/2']);
    expect(JSON.parse(second.stdout)).toMatchObject({ total: 4, ok: 4 });
    expect(requestsFor(server, range(0, 10))).toBe(10);
    expect(await tars()).toEqual(['00000.tar', '00001.tar', '00002.tar', '00003.tar', '00004.tar']);
    const keys = new Set<string>();
    for (const tar of await tars())
      for (const name of (await readTar(path.join(out, tar))).keys()) if (name.endsWith('.json')) keys.add(name);
    expect(keys.size).toBe(10);
  });

  it('fails the rows of a shard whose part file cannot be written, and still ends the others (a write error once left commits waiting)', async () => {
    const server = await imageServer();
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    // A folder where shard 0's part file would go; bodies larger than the pack's buffer, so that a commit waits on the file.
    await fs.mkdir(path.join(out, '00000.tar.part'), { recursive: true });
    const list = await writeList(
      dir,
      range(0, 6).map((i) => server.url(`/gen/${i}.jpg?bytes=200000`)),
    );
    const run = await runCli(['-i', list, '-o', out, '--format', 'webdataset', '--shard-size', '3', '--retries', '0', '--json']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('EISDIR');
    // A sample the pack took before the file failed was committed (its shard, not its record, says it is lost); the rest fail.
    const summary = JSON.parse(run.stdout) as { total: number; ok: number; failed: number; errors: Record<string, { count: number }> };
    expect([summary.total, summary.ok + summary.failed, Object.keys(summary.errors)]).toEqual([6, 6, ['FILESYSTEM']]);
    expect(summary.errors.FILESYSTEM!.count).toBe(summary.failed);
    expect(summary.failed).toBeGreaterThanOrEqual(2);
    expect((await fs.readdir(out)).sort()).toEqual(['00000.tar.part', '00001.parquet', '00001.tar', '00001_stats.json']);
    expect([...(await readTar(path.join(out, '00001.tar'))).keys()].filter((n) => n.endsWith('.jpg'))).toHaveLength(3);
  });

  it('--mode workers: the threads forward their samples to the one writer of each shard', async () => {
    const server = await imageServer();
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    const urls = range(0, 12).map((i) => (i === 6 ? server.url('/missing/6.jpg') : rowUrl(server, i)));
    const list = await writeList(dir, urls);
    const run = await runCli([
      '-i',
      list,
      '-o',
      out,
      '--format',
      'webdataset',
      '--shard-size',
      '5',
      '--mode',
      'workers',
      '-t',
      '2',
      '--json',
    ]);
    expect(JSON.parse(run.stdout)).toMatchObject({ total: 12, ok: 11, failed: 1 });
    expect((await fs.readdir(out)).filter((f) => f.endsWith('.part'))).toEqual([]);
    const images = new Map<string, Buffer>();
    for (const shard of ['00000', '00001', '00002']) {
      for (const [name, body] of await readTar(path.join(out, `${shard}.tar`))) if (!name.endsWith('.json')) images.set(name, body);
      expect((await tarList(path.join(out, `${shard}.tar`))).length).toBeGreaterThan(0);
    }
    const ext = (i: number): string => ['jpg', 'png', 'webp'][i % 3]!;
    expect([...images.keys()].sort()).toEqual(
      range(0, 12)
        .filter((i) => i !== 6)
        .map((i) => `${String(i).padStart(9, '0')}.${ext(i)}`),
    );
    for (const [name, body] of images) expect(body).toEqual(IMAGES[path.extname(name).slice(1)]!.bytes);
    const table = await readTable(path.join(out, '00001.parquet'));
    expect(table.find((r) => r.key === '000000006')).toMatchObject({ status: 'failed', error_code: 'HTTP_STATUS' });
    expect(await readJson(path.join(out, '00002_stats.json'))).toMatchObject({ count: 2, status: { success: 2 } });
  });
});
