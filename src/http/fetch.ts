/**
 * The run's HTTP dispatcher: its own undici Agent (never the global one),
 * with the timeouts, proxy, TLS and body decoding a run asks for. Requests go
 * through it in request.ts; redirects are followed in redirects.ts.
 */
import { rootCertificates } from 'node:tls';
import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';
import type { ResolvedOptions } from '../options.js';
import { lazyDecode } from './lazy-decode.js';
import { PassThroughHandler } from './pass-through-handler.js';
import { proxySettings, ProxyDispatcher } from './proxy.js';
import { fromUndici } from './undici.js';

const Agent = fromUndici('dispatcher/agent.js', (undici) => undici.Agent);
const buildConnector = fromUndici('core/connect.js', (undici) => undici.buildConnector);
const decompress = fromUndici('interceptor/decompress.js', (undici) => undici.interceptors.decompress);

/** What {@link createAgent} needs from the options. */
export type AgentOptions = Pick<ResolvedOptions, 'timeoutMs' | 'perHost'> &
  Partial<Pick<ResolvedOptions, 'proxy' | 'insecure' | 'ca' | 'http2' | 'concurrency'>>;

/**
 * Streams one HTTP/2 connection carries at once. undici 7 multiplexes only when `pipelining` is above 1
 * (undici #4143, fixed in 8), so with HTTP/2 on it is set to this; a server that answers in HTTP/1.1 then
 * gets requests pipelined on its connections too, which is one reason `--http2` is not the default.
 */
export const H2_STREAMS = 100;

/**
 * Connections to one origin: `perHost` when set; with HTTP/2, as few as the run's concurrency needs
 * (2 at least), since undici opens one per request while the first is still connecting and a run's
 * first requests would otherwise open as many connections as there are requests; none otherwise.
 */
function connectionsPerOrigin(options: AgentOptions): number | null {
  if (options.perHost !== undefined) return options.perHost;
  return options.http2 ? Math.max(2, Math.ceil((options.concurrency ?? 1) / H2_STREAMS)) : null;
}

/**
 * Opens a run's HTTP dispatcher: keep-alive, separate connect/headers/body-idle
 * timeouts, optional per-origin cap; HTTP/2 offered with `http2`; through `options.proxy`, or the
 * environment's proxies when one is set (see proxy.ts); gzip/br/deflate bodies
 * decoded; and `onBytes` told of every decoded body chunk. Always a dispatcher
 * of its own: the global one is never read or changed.
 */
export function createAgent(
  options: AgentOptions,
  onBytes?: (n: number) => void,
  onProtocol?: (host: string, protocol: string) => void,
): Dispatcher {
  const tls = {
    ...(options.insecure ? { rejectUnauthorized: false } : {}),
    // Node's `ca` replaces its bundled roots; keep them so a private CA adds to the public ones.
    ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
  };
  const base = {
    connections: connectionsPerOrigin(options),
    connectTimeout: options.timeoutMs,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 10_000,
    connect: tls,
    ...(options.http2 ? { allowH2: true, pipelining: H2_STREAMS } : {}),
  };
  const proxies = proxySettings(options.proxy);
  const told = options.http2 && onProtocol !== undefined && proxies === undefined;
  const direct = new Agent(told ? { ...base, connect: tellingConnector(tls, options.timeoutMs, onProtocol) } : base);
  const dispatcher = proxies === undefined ? direct : new ProxyDispatcher(proxies, direct, { agent: base, requestTls: tls });
  // compose() wraps in order, so the counter sits outside the decoder and counts decoded bytes.
  const decode = lazyDecode(decompressInterceptor());
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

/**
 * undici's own connector with HTTP/2 offered, telling `onProtocol` what each host's TLS negotiated the first
 * time it is seen: the protocol of a connection is known nowhere else without undici's private fields.
 */
function tellingConnector(
  tls: object,
  timeout: number,
  onProtocol: (host: string, protocol: string) => void,
): Undici.buildConnector.connector {
  const connect = buildConnector({ ...tls, allowH2: true, timeout });
  const seen = new Set<string>();
  return (options, callback) =>
    connect(options, (error, socket) => {
      const negotiated = (socket as { alpnProtocol?: unknown } | null)?.alpnProtocol;
      const protocol = typeof negotiated === 'string' ? negotiated : 'http/1.1';
      // undici passes its URL's fields: `host` is `url.host`, as the run keys hosts.
      const host = options.host ?? `${options.hostname}:${options.port}`;
      const key = `${host} ${protocol}`;
      if (error === null && options.protocol === 'https:' && !seen.has(key)) {
        seen.add(key);
        onProtocol(host, protocol);
      }
      (callback as (error: Error | null, socket: unknown) => void)(error, socket);
    });
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
