/**
 * Errors with stable codes.
 *
 * Every failure imgdl reports carries a `code` that never changes between
 * releases, the URL it concerns (credentials redacted), the HTTP status where
 * there is one, and the underlying `cause`. Reports, logs and worker messages
 * carry the plain `{ code, message, url }` shape from {@link toErrorRecord};
 * code that reacts to an error matches on `code`, never on message text or
 * `instanceof` (which does not survive a worker-thread boundary).
 */

/** Every code an imgdl error can carry. */
export type ErrorCode =
  /** A list line or row that is not an absolute URL (or is too long, is not text, or has no URL). */
  | 'INVALID_URL'
  /** A URL whose scheme is not `http:` or `https:`. */
  | 'UNSUPPORTED_SCHEME'
  /** A file name that is absolute, escapes the output folder, or cannot be made safe. */
  | 'UNSAFE_NAME'
  /** The server answered with a status outside 2xx. */
  | 'HTTP_STATUS'
  /** Connecting, sending or receiving failed (DNS, refused, reset, TLS, ...). */
  | 'NETWORK'
  /** Connecting, waiting for headers, or waiting for the next body chunk took too long. */
  | 'ETIMEDOUT'
  /** The proxy answered 407 (or 401 to a CONNECT): it wants credentials, or refused the ones in its URL. Not retried. */
  | 'PROXY_AUTH'
  /** More redirects than allowed. */
  | 'TOO_MANY_REDIRECTS'
  /** A redirect came back to a URL already visited. */
  | 'REDIRECT_LOOP'
  /** A redirect without a usable Location, or to a scheme other than http(s). */
  | 'BAD_REDIRECT'
  /** The body ended before its Content-Length. */
  | 'TRUNCATED'
  /** The body came slower than `--speed-limit` bytes per second for `--speed-time` seconds. */
  | 'TOO_SLOW'
  /** The body is larger than allowed. */
  | 'TOO_LARGE'
  /** The body is not an image. */
  | 'NOT_AN_IMAGE'
  /** The body looked like an image but could not be decoded as one (with image work: resizing, re-encoding, checks). Not retried. */
  | 'DECODE'
  /** Creating, writing or renaming a file failed (EACCES, EROFS, ...). */
  | 'FILESYSTEM'
  /** The disk (or the quota) is full: ENOSPC or EDQUOT. The run stops starting new items. */
  | 'DISK_FULL'
  /** The run was stopped before this item finished. */
  | 'ABORTED'
  /** A worker thread died while it held this item. */
  | 'WORKER_CRASHED'
  /** An option whose value cannot be used (library or CLI). */
  | 'INVALID_OPTION'
  /** A command line that cannot be run: unknown flag, missing argument, unreadable input file. */
  | 'USAGE'
  | ClusterErrorCode;

/** Stable codes of the cluster's own errors (item failures keep the core's codes). */
export type ClusterErrorCode =
  /** `--queue` is not a `redis://` or `rediss://` URL. */
  | 'INVALID_QUEUE_URL'
  /** Redis could not be reached, or dropped the connection of a command that must not wait. */
  | 'REDIS_UNAVAILABLE'
  /** Redis may evict keys under memory pressure, which would lose jobs and results. */
  | 'REDIS_EVICTS'
  /** A job whose data imgdl cannot read (written by something else, or by an incompatible version). */
  | 'BAD_JOB';

/** What an error looks like in the manifest, the logs and worker messages. */
export interface ErrorRecord {
  code: ErrorCode;
  message: string;
}

/** Context an error can carry besides its message. */
export interface ErrorDetails {
  /** The URL concerned, already redacted. */
  url?: string | undefined;
  /** The HTTP status, where a response was received. */
  status?: number | undefined;
  /** Where the item came from: a file path, `stdin` or `argv`. */
  source?: string | undefined;
  /** The 1-based line (or argument position) in `source`. */
  line?: number | undefined;
  /** The error underneath. */
  cause?: unknown;
}

