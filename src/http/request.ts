/**
 * One request on the wire: a dispatch handler that resolves at the response's
 * headers and then hands the body, chunk by chunk, to whoever pipes it. A
 * body nobody wants is drained (bounded) or destroyed here, so that sockets
 * go back to the pool on success, error and abort alike.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { classifyNetworkError, type ImgdlError } from '../errors.js';
import { LinkedList } from '../run/linked-list.js';
import type { BodySink, FetchedResponse, ResponseBody } from './body.js';

/** How much of a body that is not saved (an error page, a redirect) is read so that its connection can be reused. */
const DRAIN_LIMIT = 64 * 1024;

/** How much body may arrive before anyone takes it (between the headers and the pipe) before the connection is paused. */
const QUEUE_LIMIT = 64 * 1024;

/** Sends one GET through `agent` to `url` (whose origin is `origin`); resolves at the response's headers. */
export function requestOnce(
  agent: Dispatcher,
  url: URL,
  origin: string,
  headers: Record<string, string>,
  shown: string,
  signal: AbortSignal | undefined,
): Promise<FetchedResponse> {
  return new Promise((resolve, reject) => {
    const handler = new ResponseHandler(url, shown, signal, resolve, reject);
    try {
      agent.dispatch({ origin, path: url.pathname + url.search, method: 'GET', headers }, handler);
    } catch (error) {
      handler.onResponseError(undefined, error as Error);
    }
  });
}

/** Reads and drops up to {@link DRAIN_LIMIT} bytes of `body`, then stops it; never rejects. */
export function drain(body: ResponseBody): Promise<void> {
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
 * Linked through the handlers, not kept in a Set: see run/linked-list.ts.
 */
const inFlight = new WeakMap<AbortSignal, LinkedList<ResponseHandler>>();

function inFlightUnder(signal: AbortSignal): LinkedList<ResponseHandler> {
  const known = inFlight.get(signal);
  if (known !== undefined) return known;
  const list = new LinkedList<ResponseHandler>();
  // Each handler leaves the list as it stops: the copy is gone through.
  signal.addEventListener('abort', () => list.toArray().forEach((handler) => handler.stop()), { once: true });
  inFlight.set(signal, list);
  return list;
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
  /** The requests in flight under `#signal`, this one linked in until it finishes. */
  readonly #siblings: LinkedList<ResponseHandler> | undefined;
  /** Its neighbours in that list. */
  previous: ResponseHandler | undefined;
  next: ResponseHandler | undefined;
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
    this.#siblings?.push(this);
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
    this.#siblings?.remove(this);
  }
}
