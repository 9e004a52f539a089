/**
 * The flags of how each item is fetched, checked and saved: the main command
 * and `imgdl enqueue` both declare them, and {@link itemOptions} turns them
 * into the library's {@link ItemOptions}.
 */
import type { Argv as Yargs } from 'yargs';
import type { DatasetOptions } from '../dataset-options.js';
import { UsageError } from '../errors.js';
import { IMAGE_FLAGS, imageOptions, type ImageArgv } from './image-args.js';
import { DEFAULTS, HASHES, LAYOUTS, ON_EXISTS, type HashAlgorithm, type ItemOptions, type Layout, type OnExists } from '../options.js';

/** What an option table says of one option: the part of yargs' option settings imgdl uses. */
export interface RunOption {
  alias?: string;
  type: 'string' | 'number' | 'boolean' | 'count';
  array?: boolean;
  default?: string | number | boolean;
  choices?: string[];
  requiresArg?: boolean;
  defaultDescription?: string;
  describe: string;
}

/** What {@link itemFlags} parses. */
export interface ItemArgv extends ImageArgv {
  hash: string | undefined;
  perHost: number | undefined;
  rate: string | undefined;
  adapt: boolean;
  onExists: string;
  layout: string;
  timeout: number;
  retries: number;
  retryDelay: number;
  maxRetryAfter: number;
  maxSize: string;
  anyType: boolean;
  speedLimit: string | undefined;
  speedTime: number;
  limitRate: string | undefined;
  http2: boolean;
  remoteTime: boolean;
  header: string[] | undefined;
  userAgent: string | undefined;
  referer: string | undefined;
  cookie: string | undefined;
  locationTrusted: boolean;
  proxy: string | false | undefined;
  insecure: boolean;
  cacert: string | undefined;
}

/**
 * The flags of {@link ItemOptions} (how each item is fetched, checked and
 * saved, as opposed to how a run is scheduled or reported), as yargs declares
 * them, with the library's {@link DEFAULTS}. The main command has them, and so
 * does `imgdl enqueue`, whose jobs carry them to every worker.
 */
export const ITEM_OPTIONS = {
  hash: {
    type: 'string',
    choices: HASHES as string[],
    defaultDescription: 'none',
    describe: 'Record a digest of each saved file, computed as it streams',
  },
  'per-host': {
    type: 'number',
    defaultDescription: 'no cap beyond --concurrency',
    describe: 'Most requests in flight to one host (name:port)',
  },
  rate: {
    type: 'string',
    requiresArg: true,
    defaultDescription: 'no limit',
    describe: 'Most requests started per host: N/s, N/m, N/h or N/d, spaced evenly',
  },
  adapt: {
    type: 'boolean',
    default: DEFAULTS.adapt,
    describe: 'Slow a host down when it answers 429 (or 503 without Retry-After), up again as it answers (--no-adapt: off)',
  },
  'on-exists': { type: 'string', choices: ON_EXISTS as string[], default: DEFAULTS.onExists, describe: 'When the file already exists' },
  layout: {
    type: 'string',
    choices: LAYOUTS as string[],
    default: DEFAULTS.layout,
    describe: 'flat: named from the URL (or NAME); sharded: by list position, 00000/000000123.jpg, 10,000 a folder',
  },
  timeout: { type: 'number', default: DEFAULTS.timeoutMs, describe: 'Connect, headers and body-idle timeout in ms (each)' },
  retries: {
    type: 'number',
    default: DEFAULTS.retries,
    describe: 'Tries after the first for network errors, timeouts, truncated bodies, 408, 429, 5xx',
  },
  'retry-delay': {
    type: 'number',
    default: DEFAULTS.retryDelayMs,
    describe: 'Base backoff in ms (exponential, full jitter, at most 30 s)',
  },
  'max-retry-after': {
    type: 'number',
    default: DEFAULTS.maxRetryAfterMs / 1000,
    describe: 'Longest Retry-After (429/503) obeyed, in seconds; longer fails the item',
  },
  'max-size': { type: 'string', default: DEFAULTS.maxSize, describe: 'Largest file saved: bytes or with k, M, G (0: no limit)' },
  'any-type': { type: 'boolean', default: DEFAULTS.anyType, describe: 'Keep any body, not only images (no sniffing, no extension fix)' },
  'speed-limit': {
    type: 'string',
    requiresArg: true,
    defaultDescription: 'none',
    describe: 'Abort as TOO_SLOW (retried) a body under BYTES/s (k, M, G) for the speed time',
  },
  'speed-time': { type: 'number', default: DEFAULTS.speedTime, describe: 'Seconds a body may stay under --speed-limit' },
  'limit-rate': {
    type: 'string',
    requiresArg: true,
    defaultDescription: 'no cap',
    describe: "Cap on the run's download speed in bytes/s (k, M, G), e.g. 500k",
  },
  http2: {
    type: 'boolean',
    default: DEFAULTS.http2,
    describe: 'Offer HTTP/2 to https servers (ALPN), falling back to HTTP/1.1',
  },
  'remote-time': {
    type: 'boolean',
    default: DEFAULTS.remoteTime,
    describe: "Give saved files the server's Last-Modified time (--no-remote-time: the time of saving)",
  },
  header: {
    alias: 'H',
    type: 'string',
    array: true,
    requiresArg: true,
    defaultDescription: 'none',
    describe: 'Extra request header "Name: value"; repeatable',
  },
  'user-agent': { alias: 'A', type: 'string', requiresArg: true, defaultDescription: DEFAULTS.userAgent, describe: 'User-Agent header' },
  referer: { type: 'string', requiresArg: true, defaultDescription: 'none', describe: 'Referer header sent with every request' },
  cookie: { type: 'string', requiresArg: true, defaultDescription: 'none', describe: 'Cookie header sent with every request ("a=b; c=d")' },
  'location-trusted': {
    type: 'boolean',
    default: DEFAULTS.locationTrusted,
    describe: 'Send Authorization, Cookie and URL credentials on redirects to OTHER hosts too (they can read them)',
  },
  proxy: {
    type: 'string',
    defaultDescription: '$HTTPS_PROXY / $HTTP_PROXY, minus $NO_PROXY',
    describe: 'HTTP(S) proxy URL (--no-proxy: ignore the environment)',
  },
  insecure: { alias: 'k', type: 'boolean', default: DEFAULTS.insecure, describe: 'Do NOT verify TLS certificates (a warning is logged)' },
  cacert: {
    type: 'string',
    requiresArg: true,
    defaultDescription: "Node's bundled CAs",
    describe: 'PEM file of extra CA certificates to trust',
  },
  ...IMAGE_FLAGS,
} as const satisfies Record<string, RunOption>;

