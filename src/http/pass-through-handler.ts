/**
 * The base of imgdl's small dispatch handlers: each hands every callback to
 * the handler it wraps, and overrides the one it has something to do in.
 */
import type { Dispatcher } from 'undici';

type Callback<K extends keyof Dispatcher.DispatchHandler> = Parameters<NonNullable<Dispatcher.DispatchHandler[K]>>;

/** Passes every callback through to `handler`, unchanged. */
export class PassThroughHandler implements Dispatcher.DispatchHandler {
  constructor(readonly handler: Dispatcher.DispatchHandler) {}
  onRequestStart(...args: Callback<'onRequestStart'>): void {
    this.handler.onRequestStart?.(...args);
  }
  onRequestUpgrade(...args: Callback<'onRequestUpgrade'>): void {
    this.handler.onRequestUpgrade?.(...args);
  }
  onResponseStart(...args: Callback<'onResponseStart'>): void {
    this.handler.onResponseStart?.(...args);
  }
  onResponseData(...args: Callback<'onResponseData'>): void {
    this.handler.onResponseData?.(...args);
  }
  onResponseEnd(...args: Callback<'onResponseEnd'>): void {
    this.handler.onResponseEnd?.(...args);
  }
  onResponseError(...args: Callback<'onResponseError'>): void {
    this.handler.onResponseError?.(...args);
  }
}
