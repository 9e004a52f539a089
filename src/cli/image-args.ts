/**
 * The flags of what is done to each image before it is kept, and of the
 * publishers' opt-out: part of the item flags (item-args.ts), so the main
 * command and `imgdl enqueue` both take them, and {@link imageOptions} turns
 * them into the library's {@link ImageOptions}.
 */
import { DEFAULTS } from '../options.js';
import { IMAGE_FORMATS, type ImageFormat, type ImageOptions, type ResizeMode } from '../image-options.js';

/** What {@link IMAGE_FLAGS} parse. */
export interface ImageArgv {
  resize: number | undefined;
  resizeMode: string;
  imageFormat: string | undefined;
  quality: number;
  minSize: number | undefined;
  maxAspectRatio: number | undefined;
  honorOptOut: boolean | undefined;
}

/** The image flags, as yargs declares them, with the library's defaults (checked as `RunOption`s where item-args.ts spreads them). */
export const IMAGE_FLAGS = {
  resize: {
    type: 'number',
    requiresArg: true,
    defaultDescription: 'none (kept as received)',
    describe: 'Resize each image to N px as --resize-mode says (small ones scaled up), re-encoded (jpg unless --image-format)',
  },
  // Its five choices are told in words, and checked by resolveOptions(): listed by yargs they push the default out of its line.
  'resize-mode': {
    type: 'string',
    requiresArg: true,
    default: DEFAULTS.resizeMode,
    describe:
      'How --resize fits: keep_ratio (shorter side N), keep_ratio_largest (longer side N), center_crop (N×N centre), border (N×N, padded white) or no',
  },
  'image-format': {
    type: 'string',
    choices: IMAGE_FORMATS as string[],
    defaultDescription: 'as received; jpg when resizing',
    describe: 'Re-encode each image in this format (jpg flattens transparency onto white)',
  },
  quality: { type: 'number', default: DEFAULTS.quality, describe: 'Quality of jpg and webp re-encoding, 1 to 100' },
  'min-size': {
    type: 'number',
    requiresArg: true,
    defaultDescription: 'none',
    describe: 'Skip (too-small) images whose smaller side is under N px',
  },
  'max-aspect-ratio': {
    type: 'number',
    requiresArg: true,
    defaultDescription: 'none',
    describe: 'Skip (aspect-ratio) images whose longer side over the shorter is more than R',
  },
  'honor-opt-out': {
    type: 'boolean',
    defaultDescription: 'on with --format webdataset',
    describe: 'Skip (opted-out) responses whose X-Robots-Tag says noai, noimageai, noindex or noimageindex (--no-honor-opt-out: keep)',
  },
} as const;

/** The {@link ImageOptions} that {@link IMAGE_FLAGS} set. */
export function imageOptions(argv: ImageArgv): { [K in keyof ImageOptions]-?: ImageOptions[K] } {
  return {
    resize: argv.resize,
    resizeMode: argv.resizeMode as ResizeMode,
    imageFormat: argv.imageFormat as ImageFormat | undefined,
    quality: argv.quality,
    minSize: argv.minSize,
    maxAspectRatio: argv.maxAspectRatio,
    honorOptOut: argv.honorOptOut,
  };
}
