/**
 * Image work and opt-out signals, through the built CLI against a loopback
 * server serving images made here with sharp: every resize mode's output
 * size (decoded back with sharp), re-encoding and quality, the size checks,
 * a body that sniffs as an image but does not decode, and X-Robots-Tag.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { http, HttpResponse } from 'msw';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixtureServer, type FixtureServer } from '../src/dev/fixture-server.js';
import { createHash } from 'node:crypto';
import { OptionError, resolveOptions, type Options } from '../src/options.js';
import type { BodyStart, Resume, Sink, SinkEntry, SinkTarget } from '../src/output/sink.js';
import type { ItemResult } from '../src/record/record.js';
import { createRunContext, downloadWith } from '../src/run/download.js';
import { listFiles, runCli, tempDir } from './helpers.js';

/** What the server answers at `/img/NAME`. */
const images = new Map<string, { body: Buffer; type: string; robots?: string[] | undefined }>();

/** A solid image of `width` × `height`, with transparency when `alpha`, encoded as `format`. */
function solid(width: number, height: number, format: 'jpeg' | 'png' | 'webp' | 'tiff', alpha = false): Promise<Buffer> {
  const background = alpha ? { r: 40, g: 160, b: 90, alpha: 0.5 } : { r: 40, g: 160, b: 90 };
  return sharp({ create: { width, height, channels: alpha ? 4 : 3, background } })
    .toFormat(format)
    .toBuffer();
}

let server: FixtureServer;
beforeAll(async () => {
  const noise = { type: 'gaussian', mean: 128, sigma: 40 } as const;
  const add = (name: string, body: Buffer, type: string, robots?: string[]): void => void images.set(name, { body, type, robots });
  add('land.png', await solid(300, 200, 'png', true), 'image/png');
  add('port.jpg', await solid(120, 240, 'jpeg'), 'image/jpeg');
  add('small.jpg', await solid(40, 30, 'jpeg'), 'image/jpeg');
  add('wide.jpg', await solid(400, 100, 'jpeg'), 'image/jpeg');
  add('small.tif', await solid(40, 30, 'tiff'), 'image/tiff');
  // Stored 200 × 100, shown 100 × 200: EXIF orientation 6 turns it a quarter clockwise.
  add(
    'turned.jpg',
    await sharp(await solid(200, 100, 'jpeg'))
      .withMetadata({ orientation: 6 })
      .toBuffer(),
    'image/jpeg',
  );
  add(
    'noise.png',
    await sharp({ create: { width: 200, height: 200, channels: 3, background: '#888', noise } })
      .png()
      .toBuffer(),
    'image/png',
  );
  // A JPEG's first bytes, then nothing a decoder can use: it sniffs as an image and cannot be decoded.
  add('broken.jpg', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(5000, 0x41)]), 'image/jpeg');
  server = await startFixtureServer({
    handlers: [
      http.get('*/img/:name', ({ params }) => {
        const image = images.get(String(params.name));
        if (image === undefined) return new HttpResponse('not found', { status: 404 });
        const headers = new Headers({ 'content-type': image.type });
        for (const value of image.robots ?? []) headers.append('x-robots-tag', value);
        return new HttpResponse(new Uint8Array(image.body), { headers });
      }),
    ],
  });
});
afterAll(() => server?.close());

/** Runs the CLI on the named images into a fresh folder; its records by name, exit code, folder. */
async function run(names: readonly string[], flags: readonly string[]) {
  const out = await tempDir();
  const manifest = path.join(out, '..', `${path.basename(out)}.jsonl`);
  const cli = await runCli([...names.map((name) => server.url(`/img/${name}`)), '-o', out, '--manifest', manifest, '-q', ...flags]);
  const lines = (await fs.readFile(manifest, 'utf8')).trim().split('\n');
  await fs.rm(manifest);
  const records = new Map<string, ItemResult>();
  for (const line of lines) {
    const record = JSON.parse(line) as ItemResult;
    records.set(record.url.slice(record.url.lastIndexOf('/') + 1), record);
  }
  return { code: cli.code, stderr: cli.stderr, out, records, files: await listFiles(out) };
}

/** The size of the image in `file`, decoded by sharp. */
async function decodedSize(file: string): Promise<[number, number]> {
  const { width, height } = await sharp(file).metadata();
  return [width, height];
}

