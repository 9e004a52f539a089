/**
 * Sniffing: what the first bytes of a body say it is. An HTML error page
 * served with status 200 at `photo.jpg` must not be saved as a photo, and a
 * PNG served at `x.jpg` should be saved as `x.png`.
 *
 * The formats nearly every image on the web is in (JPEG, PNG, GIF, WebP,
 * BMP) are recognised here by their magic bytes, synchronously, with the
 * same verdict `file-type` would give; everything else goes to `file-type`,
 * imported on the first body these checks cannot decide (it costs ~40 ms to
 * load, and its tokenizer a few promises per call). SVG, which is text, is
 * recognised by its `<svg` root element.
 */

/** Bytes of a body's start that are enough to tell its type. */
export const SNIFF_BYTES = 4100;

/** What a body's first bytes are. */
export interface Sniffed {
  /** e.g. `image/png`. */
  mime: string;
  /** The extension files of this type are saved with, dot included: `.png`. */
  ext: string;
}

type FileTypeModule = typeof import('file-type');
let fileType: Promise<FileTypeModule> | undefined;

/** Extensions that name the same type as the sniffed one, so `a.jpeg` holding a JPEG keeps its name. */
const SAME_TYPE: Readonly<Record<string, readonly string[]>> = {
  '.jpg': ['.jpg', '.jpeg', '.jpe', '.jfif'],
  '.tif': ['.tif', '.tiff'],
  '.png': ['.png', '.apng'],
  '.svg': ['.svg', '.svgz'],
};

/**
 * The image type of `head` (a body's first {@link SNIFF_BYTES} or fewer), or
 * undefined when it is not an image: at once when the magic bytes or the
 * SVG check decide, through `file-type` otherwise.
 */
export function sniffImage(head: Uint8Array): Sniffed | Promise<Sniffed | undefined> {
  return magicImage(head) ?? (looksLikeSvg(head) ? SVG : sniffWithFileType(head));
}

const SVG: Sniffed = { mime: 'image/svg+xml', ext: '.svg' };
const JPEG: Sniffed = { mime: 'image/jpeg', ext: '.jpg' };
const PNG: Sniffed = { mime: 'image/png', ext: '.png' };
const GIF: Sniffed = { mime: 'image/gif', ext: '.gif' };
const WEBP: Sniffed = { mime: 'image/webp', ext: '.webp' };
const BMP: Sniffed = { mime: 'image/bmp', ext: '.bmp' };

/** The formats told by their magic bytes, whose headers the probe in inspect.ts also reads. */
export type MagicKind = 'jpeg' | 'png' | 'gif' | 'webp' | 'bmp';

const BY_KIND: Readonly<Record<MagicKind, Sniffed>> = { jpeg: JPEG, png: PNG, gif: GIF, webp: WEBP, bmp: BMP };

/** The bytes {@link magicKind} needs at most to decide: a PNG's signature and IHDR. */
export const MAGIC_BYTES = 16;

/** The type {@link magicKind} tells, as a sniffing verdict. */
export function magicImage(head: Uint8Array): Sniffed | undefined {
  const kind = magicKind(head);
  return kind === undefined ? undefined : BY_KIND[kind];
}

/**
 * The one table of magic bytes, for sniffing and probing alike: the common
 * image formats, each only where `file-type` 21 would say the same (its
 * checks, in its order): BMP is `BM` (its first check); JPEG is FF D8 FF
 * unless the next byte is F7 (JPEG-LS); PNG is the signature followed by a
 * 13-byte IHDR chunk (file-type tells PNG from APNG further on, and an APNG
 * is saved as a PNG here anyway); GIF is `GIF`; WebP is `RIFF` with `WEBP`
 * at 8. Undefined when undecided.
 */
