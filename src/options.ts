/**
 * The one place for options: every field with its default, and
 * {@link resolveOptions} which validates them. The CLI, `bench`, worker
 * threads and tests all pass through here, so a bad value is refused the same
 * way everywhere, with the option's name and the value received.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { OptionError } from './errors.js';
import type { Progress } from './run/progress.js';

export { OptionError };

/** How tasks are scheduled. The per-item pipeline is the same in every mode. */
export type Mode = 'sequential' | 'concurrent' | 'workers';

/** What to do when an item's file already exists in the output folder. */
export type OnExists = 'skip' | 'overwrite' | 'rename';

/** How files are laid out in the output folder. */
export type Layout = 'flat' | 'sharded';

/** One slice of a list: the items whose URL fingerprint modulo `count` is `index`. */
export interface Shard {
  /** Which slice, from 0 to `count - 1`. */
  index: number;
  /** How many slices the list is cut into. */
  count: number;
}

/** Every mode imgdl can run in. */
export const MODES: readonly Mode[] = ['sequential', 'concurrent', 'workers'];
/** Digest algorithms `hash` accepts. */
export type HashAlgorithm = 'sha256' | 'sha1' | 'md5';
/** Every `hash` algorithm. */
export const HASHES: readonly HashAlgorithm[] = ['sha256', 'sha1', 'md5'];
/** Every `onExists` policy. */
export const ON_EXISTS: readonly OnExists[] = ['skip', 'overwrite', 'rename'];
/** Every layout. */
export const LAYOUTS: readonly Layout[] = ['flat', 'sharded'];

