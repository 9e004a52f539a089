/**
 * The one place for options: {@link Options} documents every field with its
 * default and limits, {@link DEFAULTS} holds the defaults that the CLI's
 * tables read too, and {@link resolveOptions} applies and checks them. The
 * CLI, `bench`, worker threads, the cluster and tests all pass through here,
 * so a bad value is refused the same way everywhere, with the option's name
 * and the value received.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { OptionError } from './errors.js';
import { IMAGE_DEFAULTS, resolveImage, type ImageOptions, type ResolvedImage } from './image-options.js';
import {
  callback,
  checkEnvProxies,
  flag,
  folderPath,
  httpUrl,
  integer,
  oneOf,
  parseRate,
  parseShard,
  parseSize,
  readCa,
  resolveHeaders,
  headerValue,
  HASHES,
  LAYOUTS,
  MODES,
  ON_EXISTS,
  type HashAlgorithm,
  type Layout,
  type Mode,
  type OnExists,
  type Shard,
} from './option-values.js';
import type { HostEvent } from './run/host-events.js';
import type { Progress } from './run/progress.js';
import { resolveTransfer, TRANSFER_DEFAULTS, type ResolvedTransfer, type TransferOptions } from './transfer-options.js';
import { DATASET_DEFAULTS, resolveDataset, type DatasetOptions, type ResolvedDataset } from './dataset-options.js';

export { OptionError, parseShard, parseSize, type Shard };
export { HASHES, LAYOUTS, MODES, ON_EXISTS, type HashAlgorithm, type Layout, type Mode, type OnExists };

/** The version in package.json (it names the User-Agent and `--version`). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/**
 * Every default that is a fixed value, written once: {@link resolveOptions}
 * applies them and the CLI's option tables show and pass them, so `--help`
 * cannot drift from what the library does. (`threads` defaults to the
 * machine's `os.availableParallelism()`, and the options missing here default
 * to none.)
 */
export const DEFAULTS = Object.freeze({
  out: '.',
  mode: 'concurrent', // resizing too: sharp called from the main thread beat worker threads (see image-options.ts)
  concurrency: 16,
  dedupe: false,
  onExists: 'skip',
  layout: 'flat',
  timeoutMs: 30_000,
  maxRedirects: 10,
  userAgent: `imgdl/${VERSION}`,
  locationTrusted: false,
  insecure: false,
  retries: 3,
  retryDelayMs: 500,
  maxRetryAfterMs: 60_000,
  maxSize: '1G',
  anyType: false,
  adapt: true,
  graceMs: 5_000,
  ...TRANSFER_DEFAULTS,
  ...IMAGE_DEFAULTS,
  ...DATASET_DEFAULTS,
} as const satisfies Partial<Record<keyof Options, unknown>>);

/**
 * How each item is fetched, checked and saved, whichever process runs it: the CLI's item flags set these, and
 * `imgdl enqueue` sends them with its jobs to every worker. The CLI flag of each is given in brackets.
 */
