/**
 * The run's HTTP dispatcher: its own undici Agent (never the global one),
 * with the timeouts, proxy, TLS and body decoding a run asks for. Requests go
 * through it in request.ts; redirects are followed in redirects.ts.
 */
import { createRequire } from 'node:module';
import { rootCertificates } from 'node:tls';
import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';
import type { ResolvedOptions } from '../options.js';

const load = createRequire(import.meta.url);

/**
 * One of undici's own modules, by its path in undici 7's `lib/`, rather than
 * through undici's index, which also loads fetch, WebSocket, EventSource, the
 * cache and the mocks: ~110 ms of CPU at every start, against ~35 ms for the
 * four imgdl uses. A later 7.x release (the range users install) may move a
 * file: then the same export comes from the index, slower to load but never
 * broken.
 */
export function fromUndici<T>(file: string, pick: (undici: typeof Undici) => T): T {
  try {
    const found = load(`undici/lib/${file}`) as unknown;
    if (typeof found === 'function') return found as T;
  } catch {
    // Moved or renamed: fall through to the index.
  }
  return pick(load('undici') as typeof Undici);
}

const Agent = fromUndici('dispatcher/agent.js', (undici) => undici.Agent);
const ProxyAgent = fromUndici('dispatcher/proxy-agent.js', (undici) => undici.ProxyAgent);
const EnvHttpProxyAgent = fromUndici('dispatcher/env-http-proxy-agent.js', (undici) => undici.EnvHttpProxyAgent);
const decompress = fromUndici('interceptor/decompress.js', (undici) => undici.interceptors.decompress);

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
    return decompress();
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
