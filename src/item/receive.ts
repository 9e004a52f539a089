/**
 * Receiving a body: the response's chunks pass through here on their way to
 * the sink. The first bytes are held back until they are judged (an image,
 * and the name it calls for), a body past `maxSize` is stopped, and one
 * shorter than its Content-Length is TRUNCATED; every accepted chunk is shown
 * to the inspector (digest, image header) and handed to the sink entry.
 *
 * A small class, as undici's own handlers are: state in fields, no closure
 * or promise per chunk, and the body paused while the head is judged or the
 * sink asks to wait.
 */
import { ImgdlError, judgement } from '../errors.js';
import type { BodySink, ResponseBody } from '../http/body.js';
import { Inspector } from '../image/inspect.js';
import { SNIFF_BYTES } from '../image/sniff.js';
import type { HashAlgorithm } from '../options.js';
import type { Bandwidth, BandwidthWaiter } from '../run/bandwidth.js';
import type { SinkEntry, SinkHandler } from '../output/sink.js';

/**
 * Judges a body's first bytes: true to keep receiving, false when the name
 * they call for is already kept (the item is skipped). Throws (or rejects)
 * to refuse the body. A promise pauses the body until it settles.
 */
export interface HeadJudge {
  judgeHead(head: Buffer): boolean | Promise<boolean>;
}

/** What a {@link Receiver} checks the body against. */
export interface ReceiveLimits {
  /** The URL, for error messages. */
  url: string;
  /** Largest file allowed; more is TOO_LARGE, and the body is stopped. */
  maxSize: number | undefined;
  /** The whole file's size as the server announced it; fewer bytes is TRUNCATED. */
  expectedTotal: number | undefined;
  /** The first bytes already kept, when resuming: judged together with the new ones. */
  existingHead: Buffer | undefined;
  /** Bytes already kept, when resuming. */
  start: number;
  /** Slowest speed allowed, in bytes per second, for longer than `speedTimeMs`; undefined for no check. */
  speedLimit?: number | undefined;
  /** How long the body may stay under `speedLimit`, in ms. */
  speedTimeMs?: number | undefined;
  /** The run's bandwidth cap, which every chunk draws from; undefined for none. */
  bandwidth?: Bandwidth | undefined;
}

/** How often a {@link Receiver} with a speed limit measures its body's speed. */
const SPEED_TICK_MS = 1000;

/** The speed check's timer callback: a plain function given the receiver, so no closure is made per body. */
function checkSpeed(receiver: Receiver): void {
  receiver.checkSpeed(performance.now());
}

/** One body on its way from the response to a sink entry. */
export class Receiver implements BodySink, SinkHandler, BandwidthWaiter {
  /** Shown every accepted chunk, resumed bytes first. */
  readonly inspector: Inspector;
  /** The file's size so far: resumed bytes plus those received. */
  bytes: number;
  readonly #body: ResponseBody;
  readonly #entry: SinkEntry;
  readonly #judge: HeadJudge | undefined;
  readonly #limits: ReceiveLimits;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #judged: boolean;
  #judging = false;
  #ended = false;
  #paused = false;
  /** True after the entry refused a write, until it drains. */
  #sinkFull = false;
  /** True while the body waits for the run's bandwidth cap to refill. */
  #overdrawn = false;
  #settled = false;
  #resolve: ((wanted: boolean) => void) | undefined;
  #reject: ((error: ImgdlError) => void) | undefined;
  /** The speed check's timer, while one runs. */
  #speedTimer: NodeJS.Timeout | undefined;
  /** When the speed was last measured, and the bytes then. */
  #tickAt = 0;
  #tickBytes = 0;
  /** Since when the body has been slower than `speedLimit`; undefined while it is fast enough. */
  #slowSince: number | undefined;

  /** `judge` is undefined when any body is kept (`anyType`). */
  constructor(body: ResponseBody, entry: SinkEntry, judge: HeadJudge | undefined, limits: ReceiveLimits, hash: HashAlgorithm | undefined) {
    this.#body = body;
    this.#entry = entry;
    this.#judge = judge;
    this.#limits = limits;
    this.#judged = judge === undefined;
    this.bytes = limits.start;
    this.inspector = new Inspector(hash);
  }