describe('--resize N --resize-mode', () => {
  const names = ['land.png', 'port.jpg', 'small.jpg', 'turned.jpg'];
  // Expected [width, height] of each kept image at --resize 64, in the order of `names`.
  it.each([
    ['keep_ratio', [96, 64], [64, 128], [85, 64], [64, 128]],
    ['keep_ratio_largest', [64, 43], [32, 64], [64, 48], [32, 64]],
    ['center_crop', [64, 64], [64, 64], [64, 64], [64, 64]],
    ['border', [64, 64], [64, 64], [64, 64], [64, 64]],
  ] as const)('%s gives each image its size, small ones scaled up, as jpg', async (mode, ...sizes) => {
    const { code, out, records, files } = await run(names, ['--resize', '64', '--resize-mode', mode]);
    expect(code).toBe(0);
    expect(files).toEqual(['land.jpg', 'port.jpg', 'small.jpg', 'turned.jpg']);
    for (const [i, name] of names.entries()) {
      const kept = names[i]!.replace(/\.\w+$/, '.jpg');
      expect(await decodedSize(path.join(out, kept)), name).toEqual(sizes[i]);
      const record = records.get(name)!;
      expect(record).toMatchObject({ status: 'ok', path: kept, imageType: 'jpeg', width: sizes[i]![0], height: sizes[i]![1] });
      expect(record.bytes).toBe((await fs.stat(path.join(out, kept))).size);
    }
    // The size it came in, as shown (EXIF orientation applied).
    expect(records.get('land.png')).toMatchObject({ originalWidth: 300, originalHeight: 200 });
    expect(records.get('turned.jpg')).toMatchObject({ originalWidth: 100, originalHeight: 200 });
  });

  it('no: keeps every byte as received, under the type it came in', async () => {
    const { code, out, records, files } = await run(['land.png', 'port.jpg'], ['--resize', '64', '--resize-mode', 'no']);
    expect(code).toBe(0);
    expect(files).toEqual(['land.png', 'port.jpg']);
    expect(await fs.readFile(path.join(out, 'land.png'))).toEqual(images.get('land.png')!.body);
    expect(records.get('land.png')).toMatchObject({ width: 300, height: 200 });
    expect(records.get('land.png')?.originalWidth).toBeUndefined();
  });

  it('the default mode is border (img2dataset´s), padded with white', async () => {
    const { out } = await run(['wide.jpg'], ['--resize', '64']);
    const { data, info } = await sharp(path.join(out, 'wide.jpg')).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([64, 64]);
    // The top-left pixel is padding (the image is 64 × 16, centred).
    expect([...data.subarray(0, 3)].every((v) => v > 245)).toBe(true);
  });
});

describe('--image-format and --quality', () => {
  const MAGIC = { jpg: 'ffd8ff', png: '89504e47', webp: '52494646' } as const;
  it.each(['jpg', 'png', 'webp'] as const)('%s: the kept file has its magic bytes and extension, at the size received', async (format) => {
    const { code, out, records, files } = await run(['land.png', 'port.jpg'], ['--image-format', format]);
    expect(code).toBe(0);
    expect(files).toEqual([`land.${format}`, `port.${format}`]);
    const head = (await fs.readFile(path.join(out, `land.${format}`))).subarray(0, 12);
    expect(head.toString('hex').startsWith(MAGIC[format])).toBe(true);
    if (format === 'webp') expect(head.subarray(8, 12).toString('latin1')).toBe('WEBP');
    expect(await decodedSize(path.join(out, `land.${format}`))).toEqual([300, 200]);
    expect(records.get('land.png')).toMatchObject({ sniffedType: 'image/png', imageType: format === 'jpg' ? 'jpeg' : format });
  });

  it('jpg flattens transparency onto white', async () => {
    const { out } = await run(['land.png'], ['--image-format', 'jpg']);
    const { data, info } = await sharp(path.join(out, 'land.jpg')).raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
    // rgb(40, 160, 90) at half opacity over white is about rgb(148, 208, 173); over black it would be rgb(20, 80, 45).
    const [r, g, b] = [...data.subarray(0, 3)];
    expect([Math.abs(r! - 148), Math.abs(g! - 208), Math.abs(b! - 173)].every((d) => d <= 6)).toBe(true);
  });

  it.each(['jpg', 'webp'] as const)('--quality changes the size of a %s', async (format) => {
    const sizes: number[] = [];
    for (const quality of ['20', '90']) {
      const { records } = await run(['noise.png'], ['--image-format', format, '--quality', quality]);
      sizes.push(records.get('noise.png')!.bytes);
    }
    expect(sizes[0]).toBeLessThan(sizes[1]!);
  });
});

