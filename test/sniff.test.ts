import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { OptionError, parseSize, resolveOptions } from '../src/options.js';
import { fileTypeFromBuffer } from 'file-type';
import { extensionFits, looksLikeSvg, magicImage, sniffImage } from '../src/image/sniff.js';
import { ROOT } from './helpers.js';

const fixture = (name: string) => fs.readFile(path.join(ROOT, 'fixtures/images', name));
const hex = (text: string) => Buffer.from(text.replace(/\s/g, ''), 'hex');

/** The smallest byte strings each format is recognised by, as its specification starts a file. */
const HEADS: Array<[string, () => Promise<Buffer> | Buffer, string, string]> = [
  ['JPEG', () => generatedImage('jpg', 500), 'image/jpeg', '.jpg'],
  ['PNG', () => generatedImage('png', 500), 'image/png', '.png'],
  ['GIF', () => fixture('tiny.gif'), 'image/gif', '.gif'],
  ['WebP', () => fixture('tiny.webp'), 'image/webp', '.webp'],
  ['AVIF', () => hex('0000001c 66747970 61766966 00000000 61766966 6d696631 6d696166 00000000'), 'image/avif', '.avif'],
  [
    'BMP',
    () => Buffer.concat([Buffer.from('BM'), hex('46000000 00000000 36000000 28000000 01000000 01000000 01001800'), Buffer.alloc(40)]),
    'image/bmp',
    '.bmp',
  ],
  [
    'TIFF',
    () => Buffer.concat([hex('49492a00 08000000 0100 0001 0300 01000000 0100 0000 00000000'), Buffer.alloc(64)]),
    'image/tiff',
    '.tif',
  ],
  ['ICO', () => Buffer.concat([hex('00000100 0100 10100000 0100 2000 68040000 16000000'), Buffer.alloc(64)]), 'image/x-icon', '.ico'],
  ['SVG', () => Buffer.from('<?xml version="1.0"?>\n<!-- logo -->\n<svg xmlns="http://www.w3.org/2000/svg"/>'), 'image/svg+xml', '.svg'],
];

describe('sniffing', () => {
  it.each(HEADS)('recognises %s by its first bytes', async (_name, bytes, mime, ext) => {
    expect(await sniffImage(await bytes())).toEqual({ mime, ext });
  });

  it.each([
    ['an HTML error page', '<!doctype html><html><body>Not found</body></html>'],
    ['HTML with an inline svg', '<html><body><svg></svg></body></html>'],
    ['JSON', '{"error":"rate limited"}'],
    ['plain text', 'Too many requests'],
    ['nothing', ''],
    ['a zip', 'PK\x03\x04\x14\x00\x00\x00'],
  ])('refuses %s', async (_name, text) => {
    expect(await sniffImage(Buffer.from(text, 'latin1'))).toBeUndefined();
  });

  /** What file-type itself says of a head, as sniffing reports it (an APNG is saved as a PNG). */
  async function fileTypeSays(head: Buffer): Promise<{ mime: string; ext: string } | undefined> {
    const found = await fileTypeFromBuffer(head);
    if (!found || !found.mime.startsWith('image/')) return undefined;
    return found.ext === 'apng' ? { mime: 'image/png', ext: '.png' } : { mime: found.mime, ext: `.${found.ext}` };
  }

  const png = generatedImage('png', 500);
  it.each<[string, () => Promise<Buffer> | Buffer]>([
    ['a JPEG', () => generatedImage('jpg', 500)],
    ['a large JPEG head', () => generatedImage('jpg', 20_000).subarray(0, 4100)],
    ['FF D8 FF alone', () => hex('ffd8ff')],
    ['JPEG-LS (FF D8 FF F7)', () => hex('ffd8fff7 00000000 00000000')],
    ['FF D8 FE', () => hex('ffd8fe00 00000000 00000000')],
    ['a PNG', () => png],
    ['a PNG signature with no IHDR', () => Buffer.concat([png.subarray(0, 8), Buffer.from('not a chunk at all')])],
    ['a GIF', () => fixture('tiny.gif')],
    ['GIF and garbage', () => Buffer.from('GIFxxxxxxxxxxxxxxxxxxx')],
    ['a WebP', () => fixture('tiny.webp')],
    ['RIFF that is not WebP', () => Buffer.from('RIFF\0\0\0\0WAVEfmt xxxxxxxx')],
    ['BM and garbage', () => Buffer.from('BMxxxxxxxxxxxxxxxxxxxxxxxx')],
    ['B alone', () => Buffer.from('Bxxxxxxxxxxxxxxxxxxxxxxx')],
    ['HTML', () => Buffer.from('<!doctype html><p>no')],
  ])('decides %s by magic bytes only as file-type would', async (_name, bytes) => {
    const head = await bytes();
    const magic = magicImage(head);
    // Undecided is always allowed (file-type then decides); a decision must be file-type's own.
    if (magic !== undefined) expect(magic).toEqual(await fileTypeSays(head));
    expect(await sniffImage(head)).toEqual(await fileTypeSays(head));
  });

  it.each([
    ['JPEG', () => generatedImage('jpg', 500)],
    ['PNG', () => generatedImage('png', 500)],
    ['GIF', () => fixture('tiny.gif')],
    ['WebP', () => fixture('tiny.webp')],
  ])('decides %s without file-type, synchronously', async (_name, bytes) => {
    const verdict = sniffImage(await bytes());
    expect(verdict).not.toBeInstanceOf(Promise);
    expect(verdict).toBeDefined();
  });

  it.each([
    ['<svg width="1">', true],
    ['\ufeff  <svg>', true],
    ['<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd" [ <!ENTITY a "b"> ]>\n<svg/>', true],
    ['<svgfoo>', false],
    ['<!-- unterminated <svg>', false],
    ['<html><svg>', false],
  ])('tells an SVG root in %j: %s', (text, expected) => {
    expect(looksLikeSvg(Buffer.from(text))).toBe(expected);
  });

  it.each([
    ['.jpeg', '.jpg', true],
    ['.JPG', '.jpg', true],
    ['.tiff', '.tif', true],
    ['.jpg', '.png', false],
    ['', '.png', false],
  ])('counts %j as fitting a %s', (ext, sniffedExt, expected) => {
    expect(extensionFits(ext, { mime: 'x', ext: sniffedExt })).toBe(expected);
  });
});

describe('sizes', () => {
  it.each([
    ['0', 0],
    ['512', 512],
    ['64k', 65_536],
    ['64K', 65_536],
    ['10M', 10 * 1024 ** 2],
    ['1.5G', 1.5 * 1024 ** 3],
    ['2MiB', 2 * 1024 ** 2],
    [4096, 4096],
  ])('reads %j as %i bytes', (value, bytes) => {
    expect(parseSize('maxSize', value)).toBe(bytes);
  });

  it.each(['', 'lots', '-1', '1T', '10 MB extra', 1.5, -3])('refuses %j, naming the option', (value) => {
    expect(() => parseSize('maxSize', value)).toThrow(OptionError);
    expect(() => parseSize('maxSize', value)).toThrow(/maxSize/);
  });

  it('defaults to 1 GiB and takes 0 as no limit', () => {
    expect(resolveOptions({}).maxSize).toBe(1024 ** 3);
    expect(resolveOptions({ maxSize: 0 }).maxSize).toBeUndefined();
  });
});
