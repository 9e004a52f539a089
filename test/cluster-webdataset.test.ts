/**
 * WebDataset shards through the queue: one job per shard, written whole by
 * the worker that takes it. Real redis-server, the built CLI, and a
 * loopback server answering with images made by sharp; every tar read back
 * with tar-stream, every table with hyparquet, and the shards compared with
 * those a single `imgdl --format webdataset` run writes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import sharp from 'sharp';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { enqueue } from '../src/cluster/enqueue.js';
import { decodeBatch, encodeBatch } from '../src/cluster/jobs.js';
import type { FixtureServer } from '../src/dev/fixture-server.js';
import { OptionError } from '../src/options.js';
import { isStopped, listFile, startCli, statusOf, until } from './cluster-helpers.js';
import { writeDatasetList } from './dataset-lists.js';
import { runCli, serve, tempDir } from './helpers.js';
import { readJson, readTable, readTar } from './shards.js';
import { startRedis } from './redis.js';

// Each command is a fresh Node process that loads BullMQ and sharp: on a busy two-core machine, seconds each.
vi.setConfig({ testTimeout: 180_000 });

/** The image every row gets: a 40×30 JPEG made with sharp. */
let IMAGE: Buffer;
beforeAll(async () => {
  IMAGE = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 30, g: 120, b: 200 } } })
    .jpeg()
    .toBuffer();
});

/** What the image route does with a request: answer it now, or hold it until the test releases it. */
type Gate = (() => Promise<void>) | undefined;

/** `/img/N.jpg` the image, `/optout/N.jpg` the image with `X-Robots-Tag: noai`, anything else 404. */
function imageServer(gate: { wait: Gate } = { wait: undefined }): Promise<FixtureServer> {
  const image = (): HttpResponse<ArrayBuffer> =>
    new HttpResponse(new Uint8Array(IMAGE).buffer, { headers: { 'content-type': 'image/jpeg' } });
  return serve({
    handlers: [
      http.get('*/img/:file', async () => {
        await gate.wait?.();
        return image();
      }),
      http.get('*/optout/:file', () => {
        const response = image();
        response.headers.set('x-robots-tag', 'noai');
        return response;
      }),
    ],
  });
}

const shardNames = (count: number): string[] => Array.from({ length: count }, (_, i) => String(i).padStart(5, '0'));

/** What a shard holds that does not depend on when or by whom it was written: its members, and its table without times. */
async function shardContent(dir: string, shard: string): Promise<{ members: Record<string, string>; rows: unknown[] }> {
  const members: Record<string, string> = {};
  for (const [name, body] of await readTar(path.join(dir, `${shard}.tar`))) {
    // A sample's JSON says what it is; the image's bytes, re-encoded from one source, are compared by size.
    members[name] = name.endsWith('.json') || name.endsWith('.txt') ? body.toString() : `${body.length} bytes`;
  }
  // Rows are in the order they ended, which differs from run to run.
  const rows = (await readTable(path.join(dir, `${shard}.parquet`))).sort((a, b) => String(a.key).localeCompare(String(b.key)));
  return { members, rows };
}

