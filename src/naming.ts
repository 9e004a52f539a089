/**
 * Naming: where each item is saved.
 *
 * Names come from three places, none of them trusted: the URL's last path
 * segment, the server's Content-Disposition header, and a NAME in the list.
 * Each is reduced to something every file system we may write to accepts
 * (Linux, macOS, Windows) and that cannot leave the output folder; the
 * {@link NameRegistry} then keeps names unique within a run, deterministically.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ValidationError } from './errors.js';

/** Max bytes of one file name (UTF-8). */
export const MAX_NAME_BYTES = 200;

/** Longest extension kept when a name is cut; anything longer is just part of the name. */
const MAX_EXT_BYTES = 32;
/**
 * Characters replaced by '_': C0/C1 controls, both separators, the characters
 * Windows forbids, bidi controls (which make 'x\u202Egpj.exe' display as
 * 'xexe.jpg'), and lone surrogates (which have no UTF-8 form).
 */
const UNSAFE_CHARS =
  /[\x00-\x1f\x7f-\x9f/\\<>:"|?*\u200e\u200f\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** Windows device names, which it reserves with any extension ('nul.jpg', 'com1.tar.gz'). */
const RESERVED = /^(?:con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(?:[. ].*)?$/i;
/** Windows drops trailing dots and spaces, so 'a.jpg.' and 'a.jpg' would be one file there. */
const TRAILING_DOTS_SPACES = /[.\s]+$/;

/** One path segment made safe: no '/', '\\', NUL or control chars (replace with '_'), no leading/trailing dots/spaces issues ('.'/'..' → '_'), Windows-reserved device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9, case-insensitive, with or without extension: 'nul.jpg' → '_nul.jpg' or similar), chars illegal on Windows (<>:"|?*) replaced, trailing dots/spaces trimmed, truncated to MAX_NAME_BYTES on a UTF-8 code-point boundary keeping the extension. Returns '' if nothing usable remains. */
export function sanitizeSegment(name: string): string {
  // NFC so that 'é' typed on macOS (NFD) and on Linux (NFC) is one name.
  let safe = name.normalize('NFC').replace(UNSAFE_CHARS, '_').trim();
  if (safe === '') return '';
  if (/^[.\s]+$/.test(safe)) return '_';
  safe = safe.replace(TRAILING_DOTS_SPACES, '');
  // No hidden files: a downloaded '.htaccess' in a served folder is an attack, and invisible to `ls`.
  if (safe.startsWith('.')) safe = `_${safe.slice(1)}`;
  if (RESERVED.test(safe)) safe = `_${safe}`;
  return fitName(safe, MAX_NAME_BYTES);
}

/** The file name for a URL: last path segment, percent-decoded ('/img/%E7%8C%AB.jpg' → '猫.jpg'; bad percent-encoding kept as-is), sanitised; if none usable (e.g. 'https://host/' or '/a/'), a name derived from the URL: `<host>-<8 hex of sha1(url)>` (no extension). */
export function nameFromUrl(url: URL): string {
  const last = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
  return sanitizeSegment(percentDecode(last)) || `${sanitizeSegment(url.hostname) || 'download'}-${sha1(url.href).slice(0, 8)}`;
}

/** filename from a Content-Disposition header: `filename*=UTF-8''...` (RFC 5987/8187, percent-decoded, charset UTF-8 or ISO-8859-1) preferred over `filename="..."` (quoted-string with backslash escapes) or token; only the basename is kept (strip any directory part, both / and \\); sanitised; undefined if absent/unusable. */
export function filenameFromContentDisposition(header: string | undefined | null): string | undefined {
  if (!header) return undefined;
  const params = dispositionParams(header);
  const extended = params.get('filename*');
  const plain = params.get('filename');
  const candidates = [
    extended === undefined ? undefined : decodeExtValue(extended),
    plain === undefined ? undefined : latin1AsUtf8(plain),
  ];
  for (const candidate of candidates) {
    if (candidate === undefined) continue;
    const name = sanitizeSegment(candidate.slice(Math.max(candidate.lastIndexOf('/'), candidate.lastIndexOf('\\')) + 1));
    if (name) return name;
  }
  return undefined;
}

/** A NAME given in a list, which may contain subfolders ('cats/a.jpg'), made into a safe relative POSIX path. Throws ValidationError code UNSAFE_NAME (details: source/line/url passed through from `context`) when it is absolute ('/x', 'C:\\x', '\\\\server\\x'), contains a '..' segment, NUL, or is empty after sanitising. Backslashes count as separators. Each segment is sanitised. */
export function safeRelativePath(name: string, context: { source?: string; line?: number; url?: string } = {}): string {
  const fail = (why: string): ValidationError => {
    const where = context.source !== undefined && context.line !== undefined ? `${context.source}:${context.line}: ` : '';
    const shown = name.length > 200 ? `${name.slice(0, 200)}…` : name;
    return new ValidationError('UNSAFE_NAME', `${where}unsafe name ${JSON.stringify(shown)}: ${why}`, {
      source: context.source,
      line: context.line,
      url: context.url,
    });
  };

  if (name.includes('\0')) throw fail('it contains a NUL byte');
  const posix = name.replaceAll('\\', '/');
  // A drive letter, even without a slash ('C:x' is relative to C:'s current folder), is absolute enough.
  if (posix.startsWith('/') || /^[a-z]:/i.test(posix)) throw fail('absolute paths are not allowed');
  const segments: string[] = [];
  for (const raw of posix.split('/')) {
    const trimmed = raw.trim();
    // Windows trims spaces, so ' .. ' is '..' there; refuse rather than guess what was meant.
    if (trimmed === '..') throw fail('".." would leave the output folder');
    const segment = trimmed === '.' ? '' : sanitizeSegment(raw);
    if (segment) segments.push(segment);
  }
  if (segments.length === 0) throw fail('nothing usable remains');
  return segments.join('/');
}

/** Absolute path of `relPath` inside `outDir`, asserting (path.resolve + startsWith(outDir + sep)) that it stays inside; throws ValidationError UNSAFE_NAME otherwise. */
export function resolveInside(outDir: string, relPath: string): string {
  const root = path.resolve(outDir);
  const full = path.resolve(root, relPath);
  const prefix = root.endsWith(path.sep) ? root : root + path.sep;
  if (!full.startsWith(prefix)) {
    throw new ValidationError('UNSAFE_NAME', `name ${JSON.stringify(relPath)} would be saved outside ${root}`);
  }
  return full;
}

/** Splits 'a/b/x.tar.jpg' → { stem: 'a/b/x.tar', ext: '.jpg' } (ext is the last extension of the last segment, '' if none; dotfiles have no ext). Accepts '\\' as a separator too, so absolute Windows paths split right. */
export function splitExt(relPath: string): { stem: string; ext: string } {
  const segmentStart = Math.max(relPath.lastIndexOf('/'), relPath.lastIndexOf('\\')) + 1;
  const dot = relPath.lastIndexOf('.');
  // A dot first in the segment makes a dotfile, a dot last makes no extension.
  if (dot <= segmentStart || dot === relPath.length - 1) return { stem: relPath, ext: '' };
  return { stem: relPath.slice(0, dot), ext: relPath.slice(dot) };
}

/**
 * Keeps names unique within one run. claim(relPath, url) returns relPath if free (or already claimed by the same url),
 * else a deterministic alternative `stem-<8 hex of sha1(url)>ext` (and if THAT is taken, append more hex). Comparison is
 * case-insensitive (NFC-normalised, lowercased) because macOS/Windows file systems are. Memory: store only a compact key
 * per claim (e.g. the lowercased path → short url hash string), since runs can have millions of items.
 *
 * The result depends only on the order of claims, so claim in list order for names that are the same on every run.
 */
export class NameRegistry {
  /** Folded path → first 16 hex of sha1(owner url): 64 bits tell URLs apart, at a fraction of a URL's memory. */
  readonly #owners = new Map<string, string>();

  /** The name `url` gets for `relPath`: relPath itself if free or already its own, else a hashed alternative. */
  claim(relPath: string, url: string): string {
    const digest = sha1(url);
    const owner = nameOwner(url);
    if (this.#take(relPath, owner)) return relPath;
    for (let length = 8; length <= digest.length; length++) {
      const alternative = hashedName(relPath, url, length);
      if (this.#take(alternative, owner)) return alternative;
    }
    // Only reachable if every hashed name was claimed on purpose by others; still terminate.
    for (let n = 2; ; n++) {
      const alternative = withSuffix(relPath, `-${digest}-${n}`);
      if (this.#take(alternative, owner)) return alternative;
    }
  }

  /** True when some URL has claimed `relPath` (compared case-insensitively). */
  has(relPath: string): boolean {
    return this.#owners.has(fold(relPath));
  }

  /** Claims `relPath` for `owner` if free; true if it is now (or already was) the owner's. */
  #take(relPath: string, owner: string): boolean {
    const key = fold(relPath);
    const current = this.#owners.get(key);
    if (current === undefined) this.#owners.set(key, owner);
    return current === undefined || current === owner;
  }
}

/** The key under which a name is claimed: file systems that fold case and normalisation see one file. */
export function foldName(relPath: string): string {
  return relPath.normalize('NFC').toLowerCase();
}

const fold = foldName;

/** Who claims a name: the first 16 hex of sha1(url), 64 bits that tell URLs apart. */
export function nameOwner(url: string): string {
  return sha1(url).slice(0, 16);
}

/**
 * The alternative {@link NameRegistry} gives `url` when `relPath` is taken:
 * `stem-<hexLength hex of sha1(url)>ext`. Exported so that a registry kept
 * elsewhere (the cluster's, in Redis) names collisions the same way.
 */
export function hashedName(relPath: string, url: string, hexLength: number): string {
  return withSuffix(relPath, `-${sha1(url).slice(0, hexLength)}`);
}

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/** `relPath` with `suffix` before the extension of its last segment, cutting the stem so the segment fits MAX_NAME_BYTES. */
function withSuffix(relPath: string, suffix: string): string {
  const slash = relPath.lastIndexOf('/') + 1;
  const dir = relPath.slice(0, slash);
  let { stem, ext } = splitExt(relPath.slice(slash));
  if (Buffer.byteLength(ext) > MAX_EXT_BYTES) [stem, ext] = [stem + ext, ''];
  const room = MAX_NAME_BYTES - Buffer.byteLength(suffix + ext);
  return dir + cutBytes(stem, room) + suffix + ext;
}

/** `name` cut to `max` UTF-8 bytes, keeping a short extension whole. */
function fitName(name: string, max: number): string {
  if (Buffer.byteLength(name) <= max) return name;
  let { stem, ext } = splitExt(name);
  if (Buffer.byteLength(ext) > MAX_EXT_BYTES) [stem, ext] = [name, ''];
  // The cut may expose trailing dots or spaces that Windows would drop.
  const cut = cutBytes(stem, max - Buffer.byteLength(ext)).replace(TRAILING_DOTS_SPACES, '');
  return (cut || '_') + ext;
}

/** The longest prefix of `text` within `max` UTF-8 bytes that ends on a code-point boundary. */
function cutBytes(text: string, max: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  let end = Math.max(max, 0);
  // bytes[end] is the first byte dropped; if it continues a character, drop that character whole.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}

/** Percent-decodes each run of %XX escapes on its own, so a bad run stays as written and the rest still decodes. */
function percentDecode(text: string): string {
  return text.replace(/(?:%[\da-f]{2})+/gi, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/**
 * Content-Disposition parameters by lowercased name (first occurrence wins).
 * Lenient on purpose: servers send unterminated quotes and junk between parameters.
 */
function dispositionParams(header: string): Map<string, string> {
  const params = new Map<string, string>();
  // Each match consumes at least one character, so the loop ends.
  const param = /\s*([^=;\s]*)\s*(?:=\s*("(?:[^"\\]|\\[\s\S])*"|[^;]*))?[^;]*;?/y;
  while (param.lastIndex < header.length) {
    const match = param.exec(header);
    if (!match) break;
    const name = match[1]!.toLowerCase();
    const value = match[2];
    if (!name || value === undefined || params.has(name)) continue;
    params.set(name, unquote(value.trim()));
  }
  return params;
}

/**
 * A quoted-string's content. Only `\"` and `\\` are escapes: servers send
 * Windows paths unescaped ("C:\x\y.jpg"), and dropping those backslashes would
 * glue the folders onto the file name.
 */
function unquote(value: string): string {
  if (!value.startsWith('"')) return value;
  const end = value.length > 1 && value.endsWith('"') ? -1 : undefined;
  return value.slice(1, end).replace(/\\(["\\])/g, '$1');
}

/** The text of an RFC 8187 `charset'lang'pct-encoded` value, or undefined for charsets we cannot decode. */
function decodeExtValue(value: string): string | undefined {
  const match = /^([^']*)'[^']*'(.*)$/.exec(value);
  if (!match) return undefined;
  const charset = match[1]!.toLowerCase();
  const encoded = match[2]!;
  if (charset === 'utf-8' || charset === 'utf8') {
    try {
      return decodeURIComponent(encoded);
    } catch {
      return undefined;
    }
  }
  if (charset === 'iso-8859-1' || charset === 'latin1' || charset === 'us-ascii') {
    return encoded.replace(/%([\da-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
  return undefined;
}

/**
 * HTTP clients hand header values over as latin1, so a raw UTF-8 filename
 * ('猫.jpg') arrives as 'çŒ«.jpg'. Decode it back when its bytes are valid
 * UTF-8, as browsers do.
 */
function latin1AsUtf8(value: string): string {
  if (!/[\x80-\xff]/.test(value) || /[^\x00-\xff]/.test(value)) return value;
  const bytes = Buffer.from(value, 'latin1');
  return isUtf8(bytes) ? bytes.toString('utf8') : value;
}
