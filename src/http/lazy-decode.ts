/**
 * Body decoding set up only for the responses that need it. undici's
 * decompress interceptor builds a handler per request (a controller of its
 * own, three closures, and rest-argument forwarding with assertions on every
 * callback and chunk) whether or not the answer is encoded; most images are
 * not. Here a request costs one small controller, and undici's decoder is
 * made, and given the request's start late, only when an answer carries
 * Content-Encoding: what it decodes, and how, is undici's alone.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

type Dispatch = Dispatcher.Dispatch;
type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;

/**
 * The controller the inner handler holds from the request's start: the
 * connection's, until a decoder takes the body, then the decoder's (so that
 * pausing waits on the decoder's output, not only on the socket).
 */
class SwitchedController implements Controller {
  target: Controller;

  constructor(target: Controller) {
    this.target = target;
  }

  get aborted(): boolean {
    return this.target.aborted;
  }

  get paused(): boolean {
    return this.target.paused;
  }

  get reason(): Error | null {
    return this.target.reason;
  }

  abort(reason: Error): void {
    this.target.abort(reason);
  }

  pause(): void {
    this.target.pause();
  }

  resume(): void {
    this.target.resume();
  }
}

/** What the decoder wraps: the inner handler, whose start was told already, so only the controller switches. */
class Downstream implements Handler {
  readonly #inner: Handler;
  readonly #switched: SwitchedController;

  constructor(inner: Handler, switched: SwitchedController) {
    this.#inner = inner;
    this.#switched = switched;
  }

  onRequestStart(controller: Controller): void {
    this.#switched.target = controller;
  }

  onResponseStart(controller: Controller, status: number, headers: IncomingHttpHeaders, message?: string): void {
    this.#inner.onResponseStart?.(this.#switched, status, headers, message);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.#inner.onResponseData?.(this.#switched, chunk);
  }

  onResponseEnd(controller: Controller, trailers: IncomingHttpHeaders): void {
    this.#inner.onResponseEnd?.(this.#switched, trailers);
  }

  onResponseError(controller: Controller, error: Error): void {
    this.#inner.onResponseError?.(this.#switched, error);
  }
}

/** One request's handler: passes everything through, or through a decoder made at the response's start. */
class LazyDecodeHandler implements Handler {
  readonly #inner: Handler;
  readonly #decoderFor: (downstream: Handler) => Handler;
  #switched: SwitchedController | undefined;
  #context: unknown;
  #decoder: Handler | undefined;

  constructor(inner: Handler, decoderFor: (downstream: Handler) => Handler) {
    this.#inner = inner;
    this.#decoderFor = decoderFor;
  }

  onRequestStart(controller: Controller, context: unknown): void {
    this.#switched = new SwitchedController(controller);
    this.#context = context;
    this.#inner.onRequestStart?.(this.#switched, context);
  }

  onRequestUpgrade(controller: Controller, status: number, headers: IncomingHttpHeaders, socket: never): void {
    this.#inner.onRequestUpgrade?.(this.#switched ?? controller, status, headers, socket);
  }

  onResponseStart(controller: Controller, status: number, headers: IncomingHttpHeaders, message?: string): void {
    const switched = (this.#switched ??= new SwitchedController(controller));
    if (headers['content-encoding'] === undefined) return this.#inner.onResponseStart?.(switched, status, headers, message);
    const decoder = (this.#decoder = this.#decoderFor(new Downstream(this.#inner, switched)));
    decoder.onRequestStart?.(controller, this.#context);
    decoder.onResponseStart?.(controller, status, headers, message);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#decoder !== undefined) this.#decoder.onResponseData?.(controller, chunk);
    else this.#inner.onResponseData?.(this.#switched ?? controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: IncomingHttpHeaders): void {
    if (this.#decoder !== undefined) this.#decoder.onResponseEnd?.(controller, trailers);
    else this.#inner.onResponseEnd?.(this.#switched ?? controller, trailers);
  }

  onResponseError(controller: Controller, error: Error): void {
    if (this.#decoder !== undefined) this.#decoder.onResponseError?.(controller, error);
    else this.#inner.onResponseError?.(this.#switched ?? controller, error);
  }
}

/**
 * An interceptor that decodes bodies as `decompress` (undici's decompress
 * interceptor, made once) does, but sets it up per response, and only for
 * answers with a Content-Encoding.
 */
export function lazyDecode(decompress: Dispatcher.DispatcherComposeInterceptor): Dispatcher.DispatcherComposeInterceptor {
  // The interceptor's handler for `downstream`, taken from the dispatch it would make (which is not made).
  const decoderFor = (downstream: Handler): Handler => {
    let made: Handler | undefined;
    decompress((_opts, handler) => {
      made = handler;
      return true;
    })({ path: '/', method: 'GET' }, downstream);
    return made!;
  };
  return (dispatch: Dispatch): Dispatch =>
    (opts, handler) =>
      dispatch(opts, new LazyDecodeHandler(handler, decoderFor));
}