/** Base of every error imgdl raises on purpose. */
export class ImgdlError extends Error {
  override name = 'ImgdlError';
  readonly code: ErrorCode;
  readonly url: string | undefined;
  readonly status: number | undefined;
  readonly source: string | undefined;
  readonly line: number | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.url = details.url;
    this.status = details.status;
    this.source = details.source;
    this.line = details.line;
  }
}

/** Connecting, sending or receiving failed. */
export class NetworkError extends ImgdlError {
  override name = 'NetworkError';
}

/**
 * A proxy could not be reached, wants credentials (PROXY_AUTH) or would not
 * open a tunnel: the message names the proxy, credentials redacted, rather
 * than the server behind it. Its code is the one the failure would have had
 * without a proxy (NETWORK, ETIMEDOUT, HTTP_STATUS) but for PROXY_AUTH.
 */
export class ProxyError extends ImgdlError {
  override name = 'ProxyError';
}

/** A timeout elapsed (connect, headers, or body idle). */
export class TimeoutError extends ImgdlError {
  override name = 'TimeoutError';
  constructor(message: string, details: ErrorDetails = {}) {
    super('ETIMEDOUT', message, details);
  }
}

/** The server answered with a status outside 2xx. */
export class HttpStatusError extends ImgdlError {
  override name = 'HttpStatusError';
  /** The response's `Retry-After` header, where it sent one. */
  readonly retryAfter: string | undefined;
  /**
   * The wait `Retry-After` asks for, in ms from when the answer came (a date
   * is turned into a wait then, not when a retry is planned); undefined when
   * it sent none or an unreadable one.
   */
  readonly retryAfterMs: number | undefined;
  constructor(status: number, details: ErrorDetails & { retryAfter?: string | undefined; retryAfterMs?: number | undefined } = {}) {
    super('HTTP_STATUS', `server answered HTTP ${status}`, { ...details, status });
    this.retryAfter = details.retryAfter;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** Input, names or content that imgdl refuses: bad lines, unsafe names, non-images. */
export class ValidationError extends ImgdlError {
  override name = 'ValidationError';
}

/** Creating, writing or renaming a file failed. */
export class FileSystemError extends ImgdlError {
  override name = 'FileSystemError';
  constructor(message: string, details: ErrorDetails = {}, code: 'FILESYSTEM' | 'DISK_FULL' = 'FILESYSTEM') {
    super(code, message, details);
  }
}

/** Thrown for an option whose value cannot be used; the CLI maps it to exit code 2. */
export class OptionError extends ImgdlError {
  override name = 'OptionError';
  constructor(
    readonly option: string,
    readonly value: unknown,
    expected: string,
  ) {
    super('INVALID_OPTION', `invalid value for option "${option}": ${JSON.stringify(value)} (expected ${expected})`);
  }
}

/** A command line that cannot be run; the CLI prints it with a pointer to `--help` and exits 2. */
export class UsageError extends ImgdlError {
  override name = 'UsageError';
  constructor(message: string, details: ErrorDetails = {}) {
    super('USAGE', message, details);
  }
}

/** An error of the cluster commands, with a code that never changes. */
export class ClusterError extends ImgdlError {
  override name = 'ClusterError';
  declare readonly code: ClusterErrorCode;
  constructor(code: ClusterErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
  }
}

/** True when `value` is an error carrying one of imgdl's codes (works across realms). */
export function isImgdlError(value: unknown): value is ImgdlError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    (value as Error).message !== undefined &&
    'url' in value
  );
}