/** Options of {@link download}. The CLI flag of each is given in brackets. */
export interface Options {
  /** Output folder, created if missing [`-o, --out`]. Default: the current folder. */
  out?: string | undefined;
  /** Scheduling mode [`-m, --mode`]. Default `'concurrent'`. `'sequential'` forces one request in flight. */
  mode?: Mode | undefined;
  /**
   * Worker threads in `'workers'` mode [`-t, --threads`]. Default `os.availableParallelism()`.
   * `concurrency` still bounds the downloads in flight across all of them.
   */
  threads?: number | undefined;
  /** Digest of each saved file, computed as it streams, recorded as `digest` [`--hash`]. Default none. */
  hash?: HashAlgorithm | undefined;
  /**
   * Skip saving a file whose digest matches one already saved this run, recording
   * which file it duplicates [`--dedupe`]. Default false. Hashes with sha256 when `hash` is not set.
   */
  dedupe?: boolean | undefined;
  /** Downloads in flight at once [`-c, --concurrency`]. Default 16. Ignored (1) in sequential mode. */
  concurrency?: number | undefined;
  /**
   * Most requests in flight to one host (`url.host`: name and port) [`--per-host`]. Default: no cap
   * beyond `concurrency`. A host at its cap holds no slot: the others' items take them.
   */
  perHost?: number | undefined;
  /**
   * Most requests started per second to one host, spaced evenly [`--rate`]: a number per second, or
   * `'N/s'`, `'N/m'`, `'N/h'`, `'N/d'`. Default: no limit.
   */
  rate?: number | string | undefined;
  /** Existing files [`--on-exists`]. Default `'skip'`, so a rerun downloads nothing new. */
  onExists?: OnExists | undefined;
  /**
   * Where files go [`--layout`]. Default `'flat'`: each is named from its URL (or the list's NAME, or
   * the server's Content-Disposition). `'sharded'`: each is named by its position in the list,
   * counted from 0, `00000/000000123.jpg`, 10,000 files a folder, with the extension its bytes call
   * for; NAMEs in the list and names from the server are ignored, and no names are remembered.
   */
  layout?: Layout | undefined;
  /**
   * Takes one slice of the list [`--shard K/N`]: the items whose URL fingerprint modulo N is K, so that N
   * processes or machines given the same list each take their own items, with no coordinator and no
   * overlap. K counts from 0 (0 ≤ K < N), as Kubernetes' `JOB_COMPLETION_INDEX` and Slurm's
   * `SLURM_ARRAY_TASK_ID` (with `--array=0-N-1`) do. `'K/N'` or `{ index, count }`. Default: the whole list.
   */
  shard?: string | Shard | undefined;
  /** JSON Lines file written with one record per item as it finishes [`--manifest`]. Default: none. */
  manifest?: string | undefined;
  /** Connect, headers and body-idle timeout, each separately, in ms [`--timeout`]. Default 30000. */
  timeoutMs?: number | undefined;
  /** Redirects followed per item [`--max-redirects`]. Default 10. */
  maxRedirects?: number | undefined;
  /** Extra request headers, name to value [`-H, --header "Name: value"`]. Default none. */
  headers?: Record<string, string> | undefined;
  /** User-Agent header [`-A, --user-agent`]. Default `imgdl/<version>`. */
  userAgent?: string | undefined;
  /** Referer header sent with every request [`--referer`]. Default none. */
  referer?: string | undefined;
  /** Cookie header sent with every request, e.g. `'a=b; c=d'` [`--cookie`]. Default none. */
  cookie?: string | undefined;
  /**
   * Send the credentials (`Authorization`, `Cookie` and `Proxy-Authorization`
   * headers, and `user:pass@` in the URL) to every redirect target, other
   * origins included [`--location-trusted`, curl's name]. Default false: a
   * redirect to another scheme, host or port gets none of them, since whoever
   * runs that origin could read them.
   */
  locationTrusted?: boolean | undefined;
  /**
   * HTTP(S) proxy URL for every request [`--proxy`]: https targets go
   * through a CONNECT tunnel, http ones as absolute-URL requests; credentials
   * as `http://user:pass@host:port` (percent-encoded) are sent to the proxy
   * as Proxy-Authorization. Default: `HTTPS_PROXY`, `HTTP_PROXY` and
   * `NO_PROXY` (or their lower-case forms) from the environment; `false`
   * ignores the environment [`--no-proxy`].
   */
  proxy?: string | false | undefined;
  /** Skip TLS certificate verification [`-k, --insecure`]. Default false. Logged as a warning when on. */
  insecure?: boolean | undefined;
  /** PEM file of extra CA certificates trusted besides Node's bundled ones [`--cacert`]. Default none. */
  cacert?: string | undefined;
  /**
   * Called with a fresh {@link Progress} snapshot whenever the run's figures
   * change: an item read, started or finished, or body bytes received.
   * Called synchronously on the hot path, so keep it cheap; an exception it
   * throws is ignored, since a display must not break a download. Default none.
   */
  onProgress?: ((progress: Progress) => void) | undefined;
  /** Logger (pino). Default: a silent one. */
  logger?: Logger | undefined;
  /** Stops the run: no new items start, items in flight are aborted. Default none. */
  signal?: AbortSignal | undefined;
  /** Tries after the first for a retryable failure [`--retries`]. Default 3. */
  retries?: number | undefined;
  /** Base of the exponential backoff with full jitter, in ms, capped at 30 s [`--retry-delay`]. Default 500. */
  retryDelayMs?: number | undefined;
  /** Longest `Retry-After` (429, 503) obeyed, in ms; a longer one fails the item [`--max-retry-after`, in seconds]. Default 60000. */
  maxRetryAfterMs?: number | undefined;
  /** Largest body saved, in bytes or with a `k`/`M`/`G` suffix (1024-based); 0 for no limit [`--max-size`]. Default `'1G'`. */
  maxSize?: number | string | undefined;
  /** Save any body, not only images, and keep the listed extension [`--any-type`]. Default false. */
  anyType?: boolean | undefined;
  /**
   * Stops the run gently: no new item starts; items in flight get `graceMs`
   * to finish, then are aborted with their part files kept for resuming.
   * Default none.
   */
  stopSignal?: AbortSignal | undefined;
  /** Time items in flight get to finish once `stopSignal` aborts, in ms [`--grace`]. Default 5000. */
  graceMs?: number | undefined;
}

