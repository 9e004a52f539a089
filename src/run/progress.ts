/**
 * Progress: the run's figures as they move, for whoever draws them. The
 * library emits {@link Progress} snapshots through `options.onProgress`; the
 * CLI's progress line is one such consumer and knows nothing more than this.
 */
import type { ItemResult } from '../record/record.js';

/** A snapshot of a run in progress. Each call of `onProgress` receives a fresh object. */
export interface Progress {
  /** Items read from the source so far (the list is read lazily, as slots free up). */
  read: number;
  /** The whole source has been read: `read` is the total. */
  listComplete: boolean;
  /** Items finished, whatever their status (`ok + failed + skipped`). */
  done: number;
  ok: number;
  failed: number;
  skipped: number;
  /** Items with a request in flight now. */
  inFlight: number;
  /** Response body bytes received so far, after decoding, redirects and error pages included. */
  bytes: number;
}

/** Keeps a run's {@link Progress} and reports every change to a listener. */
export class ProgressTracker {
  readonly #state: Progress = { read: 0, listComplete: false, done: 0, ok: 0, failed: 0, skipped: 0, inFlight: 0, bytes: 0 };
  readonly #listener: ((progress: Progress) => void) | undefined;

  constructor(listener: ((progress: Progress) => void) | undefined) {
    this.#listener = listener;
  }

  /** An item was read from the source. */
  read(): void {
    this.#state.read++;
    this.#emit();
  }

  /** The source is exhausted. */
  listComplete(): void {
    this.#state.listComplete = true;
    this.#emit();
  }

  /** A request for an item started. */
  started(): void {
    this.#state.inFlight++;
    this.#emit();
  }

  /** An item's body arrived: its request is over while the disk keeps the body. */
  received(): void {
    this.#state.inFlight--;
    this.#emit();
  }

  /** An item finished; `requested` says whether it is still counted in flight. */
  finished(result: ItemResult, requested: boolean): void {
    const s = this.#state;
    if (requested) s.inFlight--;
    s.done++;
    s[result.status]++;
    this.#emit();
  }

  /** Body bytes arrived. */
  bytes(n: number): void {
    this.#state.bytes += n;
    this.#emit();
  }

  #emit(): void {
    // A listener that throws must not break a download: progress is a view, not the run.
    if (this.#listener) {
      try {
        this.#listener({ ...this.#state });
      } catch {
        /* ignored on purpose */
      }
    }
  }
}
