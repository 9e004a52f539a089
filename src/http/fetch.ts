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
import type { Dispatcher } from 'undici';
import { HttpStatusError, ImgdlError, NetworkError, ProxyError, TimeoutError, ValidationError } from '../errors.js';
import { redactUrl } from '../input/text-list.js';
import type { ResolvedOptions } from '../options.js';
import { PassThroughHandler } from './pass-through-handler.js';
import { proxySettings, ProxyDispatcher } from './proxy.js';
import { parseRetryAfter } from '../item/retry.js';
import { fromUndici } from './undici.js';

/** A 2xx response; its body comes through {@link ResponseBody.pipe}, and must be piped or aborted. */
export interface FetchedResponse {
  /** The URL that answered, after redirects. */
  url: URL;
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

/**
 * Where a response body goes, a chunk at a time, as undici hands it over:
 * synchronously, with no stream and no promise per chunk.
 */
export interface BodySink {
  /** Takes the next chunk; returning false asks for no more until {@link ResponseBody.resume}. */
  write(chunk: Buffer): boolean;
  /** The body is complete. */
  end(): void;
  /** The body failed; the error is already classified (ETIMEDOUT, NETWORK, ABORTED, ...). */
  fail(error: ImgdlError): void;
}

/** The body side of a response: where it goes, and a way to slow it down or stop it. */
export interface ResponseBody {
  /** Sends the body to `sink`, starting with what arrived before this call. Call once. */
  pipe(sink: BodySink): void;
  /** Lets a paused body flow again. */
  resume(): void;
  /**
   * Stops the body unread, closing its connection; a sink already given
   * gets no more calls. For bodies not worth reading (too large, not wanted).
   */
  abort(): void;
}

const Agent = fromUndici('dispatcher/agent.js', (undici) => undici.Agent);
const decompress = fromUndici('interceptor/decompress.js', (undici) => undici.interceptors.decompress);

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** What {@link createAgent} needs from the options. */
export type AgentOptions = Pick<ResolvedOptions, 'timeoutMs' | 'perHost'> &
  Partial<Pick<ResolvedOptions, 'proxy' | 'insecure' | 'ca'>>;

/**
 * Opens a run's HTTP dispatcher: keep-alive, separate connect/headers/body-idle
 * timeouts, optional per-origin cap; through `options.proxy`, or the
 * environment's proxies when one is set (see proxy.ts); gzip/br/deflate bodies
 * decoded; and `onBytes` told of every decoded body chunk. Always a dispatcher
 * of its own: the global one is never read or changed.
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
  };
  const direct = new Agent(base);
  const proxies = proxySettings(options.proxy);
  const dispatcher = proxies === undefined ? direct : new ProxyDispatcher(proxies, direct, { agent: base, requestTls: tls });
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
    return decompress();
  } finally {
    process.emitWarning = emitWarning;
  }
}

function countBody(onBytes: (n: number) => void): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => dispatch(opts, new CountingHandler(handler, onBytes));
}

/** Passes every callback through, telling `onBytes` the size of each body chunk. */
class CountingHandler extends PassThroughHandler {
  constructor(
    handler: Dispatcher.DispatchHandler,
    readonly onBytes: (n: number) => void,
  ) {
    super(handler);
  }
  override onResponseData(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseData']>>): void {
    this.onBytes(args[1].length);
    this.handler.onResponseData?.(...args);
  }
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
  // A proxy's failure reaches every request that waited on its connection: each gets a copy with its own URL.
  if (error instanceof ProxyError && error.url === undefined) return new ProxyError(error.code, error.message, { url, status: error.status, cause: error.cause });
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
  let current = url;
  for (let hop = 0; ; hop++) {
    visited.add(current.href);
    // The user's credentials go to the origin the user named; another origin gets them only when trusted.
    const trusted = options.locationTrusted || current.origin === url.origin;
    let response: FetchedResponse;
    try {
      response = await requestOnce(agent, current, {
        'user-agent': options.userAgent,
        accept: 'image/*,*/*;q=0.8',
        // The agent's decompress interceptor decodes these, so the saved file is the image itself. A Range
        // counts bytes of the encoded body, which would not line up with the decoded part file: ask for identity.
        'accept-encoding': extraHeaders?.range === undefined ? 'gzip, br' : 'identity',
        ...(trusted ? options.headers : withoutCredentials(options.headers)),
        ...extraHeaders,
        ...authorization(hasUserinfo(current) ? current : trusted ? url : undefined),
      }, shown, signal);
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

/** How much of a body that is not saved (an error page, a redirect) is read so that its connection can be reused. */
const DRAIN_LIMIT = 64 * 1024;

/** How much body may arrive before anyone takes it (between the headers and the pipe) before the connection is paused. */
const QUEUE_LIMIT = 64 * 1024;

/** Sends one GET through `agent`; resolves at the response's headers. */
function requestOnce(agent: Dispatcher, url: URL, headers: Record<string, string>, shown: string, signal: AbortSignal | undefined): Promise<FetchedResponse> {
  return new Promise((resolve, reject) => {
    const handler = new ResponseHandler(url, shown, signal, resolve, reject);
    try {
      agent.dispatch({ origin: url.origin, path: url.pathname + url.search, method: 'GET', headers }, handler);
    } catch (error) {
      handler.onResponseError(undefined, error as Error);
    }
  });
}

/** Reads and drops up to {@link DRAIN_LIMIT} bytes of `body`, then stops it; never rejects. */
function drain(body: ResponseBody): Promise<void> {
  return new Promise((resolve) => {
    let read = 0;
    body.pipe({
      write(chunk) {
        read += chunk.length;
        if (read > DRAIN_LIMIT) {
          body.abort();
          resolve();
        }
        return true;
      },
      end: resolve,
      fail: () => resolve(),
    });
  });
}

/**
 * The requests in flight under each signal. One listener per signal stops
 * them all: a listener per request cost an addEventListener and a
 * removeEventListener per file (flood profile: 1.4 % of the main thread).
 */
const inFlight = new WeakMap<AbortSignal, Set<ResponseHandler>>();

function inFlightUnder(signal: AbortSignal): Set<ResponseHandler> {
  let handlers = inFlight.get(signal);
  if (handlers === undefined) {
    const set = new Set<ResponseHandler>();
    signal.addEventListener('abort', () => {
      for (const handler of set) handler.stop();
    }, { once: true });
    inFlight.set(signal, set);
    handlers = set;
  }
  return handlers;
}

/**
 * One request's dispatch handler, and the body of its response. It resolves
 * the head when the headers arrive, then hands each body chunk to the sink
 * it is piped to; chunks that come before the pipe (they arrive with the
 * headers) are queued, the connection paused past {@link QUEUE_LIMIT}.
 * Failures reach the caller classified: through the head promise before the
 * headers, through the sink after. State lives in fields, so nothing is
 * allocated per chunk.
 */
class ResponseHandler implements Dispatcher.DispatchHandler, ResponseBody {
  readonly #url: URL;
  readonly #shown: string;
  readonly #signal: AbortSignal | undefined;
  /** The requests in flight under `#signal`, this one included until it finishes. */
  readonly #siblings: Set<ResponseHandler> | undefined;
  #resolve: ((response: FetchedResponse) => void) | undefined;
  #reject: ((error: ImgdlError) => void) | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #sink: BodySink | undefined;
  #queue: Buffer[] | undefined;
  #queued = 0;
  #ended = false;
  #failure: ImgdlError | undefined;
  /** Set once the body was stopped on purpose (or the request finished): no more calls reach the sink. */
  #done = false;

  constructor(
    url: URL,
    shown: string,
    signal: AbortSignal | undefined,
    resolve: (response: FetchedResponse) => void,
    reject: (error: ImgdlError) => void,
  ) {
    this.#url = url;
    this.#shown = shown;
    this.#signal = signal;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#siblings = signal === undefined ? undefined : inFlightUnder(signal);
    this.#siblings?.add(this);
  }

  /** The signal aborted: stop at once, whatever the request is doing (one not started yet stops when it starts). */
  stop(): void {
    this.#controller?.abort(this.#signal!.reason instanceof Error ? this.#signal!.reason : new Error('aborted'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#signal?.aborted) this.stop();
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    // 1xx answers (100 Continue, 103 Early Hints) come before the real one.
    if (status < 200) return;
    const resolve = this.#resolve;
    this.#resolve = this.#reject = undefined;
    resolve?.({ url: this.#url, status, headers, body: this });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    if (this.#sink !== undefined) {
      if (!this.#sink.write(chunk)) controller.pause();
      return;
    }
    (this.#queue ??= []).push(chunk);
    this.#queued += chunk.length;
    if (this.#queued >= QUEUE_LIMIT) controller.pause();
  }

  onResponseEnd(): void {
    this.#unlisten();
    this.#ended = true;
    if (this.#done) return;
    this.#done = this.#sink !== undefined;
    this.#sink?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.#unlisten();
    const failure = classifyNetworkError(error, this.#shown, this.#signal);
    const reject = this.#reject;
    if (reject !== undefined) {
      this.#resolve = this.#reject = undefined;
      reject(failure);
      return;
    }
    if (this.#done) return;
    this.#failure = failure;
    this.#done = this.#sink !== undefined;
    this.#sink?.fail(failure);
  }

  pipe(sink: BodySink): void {
    this.#sink = sink;
    const queue = this.#queue;
    this.#queue = undefined;
    this.#queued = 0;
    let wanting = true;
    if (queue !== undefined) for (const chunk of queue) if (!this.#done) wanting = sink.write(chunk);
    if (this.#done) return;
    if (this.#failure !== undefined) {
      this.#done = true;
      sink.fail(this.#failure);
    } else if (this.#ended) {
      this.#done = true;
      sink.end();
    } else if (!wanting) this.#controller?.pause();
    else this.#controller?.resume();
  }

  resume(): void {
    if (!this.#done) this.#controller?.resume();
  }

  abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.#unlisten();
    this.#controller?.abort(new Error('body not wanted'));
  }

  #unlisten(): void {
    this.#siblings?.delete(this);
  }
}