/** {@link Options} with every default applied and every value checked. */
export interface ResolvedOptions {
  out: string;
  mode: Mode;
  concurrency: number;
  threads: number;
  hash: HashAlgorithm | undefined;
  dedupe: boolean;
  perHost: number | undefined;
  /** Requests per second to one host. */
  rate: number | undefined;
  onExists: OnExists;
  layout: Layout;
  shard: Shard | undefined;
  manifest: string | undefined;
  timeoutMs: number;
  maxRedirects: number;
  /** Lower-case names; `referer` and `cookie` already folded in. */
  headers: Record<string, string>;
  locationTrusted: boolean;
  userAgent: string;
  proxy: string | false | undefined;
  insecure: boolean;
  /** The PEM text of `cacert`, read once here. */
  ca: string | undefined;
  onProgress: ((progress: Progress) => void) | undefined;
  logger: Logger | undefined;
  signal: AbortSignal | undefined;
  retries: number;
  retryDelayMs: number;
  maxRetryAfterMs: number;
  /** Bytes; undefined for no limit. */
  maxSize: number | undefined;
  anyType: boolean;
  stopSignal: AbortSignal | undefined;
  graceMs: number;
}

/** The version in package.json (it names the User-Agent and `--version`). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;


function integer(option: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionError(option, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) throw new OptionError(option, value, `one of ${allowed.join(', ')}`);
  return value as T;
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Bytes from a size: a number, or text like `500`, `64k`, `10M`, `1.5G`
 * (1024-based, case-insensitive, optional trailing `B`/`iB`). Throws
 * {@link OptionError} for anything else.
 */
export function parseSize(option: string, value: number | string): number {
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(value) : null;
  const bytes = typeof value === 'number' ? value : match ? Math.floor(Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new OptionError(option, value, 'a size in bytes, optionally with a k, M or G suffix (0 for no limit)');
  }
  return bytes;
}

const RATE_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * A request rate, per second, from a number (per second) or `'N/U'` with U one of s, m, h, d, as
 * curl's `--rate` writes it. A bare `'N'` is refused: curl reads it per hour, and guessing either way
 * would be wrong for someone. Throws {@link OptionError} otherwise.
 */
function parseRate(value: number | string): number {
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*\/\s*([smhd])\s*$/i.exec(value) : null;
  const perSecond = typeof value === 'number' ? value : match ? Number(match[1]) / RATE_UNITS[match[2]!.toLowerCase()]! : NaN;
  if (!Number.isFinite(perSecond) || perSecond <= 0 || perSecond > 1_000_000) {
    throw new OptionError('rate', value, 'requests per host as N/s, N/m, N/h or N/d (e.g. 5/s, 30/m), more than 0');
  }
  return perSecond;
}

/**
 * A shard from `'K/N'` or `{ index, count }`: 0 ≤ K < N. Throws {@link OptionError} naming `shard` and
 * the value otherwise, so `--shard 4/4` (a 1-based index) is refused rather than silently taking nothing.
 */
export function parseShard(value: unknown): Shard {
  let index = NaN;
  let count = NaN;
  if (typeof value === 'string') {
    const match = /^\s*(\d{1,9})\s*\/\s*(\d{1,9})\s*$/.exec(value);
    if (match) [index, count] = [Number(match[1]), Number(match[2])];
  } else if (typeof value === 'object' && value !== null) {
    ({ index, count } = value as Partial<Shard> as Shard);
  }
  if (!Number.isInteger(index) || !Number.isInteger(count) || count < 1 || index < 0 || index >= count) {
    throw new OptionError('shard', value, 'K/N with N at least 1 and K from 0 to N-1, as in 0/4 (K counts from 0)');
  }
  return { index, count };
}

function flag(option: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new OptionError(option, value, 'true or false');
  return value;
}

