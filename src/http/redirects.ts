/**
 * Fetching one URL as the user meant it: redirects followed by hand (so that
 * loops, non-http targets and the hop count are ours to judge), and the
 * user's credentials sent only where they were meant to go.
 */
import type { Dispatcher } from 'undici';
import { classifyNetworkError, HttpStatusError, ValidationError } from '../errors.js';
import { redactUrl } from '../input/text-list.js';
import { parseRetryAfter } from '../item/retry.js';
import type { ResolvedOptions } from '../options.js';
import { header, type FetchedResponse } from './body.js';
import { drain, requestOnce } from './request.js';

/** Statuses followed to their Location; any other non-2xx is an HTTP_STATUS failure. */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * GETs `url`, following up to `options.maxRedirects` redirects. Resolves with
 * a 2xx response; rejects with HTTP_STATUS, TOO_MANY_REDIRECTS, REDIRECT_LOOP,
 * BAD_REDIRECT, ETIMEDOUT, NETWORK, PROXY_AUTH or ABORTED.
 */
export async function fetchOne(
  url: URL,
  agent: Dispatcher,
  options: Pick<ResolvedOptions, 'maxRedirects' | 'headers' | 'userAgent' | 'locationTrusted'>,
  signal?: AbortSignal,
  extraHeaders?: Record<string, string>,
): Promise<FetchedResponse> {
  const shown = redactUrl(url);
  const visited = new Set<string>();
  // Each hop's origin is worked out once: a URL builds its origin string anew on every read.
  const origin = url.origin;
  let current = url;
  let currentOrigin = origin;
  for (let hop = 0; ; hop++) {
    visited.add(current.href);
    // The user's credentials go to the origin the user named; another origin gets them only when trusted.
    const trusted = options.locationTrusted || currentOrigin === origin;
    let response: FetchedResponse;
    try {
      response = await requestOnce(
        agent,
        current,
        currentOrigin,
        {
          'user-agent': options.userAgent,
          accept: 'image/*,*/*;q=0.8',
          // The agent's decompress interceptor decodes these, so the saved file is the image itself. A Range
          // counts bytes of the encoded body, which would not line up with the decoded part file: ask for identity.
          'accept-encoding': extraHeaders?.range === undefined ? 'gzip, br' : 'identity',
          ...(trusted ? options.headers : withoutCredentials(options.headers)),
          ...extraHeaders,
          ...authorization(hasUserinfo(current) ? current : trusted ? url : undefined),
        },
        shown,
        signal,
      );
    } catch (error) {
      throw classifyNetworkError(error, shown, signal);
    }
    const { status, headers, body } = response;
    if (status >= 200 && status < 300) return response;

    // Anything else is not saved: drain the body (bounded by the agent's body timeout) so the socket is reused.
    await drain(body);

    const location = header(headers, 'location');
    if (!REDIRECT_STATUSES.has(status) || location === undefined) {
      const retryAfter = header(headers, 'retry-after');
      throw new HttpStatusError(status, { url: shown, retryAfter, retryAfterMs: parseRetryAfter(retryAfter) });
    }
    const next = redirectTarget(location, current, status, shown);
    if (visited.has(next.href)) {
      throw new ValidationError('REDIRECT_LOOP', `redirect loop back to ${redactUrl(next)}`, { url: shown, status });
    }
    if (hop + 1 > options.maxRedirects) {
      throw new ValidationError('TOO_MANY_REDIRECTS', `more than ${options.maxRedirects} redirects`, { url: shown, status });
    }
    current = next;
    currentOrigin = next.origin;
  }
}

/** Where a redirect's Location points, when it is an http(s) URL; BAD_REDIRECT otherwise. */
function redirectTarget(location: string, current: URL, status: number, shown: string): URL {
  let next: URL;
  try {
    next = new URL(location, current);
  } catch (cause) {
    throw new ValidationError('BAD_REDIRECT', `redirect to an invalid location ${JSON.stringify(location)}`, {
      url: shown,
      status,
      cause,
    });
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    throw new ValidationError('BAD_REDIRECT', `redirect to unsupported scheme "${next.protocol}"`, { url: shown, status });
  }
  return next;
}

/**
 * Request headers that carry credentials. On a redirect to another origin
 * they are dropped, as curl does since CVE-2018-1000007 and CVE-2022-27776:
 * an image host that redirects to a CDN, or to anyone, must not receive them.
 */
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'cookie', 'proxy-authorization']);

/** `headers` (lower-case names) without those in {@link CREDENTIAL_HEADERS}. */
function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (!CREDENTIAL_HEADERS.has(name)) kept[name] = value;
  return kept;
}

function hasUserinfo(url: URL): boolean {
  return url.username !== '' || url.password !== '';
}

/**
 * Basic credentials written in a URL (`user:pass@host`) as a header, since
 * undici does not send them itself. A hop whose own URL carries none gets the
 * listed URL's when it is trusted with them (same origin, or `locationTrusted`).
 */
function authorization(url: URL | undefined): Record<string, string> {
  if (url === undefined || !hasUserinfo(url)) return {};
  const pair = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return { authorization: `Basic ${Buffer.from(pair).toString('base64')}` };
}
