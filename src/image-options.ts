/**
 * The options of what is done to each image before it is kept, as img2dataset
 * users know them (`--resize`, `--resize-mode`, `--image-format`, `--quality`,
 * `--min-size`, `--max-aspect-ratio`), and of the publishers' opt-out signal
 * (`--honor-opt-out`). Their fields join {@link ItemOptions} in options.ts,
 * their defaults its `DEFAULTS`, and {@link resolveImage} checks them inside
 * `resolveOptions()`.
 */
import { OptionError } from './errors.js';
import { flag, integer, oneOf } from './option-values.js';

/** How `resize` fits an image, as img2dataset's `resize_mode` does. */
export type ResizeMode = 'no' | 'keep_ratio' | 'keep_ratio_largest' | 'center_crop' | 'border';
/** Every {@link ResizeMode}. */
export const RESIZE_MODES: readonly ResizeMode[] = ['no', 'keep_ratio', 'keep_ratio_largest', 'center_crop', 'border'];
/** The formats an image can be re-encoded to. */
export type ImageFormat = 'jpg' | 'png' | 'webp';
/** Every {@link ImageFormat}. */
export const IMAGE_FORMATS: readonly ImageFormat[] = ['jpg', 'png', 'webp'];

/**
 * The fixed defaults of {@link ImageOptions}, spread into options.ts' `DEFAULTS`.
 *
 * Resizing keeps the run's default mode, `concurrent`: sharp already does its
 * work off the event loop (libuv's pool, libvips' threads), so worker threads
 * only add their own start-up, heaps and messages. `npm run bench -- --only
 * resize` (400 JPEGs of 1024 × 768 to 256 px, -c 16, 2 CPUs, medians of 5):
 * concurrent 3.33 s, 8.5 ms CPU per file, 158 MiB peak RSS; workers -t 1
 * 3.52 s, 9.2 ms, 177 MiB; -t 2 4.09 s, 9.9 ms, 216 MiB; -t 4 5.43 s, 11.4 ms,
 * 287 MiB.
 */
export const IMAGE_DEFAULTS = Object.freeze({
  // img2dataset's defaults, so that a dataset made by either tool looks the same.
  resizeMode: 'border',
  quality: 95,
} as const);

/** What is done to each image before it is kept; part of `ItemOptions`, so they go with cluster jobs too. */
export interface ImageOptions {
  /**
   * Resize each image to this many pixels, as `resizeMode` says [`--resize`], from 1 to 16384. Small images
   * are scaled up too, as img2dataset does. A resized image is re-encoded (as `imageFormat`, jpg by default).
   * @default none: images are kept as received
   */
  resize?: number | undefined;
  /**
   * How `resize` fits an image [`--resize-mode`]: `'keep_ratio'` makes the shorter side `resize`,
   * `'keep_ratio_largest'` the longer; `'center_crop'` makes the shorter side `resize` and crops the centre
   * square; `'border'` makes the longer side `resize` and pads to a square with white (img2dataset's
   * colour); `'no'` does not resize.
   * @default 'border'
   */
  resizeMode?: ResizeMode | undefined;
  /**
   * Re-encode each kept image in this format [`--image-format`]: `'jpg'` (alpha flattened onto white),
   * `'png'` or `'webp'`; the file takes the format's extension.
   * @default none: the bytes as received, or jpg when resizing (as img2dataset)
   */
  imageFormat?: ImageFormat | undefined;
  /**
   * Quality of a jpg or webp re-encoding [`--quality`], from 1 to 100; png is lossless and ignores it.
   * @default 95
   */
  quality?: number | undefined;
  /**
   * Skip (`too-small`) an image whose smaller side is under this many pixels [`--min-size`], from 1.
   * @default none
   */
  minSize?: number | undefined;
  /**
   * Skip (`aspect-ratio`) an image whose longer side over its shorter one is more than this
   * [`--max-aspect-ratio`], a number from 1.
   * @default none
   */
  maxAspectRatio?: number | undefined;
  /**
   * Skip (`opted-out`), keeping nothing, a response whose `X-Robots-Tag` says `noai`, `noimageai`,
   * `noindex` or `noimageindex`, for any user agent [`--honor-opt-out`, `--no-honor-opt-out`].
   * @default true with `format: 'webdataset'`, false for plain files
   */
  honorOptOut?: boolean | undefined;
}

/** How a kept image is re-encoded: plain data, so it crosses to worker threads. */
export interface Encoding {
  format: ImageFormat;
  quality: number;
  /** Pixels, with `mode`; undefined to keep the size. */
  resize: number | undefined;
  mode: ResizeMode;
}

/** What is done to each image before it is kept, as resolved; see {@link ResolvedImage.imageWork}. */
export interface ImageWork {
  /** Undefined when the bytes are kept as received. */
  encode: Encoding | undefined;
  minSize: number | undefined;
  maxAspectRatio: number | undefined;
}

/** {@link ImageOptions} checked, with their defaults applied. */
export interface ResolvedImage {
  resize: number | undefined;
  resizeMode: ResizeMode;
  imageFormat: ImageFormat | undefined;
  quality: number;
  minSize: number | undefined;
  maxAspectRatio: number | undefined;
  honorOptOut: boolean;
  /** Undefined when nothing is done to the images: their bytes stream to the sink as they arrive. */
  imageWork: ImageWork | undefined;
}

/** The largest side `resize` and `minSize` take: libvips' own limit on a side is far beyond any dataset's. */
const MAX_SIDE = 16_384;

/** Checks {@link ImageOptions}; throws `OptionError` naming the option and the value. */
export function resolveImage(options: ImageOptions & { format?: unknown }): ResolvedImage {
  const resize = options.resize === undefined ? undefined : integer('resize', options.resize, 0, 1, MAX_SIDE);
  const resizeMode = oneOf('resizeMode', options.resizeMode, RESIZE_MODES, IMAGE_DEFAULTS.resizeMode);
  const imageFormat = options.imageFormat === undefined ? undefined : oneOf('imageFormat', options.imageFormat, IMAGE_FORMATS, 'jpg');
  const quality = integer('quality', options.quality, IMAGE_DEFAULTS.quality, 1, 100);
  const minSize = options.minSize === undefined ? undefined : integer('minSize', options.minSize, 0, 1, MAX_SIDE);
  const maxAspectRatio = options.maxAspectRatio === undefined ? undefined : aspectRatio(options.maxAspectRatio);
  // Shards are what training sets are made of, and a publisher's "no AI" is meant for them.
  const honorOptOut = options.honorOptOut === undefined ? options.format === 'webdataset' : flag('honorOptOut', options.honorOptOut);
  const resizing = resize !== undefined && resizeMode !== 'no';
  const encode: Encoding | undefined =
    resizing || imageFormat !== undefined
      ? { format: imageFormat ?? 'jpg', quality, resize: resizing ? resize : undefined, mode: resizeMode }
      : undefined;
  const work = encode !== undefined || minSize !== undefined || maxAspectRatio !== undefined;
  return {
    resize,
    resizeMode,
    imageFormat,
    quality,
    minSize,
    maxAspectRatio,
    honorOptOut,
    imageWork: work ? { encode, minSize, maxAspectRatio } : undefined,
  };
}

function aspectRatio(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1) throw new OptionError('maxAspectRatio', value, 'a number from 1');
  return value;
}