export interface ItemOptions extends TransferOptions, ImageOptions, DatasetOptions {
  /**
   * Digest of each saved file, computed as it streams, recorded as `digest` [`--hash`].
   * @default none
   */
  hash?: HashAlgorithm | undefined;
  /**
   * Most requests in flight to one host (`url.host`: name and port) [`--per-host`], an integer from 1
   * to 10000. A host at its cap holds no slot: the others' items take them.
   * @default no cap beyond `concurrency`
   */
  perHost?: number | undefined;
  /**
   * Most requests started per second to one host, spaced evenly [`--rate`]: a number per second, or
   * `'N/s'`, `'N/m'`, `'N/h'`, `'N/d'`; more than 0, at most 1000000 a second.
   * @default no limit
   */
  rate?: number | string | undefined;
  /**
   * Cut a host's start rate (× 0.7) when it answers 429 (or 503 without `Retry-After`), never below 1 a second
   * or `rate`, and raise it back as it answers, never above `rate` [`--no-adapt` turns it off]. @default true
   */
  adapt?: boolean | undefined;
  /**
   * Existing files [`--on-exists`]: `'skip'` makes a rerun download nothing new; `'update'` asks again
   * conditionally (If-Modified-Since, If-None-Match from `manifest`) and replaces only what changed.
   * @default 'skip'
   */
  onExists?: OnExists | undefined;
  /**
   * Where files go [`--layout`]. `'flat'`: each is named from its URL (or the list's NAME, or
   * the server's Content-Disposition). `'sharded'`: each is named by its position in the list,
   * counted from 0, `00000/000000123.jpg`, 10,000 files a folder, with the extension its bytes call
   * for; NAMEs in the list and names from the server are ignored, and no names are remembered.
   * @default 'flat'
   */
  layout?: Layout | undefined;
  /**
   * Connect, headers and body-idle timeout, each separately, in ms [`--timeout`], from 1 to 24 h.
   * @default 30000
   */
  timeoutMs?: number | undefined;
  /**
   * Redirects followed per item, from 0 to 100 (no CLI flag).
   * @default 10
   */
  maxRedirects?: number | undefined;
  /**
   * Extra request headers, name to value [`-H, --header "Name: value"`]; names are RFC 9110 tokens.
   * @default none
   */
  headers?: Record<string, string> | undefined;
  /**
   * User-Agent header [`-A, --user-agent`].
   * @default `imgdl/<version>`
   */
  userAgent?: string | undefined;
  /**
   * Referer header sent with every request, an http(s) URL [`--referer`].
   * @default none
   */
  referer?: string | undefined;
  /**
   * Cookie header sent with every request, e.g. `'a=b; c=d'` [`--cookie`].
   * @default none
   */
  cookie?: string | undefined;
  /**
   * Send the credentials (`Authorization`, `Cookie` and `Proxy-Authorization`
   * headers, and `user:pass@` in the URL) to every redirect target, other
   * origins included [`--location-trusted`, curl's name]. When false, a
   * redirect to another scheme, host or port gets none of them, since whoever
   * runs that origin could read them.
   * @default false
   */
  locationTrusted?: boolean | undefined;
  /**
   * HTTP(S) proxy URL for every request [`--proxy`]: https targets go through a CONNECT tunnel, http ones
   * as absolute-URL requests; credentials as `http://user:pass@host:port` (percent-encoded) are sent to the
   * proxy alone, as Proxy-Authorization. `false` ignores the environment [`--no-proxy`].
   * @default `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (or their lower-case forms) from the environment
   */
  proxy?: string | false | undefined;
  /** Skip TLS certificate verification [`-k, --insecure`]; logged as a warning when on. @default false */
  insecure?: boolean | undefined;
  /**
   * PEM file of extra CA certificates trusted besides Node's bundled ones [`--cacert`].
   * @default none
   */
  cacert?: string | undefined;
  /**
   * Tries after the first for a retryable failure [`--retries`], from 0 to 100.
   * @default 3
   */
  retries?: number | undefined;
  /**
   * Base of the exponential backoff with full jitter, in ms, capped at 30 s [`--retry-delay`], from 0 to 1 h.
   * @default 500
   */
  retryDelayMs?: number | undefined;
  /**
   * Longest `Retry-After` (429, 503) obeyed, in ms, from 0 to 24 h; a longer one fails the item
   * [`--max-retry-after`, in seconds].
   * @default 60000
   */
  maxRetryAfterMs?: number | undefined;
  /**
   * Largest body saved, in bytes or with a `k`/`M`/`G` suffix (1024-based); 0 for no limit [`--max-size`].
   * @default '1G'
   */
  maxSize?: number | string | undefined;
  /**
   * Save any body, not only images, and keep the listed extension [`--any-type`].
   * @default false
   */
  anyType?: boolean | undefined;
}

/**
 * How one run is scheduled, reported and stopped: these belong to the process running it (its folder, its
 * cores, its logs, its signals), so the cluster's workers each set their own.
 */
