/**
 * The run's HTTP dispatcher: its own undici Agent (never the global one),
 * with the timeouts, proxy, TLS and body decoding a run asks for. Requests go
 * through it in request.ts; redirects are followed in redirects.ts.
 */
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { ResolvedOptions } from '../options.js';
import { PassThroughHandler } from './pass-through-handler.js';
import { proxySettings, ProxyDispatcher } from './proxy.js';
import { fromUndici } from './undici.js';

const Agent = fromUndici('dispatcher/agent.js', (undici) => undici.Agent);
const decompress = fromUndici('interceptor/decompress.js', (undici) => undici.interceptors.decompress);

/** What {@link createAgent} needs from the options. */
export type AgentOptions = Pick<ResolvedOptions, 'timeoutMs' | 'perHost'> & Partial<Pick<ResolvedOptions, 'proxy' | 'insecure' | 'ca'>>;

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
