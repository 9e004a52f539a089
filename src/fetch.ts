/**
 * Fetching one URL: a request through the run's own undici Agent, redirects
 * followed by hand (so that loops, non-http targets and the hop count are
 * ours to judge), and every failure turned into an error with a stable code.
 *
 * A response that is not returned to the caller has its body consumed or
 * destroyed here, on success, error and abort alike, so that sockets go back
 * to the pool.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';
import { Agent, EnvHttpProxyAgent, ProxyAgent, interceptors, type Dispatcher } from 'undici';
import { HttpStatusError, ImgdlError, NetworkError, TimeoutError, ValidationError } from './errors.js';
import { redactUrl } from './list.js';
import type { ResolvedOptions } from './options.js';

/** A 2xx response whose body the caller must consume or destroy. */
export interface FetchedResponse {
  /** The URL that answered, after redirects. */
  url: URL;
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** What {@link createAgent} needs from the options. */
export type AgentOptions = Pick<ResolvedOptions, 'timeoutMs' | 'perHost'> &
  Partial<Pick<ResolvedOptions, 'proxy' | 'insecure' | 'ca'>>;

/** The proxy variables undici's EnvHttpProxyAgent reads, in either case. */
const PROXY_ENV = ['HTTPS_PROXY', 'HTTP_PROXY', 'https_proxy', 'http_proxy'];

/**
 * Opens a run's HTTP dispatcher: keep-alive, separate connect/headers/body-idle
 * timeouts, optional per-origin cap; through `options.proxy`, or the
 * environment's proxies when one is set; gzip/br/deflate bodies decoded; and
 * `onBytes` told of every decoded body chunk. Always a dispatcher of its own:
 * the global one is never read or changed.
 */
export function createAgent(options: AgentOptions, onBytes?: (n: number) => void): Dispatcher {
  const tls = {
    ...(options.insecure ? { rejectUnauthorized: false } : {}),
    // Node's `ca` replaces its bundled roots; keep them so a private CA adds to the public ones.
    ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
  };
  const base = {
    connections: options.perHost ?? null,
    connectTimeout: options.timeoutMs,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 10_000,
    connect: tls,
    // Tunnelling is for https targets; plain http goes to the proxy as an absolute-URL request, as curl does.
    proxyTunnel: false,
    requestTls: tls,
  };
  let dispatcher: Dispatcher;
  if (typeof options.proxy === 'string') dispatcher = new ProxyAgent({ ...base, uri: options.proxy });
  else if (options.proxy !== false && PROXY_ENV.some((name) => process.env[name])) dispatcher = new EnvHttpProxyAgent(base);
  else dispatcher = new Agent(base);
  // compose() wraps in order, so the counter sits outside the decoder and counts decoded bytes.
  const decode = decompressInterceptor();
  return onBytes ? dispatcher.compose(decode, countBody(onBytes)) : dispatcher.compose(decode);
}

/**
 * undici's decompress interceptor, without the ExperimentalWarning it prints
 * on first use: users of a CLI cannot act on it, and the behaviour imgdl
 * relies on (gzip and br decoded, encoding headers dropped) is under test here.
 */
function decompressInterceptor(): Dispatcher.DispatcherComposeInterceptor {
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (!String(warning).startsWith('DecompressInterceptor is experimental')) Reflect.apply(emitWarning, process, [warning, ...rest]);
  }) as typeof process.emitWarning;
  try {
    return interceptors.decompress();
  } finally {
    process.emitWarning = emitWarning;
  }
}

function countBody(onBytes: (n: number) => void): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => dispatch(opts, new CountingHandler(handler, onBytes));
}