export interface RunOptions {
  /**
   * Output folder, created if missing [`-o, --out`].
   * @default '.', the current folder
   */
  out?: string | undefined;
  /**
   * Scheduling mode [`-m, --mode`]. `'sequential'` forces one request in flight.
   * @default 'concurrent'
   */
  mode?: Mode | undefined;
  /**
   * Worker threads in `'workers'` mode [`-t, --threads`], from 1 to 256.
   * `concurrency` still bounds the downloads in flight across all of them.
   * @default `os.availableParallelism()`
   */
  threads?: number | undefined;
  /**
   * Skip saving a file whose digest matches one already saved this run, recording
   * which file it duplicates [`--dedupe`]. Hashes with sha256 when `hash` is not set.
   * @default false
   */
  dedupe?: boolean | undefined;
  /**
   * Downloads in flight at once [`-c, --concurrency`], from 1 to 10000; 1 in sequential mode.
   * @default 16
   */
  concurrency?: number | undefined;
  /**
   * Takes one slice of the list [`--shard K/N`]: the items whose URL fingerprint modulo N is K, so that N
   * processes or machines given the same list each take their own items, with no coordinator and no
   * overlap. K counts from 0 (0 ≤ K < N), as Kubernetes' `JOB_COMPLETION_INDEX` and Slurm's
   * `SLURM_ARRAY_TASK_ID` (with `--array=0-N-1`) do. `'K/N'` or `{ index, count }`.
   * @default the whole list
   */
  shard?: string | Shard | undefined;
  /**
   * JSON Lines file written with one record per item as it finishes [`--manifest`].
   * @default none
   */
  manifest?: string | undefined;
  /**
   * Called with a fresh {@link Progress} snapshot whenever the run's figures
   * change: an item read, started or finished, or body bytes received.
   * Called synchronously on the hot path, so keep it cheap; an exception it
   * throws is ignored, since a display must not break a download.
   * @default none
   */
  onProgress?: ((progress: Progress) => void) | undefined;
  /**
   * Called when a try is answered 429 or 503, a `Retry-After` pauses a host, or a host's adapted rate
   * changes (see `adapt`): the per-host figures the records cannot tell. Synchronous. @default none
   */
  onHost?: ((event: HostEvent) => void) | undefined;
  /**
   * Logger (pino).
   * @default a silent one
   */
  logger?: Logger | undefined;
  /**
   * Stops the run: no new items start, items in flight are aborted.
   * @default none
   */
  signal?: AbortSignal | undefined;
  /**
   * Stops the run gently: no new item starts; items in flight get `graceMs`
   * to finish, then are aborted with their part files kept for resuming.
   * @default none
   */
  stopSignal?: AbortSignal | undefined;
  /**
   * Time items in flight get to finish once `stopSignal` aborts, in ms [`--grace`], from 0 to 24 h.
   * @default 5000
   */
  graceMs?: number | undefined;
}

/** Options of {@link download}: how each item is handled, and how the run goes. */
export type Options = ItemOptions & RunOptions;

/**
 * {@link Options} with every default applied and every value checked, as
 * {@link resolveOptions} returns them: frozen, since the same object is handed
 * on to everything a run calls. A copy (a spread, a clone sent to a thread) is
 * plain data again, and resolving it checks it again.
 */
