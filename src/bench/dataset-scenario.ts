/**
 * The suite's `dataset` scenario: the shape image datasets are built in. A
 * CSV of {@link ROWS} rows (url, caption, id) of photo-like JPEGs of about
 * 20 kB, written as WebDataset shards of {@link SHARD_SIZE} rows, resized to
 * {@link SIZE} px on the longer side, the `id` column carried into the
 * metadata. Beside it, the same list as shards without resizing, so the cost
 * of the image work shows on its own. Every run's folder is read back: one
 * complete tar, one Parquet table and one stats file per shard, Parquet rows
 * adding up to the list, and every kept image decoded to its size. It runs
 * only when named in `--only`.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asyncBufferFromFile, parquetMetadataAsync } from 'hyparquet';
import sharp from 'sharp';
import { extract } from 'tar-stream';
import { median } from '../cli/bench.js';
import { shardName } from '../output/shard-table.js';
import { formatBytes } from '../record/run-report.js';
import { imgdl } from './contenders.js';
import { measure, type Contender } from './measure.js';
import { photo } from './resize-scenario.js';
import type { ScenarioResult, Settings } from './scenarios.js';
import { startServer } from './servers.js';

const ROWS = 10_000;
const SHARD_SIZE = 1_000;
const SHARDS = Math.ceil(ROWS / SHARD_SIZE);
const SIZE = 64;
/** Distinct images served round the list. */
const VARIANTS = 16;
/** About 20 kB each (photo-like, quality 85). */
const WIDTH = 352;
const HEIGHT = 264;

/** The list as a dataset gives it: a URL, a caption with a comma and quotes in it, an id. */
async function writeCsv(file: string, origin: string): Promise<void> {
  const lines = ['url,caption,id'];
  for (let i = 0; i < ROWS; i++) lines.push(`${origin}/img/${i}.jpg,"photo ${i}, a ""test"" image",id-${i}`);
  await fs.writeFile(file, lines.join('\n') + '\n');
}

/** What one shard's tar holds: its image members, and how many are not {@link SIZE} px on their longer side. */
async function readTar(file: string): Promise<{ images: number; wrongSize: number }> {
  let images = 0;
  let wrongSize = 0;
  const reader = extract();
  createReadStream(file).pipe(reader);
  for await (const entry of reader) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    if (!entry.header.name.endsWith('.jpg')) continue;
    images++;
    const { width, height } = await sharp(Buffer.concat(chunks)).metadata();
    if (Math.max(width, height) !== SIZE) wrongSize++;
  }
  return { images, wrongSize };
}

/**
 * Whether a run's folder holds every shard complete: a tar, a Parquet table
 * and a stats file each, Parquet rows adding up to the list, every image
 * (with `resized`) {@link SIZE} px on its longer side. Says what was wrong.
 */
export async function checkShards(out: string, rows: number, resized: boolean): Promise<string | undefined> {
  const names = new Set(await fs.readdir(out));
  let tableRows = 0;
  let images = 0;
  for (let shard = 0; shard < Math.ceil(rows / SHARD_SIZE); shard++) {
    const base = shardName(shard);
    for (const file of [`${base}.tar`, `${base}.parquet`, `${base}_stats.json`]) if (!names.has(file)) return `no ${file}`;
    tableRows += Number((await parquetMetadataAsync(await asyncBufferFromFile(path.join(out, `${base}.parquet`)))).num_rows);
    if (!resized) continue;
    const tar = await readTar(path.join(out, `${base}.tar`));
    if (tar.wrongSize > 0) return `${tar.wrongSize} images in ${base}.tar are not ${SIZE} px on their longer side`;
    images += tar.images;
  }
  if (tableRows !== rows) return `Parquet rows add up to ${tableRows}, not ${rows}`;
  if (resized && images !== rows) return `${images} images in the tars, not ${rows}`;
  return undefined;
}

/** A contender whose folder is read back by {@link checkShards}. */
function shards(name: string, list: string, args: string[], resized: boolean, cli?: string): Contender {
  const base = imgdl(name, list, ['--format', 'webdataset', '--shard-size', String(SHARD_SIZE), '--save-cols', 'id', ...args], cli);
  return {
    ...base,
    check: async (out) => {
      const wrong = await checkShards(out, ROWS, resized);
      if (wrong !== undefined) process.stderr.write(`\n${name}: ${wrong}\n`);
      return wrong === undefined;
    },
  };
}

/** Runs the scenario against an image server of its own: every contender, `s.runs` times. */
export async function datasetScenario(s: Settings): Promise<ScenarioResult> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-dataset-'));
  const folder = path.join(dir, 'images');
  await fs.mkdir(folder);
  let served = 0;
  for (let v = 0; v < VARIANTS; v++) {
    const image = await photo(v, WIDTH, HEIGHT);
    served += image.length;
    await fs.writeFile(path.join(folder, `${v}.jpg`), image);
  }
  const server = await startServer(0, { images: folder });
  try {
    const list = path.join(dir, 'list.csv');
    await writeCsv(list, server.origin);
    const resize = ['--caption-col', 'caption', '--resize', String(SIZE), '--resize-mode', 'keep_ratio_largest'];
    const contenders: Contender[] = [
      shards('imgdl webdataset --resize 64', list, resize, true),
      shards('imgdl webdataset (no resize)', list, ['--caption-col', 'caption'], false),
    ];
    if (s.compare !== undefined) contenders.push(shards('imgdl webdataset --resize 64 @compare', list, resize, true, s.compare));
    const rows = await measure('dataset', contenders, s.runs, { files: 0, bytes: 0 });
    const rates = rows.map(
      (row) => `${Math.round(ROWS / (median(row.walls) / 1000))} samples/s ${row.name.replace('imgdl webdataset ', '')}`,
    );
    return {
      scenario: 'dataset',
      description:
        `${ROWS} CSV rows (url, caption, id) of ${WIDTH} × ${HEIGHT} JPEGs (${formatBytes(served / VARIANTS)} each), ` +
        `${SHARDS} WebDataset shards of ${SHARD_SIZE}, resized to ${SIZE} px (keep_ratio_largest), default concurrency, ` +
        `${os.availableParallelism()} CPUs: ${rates.join(', ')}`,
      files: ROWS,
      floorMs: undefined,
      baseline: 'imgdl webdataset (no resize)',
      rows,
    };
  } finally {
    await Promise.all([server.stop(), fs.rm(dir, { recursive: true, force: true })]);
  }
}