/**
 * Every {@link ItemOptions} field but `maxRedirects`, which has no flag, and the dataset's, which a plain
 * run alone declares (dataset-args.ts): a field added to ItemOptions does not compile in
 * {@link itemOptions} until it has one.
 */
type FlaggedItemOptions = { [K in Exclude<keyof ItemOptions, 'maxRedirects' | keyof DatasetOptions>]-?: ItemOptions[K] };

/** The {@link ItemOptions} that {@link ITEM_OPTIONS} set; throws {@link UsageError} for a malformed `-H`. */
export function itemOptions(argv: ItemArgv): FlaggedItemOptions {
  return {
    hash: argv.hash as HashAlgorithm | undefined,
    perHost: argv.perHost,
    rate: argv.rate,
    adapt: argv.adapt,
    onExists: argv.onExists as OnExists,
    layout: argv.layout as Layout,
    timeoutMs: argv.timeout,
    headers: parseHeaders(argv.header ?? []),
    userAgent: argv.userAgent,
    referer: argv.referer,
    cookie: argv.cookie,
    locationTrusted: argv.locationTrusted,
    proxy: argv.proxy,
    insecure: argv.insecure,
    cacert: argv.cacert,
    retries: argv.retries,
    retryDelayMs: argv.retryDelay,
    maxRetryAfterMs: Number.isFinite(argv.maxRetryAfter) ? Math.round(argv.maxRetryAfter * 1000) : argv.maxRetryAfter,
    maxSize: argv.maxSize,
    anyType: argv.anyType,
    speedLimit: argv.speedLimit,
    speedTime: argv.speedTime,
    limitRate: argv.limitRate,
    http2: argv.http2,
    remoteTime: argv.remoteTime,
    ...imageOptions(argv),
  };
}

/** Declares {@link ITEM_OPTIONS} on a yargs parser. */
export function itemFlags<T>(y: Yargs<T>) {
  return y.options(ITEM_OPTIONS);
}

/** `-H "Name: value"` flags as a header record; a name given twice gets both values, comma-joined as HTTP allows. */
function parseHeaders(flags: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const flag of flags) {
    const colon = flag.indexOf(':');
    if (colon <= 0) throw new UsageError(`invalid --header ${JSON.stringify(flag)} (expected "Name: value")`);
    const name = flag.slice(0, colon).trim().toLowerCase();
    const value = flag.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return headers;
}