export interface ResolvedOptions extends ResolvedTransfer, ResolvedImage, ResolvedDataset {
  out: string;
  mode: Mode;
  concurrency: number;
  threads: number;
  hash: HashAlgorithm | undefined;
  dedupe: boolean;
  perHost: number | undefined;
  /** Requests per second to one host. */
  rate: number | undefined;
  adapt: boolean;
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
  onHost: ((event: HostEvent) => void) | undefined;
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

/** A day in ms: the longest any timeout, backoff or grace period may be. */
const DAY_MS = 24 * 3600 * 1000;

/** What {@link resolveOptions} returned: nobody else can forge an entry, and a copy (which anyone may change) is not one. */
const resolvedByUs = new WeakSet<object>();

/**
 * Applies defaults and validates; throws {@link OptionError} naming the option
 * and value. Given an object it returned, it returns that object at once: the
 * CLI resolves a run's options once, to refuse a bad value before it reads
 * anything, and hands the result to `download()`, which would otherwise check
 * them all again (and read `cacert` again).
 */
export function resolveOptions(options: Options | ResolvedOptions = {}): ResolvedOptions {
  if (resolvedByUs.has(options)) return options as ResolvedOptions;
  const resolved = Object.freeze(applyDefaults(options as Options));
  resolvedByUs.add(resolved);
  return resolved;
}

/** {@link resolveOptions}' work: every option checked, every default applied. */
function applyDefaults(options: Options): ResolvedOptions {
  const mode = oneOf('mode', options.mode, MODES, DEFAULTS.mode);
  const concurrency = integer('concurrency', options.concurrency, DEFAULTS.concurrency, 1, 10_000);
  const perHost = options.perHost === undefined ? undefined : integer('perHost', options.perHost, 0, 1, 10_000);
  const dedupe = options.dedupe === undefined ? DEFAULTS.dedupe : flag('dedupe', options.dedupe);
  // Dedupe compares digests, so it needs one even when none was asked for.
  const hash = options.hash === undefined ? (dedupe ? 'sha256' : undefined) : oneOf('hash', options.hash, HASHES, 'sha256');
  if (options.proxy !== undefined && options.proxy !== false) httpUrl('proxy', options.proxy);
  if (options.proxy === undefined) checkEnvProxies();
  const maxSize = parseSize('maxSize', options.maxSize ?? DEFAULTS.maxSize);
  return {
    out: path.resolve(folderPath('out', options.out, DEFAULTS.out)),
    mode,
    concurrency: mode === 'sequential' ? 1 : concurrency,
    threads: integer('threads', options.threads, os.availableParallelism(), 1, 256),
    hash,
    dedupe,
    perHost,
    rate: options.rate === undefined ? undefined : parseRate(options.rate),
    adapt: options.adapt === undefined ? DEFAULTS.adapt : flag('adapt', options.adapt),
    onExists: oneOf('onExists', options.onExists, ON_EXISTS, DEFAULTS.onExists),
    layout: oneOf('layout', options.layout, LAYOUTS, DEFAULTS.layout),
    shard: options.shard === undefined ? undefined : parseShard(options.shard),
    manifest: options.manifest,
    timeoutMs: integer('timeoutMs', options.timeoutMs, DEFAULTS.timeoutMs, 1, DAY_MS),
    maxRedirects: integer('maxRedirects', options.maxRedirects, DEFAULTS.maxRedirects, 0, 100),
    headers: resolveHeaders(options),
    locationTrusted: options.locationTrusted === undefined ? DEFAULTS.locationTrusted : flag('locationTrusted', options.locationTrusted),
    userAgent: headerValue('userAgent', options.userAgent ?? DEFAULTS.userAgent),
    proxy: options.proxy,
    insecure: options.insecure === undefined ? DEFAULTS.insecure : flag('insecure', options.insecure),
    ca: options.cacert === undefined ? undefined : readCa(options.cacert),
    onProgress: callback('onProgress', options.onProgress),
    onHost: options.onHost,
    logger: options.logger,
    signal: options.signal,
    retries: integer('retries', options.retries, DEFAULTS.retries, 0, 100),
    retryDelayMs: integer('retryDelayMs', options.retryDelayMs, DEFAULTS.retryDelayMs, 0, 3_600_000),
    maxRetryAfterMs: integer('maxRetryAfterMs', options.maxRetryAfterMs, DEFAULTS.maxRetryAfterMs, 0, DAY_MS),
    maxSize: maxSize === 0 ? undefined : maxSize,
    anyType: options.anyType === undefined ? DEFAULTS.anyType : flag('anyType', options.anyType),
    stopSignal: options.stopSignal,
    graceMs: integer('graceMs', options.graceMs, DEFAULTS.graceMs, 0, DAY_MS),
    ...resolveTransfer(options),
    ...resolveImage(options),
    ...resolveDataset(options),
  };
}
