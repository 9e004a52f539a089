/**
 * Reading the URL list: lines in, {@link ListItem}s out, one at a time.
 *
 * The reader streams. Items are yielded as their lines arrive, so downloading
 * starts while a long list is still being read, and no line is held beyond
 * {@link MAX_LINE_BYTES}: a runaway line (a binary file, a 1 GB line with no
 * newline) costs at most that much memory and is reported, not fatal.
 * Validation of the URL itself happens later, in {@link parseItemUrl}, so one
 * bad line becomes one failed item instead of stopping the run.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { ValidationError, type ErrorCode } from '../errors.js';
import type { ListItem } from './source.js';

// Defined beside the source seam, which every kind of source feeds; the text list is where it is known by name.
export type { ListItem } from './source.js';

/** Longest line (in bytes, without its line ending) the reader accepts. */
export const MAX_LINE_BYTES = 64 * 1024;

/** How many characters of an offending text an error message quotes. */
const QUOTE_CHARS = 200;
/** How much of a too-long line is decoded: enough to quote it, not 64 KiB of text per bad line. */
const TOO_LONG_PREVIEW_BYTES = 1024;
const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);
/** C0 controls except tab, and DEL: no URL or name a person typed contains them; a binary file does. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
/** `scheme:` + any slashes + userinfo + `@`. Slashes are optional and may be backslashes because the URL parser accepts `http:u:p@h` and `http:\\u:p@h`. */
const CREDENTIALS = /^([a-z][a-z\d+.-]*:[/\\]*)[^/\\?#]*@/i;

/** Lines of a byte stream as ListItems, streaming, with line numbers counted over ALL lines (blank/comment included). */
export async function* readList(input: AsyncIterable<Uint8Array | string>, source: string): AsyncGenerator<ListItem> {
  for await (const items of readListBatches(input, source)) yield* items;
}

/**
 * {@link readList} a chunk of input at a time: the items of each chunk's
 * complete lines in one array, as soon as the chunk arrives. For consumers
 * that plan many items at once (a million-line dry run spent a tenth of its
 * time handing items over one by one).
 */
export async function* readListBatches(input: AsyncIterable<Uint8Array | string>, source: string): AsyncGenerator<ListItem[]> {
  // The start of a line that spans chunks; never more than MAX_LINE_BYTES + 1 bytes (+1 for a CR).
  let held: Buffer[] = [];
  let heldBytes = 0;
  let overflow = false;
  let line = 0;

  const hold = (bytes: Buffer, copy: boolean): void => {
    if (overflow) return;
    const room = MAX_LINE_BYTES + 1 - heldBytes;
    if (bytes.length > room) {
      overflow = true;
      bytes = bytes.subarray(0, room);
    }
    if (bytes.length === 0) return;
    // A copy, so that a short line tail does not keep its whole chunk alive.
    held.push(copy ? Buffer.from(bytes) : bytes);
    heldBytes += bytes.length;
  };

  const endLine = (tail: Buffer): ListItem | undefined => {
    line++;
    let bytes = tail;
    // Most lines sit inside one chunk: parse them in place, without copying.
    if (heldBytes > 0 || overflow) {
      hold(tail, false);
      bytes = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes);
    }
    const tooLong = overflow;
    held = [];
    heldBytes = 0;
    overflow = false;
    return parseLine(bytes, tooLong, source, line);
  };

  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    const items: ListItem[] = [];
    for (let lf = bytes.indexOf(LF); lf !== -1; lf = bytes.indexOf(LF, start)) {
      const item = endLine(bytes.subarray(start, lf));
      start = lf + 1;
      if (item) items.push(item);
    }
    hold(bytes.subarray(start), true);
    if (items.length > 0) yield items;
  }
  if (heldBytes > 0 || overflow) {
    const item = endLine(EMPTY);
    if (item) yield [item];
  }
}