export function magicKind(head: Uint8Array): MagicKind | undefined {
  const b0 = head[0];
  if (b0 === 0x42) return head[1] === 0x4d ? 'bmp' : undefined;
  if (b0 === 0xff) return head[1] === 0xd8 && head[2] === 0xff && head.length >= 4 && head[3] !== 0xf7 ? 'jpeg' : undefined;
  if (b0 === 0x89) return head.length >= 16 && matches(head, PNG_SIGNATURE, 0) && matches(head, PNG_IHDR, 8) ? 'png' : undefined;
  if (b0 === 0x47) return head[1] === 0x49 && head[2] === 0x46 ? 'gif' : undefined;
  if (b0 === 0x52) return head.length >= 12 && matches(head, RIFF, 0) && matches(head, WEBP_TAG, 8) ? 'webp' : undefined;
  return undefined;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Length 13, type `IHDR`: the chunk every PNG starts with. */
const PNG_IHDR = [0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52];
const RIFF = [0x52, 0x49, 0x46, 0x46];
const WEBP_TAG = [0x57, 0x45, 0x42, 0x50];

function matches(head: Uint8Array, bytes: readonly number[], at: number): boolean {
  for (let i = 0; i < bytes.length; i++) if (head[at + i] !== bytes[i]) return false;
  return true;
}

async function sniffWithFileType(head: Uint8Array): Promise<Sniffed | undefined> {
  fileType ??= import('file-type');
  const found = await (await fileType).fileTypeFromBuffer(head);
  if (!found || !found.mime.startsWith('image/')) return undefined;
  // An animated PNG is still a PNG to every viewer; '.apng' would only confuse.
  if (found.ext === 'apng') return PNG;
  return { mime: found.mime, ext: `.${found.ext}` };
}

/** True when `ext` (dot included, any case) is a usual extension for `sniffed`. */
export function extensionFits(ext: string, sniffed: Sniffed): boolean {
  const lower = ext.toLowerCase();
  return (SAME_TYPE[sniffed.ext] ?? [sniffed.ext]).includes(lower);
}

/**
 * True when `head` is text whose root element is `<svg`: after an optional
 * BOM, XML declaration, comments, processing instructions and DOCTYPE. An HTML
 * page that merely contains an inline `<svg>` does not count.
 */
export function looksLikeSvg(head: Uint8Array): boolean {
  // Every binary image starts with something other than '<': decide that before decoding 4 kB as
  // text, which was a tenth of imgdl's CPU time on 2000 small JPEGs.
  if (!startsWithMarkup(head)) return false;
  let text = Buffer.from(head.buffer, head.byteOffset, head.byteLength).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let at = 0;
  for (;;) {
    while (at < text.length && /\s/.test(text[at]!)) at++;
    if (text.startsWith('<?', at)) at = skipPast(text, '?>', at);
    else if (text.startsWith('<!--', at)) at = skipPast(text, '-->', at);
    else if (/^<!doctype/i.test(text.slice(at, at + 9))) at = skipDoctype(text, at);
    else break;
    if (at === -1) return false;
  }
  return /^<svg[\s>/]/.test(text.slice(at, at + 5));
}

/** True when `head`, after an optional UTF-8 BOM and ASCII whitespace, starts with `<`. */
function startsWithMarkup(head: Uint8Array): boolean {
  let at = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  while (at < head.length && (head[at] === 0x20 || head[at] === 0x09 || head[at] === 0x0a || head[at] === 0x0d)) at++;
  return head[at] === 0x3c;
}

function skipPast(text: string, end: string, from: number): number {
  const found = text.indexOf(end, from);
  return found === -1 ? -1 : found + end.length;
}

/** Past a DOCTYPE, internal subset (`[ ... ]`) included. */
function skipDoctype(text: string, from: number): number {
  const bracket = text.indexOf('[', from);
  const close = text.indexOf('>', from);
  if (close === -1) return -1;
  if (bracket !== -1 && bracket < close) {
    const subsetEnd = text.indexOf(']', bracket);
    return subsetEnd === -1 ? -1 : skipPast(text, '>', subsetEnd);
  }
  return close + 1;
}