/**
 * The message of `error` followed by its cause chain, so that "fetch failed"
 * never hides "connect ECONNREFUSED 127.0.0.1:9".
 */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current !== undefined && current !== null && !seen.has(current) && parts.length < 8) {
    seen.add(current);
    if (current instanceof Error || (typeof current === 'object' && 'message' in current)) {
      const e = current as Error & { code?: unknown };
      const code = typeof e.code === 'string' && !e.message.includes(e.code) ? ` (${e.code})` : '';
      const text = `${e.message}${code}`;
      if (text && !parts.some((p) => p.includes(text))) parts.push(text);
      current = e.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(': ');
}

/** The plain `{ code, message }` form carried by records, logs and worker messages. */
export function toErrorRecord(error: unknown): ErrorRecord {
  if (isImgdlError(error)) {
    return { code: error.code, message: describeError(error) };
  }
  return { code: 'NETWORK', message: describeError(error) };
}

/** Why an item stopped before it finished: the run was stopped, not the item at fault. */
export type AbortedWhen = 'stopped before it started' | 'stopped before it finished' | 'stopped while waiting to retry';

/**
 * ABORTED for `url`: one factory, so that every stop reads the same in the
 * records and a test can match the message.
 */
export function aborted(url: string | undefined, when: AbortedWhen = 'stopped before it finished', cause?: unknown): ImgdlError {
  return new ImgdlError('ABORTED', when, { url, cause });
}

/** System codes that mean the disk or the quota is full. */
const DISK_FULL_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/** A file-system failure as an imgdl error that keeps the system code (ENOSPC, EACCES, ...) in its message; a full disk is DISK_FULL. */
export function fileSystemError(error: unknown, action: string, file: string, url?: string): ImgdlError {
  if (error instanceof ImgdlError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const label = typeof code === 'string' ? `${code} ` : '';
  const full = typeof code === 'string' && DISK_FULL_CODES.has(code);
  return new FileSystemError(
    `${full ? 'disk full: ' : ''}${label}while ${action} ${file}`,
    { url, cause: error },
    full ? 'DISK_FULL' : 'FILESYSTEM',
  );
}

/**
 * An undici or socket error as an imgdl error with a stable code; the
 * original stays as `cause`. When `signal` has aborted, the error is ABORTED
 * whatever it looks like, since undici rejects with the signal's own reason.
 */
export function classifyNetworkError(error: unknown, url: string, signal?: AbortSignal): ImgdlError {
  // A proxy's failure reaches every request that waited on its connection: each gets a copy with its own URL.
  if (error instanceof ProxyError && error.url === undefined)
    return new ProxyError(error.code, error.message, { url, status: error.status, cause: error.cause });
  if (error instanceof ImgdlError) return error;
  if (signal?.aborted) return aborted(url, 'stopped before it finished', error);
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new TimeoutError('timed out connecting', { url, cause: error });
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new TimeoutError('timed out waiting for response headers', { url, cause: error });
    case 'UND_ERR_BODY_TIMEOUT':
      return new TimeoutError('timed out waiting for the next part of the body', { url, cause: error });
    case 'UND_ERR_HEADERS_OVERFLOW':
      return new NetworkError('NETWORK', 'response headers are larger than allowed (16 KiB)', { url, cause: error });
  }
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') return aborted(url, 'stopped before it finished', error);
  return new NetworkError('NETWORK', 'request failed', { url, cause: error });
}

/** What judging a body's head threw, as an imgdl error: its own refusals pass as they are. */
export function judgement(error: unknown, url: string | undefined): ImgdlError {
  if (error instanceof ImgdlError) return error;
  return new ValidationError('NOT_AN_IMAGE', `could not tell what the body is: ${String(error)}`, { url, cause: error });
}

/** NOT_AN_IMAGE, quoting the start of the body so "it was an HTML page" is visible. */
export function notAnImage(head: Buffer, contentType: string | null, url: string): ValidationError {
  const start = head.subarray(0, 32);
  const printable = start.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  const shown = printable ? JSON.stringify(start.toString('latin1')) : `0x${start.toString('hex')}`;
  return new ValidationError(
    'NOT_AN_IMAGE',
    `not an image: the body starts with ${head.length === 0 ? 'nothing (empty body)' : shown}` +
      ` (Content-Type ${contentType ?? 'none'}); use --any-type to keep other files`,
    { url },
  );
}