/** One line's bytes (without LF) as an item, or undefined for a blank or comment line. */
function parseLine(bytes: Buffer, tooLong: boolean, source: string, line: number): ListItem | undefined {
  if (bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, -1);
  if (line === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
  if (bytes.length > MAX_LINE_BYTES) tooLong = true;
  if (tooLong) bytes = bytes.subarray(0, TOO_LONG_PREVIEW_BYTES);

  const text = bytes.toString('utf8');
  // U+FFFD may be written on purpose; only a failed decode makes the line binary.
  const binary = !tooLong && (CONTROL.test(text) || (text.includes('\uFFFD') && !isUtf8(bytes)));
  const trimmed = text.trim();
  // A comment stays a comment however long or strange it is.
  if (trimmed === '' || trimmed.startsWith('#')) return undefined;

  const space = /\s/.exec(trimmed)?.index ?? -1;
  const item: ListItem = { url: space === -1 ? trimmed : trimmed.slice(0, space), source, line };
  // The NAME of a truncated line would be a wrong name, so a too-long item has none.
  if (space !== -1 && !tooLong) item.name = trimmed.slice(space).trimStart();
  if (tooLong) item.problem = 'too-long';
  else if (binary) item.problem = 'binary';
  return item;
}

/** Items from positional arguments (each argument is one URL, no NAME). */
export function itemsFromArgs(urls: readonly string[]): ListItem[] {
  return urls.map((arg, index) => {
    const item: ListItem = { url: arg.trim(), source: 'argv', line: index + 1 };
    // The same limits as a list line, so an argument fails the same way.
    if (Buffer.byteLength(item.url) > MAX_LINE_BYTES) item.problem = 'too-long';
    else if (CONTROL.test(item.url)) item.problem = 'binary';
    return item;
  });
}

/** Parsed and validated URL of an item: throws ValidationError with code INVALID_URL (not an absolute URL, too long, binary) or UNSUPPORTED_SCHEME (anything but http:/https:), message naming `source:line` and the (redacted, truncated to ~200 chars) offending text. */
export function parseItemUrl(item: ListItem): URL {
  const shown = preview(item.url);
  const fail = (code: ErrorCode, message: string): ValidationError =>
    new ValidationError(code, `${item.source}:${item.line}: ${message}`, {
      source: item.source,
      line: item.line,
      url: shown,
    });

  if (item.problem === 'too-long') throw fail('INVALID_URL', `line is longer than ${MAX_LINE_BYTES} bytes`);
  if (item.problem === 'binary') {
    throw fail('INVALID_URL', `line is not text (invalid UTF-8 or control characters): ${JSON.stringify(shown)}`);
  }
  if (item.problem === 'bad-row') throw fail('INVALID_URL', item.reason ?? 'row has no usable URL');
  let url: URL;
  try {
    url = new URL(item.url);
  } catch {
    // The parser's own error ("Invalid URL") says nothing the message does not.
    throw fail('INVALID_URL', `not a URL: ${JSON.stringify(shown)} (expected an absolute http:// or https:// URL)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw fail('UNSUPPORTED_SCHEME', `unsupported scheme "${url.protocol}" in ${shown} (only http and https are fetched)`);
  }
  return url;
}

/** URL string with `user:pass@` credentials replaced by `***@` for logs/manifest. Also works on text that does not parse as a URL. */
export function redactUrl(url: string | URL): string {
  const text = typeof url === 'string' ? url : url.href;
  return text.includes('@') ? text.replace(CREDENTIALS, '$1***@') : text;
}

/** Redacted and cut to QUOTE_CHARS, for quoting in a message. */
function preview(text: string): string {
  const redacted = redactUrl(text);
  if (redacted.length <= QUOTE_CHARS) return redacted;
  let end = QUOTE_CHARS;
  // Do not leave half a surrogate pair at the cut.
  const last = redacted.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${redacted.slice(0, end)}…`;
}
