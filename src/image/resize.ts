/**
 * Decoding, resizing and re-encoding an image with sharp (libvips), as
 * img2dataset's resize modes define the result. sharp is imported on the
 * first image that needs it, so a run that keeps bytes as received (and
 * `--help`, and start-up) never loads it.
 *
 * sharp does its work on libuv's thread pool with libvips' own threads, so
 * the calling thread's event loop is not blocked by a decode; which thread
 * calls it is the run's mode's business (`--mode workers` moves it off the
 * main one).
 */
import type { Sharp } from 'sharp';
import { ImgdlError } from '../errors.js';
import type { Encoding, ImageFormat } from '../image-options.js';

type SharpFactory = (typeof import('sharp'))['default'];
let loaded: Promise<SharpFactory> | undefined;

/** sharp, imported once per thread. */
function sharpLib(): Promise<SharpFactory> {
  loaded ??= import('sharp').then(({ default: sharp }) => {
    // libvips' operation cache pays off when one image is worked on many times; each image here is worked on once.
    sharp.cache(false);
    return sharp;
  });
  return loaded;
}

/** An image's size in pixels. */
export interface Size {
  width: number;
  height: number;
}

/** An image re-encoded by {@link transformImage}. */
export interface Transformed extends Size {
  data: Buffer;
  /** `jpeg`, `png` or `webp`, as the record's `imageType` names them. */
  imageType: string;
  /** The size as received, after its EXIF orientation. */
  original: Size;
}

/** The colour `border` pads with, and `jpg` flattens transparency onto: img2dataset's white. */
const WHITE = { r: 255, g: 255, b: 255, alpha: 1 };

/**
 * Web images are often slightly damaged (extraneous bytes, a bad marker) yet
 * display well: only a real error or a truncated body fails, as a browser
 * would show the rest, not every libvips warning.
 */
const INPUT = { failOn: 'error', autoOrient: true } as const;

/** The size `bytes` shows, after its EXIF orientation, read from its header (no pixels are decoded); DECODE when unreadable. */
export async function measureImage(bytes: Buffer, url: string): Promise<Size> {
  const sharp = await sharpLib();
  try {
    const { autoOrient } = await sharp(bytes, INPUT).metadata();
    return { width: autoOrient.width, height: autoOrient.height };
  } catch (error) {
    throw decodeError(error, url);
  }
}

/** `bytes` decoded, resized as `encoding` says and encoded in its format; DECODE when they cannot be decoded. */
export async function transformImage(bytes: Buffer, encoding: Encoding, url: string): Promise<Transformed> {
  const sharp = await sharpLib();
  try {
    const image = sharp(bytes, INPUT);
    const { autoOrient } = await image.metadata();
    const original = { width: autoOrient.width, height: autoOrient.height };
    if (encoding.resize !== undefined) resized(image, encoding.resize, encoding.mode);
    const { data, info } = await encoded(image, encoding.format, encoding.quality).toBuffer({ resolveWithObject: true });
    return { data, imageType: info.format, width: info.width, height: info.height, original };
  } catch (error) {
    throw decodeError(error, url);
  }
}

/**
 * The resize of each mode, as img2dataset makes it (small images scaled up
 * too): `keep_ratio` the shorter side `size` (sharp's `outside` fit),
 * `keep_ratio_largest` the longer (`inside`), `center_crop` the shorter then
 * the centre square (`cover`), `border` the longer then padded to a square
 * (`contain`, centred as img2dataset pads).
 */
function resized(image: Sharp, size: number, mode: Encoding['mode']): Sharp {
  switch (mode) {
    case 'no':
      return image;
    case 'keep_ratio':
      return image.resize(size, size, { fit: 'outside' });
    case 'keep_ratio_largest':
      return image.resize(size, size, { fit: 'inside' });
    case 'center_crop':
      return image.resize(size, size, { fit: 'cover', position: 'centre' });
    case 'border':
      return image.resize(size, size, { fit: 'contain', position: 'centre', background: WHITE });
  }
}

/** The encoder of `format`; jpg has no transparency, so it is flattened onto white first (as img2dataset mats it). */
function encoded(image: Sharp, format: ImageFormat, quality: number): Sharp {
  switch (format) {
    case 'jpg':
      return image.flatten({ background: WHITE }).jpeg({ quality });
    case 'png':
      return image.png();
    case 'webp':
      return image.webp({ quality });
  }
}

/** The extension a re-encoded image is saved with, dot included. */
export function formatExtension(format: ImageFormat): string {
  return `.${format}`;
}

/** DECODE for `url`, with sharp's reason: the body is what it is, so another try would not help. */
function decodeError(error: unknown, url: string): ImgdlError {
  // libvips' reasons come a line each, often repeated: one line, each said once.
  const lines = (error instanceof Error ? error.message : String(error)).split('\n').map((line) => line.trim());
  const reason = [...new Set(lines.filter((line) => line !== ''))].join('; ');
  return new ImgdlError('DECODE', `could not decode the image at ${url}: ${reason}`, { url, cause: error });
}