describe('--min-size and --max-aspect-ratio', () => {
  it('skip small and elongated images, keeping nothing of them, and keep the rest untouched', async () => {
    const names = ['land.png', 'small.jpg', 'wide.jpg', 'small.tif'];
    const { code, out, records, files } = await run(names, ['--min-size', '50', '--max-aspect-ratio', '3']);
    expect(code).toBe(0);
    expect(files).toEqual(['land.png']);
    expect(await fs.readFile(path.join(out, 'land.png'))).toEqual(images.get('land.png')!.body);
    expect(records.get('small.jpg')).toMatchObject({ status: 'skipped', skipReason: 'too-small', path: null, width: 40, height: 30 });
    expect(records.get('wide.jpg')).toMatchObject({ status: 'skipped', skipReason: 'aspect-ratio', path: null });
    // A TIFF's header is not one the probe reads: sharp reads its size.
    expect(records.get('small.tif')).toMatchObject({ status: 'skipped', skipReason: 'too-small' });
  });

  it('check the size as received, before resizing', async () => {
    const { records, files } = await run(['small.jpg', 'port.jpg'], ['--min-size', '50', '--resize', '32']);
    expect(records.get('small.jpg')).toMatchObject({ status: 'skipped', skipReason: 'too-small' });
    expect(files).toEqual(['port.jpg']);
  });
});

describe('an image that does not decode', () => {
  it.each([['concurrent'], ['workers']])('fails alone with DECODE, not retried, in --mode %s', async (mode) => {
    const names = ['broken.jpg', 'land.png', 'port.jpg'];
    const { code, records, files } = await run(names, ['--resize', '32', '--mode', mode, '--threads', '2']);
    expect(code).toBe(1);
    expect(files).toEqual(['land.jpg', 'port.jpg']);
    const broken = records.get('broken.jpg')!;
    expect(broken).toMatchObject({ status: 'failed', attempts: 1, path: null, error: { code: 'DECODE' } });
    expect(broken.error!.message).toContain(server.url('/img/broken.jpg'));
    expect(broken.error!.message).toMatch(/JPEG/i);
  });
});

describe('X-Robots-Tag opt-out', () => {
  // Each served at /img/opt-N.jpg with these X-Robots-Tag headers (one value per header).
  const CASES: Array<[what: string, headers: string[], optedOut: boolean]> = [
    ['noai', ['noai'], true],
    ['noimageai', ['noimageai'], true],
    ['noindex', ['noindex'], true],
    ['noimageindex', ['noimageindex'], true],
    ['mixed case', ['NoImageAI'], true],
    ['in a list', ['nofollow, NOINDEX'], true],
    ['for an agent', ['otherbot: noai'], true],
    ['in a second header', ['nofollow', 'googlebot: noimageindex'], true],
    ['nofollow, noarchive', ['nofollow, noarchive'], false],
    ['a longer word', ['noaix'], false],
    ['no header', [], false],
  ];
  const names = CASES.map((_, i) => `opt-${i}.jpg`);
  let honoured: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    for (const [i, [, headers]] of CASES.entries()) images.set(names[i]!, { ...images.get('port.jpg')!, robots: headers });
    honoured = await run(names, ['--honor-opt-out']);
  });

  it.each(CASES.map((c, i) => [...c, i] as const))('%s (%j): opted out %s', (_what, _headers, optedOut, i) => {
    const record = honoured.records.get(names[i]!)!;
    if (optedOut) {
      expect(record).toMatchObject({ status: 'skipped', skipReason: 'opted-out', path: null, bytes: 0 });
      expect(honoured.files).not.toContain(names[i]);
    } else {
      expect(record).toMatchObject({ status: 'ok', path: names[i] });
    }
  });

  it.each([[[]], [['--no-honor-opt-out']]])('plain files keep opted-out images with %j', async (flags) => {
    const { code, files } = await run(['opt-0.jpg', 'opt-6.jpg'], flags);
    expect(code).toBe(0);
    expect(files).toEqual(['opt-0.jpg', 'opt-6.jpg']);
  });

  it('is on by default for WebDataset shards, off for files, and either way when set', () => {
    expect(resolveOptions({}).honorOptOut).toBe(false);
    expect(resolveOptions({ format: 'webdataset' } as Options).honorOptOut).toBe(true);
    expect(resolveOptions({ format: 'webdataset', honorOptOut: false } as Options).honorOptOut).toBe(false);
    expect(resolveOptions({ honorOptOut: true }).honorOptOut).toBe(true);
  });
});

