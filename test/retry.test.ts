import { describe, expect, it } from 'vitest';
import { HttpStatusError, ImgdlError, ProxyError, TimeoutError, ValidationError } from '../src/errors.js';
import { backoffMs, isRetryable, MAX_BACKOFF_MS, parseRetryAfter, retryDelayMs } from '../src/item/retry.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const policy = { retries: 3, retryDelayMs: 500, maxRetryAfterMs: 60_000 };

describe('retry policy', () => {
  it.each<[string, unknown, boolean]>([
    ['a network error', new ImgdlError('NETWORK', 'reset'), true],
    ['a timeout', new TimeoutError('stalled'), true],
    ['a truncated body', new ImgdlError('TRUNCATED', 'short'), true],
    ...[408, 429, 500, 502, 503, 504].map((s): [string, unknown, boolean] => [`HTTP ${s}`, new HttpStatusError(s), true]),
    ...[400, 401, 403, 404, 410, 501].map((s): [string, unknown, boolean] => [`HTTP ${s}`, new HttpStatusError(s), false]),
    ['not an image', new ValidationError('NOT_AN_IMAGE', 'html'), false],
    ['too large', new ImgdlError('TOO_LARGE', 'big'), false],
    ['an abort', new ImgdlError('ABORTED', 'stopped'), false],
    ['a disk full', new ImgdlError('DISK_FULL', 'ENOSPC'), false],
    ['a foreign error', new Error('x'), false],
    ['a proxy that wants credentials', new ProxyError('PROXY_AUTH', 'proxy asks', { status: 407 }), false],
    ['a proxy that refused the connection', new ProxyError('NETWORK', 'proxy refused'), true],
    ['a proxy answering CONNECT with 502', new ProxyError('HTTP_STATUS', 'proxy answered', { status: 502 }), true],
  ])('retries %s: %s', (_label, error, expected) => {
    expect(isRetryable(error)).toBe(expected);
  });

  it.each([
    ['0', 0],
    ['120', 120_000],
    [' 7 ', 7_000],
    ['Thu, 01 Jan 2026 00:00:30 GMT', 30_000],
    ['Wed, 31 Dec 2025 23:00:00 GMT', 0],
    ['soon', undefined],
    ['-5', undefined],
    ['1.5', undefined],
    [undefined, undefined],
  ])('reads Retry-After %j as %j ms', (value, expected) => {
    expect(parseRetryAfter(value, NOW)).toBe(expected);
  });

  it.each([1, 2, 3, 8, 20])('backs off with full jitter below the exponential ceiling on attempt %i', (attempt) => {
    const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** (attempt - 1));
    expect(backoffMs(attempt, 500, () => 0)).toBe(0);
    expect(backoffMs(attempt, 500, () => 0.999_999)).toBe(ceiling - 1);
    expect(backoffMs(attempt, 500, () => 0.5)).toBe(Math.floor(ceiling / 2));
  });

  it('waits as long as Retry-After asks on 429 and 503, not on other statuses', () => {
    expect(retryDelayMs(new HttpStatusError(429, { retryAfter: '2' }), 1, policy)).toBe(2000);
    expect(retryDelayMs(new HttpStatusError(503, { retryAfter: '3' }), 1, policy)).toBe(3000);
    expect(retryDelayMs(new HttpStatusError(500, { retryAfter: '3600' }), 1, policy)).toBeLessThan(500);
    // The wait as parsed when the answer came wins over parsing the header again later (a date would have moved on).
    expect(
      retryDelayMs(new HttpStatusError(429, { retryAfter: new Date(Date.now() + 60_000).toUTCString(), retryAfterMs: 1500 }), 1, policy),
    ).toBe(1500);
  });

  it('fails with the wait asked for when Retry-After is past the cap', () => {
    const error = new HttpStatusError(429, { retryAfter: '3600', url: 'http://h/a.jpg' });
    expect(() => retryDelayMs(error, 1, policy)).toThrow(/retry after 3600 s, more than the 60 s allowed/);
  });
});
