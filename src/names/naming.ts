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
import { ValidationError } from '../errors.js';
import { splitExt } from './ext.js';
import { fingerprint, FingerprintMap, type Fingerprint } from './fingerprints.js';

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
/** A name every step of {@link sanitizeSegment} but the reserved-name check leaves as it is: ASCII letters, digits, '_', '-' and inner dots. */
const PLAIN_NAME = /^[\w-](?:[\w.-]*[\w-])?$/;
/** Windows drops trailing dots and spaces, so 'a.jpg.' and 'a.jpg' would be one file there. */
const TRAILING_DOTS_SPACES = /[.\s]+$/;

/** One path segment made safe: no '/', '\\', NUL or control chars (replace with '_'), no leading/trailing dots/spaces issues ('.'/'..' → '_'), Windows-reserved device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9, case-insensitive, with or without extension: 'nul.jpg' → '_nul.jpg' or similar), chars illegal on Windows (<>:"|?*) replaced, trailing dots/spaces trimmed, truncated to MAX_NAME_BYTES on a UTF-8 code-point boundary keeping the extension. Returns '' if nothing usable remains. */
export function sanitizeSegment(name: string): string {
  // Most names are already safe: checked at once, they cost a twentieth of the steps below (million-line dry run profile).
  if (name.length <= MAX_NAME_BYTES && PLAIN_NAME.test(name) && !RESERVED.test(name)) return name;
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
  const candidates = [extended === undefined ? undefined : decodeExtValue(extended), plain === undefined ? undefined : latin1AsUtf8(plain)];
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
  if (outDir !== lastOut) {
    lastRoot = path.resolve(outDir);
    lastPrefix = lastRoot.endsWith(path.sep) ? lastRoot : lastRoot + path.sep;
    lastOut = outDir;
  }
  // A plain relative path joins as it is: resolving every name cost a tenth of a million-line dry run.
  if (isPlain(relPath)) return lastPrefix + relPath;
  const full = path.resolve(lastRoot, relPath);
  if (!full.startsWith(lastPrefix)) {
    throw new ValidationError('UNSAFE_NAME', `name ${JSON.stringify(relPath)} would be saved outside ${lastRoot}`);
  }
  return full;
}

let lastOut: string | undefined;
let lastRoot = '';
let lastPrefix = '';

/** True for a POSIX relative path that resolving would leave as it is: no empty segment, none that starts with a dot, no backslash. */
function isPlain(relPath: string): boolean {
  return (
    path.sep === '/' &&
    relPath !== '' &&
    relPath.charCodeAt(0) !== 0x2f &&
    relPath.charCodeAt(0) !== 0x2e &&
    !relPath.endsWith('/') &&
    !relPath.includes('/.') &&
    !relPath.includes('//') &&
    !relPath.includes('\\')
  );
}

/** Files a folder holds in the sharded layout. */
export const SHARD_FILES = 10_000;

/**
 * The sharded layout's name for the item at `position` (counted from 0 over
 * the whole list): `00000/000000123.jpg`, 10,000 files a folder, positions
 * padded to 9 digits and folders to 5 (longer past a billion items). The
 * extension is the URL's when it looks like one (letters and digits, at most
 * 5); the bytes correct it once they arrive. A WebDataset sample is named the
 * same way, as a member of its tar (`perFolder` its shard size, `suffix` `.tar`).
 */
export function shardedPath(position: number, url: URL, perFolder = SHARD_FILES, suffix = ''): string {
  const folder = String(Math.floor(position / perFolder)).padStart(5, '0') + suffix;
  const last = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
  const ext = /\.[A-Za-z0-9]{1,5}$/.exec(last)?.[0].toLowerCase() ?? '';
  return `${folder}/${String(position).padStart(9, '0')}${ext}`;
}

/** Where {@link NameRegistry.find} got to: the name `url` holds in a chain, or the first free one. */
export interface HeldName {
  name: string;
  /** True when `url` already holds `name`. */
  own: boolean;
  /** The folded name's fingerprint, so that {@link NameRegistry.take} need not compute it again. */
  key: Fingerprint;
  /** The URL's fingerprint. */
  owner: Fingerprint;
}

