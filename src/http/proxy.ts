/**
 * Proxies: which one a request goes through (`--proxy` for every request, or
 * the environment's HTTPS_PROXY / HTTP_PROXY minus NO_PROXY), how it goes
 * (https targets through a CONNECT tunnel, with the run's TLS settings for
 * the server at the end of it; http targets as absolute-URL requests, as
 * curl does), with `user:pass@` in the proxy's URL sent as
 * Proxy-Authorization either way, and failures that name the proxy rather
 * than the server behind it.
 */
import type { Dispatcher } from 'undici';
import type * as Undici from 'undici';
import { ImgdlError, ProxyError } from '../errors.js';
import { PassThroughHandler } from './pass-through-handler.js';
import { fromUndici } from './undici.js';

const UndiciDispatcher = fromUndici('dispatcher/dispatcher.js', (undici) => undici.Dispatcher);
const Pool = fromUndici('dispatcher/pool.js', (undici) => undici.Pool);
const ProxyAgent = fromUndici('dispatcher/proxy-agent.js', (undici) => undici.ProxyAgent);
const buildConnector = fromUndici('core/connect.js', (undici) => undici.buildConnector);
// undici's index adds connect() to every dispatcher; loaded file by file they lack it, and a tunnel needs it.
const connectThrough = fromUndici('api/api-connect.js', (undici) => undici.Dispatcher.prototype.connect) as (
  this: Dispatcher,
  options: Dispatcher.ConnectOptions,
) => Promise<Dispatcher.ConnectData>;

/** A proxy as the run uses it. */
export interface Proxy {
  /** Its URL without credentials. */
  url: URL;
  /** Its URL for messages: `http://***@host:port` when it carries credentials. */
  shown: string;
  /** `Basic …` from the URL's `user:pass@` (percent-decoded), if any. */
  authorization: string | undefined;
}

/** Which proxy each request goes through. */
export interface ProxySettings {
  /** For http targets. */
  http: Proxy | undefined;
  /** For https targets. */
  https: Proxy | undefined;
  /** Hosts that go straight to the server, from NO_PROXY. */
  noProxy: NoProxyEntry[];
  /** True when NO_PROXY is `*`: no request goes through a proxy. */
  noneProxied: boolean;
}

/** One NO_PROXY entry: the host and its subdomains, on one port or (0) any. */
export interface NoProxyEntry {
  hostname: string;
  port: number;
}

