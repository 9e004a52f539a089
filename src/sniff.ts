/**
 * Sniffing: what the first bytes of a body say it is. An HTML error page
 * served with status 200 at `photo.jpg` must not be saved as a photo, and a
 * PNG served at `x.jpg` should be saved as `x.png`.
 *
 * Binary formats are recognised by `file-type` (imported on the first sniff:
 * it costs ~40 ms to load, which a run that never sniffs should not pay);
 * SVG, which is text, by its `<svg` root element.
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

/** The image type of `head` (a body's first {@link SNIFF_BYTES} or fewer), or undefined when it is not an image. */
export async function sniffImage(head: Uint8Array): Promise<Sniffed | undefined> {
  if (looksLikeSvg(head)) return { mime: 'image/svg+xml', ext: '.svg' };
  fileType ??= import('file-type');
  const found = await (await fileType).fileTypeFromBuffer(head);
  if (!found || !found.mime.startsWith('image/')) return undefined;
  // An animated PNG is still a PNG to every viewer; '.apng' would only confuse.
  if (found.ext === 'apng') return { mime: 'image/png', ext: '.png' };
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