/**
 * Keeps names unique within one run, deterministically. A name wanted by a
 * URL is its own if free (or already the URL's); else the URL's alternatives
 * are tried in turn, `stem-<8 hex of sha1(url)>ext`, then 9 hex, and so on.
 * Names are compared as file systems that fold names would (NFC, lowercase),
 * so `X.jpg` and `x.jpg` are one name.
 *
 * Memory: one 12-byte entry a name (56 bits of the folded name's fingerprint
 * and 40 of its owner URL's), about 15 bytes with the table's free slots,
 * whatever the length of the name or the URL. A sha1 is computed only for a
 * name that collides. Two names alike in 56 bits (one chance in 2^56 a pair)
 * just make the later one take an alternative; a URL's 40 bits are compared
 * only with those of URLs that wanted the same name.
 *
 * The result depends only on the order of claims, so claim in list order for names that are the same on every run.
 */
export class NameRegistry {
  readonly #owners = new FingerprintMap();
  readonly #current: Fingerprint = { hi: 0, lo: 0 };
  readonly #held: HeldName = { name: '', own: false, key: { hi: 0, lo: 0 }, owner: { hi: 0, lo: 0 } };

  /** The name `url` gets for `relPath`: relPath itself if free or already its own, else a hashed alternative. */
  claim(relPath: string, url: string): string {
    const held = this.find(relPath, url);
    return held.own ? held.name : this.take(held);
  }

  /** Claims the name {@link find} gave as free for its URL; returns the name. */
  take(held: HeldName): string {
    this.#owners.set(held.key, held.owner);
    return held.name;
  }

  /**
   * Without claiming anything: the name of `relPath`'s chain (relPath, then
   * its alternatives for `url`) that `url` already holds, or else the first
   * free one, which {@link claim} would give it. A URL that holds a name in
   * the chain of the name its URL gives was planned before. `owner` is
   * `url`'s fingerprint, when the caller has it already. The answer is only
   * good until the next call.
   */
  find(relPath: string, url: string, owner?: Fingerprint): HeldName {
    // One answer object, reused: planning asks a million times, and each answer is taken before the next question.
    const held = this.#held;
    held.name = relPath;
    held.own = false;
    if (owner) {
      held.owner.hi = owner.hi;
      held.owner.lo = owner.lo;
    } else fingerprint(url, held.owner);
    const current = this.#current;
    let digest: string | undefined;
    for (let length = 7; ; length++) {
      if (!this.#owners.get(fingerprint(fold(held.name), held.key), current)) return held;
      if (FingerprintMap.same(current, held.owner)) {
        held.own = true;
        return held;
      }
      // Only a name that collides pays for a sha1.
      digest ??= sha1(url);
      held.name =
        length < digest.length
          ? withSuffix(relPath, `-${digest.slice(0, length + 1)}`)
          : // Only reachable if every hashed name was claimed on purpose by others; still terminate.
            withSuffix(relPath, `-${digest}-${length - digest.length + 2}`);
    }
  }

  /** True when some URL has claimed `relPath` (compared case-insensitively). */
  has(relPath: string): boolean {
    return this.#owners.get(fingerprint(fold(relPath)), this.#current);
  }

  /** Names claimed. */
  get size(): number {
    return this.#owners.size;
  }

  /** Bytes of the typed arrays holding the names. */
  get byteLength(): number {
    return this.#owners.byteLength;
  }
}

/** The key under which a name is claimed: file systems that fold case and normalisation see one file. */
export function foldName(relPath: string): string {
  // ASCII needs no normalising, and asking ICU costs more than the test.
  return NON_ASCII.test(relPath) ? relPath.normalize('NFC').toLowerCase() : relPath.toLowerCase();
}

const NON_ASCII = /[^\x00-\x7f]/;
const fold = foldName;

/** Who claims a name, for a registry kept elsewhere (the cluster's): the first 16 hex of sha1(url), 64 bits that tell URLs apart. */
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
  if (!text.includes('%')) return text;
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