/** `url` (an http: or https: URL, already validated) as a {@link Proxy}. */
export function toProxy(url: string): Proxy {
  const parsed = new URL(url);
  const credentials = parsed.username !== '' || parsed.password !== '';
  const authorization = credentials
    ? `Basic ${Buffer.from(`${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`).toString('base64')}`
    : undefined;
  // As redactUrl shows a URL: the credentials as ***, the rest as given.
  const shown = `${parsed.protocol}//${credentials ? '***@' : ''}${parsed.host}`;
  parsed.username = parsed.password = '';
  return { url: parsed, shown, authorization };
}

/**
 * The proxies of a run: `proxy` for every request when given, none when
 * false, otherwise the environment's, read as undici reads them (the
 * lower-case variable first; an https target without HTTPS_PROXY uses
 * HTTP_PROXY). Undefined when no request goes through a proxy.
 */
export function proxySettings(proxy: string | false | undefined, env: NodeJS.ProcessEnv = process.env): ProxySettings | undefined {
  if (proxy === false) return undefined;
  if (proxy !== undefined) {
    const every = toProxy(proxy);
    return { http: every, https: every, noProxy: [], noneProxied: false };
  }
  const httpUrl = env.http_proxy ?? env.HTTP_PROXY;
  const httpsUrl = env.https_proxy ?? env.HTTPS_PROXY;
  if (!httpUrl && !httpsUrl) return undefined;
  const http = httpUrl ? toProxy(httpUrl) : undefined;
  const noProxy = (env.no_proxy ?? env.NO_PROXY ?? '').trim();
  return { http, https: httpsUrl ? toProxy(httpsUrl) : http, noProxy: parseNoProxy(noProxy), noneProxied: noProxy === '*' };
}

/** NO_PROXY's entries, split on commas and spaces: `host`, `.host`, `*.host`, each with an optional `:port`. */
function parseNoProxy(value: string): NoProxyEntry[] {
  return value
    .split(/[,\s]/)
    .filter((entry) => entry !== '')
    .map((entry) => {
      const parsed = /^(.+):(\d+)$/.exec(entry);
      return { hostname: (parsed ? parsed[1]! : entry).replace(/^\*?\./, '').toLowerCase(), port: parsed ? Number(parsed[2]) : 0 };
    });
}

/** The proxy a request to `target` goes through, or undefined to go straight to the server. */
export function proxyFor(target: URL, settings: ProxySettings): Proxy | undefined {
  if (settings.noneProxied) return undefined;
  const hostname = target.hostname.toLowerCase();
  const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
  for (const entry of settings.noProxy) {
    if (entry.port !== 0 && entry.port !== port) continue;
    if (hostname === entry.hostname || hostname.endsWith(`.${entry.hostname}`)) return undefined;
  }
  return target.protocol === 'https:' ? settings.https : settings.http;
}

/** What the proxy routes need from the run's agent settings. */
export interface ProxyRouteOptions {
  /**
   * The settings of the run's own Agent: its timeouts apply to the proxy's
   * connections too, and all of them to each server's connections through a tunnel.
   */
  agent: Undici.Agent.Options & { connectTimeout: number; headersTimeout: number; bodyTimeout: number; keepAliveTimeout: number };
  /** TLS settings for the servers at the end of the tunnels (`--cacert`, `-k`). */
  requestTls: Undici.buildConnector.BuildOptions;
}

/** The two ways to one proxy, each made on first use. */
interface ProxyRoutes {
  tunnel?: Dispatcher;
  absolute?: Dispatcher;
}

/**
 * Sends each request through the proxy {@link proxyFor} picks, or through
 * `direct` when none: https targets through a CONNECT tunnel, http ones as
 * absolute-URL requests. Closing it closes `direct` too.
 */
export class ProxyDispatcher extends UndiciDispatcher {
  readonly #settings: ProxySettings;
  readonly #direct: Dispatcher;
  readonly #options: ProxyRouteOptions;
  readonly #routes = new Map<Proxy, ProxyRoutes>();

  constructor(settings: ProxySettings, direct: Dispatcher, options: ProxyRouteOptions) {
    super();
    this.#settings = settings;
    this.#direct = direct;
    this.#options = options;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const target = new URL(String(options.origin));
    const proxy = proxyFor(target, this.#settings);
    if (proxy === undefined) return this.#direct.dispatch(options, handler);
    let routes = this.#routes.get(proxy);
    if (routes === undefined) this.#routes.set(proxy, (routes = {}));
    if (target.protocol === 'https:') {
      routes.tunnel ??= this.#tunnel(proxy);
      return routes.tunnel.dispatch(options, handler);
    }
    routes.absolute ??= this.#absolute(proxy);
    // Requests (http/redirects.ts) carry their headers as an object; the Host is the server's, not the proxy's.
    const headers: Record<string, string> = { ...(options.headers as Record<string, string> | undefined), host: target.host };
    if (proxy.authorization !== undefined) headers['proxy-authorization'] = proxy.authorization;
    return routes.absolute.dispatch({ ...options, path: target.origin + options.path, headers }, new ProxyAnswerHandler(handler, proxy));
  }

  /** https targets: undici's ProxyAgent, its CONNECTs sent by {@link openTunnel}. */
  #tunnel(proxy: Proxy): Dispatcher {
    const { agent, requestTls } = this.#options;
    return new ProxyAgent({
      ...agent,
      uri: proxy.url.href,
      ...(proxy.authorization === undefined ? {} : { token: proxy.authorization }),
      proxyTls: { timeout: agent.connectTimeout },
      requestTls,
      clientFactory: (origin, options) => {
        const pool = new Pool(origin, options as Undici.Pool.Options);
        return Object.assign(pool, { connect: (params: Dispatcher.ConnectOptions) => openTunnel(pool, params, proxy) });
      },
    });
  }

  /** http targets: a pool of connections to the proxy, which takes absolute-URL requests. */
  #absolute(proxy: Proxy): Dispatcher {
    const { agent } = this.#options;
    const connector = buildConnector({ timeout: agent.connectTimeout });
    return new Pool(proxy.url, {
      headersTimeout: agent.headersTimeout,
      bodyTimeout: agent.bodyTimeout,
      keepAliveTimeout: agent.keepAliveTimeout,
      connect: (options, callback) =>
        connector(options, (error, socket) => (error ? callback(unreachable(proxy, error), null) : callback(null, socket!))),
    });
  }

  override async close(callback?: () => void): Promise<void> {
    await Promise.all([this.#direct.close(), ...this.#each((route) => route.close())]);
    callback?.();
  }

  override async destroy(...args: [] | [Error | null] | [Error | null, () => void] | [() => void]): Promise<void> {
    const error = typeof args[0] === 'function' ? null : (args[0] ?? null);
    const callback = typeof args[0] === 'function' ? args[0] : args[1];
    await Promise.all([this.#direct.destroy(error), ...this.#each((route) => route.destroy(error))]);
    callback?.();
  }

  #each(fn: (route: Dispatcher) => Promise<void>): Array<Promise<void>> {
    return [...this.#routes.values()].flatMap((routes) => [routes.tunnel, routes.absolute]).flatMap((route) => (route ? [fn(route)] : []));
  }
}

/**
 * Asks `pool`'s proxy for a tunnel, as undici's ProxyAgent expects of its
 * proxy client; anything but a 200 becomes an error naming the proxy, which
 * reaches every request that waited on the tunnel.
 */
async function openTunnel(pool: Dispatcher, params: Dispatcher.ConnectOptions, proxy: Proxy): Promise<Dispatcher.ConnectData> {
  let answer: Dispatcher.ConnectData;
  try {
    answer = await connectThrough.call(pool, params);
  } catch (error) {
    throw unreachable(proxy, error);
  }
  if (answer.statusCode === 200) return answer;
  answer.socket.destroy();
  throw answered(proxy, answer.statusCode);
}

/**
 * A proxy's answer other than a 200 to CONNECT, or a 407 to an absolute-URL
 * request. A 401 to CONNECT can only be the proxy's too: tinyproxy 1.11.1
 * (Debian's) sends one for wrong credentials.
 */
function answered(proxy: Proxy, status: number): ProxyError {
  if (status === 407 || status === 401) {
    const message =
      proxy.authorization === undefined
        ? `proxy ${proxy.shown} asks for credentials (HTTP ${status}); give them in its URL: http://user:pass@host:port`
        : `proxy ${proxy.shown} refused the credentials in its URL (HTTP ${status})`;
    return new ProxyError('PROXY_AUTH', message, { status });
  }
  return new ProxyError('HTTP_STATUS', `proxy ${proxy.shown} answered HTTP ${status} to CONNECT`, { status });
}

/** Codes of a failure to reach a host, rather than of a request once there. */
const CONNECT_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'refused the connection',
  ECONNRESET: 'closed the connection',
  UND_ERR_SOCKET: 'closed the connection',
  ENOTFOUND: 'was not found',
  EAI_AGAIN: 'was not found',
  EHOSTUNREACH: 'is unreachable',
  ENETUNREACH: 'is unreachable',
};

/**
 * `error`, met while connecting to the proxy or asking it for a tunnel, as
 * an error that names the proxy. Aborts (the run stopping) pass unchanged,
 * so that they stay ABORTED.
 */
function unreachable(proxy: Proxy, error: unknown): Error {
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  if (error instanceof ImgdlError || name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') return error as Error;
  if (code === 'UND_ERR_CONNECT_TIMEOUT')
    return new ProxyError('ETIMEDOUT', `timed out connecting to proxy ${proxy.shown}`, { cause: error });
  const what = typeof code === 'string' ? CONNECT_CODES[code] : undefined;
  const message = what === undefined ? `could not reach proxy ${proxy.shown}` : `proxy ${proxy.shown} ${what} (${String(code)})`;
  return new ProxyError('NETWORK', message, { cause: error });
}

/**
 * An absolute-URL request's handler: a 407 can only come from the proxy, so
 * it fails the request as PROXY_AUTH (closing the connection) instead of
 * reaching the caller as the server's answer.
 */
class ProxyAnswerHandler extends PassThroughHandler {
  constructor(
    handler: Dispatcher.DispatchHandler,
    readonly proxy: Proxy,
  ) {
    super(handler);
  }

  override onResponseStart(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>): void {
    const [controller, status] = args;
    if (status === 407) controller.abort(answered(this.proxy, status));
    else this.handler.onResponseStart?.(...args);
  }
}