/** Applies defaults and validates; throws {@link OptionError} naming the option and value. */
export function resolveOptions(options: Options = {}): ResolvedOptions {
  const mode = oneOf('mode', options.mode, MODES, 'concurrent');
  const concurrency = integer('concurrency', options.concurrency, 16, 1, 10_000);
  const perHost = options.perHost === undefined ? undefined : integer('perHost', options.perHost, 0, 1, 10_000);
  const dedupe = flag('dedupe', options.dedupe);
  // Dedupe compares digests, so it needs one even when none was asked for.
  const hash = options.hash === undefined ? (dedupe ? 'sha256' : undefined) : oneOf('hash', options.hash, HASHES, 'sha256');
  if (options.out !== undefined && (typeof options.out !== 'string' || options.out === '')) {
    throw new OptionError('out', options.out, 'a folder path');
  }
  const headers = resolveHeaders(options);
  if (options.proxy !== undefined && options.proxy !== false) httpUrl('proxy', options.proxy);
  if (options.proxy === undefined) checkEnvProxies();
  if (options.insecure !== undefined && typeof options.insecure !== 'boolean') {
    throw new OptionError('insecure', options.insecure, 'true or false');
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new OptionError('onProgress', options.onProgress, 'a function');
  }
  const maxSize = parseSize('maxSize', options.maxSize ?? '1G');
  return {
    out: path.resolve(options.out ?? '.'),
    mode,
    concurrency: mode === 'sequential' ? 1 : concurrency,
    threads: integer('threads', options.threads, os.availableParallelism(), 1, 256),
    hash,
    dedupe,
    perHost,
    rate: options.rate === undefined ? undefined : parseRate(options.rate),
    onExists: oneOf('onExists', options.onExists, ON_EXISTS, 'skip'),
    layout: oneOf('layout', options.layout, LAYOUTS, 'flat'),
    shard: options.shard === undefined ? undefined : parseShard(options.shard),
    manifest: options.manifest,
    timeoutMs: integer('timeoutMs', options.timeoutMs, 30_000, 1, 24 * 3600 * 1000),
    maxRedirects: integer('maxRedirects', options.maxRedirects, 10, 0, 100),
    headers,
    locationTrusted: flag('locationTrusted', options.locationTrusted),
    userAgent: headerValue('userAgent', options.userAgent ?? `imgdl/${VERSION}`),
    proxy: options.proxy,
    insecure: options.insecure ?? false,
    ca: options.cacert === undefined ? undefined : readCa(options.cacert),
    onProgress: options.onProgress,
    logger: options.logger,
    signal: options.signal,
    retries: integer('retries', options.retries, 3, 0, 100),
    retryDelayMs: integer('retryDelayMs', options.retryDelayMs, 500, 0, 3_600_000),
    maxRetryAfterMs: integer('maxRetryAfterMs', options.maxRetryAfterMs, 60_000, 0, 24 * 3600 * 1000),
    maxSize: maxSize === 0 ? undefined : maxSize,
    anyType: flag('anyType', options.anyType),
    stopSignal: options.stopSignal,
    graceMs: integer('graceMs', options.graceMs, 5_000, 0, 24 * 3600 * 1000),
  };
}

// RFC 9110 token: what a header name may be made of.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function headerValue(option: string, value: unknown): string {
  // CR, LF or NUL in a value would let one header smuggle in another.
  if (typeof value !== 'string' || /[\r\n\0]/.test(value)) throw new OptionError(option, value, 'a header value without line breaks');
  return value;
}

/** Header names lower-cased (so a later `-H` replaces an earlier one whatever its case), referer and cookie folded in. */
function resolveHeaders(options: Options): Record<string, string> {
  if (options.headers !== undefined && (typeof options.headers !== 'object' || options.headers === null)) {
    throw new OptionError('headers', options.headers, 'an object of header names to values');
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (!TOKEN.test(name)) throw new OptionError('headers', name, 'a header name (letters, digits and !#$%&\'*+-.^_`|~)');
    headers[name.toLowerCase()] = headerValue(`headers.${name}`, value);
  }
  if (options.referer !== undefined) headers.referer = httpUrl('referer', options.referer).href;
  if (options.cookie !== undefined) headers.cookie = headerValue('cookie', options.cookie);
  return headers;
}

function httpUrl(option: string, value: unknown): URL {
  let url: URL | undefined;
  try {
    url = new URL(String(value));
  } catch {
    // reported below
  }
  if (typeof value !== 'string' || url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new OptionError(option, value, 'an http: or https: URL');
  }
  return url;
}

/** A malformed proxy variable would otherwise surface as a bare "Invalid URL" from deep in undici. */
function checkEnvProxies(): void {
  for (const name of ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY']) {
    const value = process.env[name];
    if (value) httpUrl(`${name} (environment)`, value);
  }
}

function readCa(file: unknown): string {
  if (typeof file !== 'string' || file === '') throw new OptionError('cacert', file, 'a PEM file path');
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    throw new OptionError('cacert', file, `a readable PEM file (${(error as { code?: string }).code ?? 'unreadable'})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new OptionError('cacert', file, 'a PEM file with at least one CERTIFICATE');
  return pem;
}