  /**
   * Pipes the body through: resolves true once it has ended whole and been
   * accepted, false when its head called for a name already kept. Rejects
   * with the body's failure, or this side's (refused, too large, truncated,
   * the sink failing); the body is stopped then.
   */
  receive(): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      if (this.#limits.speedLimit !== undefined) {
        this.#tickAt = performance.now();
        this.#tickBytes = this.bytes;
        this.#speedTimer = setInterval(checkSpeed, SPEED_TICK_MS, this);
        this.#speedTimer.unref();
      }
      this.#body.pipe(this);
    });
  }

  /**
   * Measures the speed since the last tick: a body under `speedLimit` for `speedTimeMs` in a row is
   * stopped with TOO_SLOW, as curl's `--speed-limit` does. Called by the speed timer.
   */
  checkSpeed(at: number): void {
    const { speedLimit, speedTimeMs = 0 } = this.#limits;
    if (this.#settled || speedLimit === undefined) return this.#stopSpeedCheck();
    const perSecond = ((this.bytes - this.#tickBytes) * 1000) / Math.max(1, at - this.#tickAt);
    if (perSecond >= speedLimit) this.#slowSince = undefined;
    else this.#slowSince ??= this.#tickAt;
    this.#tickAt = at;
    this.#tickBytes = this.bytes;
    if (this.#slowSince === undefined || at - this.#slowSince < speedTimeMs) return;
    const seconds = Math.round(speedTimeMs / 1000);
    this.#stop(
      new ImgdlError('TOO_SLOW', `body came slower than ${speedLimit} bytes/s for ${seconds} s (--speed-limit, --speed-time)`, {
        url: this.#limits.url,
      }),
    );
  }

  #stopSpeedCheck(): void {
    clearInterval(this.#speedTimer);
    this.#speedTimer = undefined;
  }

  write(chunk: Buffer): boolean {
    if (this.#settled) return false;
    this.bytes += chunk.length;
    const { maxSize } = this.#limits;
    if (maxSize !== undefined && this.bytes > maxSize) {
      this.#stop(new ImgdlError('TOO_LARGE', `body is larger than the ${maxSize} bytes allowed (--max-size)`, { url: this.#limits.url }));
      return false;
    }
    if (this.#judged) this.#pass(chunk);
    else {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      if (!this.#judging && (this.#limits.existingHead?.length ?? 0) + this.#heldBytes >= SNIFF_BYTES) this.#judgeHead();
    }
    if (this.#settled) return false;
    const { bandwidth } = this.#limits;
    if (bandwidth !== undefined && bandwidth.take(chunk.length) && !this.#overdrawn) {
      this.#overdrawn = true;
      bandwidth.wait(this);
    }
    const wanting = !this.#judging && !this.#sinkFull && !this.#overdrawn;
    if (!wanting) this.#paused = true;
    return wanting;
  }

  end(): void {
    if (this.#settled) return;
    this.#ended = true;
    if (this.#judged) this.#finish();
    else if (!this.#judging) this.#judgeHead();
  }

  fail(error: ImgdlError): void {
    // A connection closed before Content-Length is a short body, whatever the socket layer calls it.
    const { expectedTotal } = this.#limits;
    const short = error.code === 'NETWORK' && expectedTotal !== undefined && this.bytes < expectedTotal;
    this.#settle(short ? this.#truncated(error) : error);
  }

  onSinkDrain(): void {
    this.#sinkFull = false;
    this.#resumeIfWanted();
  }

  onBandwidth(): void {
    this.#overdrawn = false;
    this.#resumeIfWanted();
  }

  onSinkError(error: ImgdlError): void {
    this.#stop(error);
  }

  /** An accepted chunk: inspected, then kept. */
  #pass(chunk: Buffer): void {
    this.inspector.see(chunk);
    if (!this.#entry.write(chunk)) this.#sinkFull = true;
  }

  /** Shows the held head to the judge; the body goes on once it is accepted. */
  #judgeHead(): void {
    const existing = this.#limits.existingHead;
    const parts = existing === undefined ? this.#held : [existing, ...this.#held];
    const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = this.#judge!.judgeHead(head);
    } catch (error) {
      return this.#stop(judgement(error, this.#limits.url));
    }
    if (typeof verdict === 'boolean') return this.#verdict(verdict);
    this.#judging = true;
    verdict.then(
      (wanted) => {
        this.#judging = false;
        if (!this.#settled) this.#verdict(wanted);
      },
      (error: unknown) => {
        this.#judging = false;
        this.#stop(judgement(error, this.#limits.url));
      },
    );
  }

  #verdict(wanted: boolean): void {
    if (!wanted) {
      // The name the bytes call for is kept already: known from the head, so a rerun reads no more.
      this.#settled = true;
      this.#held = [];
      this.#stopSpeedCheck();
      this.#body.abort();
      return this.#resolve!(false);
    }
    this.#judged = true;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    for (const chunk of held) this.#pass(chunk);
    if (this.#ended) return this.#finish();
    this.#resumeIfWanted();
  }

  #resumeIfWanted(): void {
    if (this.#paused && !this.#judging && !this.#sinkFull && !this.#overdrawn && !this.#settled) {
      this.#paused = false;
      this.#body.resume();
    }
  }

  /** The body has ended and been accepted: whole unless shorter than announced. */
  #finish(): void {
    const { expectedTotal } = this.#limits;
    if (expectedTotal !== undefined && this.bytes < expectedTotal) return this.#settle(this.#truncated());
    this.#settled = true;
    this.#stopSpeedCheck();
    this.#resolve!(true);
  }

  #truncated(cause?: unknown): ImgdlError {
    return new ImgdlError('TRUNCATED', `body ended after ${this.bytes} of ${this.#limits.expectedTotal} bytes`, {
      url: this.#limits.url,
      cause,
    });
  }

  /** Fails on this side (a refused head, too large, the sink failing): the body is stopped too. */
  #stop(failure: ImgdlError): void {
    if (this.#settled) return;
    this.#body.abort();
    this.#settle(failure);
  }

  #settle(failure: ImgdlError): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#held = [];
    this.#stopSpeedCheck();
    this.#reject!(failure);
  }
}
