/**
 * The retry policy: which failures are worth another try, and how long to
 * wait before it (exponential backoff with full jitter, or the server's own
 * `Retry-After` on 429 and 503, within a cap).
 */
import { ImgdlError, type ErrorCode } from '../errors.js';

/** Longest backoff between two tries, whatever the attempt number. */
export const MAX_BACKOFF_MS = 30_000;

/** Statuses a later try may well answer differently. */
export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** Statuses whose `Retry-After` is honoured. */
export const RETRY_AFTER_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/** Codes of failures that come from the network, not from what was asked: worth another try. */
const RETRY_CODES: ReadonlySet<ErrorCode> = new Set(['NETWORK', 'ETIMEDOUT', 'TRUNCATED', 'TOO_SLOW']);

/** The retry settings of a run. */
export interface RetryPolicy {
  /** Tries after the first. */
  retries: number;
  /** Base of the exponential backoff, in ms. */
  retryDelayMs: number;
  /** Longest `Retry-After` obeyed, in ms; a longer one fails the item. */
  maxRetryAfterMs: number;
}

/** True when `error` may go away on another try: a network failure, a timeout, a crawling or truncated body, or a retryable status. */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof ImgdlError)) return false;
  if (error.code === 'HTTP_STATUS') return error.status !== undefined && RETRY_STATUSES.has(error.status);
  return RETRY_CODES.has(error.code);
}

/** Full-jitter backoff before try `attempt + 1`: uniform in [0, min(cap, base × 2^(attempt-1))). */
export function backoffMs(attempt: number, baseMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/**
 * A `Retry-After` value in ms from `now`: delta-seconds (`120`) or an HTTP
 * date (`Wed, 21 Oct 2015 07:28:00 GMT`; a past date is 0). Undefined when
 * absent or unreadable, so the usual backoff applies.
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date) || !/[a-z]/i.test(text)) return undefined;
  return Math.max(0, date - now);
}

/**
 * How long to wait before the next try after `error` on try `attempt`, or
 * throws when the server asks for longer than `maxRetryAfterMs`: waiting an
 * hour in silence is worse than failing the item with a reason.
 */
export function retryDelayMs(
  error: ImgdlError & { retryAfter?: string | undefined; retryAfterMs?: number | undefined },
  attempt: number,
  policy: RetryPolicy,
): number {
  if (error.status !== undefined && RETRY_AFTER_STATUSES.has(error.status)) {
    const asked = error.retryAfterMs ?? parseRetryAfter(error.retryAfter);
    if (asked !== undefined) {
      if (asked > policy.maxRetryAfterMs) {
        throw new ImgdlError(
          'HTTP_STATUS',
          `server answered HTTP ${error.status} and asked to retry after ${Math.ceil(asked / 1000)} s, ` +
            `more than the ${policy.maxRetryAfterMs / 1000} s allowed (--max-retry-after)`,
          { url: error.url, status: error.status, cause: error },
        );
      }
      return asked;
    }
  }
  return backoffMs(attempt, policy.retryDelayMs);
}

/**
 * Whether to try again after `error` ended try number `tries`, and when:
 * the wait in ms, or undefined to give up (not retryable, or no tries
 * left). Throws when the server asks for a longer wait than allowed.
 */
export function nextTryIn(error: unknown, tries: number, policy: RetryPolicy): number | undefined {
  if (!isRetryable(error) || tries > policy.retries) return undefined;
  return retryDelayMs(error as ImgdlError, tries, policy);
}
