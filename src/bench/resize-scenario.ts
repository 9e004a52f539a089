/**
 * The suite's `resize` scenario: decoding and resizing are the blocking work
 * the workers mode exists for, so this compares `--mode concurrent` (sharp
 * called from the main thread, doing its work on libuv's pool with libvips'
 * own threads) against `--mode workers` at 1, 2 and 4 threads, on
 * {@link FILES} photo-like JPEGs of 1024 × 768 resized to 256 px on their
 * longer side. Each run's kept bytes are checked against what sharp makes of
 * the same images here, so a run that resized wrongly is not counted
 * complete. It runs only when named in `--only`.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { Encoding } from '../image-options.js';
import { transformImage } from '../image/resize.js';
import { formatBytes } from '../record/run-report.js';
import { imgdl, writeLists } from './contenders.js';
import { measure, type Contender } from './measure.js';
import type { ScenarioResult, Settings } from './scenarios.js';
import { startServer } from './servers.js';

const FILES = 400;
/** Distinct images served round the list: enough that no cache could pass for work. */
const VARIANTS = 8;
const WIDTH = 1024;
const HEIGHT = 768;
const SIZE = 256;
const C = 16;
const ENCODING: Encoding = { format: 'jpg', quality: 95, resize: SIZE, mode: 'keep_ratio_largest' };

/**
 * A photo-like JPEG (smooth shapes and some grain, about 150 kB at quality 85): a flat test image would
 * decode in no time and measure nothing.
 */
export async function photo(variant: number, width = WIDTH, height = HEIGHT): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  let seed = variant * 7919 + 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const grain = (seed % 24) - 12;
      const at = (y * width + x) * 3;
      pixels[at] = 128 + 90 * Math.sin(x / (40 + variant) + variant) + grain;
      pixels[at + 1] = 128 + 90 * Math.cos(y / (30 + variant)) + grain;
      pixels[at + 2] = 128 + 60 * Math.sin((x + y) / 70) + grain;
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}

/** Runs the scenario against an image server of its own: every contender, `s.runs` times. */
export async function resizeScenario(s: Settings): Promise<ScenarioResult> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-resize-'));
  const folder = path.join(dir, 'images');
  await fs.mkdir(folder);
  // What every complete run keeps: the same sharp, on the same images, makes the same bytes.
  let keptBytes = 0;
  let servedBytes = 0;
  for (let v = 0; v < VARIANTS; v++) {
    const image = await photo(v);
    await fs.writeFile(path.join(folder, `${v}.jpg`), image);
    const kept = (await transformImage(image, ENCODING, `${v}.jpg`)).data.length;
    const served = FILES / VARIANTS;
    keptBytes += kept * served;
    servedBytes += image.length * served;
  }
  const server = await startServer(0, { images: folder });
  try {
    const urls = Array.from({ length: FILES }, (_, i) => `${server.origin}/img/${i}.jpg`);
    const lists = await writeLists(dir, urls);
    const work = ['-c', String(C), '--resize', String(SIZE), '--resize-mode', 'keep_ratio_largest'];
    const contenders: Contender[] = [
      imgdl('imgdl concurrent', lists.plain, ['-m', 'concurrent', ...work]),
      ...[1, 2, 4].map((t) => imgdl(`imgdl workers -t ${t}`, lists.plain, ['-m', 'workers', '-t', String(t), ...work])),
    ];
    if (s.compare !== undefined) contenders.push(imgdl('imgdl concurrent @compare', lists.plain, ['-m', 'concurrent', ...work], s.compare));
    const rows = await measure('resize', contenders, s.runs, { files: FILES, bytes: keptBytes });
    return {
      scenario: 'resize',
      description:
        `${FILES} JPEGs of ${WIDTH} × ${HEIGHT} (${formatBytes(servedBytes / FILES)} each) resized to ${SIZE} px ` +
        `(keep_ratio_largest), no latency, concurrency ${C}, ${os.availableParallelism()} CPUs`,
      files: FILES,
      floorMs: undefined,
      baseline: 'imgdl concurrent',
      rows,
    };
  } finally {
    await Promise.all([server.stop(), fs.rm(dir, { recursive: true, force: true })]);
  }
}