/** Passes every callback through, telling `onBytes` the size of each body chunk. */
class CountingHandler implements Dispatcher.DispatchHandler {
  constructor(
    readonly handler: Dispatcher.DispatchHandler,
    readonly onBytes: (n: number) => void,
  ) {}
  onRequestStart(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestStart']>>): void {
    this.handler.onRequestStart?.(...args);
  }
  onRequestUpgrade(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>): void {
    this.handler.onRequestUpgrade?.(...args);
  }
  onResponseStart(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>): void {
    this.handler.onResponseStart?.(...args);
  }
  onResponseData(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseData']>>): void {
    this.onBytes(args[1].length);
    this.handler.onResponseData?.(...args);
  }
  onResponseEnd(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>): void {
    this.handler.onResponseEnd?.(...args);
  }
  onResponseError(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseError']>>): void {
    this.handler.onResponseError?.(...args);
  }
}

/**
 * Drops a response body unread. undici's body emits an AbortError when
 * destroyed before its end; with nobody listening that would crash the run.
 */
export function discardBody(body: { on(event: 'error', listener: () => void): unknown; destroy(): unknown }): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** First value of a header that may have been sent more than once. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * An undici or socket error as an imgdl error with a stable code; the
 * original stays as `cause`. When `signal` has aborted, the error is ABORTED
 * whatever it looks like, since undici rejects with the signal's own reason.
 */
export function classifyNetworkError(error: unknown, url: string, signal?: AbortSignal): ImgdlError {
  if (error instanceof ImgdlError) return error;
  if (signal?.aborted) return new ImgdlError('ABORTED', 'stopped before it finished', { url, cause: error });
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
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return new ImgdlError('ABORTED', 'stopped before it finished', { url, cause: error });
  }
  return new NetworkError('NETWORK', 'request failed', { url, cause: error });
}

/**
 * GETs `url`, following up to `options.maxRedirects` redirects. Resolves with
 * a 2xx response; rejects with HTTP_STATUS, TOO_MANY_REDIRECTS, REDIRECT_LOOP,
 * BAD_REDIRECT, ETIMEDOUT, NETWORK or ABORTED.
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
  let current = url;
  for (let hop = 0; ; hop++) {
    visited.add(current.href);
    // The user's credentials go to the origin the user named; another origin gets them only when trusted.
    const trusted = options.locationTrusted || current.origin === url.origin;
    let response: Dispatcher.ResponseData;
    try {
      response = await agent.request({
        origin: current.origin,
        path: current.pathname + current.search,
        method: 'GET',
        headers: {
          'user-agent': options.userAgent,
          accept: 'image/*,*/*;q=0.8',
          // The agent's decompress interceptor decodes these, so the saved file is the image itself. A Range
          // counts bytes of the encoded body, which would not line up with the decoded part file: ask for identity.
          'accept-encoding': extraHeaders?.range === undefined ? 'gzip, br' : 'identity',
          ...(trusted ? options.headers : withoutCredentials(options.headers)),
          ...extraHeaders,
          ...authorization(hasUserinfo(current) ? current : trusted ? url : undefined),
        },
        signal: signal ?? null,
      });
    } catch (error) {
      throw classifyNetworkError(error, shown, signal);
    }
    const { statusCode: status, headers, body } = response;
    if (status >= 200 && status < 300) return { url: current, status, headers, body };

    // Anything else is not saved: drain the body (bounded by the agent's body timeout) so the socket is reused.
    await body.dump({ limit: 64 * 1024 }).catch(() => undefined);

    const location = header(headers, 'location');
    if (!REDIRECT_STATUSES.has(status) || location === undefined) {
      throw new HttpStatusError(status, { url: shown, retryAfter: header(headers, 'retry-after') });
    }
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
    if (visited.has(next.href)) {
      throw new ValidationError('REDIRECT_LOOP', `redirect loop back to ${redactUrl(next)}`, { url: shown, status });
    }
    if (hop + 1 > options.maxRedirects) {
      throw new ValidationError('TOO_MANY_REDIRECTS', `more than ${options.maxRedirects} redirects`, { url: shown, status });
    }
    current = next;
  }
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
