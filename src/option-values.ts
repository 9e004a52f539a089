/**
 * How each option's value is read and checked: sizes, rates, shards, headers,
 * URLs and CA files. {@link resolveOptions} in options.ts calls these; every
 * one throws {@link OptionError} naming the option and the value received,
 * so a bad value reads the same whichever way it came in.
 */
import { readFileSync } from 'node:fs';
import { OptionError } from './errors.js';

/** How tasks are scheduled. The per-item pipeline is the same in every mode. */
export type Mode = 'sequential' | 'concurrent' | 'workers';

/** What to do when an item's file already exists in the output folder. */
export type OnExists = 'skip' | 'overwrite' | 'rename' | 'update';

/** How files are laid out in the output folder. */
export type Layout = 'flat' | 'sharded';

/** Every mode imgdl can run in. */
export const MODES: readonly Mode[] = ['sequential', 'concurrent', 'workers'];
/** Digest algorithms `hash` accepts. */
export type HashAlgorithm = 'sha256' | 'sha1' | 'md5';
/** Every `hash` algorithm. */
export const HASHES: readonly HashAlgorithm[] = ['sha256', 'sha1', 'md5'];
/** Every `onExists` policy. */
export const ON_EXISTS: readonly OnExists[] = ['skip', 'overwrite', 'rename', 'update'];
/** Every layout. */
export const LAYOUTS: readonly Layout[] = ['flat', 'sharded'];

/** One slice of a list: the items whose URL fingerprint modulo `count` is `index`. */
export interface Shard {
  /** Which slice, from 0 to `count - 1`. */
  index: number;
  /** How many slices the list is cut into. */
  count: number;
}

/** `value`, or `fallback` when undefined; throws {@link OptionError} unless it is an integer from `min` to `max`. */
export function integer(option: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionError(option, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

/** `value`, or `fallback` when undefined; throws {@link OptionError} unless it is one of `allowed`. */
export function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
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
export function parseRate(value: number | string): number {
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

/** `value`, or `fallback` when undefined; throws {@link OptionError} unless it is a non-empty path. */
export function folderPath(option: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value === '') throw new OptionError(option, value, 'a folder path');
  return value;
}

/** `value` when it is a function or undefined; throws {@link OptionError} otherwise. */
export function callback<T>(option: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== 'function') throw new OptionError(option, value, 'a function');
  return value;
}

/** `value`, or false when undefined; throws {@link OptionError} unless it is a boolean. */
export function flag(option: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new OptionError(option, value, 'true or false');
  return value;
}

// RFC 9110 token: what a header name may be made of.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** `value` as a header value; throws {@link OptionError} for anything else. */
export function headerValue(option: string, value: unknown): string {
  // CR, LF or NUL in a value would let one header smuggle in another.
  if (typeof value !== 'string' || /[\r\n\0]/.test(value)) throw new OptionError(option, value, 'a header value without line breaks');
  return value;
}

/** Header names lower-cased (so a later `-H` replaces an earlier one whatever its case), referer and cookie folded in. */
export function resolveHeaders(options: {
  headers?: Record<string, string> | undefined;
  referer?: string | undefined;
  cookie?: string | undefined;
}): Record<string, string> {
  if (options.headers !== undefined && (typeof options.headers !== 'object' || options.headers === null)) {
    throw new OptionError('headers', options.headers, 'an object of header names to values');
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (!TOKEN.test(name)) throw new OptionError('headers', name, "a header name (letters, digits and !#$%&'*+-.^_`|~)");
    headers[name.toLowerCase()] = headerValue(`headers.${name}`, value);
  }
  if (options.referer !== undefined) headers.referer = httpUrl('referer', options.referer).href;
  if (options.cookie !== undefined) headers.cookie = headerValue('cookie', options.cookie);
  return headers;
}

/** `value` as an http: or https: URL; throws {@link OptionError} for anything else. */
export function httpUrl(option: string, value: unknown): URL {
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
export function checkEnvProxies(): void {
  for (const name of ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY']) {
    const value = process.env[name];
    if (value) httpUrl(`${name} (environment)`, value);
  }
}

/** The PEM text of the CA file `file`; throws {@link OptionError} when it is unreadable or holds no certificate. */
export function readCa(file: unknown): string {
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
