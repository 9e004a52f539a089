/**
 * The one place for options: every field with its default, and
 * {@link resolveOptions} which validates them. The CLI, `bench`, worker
 * threads and tests all pass through here, so a bad value is refused the same
 * way everywhere, with the option's name and the value received.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Logger } from 'pino';

/** How tasks are scheduled. The per-item pipeline is the same in every mode. */
export type Mode = 'sequential' | 'concurrent';

/** What to do when an item's file already exists in the output folder. */
export type OnExists = 'skip' | 'overwrite' | 'rename';

/** Every mode imgdl can run in. */
export const MODES: readonly Mode[] = ['sequential', 'concurrent'];
/** Every `onExists` policy. */
export const ON_EXISTS: readonly OnExists[] = ['skip', 'overwrite', 'rename'];

/** Options of {@link download}. The CLI flag of each is given in brackets. */
export interface Options {
  /** Output folder, created if missing [`-o, --out`]. Default: the current folder. */
  out?: string | undefined;
  /** Scheduling mode [`-m, --mode`]. Default `'concurrent'`. `'sequential'` forces one request in flight. */
  mode?: Mode | undefined;
  /** Downloads in flight at once [`-c, --concurrency`]. Default 16. Ignored (1) in sequential mode. */
  concurrency?: number | undefined;
  /** Most connections to one origin [`--per-host`]. Default: no cap beyond `concurrency`. */
  perHost?: number | undefined;
  /** Existing files [`--on-exists`]. Default `'skip'`, so a rerun downloads nothing new. */
  onExists?: OnExists | undefined;
  /** JSON Lines file written with one record per item as it finishes [`--manifest`]. Default: none. */
  manifest?: string | undefined;
  /** Connect, headers and body-idle timeout, each separately, in ms [`--timeout`]. Default 30000. */
  timeoutMs?: number | undefined;
  /** Redirects followed per item [`--max-redirects`]. Default 10. */
  maxRedirects?: number | undefined;
  /** Extra request headers. Default none. */
  headers?: Record<string, string> | undefined;
  /** User-Agent header. Default `imgdl/<version>`. */
  userAgent?: string | undefined;
  /** Logger (pino). Default: a silent one. */
  logger?: Logger | undefined;
  /** Stops the run: no new items start, items in flight are aborted. Default none. */
  signal?: AbortSignal | undefined;
}

/** {@link Options} with every default applied and every value checked. */
export interface ResolvedOptions {
  out: string;
  mode: Mode;
  concurrency: number;
  perHost: number | undefined;
  onExists: OnExists;
  manifest: string | undefined;
  timeoutMs: number;
  maxRedirects: number;
  headers: Record<string, string>;
  userAgent: string;
  logger: Logger | undefined;
  signal: AbortSignal | undefined;
}

/** The version in package.json (it names the User-Agent and `--version`). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/** Thrown for an option whose value cannot be used; the CLI maps it to exit code 2. */
export class OptionError extends Error {
  override name = 'OptionError';
  readonly code = 'INVALID_OPTION';
  constructor(
    readonly option: string,
    readonly value: unknown,
    expected: string,
  ) {
    super(`invalid value for option "${option}": ${JSON.stringify(value)} (expected ${expected})`);
  }
}

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

/** Applies defaults and validates; throws {@link OptionError} naming the option and value. */
export function resolveOptions(options: Options = {}): ResolvedOptions {
  const mode = oneOf('mode', options.mode, MODES, 'concurrent');
  const concurrency = integer('concurrency', options.concurrency, 16, 1, 10_000);
  const perHost = options.perHost === undefined ? undefined : integer('perHost', options.perHost, 0, 1, 10_000);
  if (options.out !== undefined && (typeof options.out !== 'string' || options.out === '')) {
    throw new OptionError('out', options.out, 'a folder path');
  }
  if (options.headers !== undefined && (typeof options.headers !== 'object' || options.headers === null)) {
    throw new OptionError('headers', options.headers, 'an object of header names to values');
  }
  return {
    out: path.resolve(options.out ?? '.'),
    mode,
    concurrency: mode === 'sequential' ? 1 : concurrency,
    perHost,
    onExists: oneOf('onExists', options.onExists, ON_EXISTS, 'skip'),
    manifest: options.manifest,
    timeoutMs: integer('timeoutMs', options.timeoutMs, 30_000, 1, 24 * 3600 * 1000),
    maxRedirects: integer('maxRedirects', options.maxRedirects, 10, 0, 100),
    headers: { ...options.headers },
    userAgent: options.userAgent ?? `imgdl/${VERSION}`,
    logger: options.logger,
    signal: options.signal,
  };
}