describe('--format webdataset through the queue', () => {
  it('2 workers write the 5 shards of 250 rows a single run writes; enqueuing twice adds nothing; status and report count them', async () => {
    const redis = await startRedis();
    const server = await imageServer();
    const dir = await tempDir();
    const out = path.join(dir, 'shared');
    // Rows 7, 57, 107…: a 404 each, so every shard has a failed row in its table and none in its tar.
    const urls = Array.from({ length: 250 }, (_, i) => server.url(i % 50 === 7 ? `/missing/${i}.jpg` : `/img/${i}.jpg`));
    const list = await listFile(dir, urls);
    const flags = [
      '--format',
      'webdataset',
      '--shard-size',
      '50',
      '--resize',
      '16',
      '--resize-mode',
      'keep_ratio_largest',
      '--retries',
      '0',
    ];

    const refused = await runCli(['enqueue', '--queue', redis.url, '-i', list, ...flags, '--batch', '10']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/batch.*10.*webdataset/);
    const first = await runCli(['enqueue', '--queue', redis.url, '-i', list, ...flags, '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ items: 250, jobs: 5, addedItems: 250, addedJobs: 5 });
    const second = await runCli(['enqueue', '--queue', redis.url, '-i', list, ...flags, '--json']);
    expect(JSON.parse(second.stdout)).toEqual({ items: 250, jobs: 5, addedItems: 0, addedJobs: 0 });

    const worker = (): ReturnType<typeof startCli> =>
      startCli(['worker', '--queue', redis.url, '-o', out, '-c', '4', '--exit-when-empty', '--json']);
    const ran = await Promise.all([worker().done, worker().done]);
    for (const run of ran) expect(run.code, run.stderr.slice(-2000)).toBe(0);
    expect(ran.reduce((sum, run) => sum + (JSON.parse(run.stdout) as { batches: number }).batches, 0)).toBe(5);

    const shards = shardNames(5);
    expect((await fs.readdir(out)).sort()).toEqual(shards.flatMap((s) => [`${s}.parquet`, `${s}.tar`, `${s}_stats.json`]).sort());
    let tableRows = 0;
    for (const [s, shard] of shards.entries()) {
      const members = await readTar(path.join(out, `${shard}.tar`));
      const keys = Array.from({ length: 50 }, (_, i) => String(s * 50 + i).padStart(9, '0')).filter((_, i) => i !== 7);
      expect([...members.keys()].filter((name) => name.endsWith('.json')).sort()).toEqual(keys.map((k) => `${k}.json`));
      for (const key of keys) {
        const meta = await sharp(members.get(`${key}.jpg`)).metadata();
        expect([meta.width, meta.height]).toEqual([16, 12]);
      }
      const table = await readTable(path.join(out, `${shard}.parquet`));
      expect(table.filter((row) => row.status === 'success')).toHaveLength(49);
      tableRows += table.length;
      expect(await readJson(path.join(out, `${shard}_stats.json`))).toMatchObject({ count: 50, status: { success: 49, failed: 1 } });
    }
    expect(tableRows).toBe(250);

    const status = await statusOf(redis.url);
    expect(status).toMatchObject({ total: 250, ok: 245, failed: 5, skipped: 0, pending: 0 });
    expect(status.jobs).toMatchObject({ waiting: 0, active: 0, completed: 5, failed: 0 });
    const report = await runCli(['report', out, '--json']);
    expect(JSON.parse(report.stdout)).toMatchObject({ total: 250, ok: 245, failed: 5 });

    // The same list in one run: the same shards, sample for sample and row for row.
    const alone = path.join(dir, 'alone');
    const single = await runCli(['-i', list, '-o', alone, ...flags, '--json']);
    expect(JSON.parse(single.stdout)).toMatchObject({ total: 250, ok: 245, failed: 5 });
    for (const shard of shards) expect(await shardContent(out, shard)).toEqual(await shardContent(alone, shard));
  });

  it('carries captions, saved columns and positions on the wire, and the opt-out default of webdataset', async () => {
    const redis = await startRedis();
    const server = await imageServer();
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    const rows = Array.from({ length: 7 }, (_, i) => ({
      url: server.url(i === 4 ? `/optout/${i}.jpg` : `/img/${i}.jpg`),
      fields: { caption: `a blue, "square" image\nnumber ${i}`, id: 100 + i },
    }));
    const item = { url: rows[0]!.url, source: 'list.csv', line: 2, index: 0, fields: rows[0]!.fields };
    expect(decodeBatch(encodeBatch([item], {})).items).toEqual([item]);
    await expect(enqueue(rows, { queue: redis.url, batch: 5, options: { format: 'webdataset' } })).rejects.toThrow(OptionError);

    const options = { format: 'webdataset', shardSize: 3 } as const;
    expect(await enqueue(rows, { queue: redis.url, options })).toMatchObject({ items: 7, jobs: 3 });
    const run = await runCli(['worker', '--queue', redis.url, '-o', out, '--exit-when-empty']);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);

    const members = new Map<string, Buffer>();
    for (const shard of shardNames(3)) for (const [name, body] of await readTar(path.join(out, `${shard}.tar`))) members.set(name, body);
    expect(members.get('000000005.txt')?.toString()).toBe('a blue, "square" image\nnumber 5');
    expect(JSON.parse(members.get('000000006.json')!.toString())).toMatchObject({
      key: '000000006',
      id: 106,
      caption: rows[6]!.fields.caption,
    });
    // Row 4 opted out: in its table as skipped, not in its tar.
    expect([...members.keys()].some((name) => name.startsWith('000000004'))).toBe(false);
    const table = (await readTable(path.join(out, '00001.parquet'))).sort((a, b) => String(a.key).localeCompare(String(b.key)));
    // Saved columns that are not text are written as their JSON.
    expect(table.map((row) => [row.key, row.status, row.skip_reason, row.caption, row.id])).toEqual([
      ['000000003', 'success', null, rows[3]!.fields.caption, '103'],
      ['000000004', 'skipped', 'opted-out', rows[4]!.fields.caption, '104'],
      ['000000005', 'success', null, rows[5]!.fields.caption, '105'],
    ]);
    expect(await statusOf(redis.url)).toMatchObject({ total: 7, ok: 6, skipped: 1, pending: 0 });
  });

  it('imgdl enqueue reads a CSV with --caption-col and --save-cols: the captions and ids reach the shards', async () => {
    const redis = await startRedis();
    const server = await imageServer();
    const dir = await tempDir();
    const out = path.join(dir, 'out');
    const rows = Array.from({ length: 4 }, (_, i) => ({
      url: server.url(`/img/${i}.jpg`),
      caption: `row ${i}, "quoted"\nover two lines`,
      id: `id-${i}`,
    }));
    const list = await writeDatasetList(path.join(dir, 'list.csv'), rows);
    const flags = ['--caption-col', 'caption', '--save-cols', 'id', '--format', 'webdataset', '--shard-size', '3'];
    const added = await runCli(['enqueue', '--queue', redis.url, '-i', list, ...flags, '--json']);
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ items: 4, jobs: 2 });
    const missing = await runCli(['enqueue', '--queue', redis.url, '-i', list, '--caption-col', 'text', '--format', 'webdataset']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/text/);
    const run = await runCli(['worker', '--queue', redis.url, '-o', out, '--exit-when-empty']);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);

    const members = new Map<string, Buffer>();
    for (const shard of shardNames(2)) for (const [name, body] of await readTar(path.join(out, `${shard}.tar`))) members.set(name, body);
    for (const [i, row] of rows.entries()) {
      const key = String(i).padStart(9, '0');
      expect(members.get(`${key}.txt`)?.toString()).toBe(row.caption);
      expect(JSON.parse(members.get(`${key}.json`)!.toString())).toMatchObject({ key, caption: row.caption, id: row.id });
    }
    const table = [...(await readTable(path.join(out, '00000.parquet'))), ...(await readTable(path.join(out, '00001.parquet')))];
    expect(table.map((row) => row.id).sort()).toEqual(rows.map((row) => row.id));
  });

  it('a worker killed mid-shard: the other takes the batch over and rewrites the shard whole; only complete tars', async () => {
    const redis = await startRedis();
    // The first answers go through, so the first worker has samples in its part file; the rest wait until released.
    const answered = 6;
    let requests = 0;
    let held: Array<() => void> | undefined = [];
    const gate = {
      wait: (): Promise<void> => {
        const holding = held;
        if (++requests <= answered || holding === undefined) return Promise.resolve();
        return new Promise<void>((resolve) => holding.push(resolve));
      },
    };
    const server = await imageServer(gate);
    const dir = await tempDir();
    const out = path.join(dir, 'shared');
    const urls = Array.from({ length: 60 }, (_, i) => server.url(`/img/${i}.jpg`));
    const added = await runCli([
      'enqueue',
      '--queue',
      redis.url,
      '-i',
      await listFile(dir, urls),
      '--format',
      'webdataset',
      '--shard-size',
      '20',
    ]);
    expect(added.code, added.stderr).toBe(0);
    const worker = (): ReturnType<typeof startCli> =>
      startCli(['worker', '--queue', redis.url, '-o', out, '-c', '4', '--lock-ms', '1500', '--exit-when-empty', '-v', '--json']);

    const killed = worker();
    await until(() => held!.length === 4, 'the first worker to have all its downloads in flight');
    // Killed with samples in its part file: the answers it had were written there before it dies.
    const partsWithSamples = async (): Promise<string[]> => {
      const names = await fs.readdir(out).catch(() => []);
      const sizes = await Promise.all(names.map(async (name) => (name.endsWith('.part') ? (await fs.stat(path.join(out, name))).size : 0)));
      return names.filter((_, i) => sizes[i]! > 0);
    };
    await until(async () => (await partsWithSamples()).length > 0, 'the first worker to write samples to a part file');
    killed.child.kill('SIGKILL');
    await killed.done;
    const parts = (await fs.readdir(out)).filter((name) => name.endsWith('.part'));
    const release = held!;
    held = undefined;
    for (const answer of release) answer();

    const other = await worker().done;
    expect(other.code, other.stderr.slice(-2000)).toBe(0);
    expect(other.stderr).toMatch(/batch b-[0-9a-f]+ was taken back from a worker that stopped answering/);
    const names = await fs.readdir(out);
    const shards = shardNames(3);
    expect(names.filter((name) => !name.endsWith('.part')).sort()).toEqual(
      shards.flatMap((s) => [`${s}.parquet`, `${s}.tar`, `${s}_stats.json`]).sort(),
    );
    // The dead worker's part files are left as they were, under its own names: none became a tar.
    for (const part of parts) expect(part).toMatch(/^\d{5}\.tar\.[A-Za-z0-9-]+\.part$/);
    expect(names.filter((name) => name.endsWith('.part')).sort()).toEqual(parts.sort());
    let tableRows = 0;
    for (const shard of shards) {
      const members = await readTar(path.join(out, `${shard}.tar`));
      expect([...members.keys()].filter((name) => name.endsWith('.jpg'))).toHaveLength(20);
      tableRows += (await readTable(path.join(out, `${shard}.parquet`))).length;
    }
    expect(tableRows).toBe(60);
    expect(await statusOf(redis.url)).toMatchObject({ total: 60, ok: 60, failed: 0, pending: 0 });
  });
  it('a worker frozen mid-shard, woken after another rewrote the shard: its tar is never renamed over the other one', async () => {
    const redis = await startRedis();
    // Every request of the first worker is held, so that it is frozen with one whole shard in flight.
    let held: Array<() => void> | undefined = [];
    const gate = {
      wait: (): Promise<void> => {
        const holding = held;
        return holding === undefined ? Promise.resolve() : new Promise<void>((resolve) => holding.push(resolve));
      },
    };
    const server = await imageServer(gate);
    const dir = await tempDir();
    const out = path.join(dir, 'shared');
    const urls = Array.from({ length: 12 }, (_, i) => server.url(`/img/${i}.jpg`));
    const list = await listFile(dir, urls);
    expect((await runCli(['enqueue', '--queue', redis.url, '-i', list, '--format', 'webdataset', '--shard-size', '4'])).code).toBe(0);
    const worker = (): ReturnType<typeof startCli> =>
      startCli(['worker', '--queue', redis.url, '-o', out, '-c', '4', '--lock-ms', '1500', '--exit-when-empty', '-v']);

    const frozen = worker();
    await until(() => held!.length === 4, 'the first worker to have a whole shard in flight');
    frozen.child.kill('SIGSTOP');
    await until(() => isStopped(frozen.child.pid!), 'the first worker to be stopped');
    // Answered while it is frozen: when it wakes, every row of its shard can end at once.
    const release = held!;
    held = undefined;
    for (const answer of release) answer();

    const other = await worker().done;
    expect(other.code, other.stderr.slice(-2000)).toBe(0);
    const shards = shardNames(3);
    const written = await Promise.all(shards.map(async (s) => (await fs.stat(path.join(out, `${s}.tar`))).ino));

    frozen.child.kill('SIGCONT');
    const woken = await frozen.done;
    expect(woken.code, woken.stderr.slice(-2000)).toBe(0);
    expect(woken.stderr).toMatch(/was taken back|left to the writer that holds it now/);
    // The tars are the ones the other worker renamed into place, complete; the woken one's part files are its own.
    expect(await Promise.all(shards.map(async (s) => (await fs.stat(path.join(out, `${s}.tar`))).ino))).toEqual(written);
    for (const shard of shards) {
      const members = await readTar(path.join(out, `${shard}.tar`));
      expect([...members.keys()].filter((name) => name.endsWith('.jpg'))).toHaveLength(4);
    }
    for (const name of await fs.readdir(out)) expect(name).toMatch(/^\d{5}(\.tar|\.parquet|_stats\.json|\.tar\.[A-Za-z0-9-]+\.part)$/);
    expect(await statusOf(redis.url)).toMatchObject({ total: 12, ok: 12, failed: 0, pending: 0 });
  });
});