/** A sink that keeps bodies in memory and notes what it is asked, to see what the image work asks of the seam. */
class NotingSink implements Sink {
  readonly calls: string[] = [];
  readonly kept = new Map<string, Buffer>();
  async has(): Promise<boolean> {
    return false;
  }
  async resumable(target: SinkTarget): Promise<Resume | undefined> {
    this.calls.push(`resumable ${target.relPath}`);
    return undefined;
  }
  open(target: SinkTarget): SinkEntry {
    const chunks: Buffer[] = [];
    const calls = this.calls;
    const kept = this.kept;
    return {
      async begin(start: BodyStart) {
        calls.push(`begin ${target.relPath} validator ${start.validator === undefined ? 'none' : 'given'}`);
      },
      write(chunk: Buffer) {
        calls.push(`write ${chunk.length}`);
        chunks.push(chunk);
        return true;
      },
      async commit(relPath: string) {
        calls.push(`commit ${relPath}`);
        kept.set(relPath, Buffer.concat(chunks));
        return relPath;
      },
      async abort() {
        calls.push(`abort ${target.relPath}`);
      },
    };
  }
}

describe('the image work at the sink seam', () => {
  async function through(names: string[], options: Options): Promise<{ sink: NotingSink; results: ItemResult[] }> {
    const ctx = await createRunContext(resolveOptions({ concurrency: 1, retries: 0, out: await tempDir(), ...options }));
    const sink = new NotingSink();
    ctx.sink = sink;
    const results: ItemResult[] = [];
    for await (const result of downloadWith(
      names.map((name) => ({ url: server.url(`/img/${name}`) })),
      ctx,
    ))
      results.push(result);
    return { sink, results };
  }

  it('asks nothing to resume, writes the re-encoded bytes once under the new name, and records their digest', async () => {
    const { sink, results } = await through(['land.png'], { resize: 32, hash: 'sha256' });
    const kept = sink.kept.get('land.jpg')!;
    // The abort after the commit is the try's own clean-up, a no-op after a commit as the seam says.
    expect(sink.calls).toEqual(['begin land.png validator none', `write ${kept.length}`, 'commit land.jpg', 'abort land.png']);
    expect(results[0]).toMatchObject({ status: 'ok', bytes: kept.length, width: 32, height: 32 });
    expect(results[0]!.digest).toBe(`sha256:${createHash('sha256').update(kept).digest('hex')}`);
  });

  it('an opted-out response gets no byte written: its entry is aborted', async () => {
    images.set('opted.jpg', { ...images.get('port.jpg')!, robots: ['noai'] });
    const { sink, results } = await through(['opted.jpg'], { honorOptOut: true });
    expect(results[0]).toMatchObject({ status: 'skipped', skipReason: 'opted-out' });
    expect(sink.calls).toEqual(['resumable opted.jpg', 'abort opted.jpg']);
  });
});

describe('sharp is loaded only for image work', () => {
  it.each([
    [[], false],
    [['--resize', '32'], true],
  ] as const)('with %j: libvips mapped at exit %s', async (flags, loaded) => {
    // Told by the process's own memory map as it exits: what a plain run loads, not what a module graph says.
    const probe = path.join(await tempDir(), 'maps.mjs');
    await fs.writeFile(
      probe,
      "import fs from 'node:fs';\n" +
        "process.on('exit', () => process.stderr.write('libvips mapped: ' + /libvips/.test(fs.readFileSync('/proc/self/maps', 'utf8')) + '\\n'));\n",
    );
    const cli = await runCli([server.url('/img/port.jpg'), '-o', await tempDir(), '-q', ...flags], {
      env: { NODE_OPTIONS: `--import ${probe}` },
    });
    expect(cli.code).toBe(0);
    expect(cli.stderr).toContain(`libvips mapped: ${loaded}`);
  });
});

describe('image options', () => {
  it.each([
    ['resize', 0],
    ['resize', 1.5],
    ['resizeMode', 'fill'],
    ['imageFormat', 'gif'],
    ['quality', 0],
    ['quality', 101],
    ['minSize', -1],
    ['maxAspectRatio', 0.5],
    ['honorOptOut', 'yes'],
  ] as const)('%s: %j is refused, naming the option and the value', (option, value) => {
    expect(() => resolveOptions({ [option]: value } as Options)).toThrow(OptionError);
    expect(() => resolveOptions({ [option]: value } as Options)).toThrow(`"${option}": ${JSON.stringify(value)}`);
  });

  it('a bad flag is a usage error before any request', async () => {
    const before = server.stats.requests;
    const cli = await runCli([server.url('/img/port.jpg'), '-o', await tempDir(), '--quality', '0']);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('"quality": 0');
    expect(server.stats.requests).toBe(before);
  });
});
