/**
 * The CLI's live progress line: one line on a terminal's stderr, redrawn at
 * most every `intervalMs`, drawn only from the {@link Progress} snapshots the
 * library emits. Log lines pass through {@link ProgressLine.logStream}, which
 * clears the line before writing them so they never land in the middle of it.
 */
import { Writable } from 'node:stream';
import type { Progress } from '../run/progress.js';
import { formatBytes, formatDuration } from '../record/run-report.js';

/** The stream drawn on: a terminal (or anything that says it is one). */
export type ProgressStream = NodeJS.WritableStream & { columns?: number | undefined };

/** Settings of a {@link ProgressLine}. */
export interface ProgressLineOptions {
  stream: ProgressStream;
  /** Colour the failed count and the rate. Default false. */
  color?: boolean | undefined;
  /** Least time between two redraws, in ms. Default 100 (10 a second). */
  intervalMs?: number | undefined;
  /** Clock in ms. Default `performance.now`. */
  now?: (() => number) | undefined;
}

const CLEAR = '\r\x1b[2K';
/** The rate is measured over about this window, so it follows changes without jumping at every chunk. */
const RATE_WINDOW_MS = 3000;

/** A throttled one-line progress display. */
export class ProgressLine {
  readonly #stream: ProgressStream;
  readonly #color: boolean;
  readonly #interval: number;
  readonly #now: () => number;
  readonly #started: number;
  #latest: Progress | undefined;
  #lastDraw = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #shown = false;
  #stopped = false;
  #samples: Array<{ t: number; bytes: number }> = [];
  /** Times the line was drawn, for tests that count redraws. */
  draws = 0;

  constructor(options: ProgressLineOptions) {
    this.#stream = options.stream;
    this.#color = options.color ?? false;
    this.#interval = options.intervalMs ?? 100;
    this.#now = options.now ?? (() => performance.now());
    this.#started = this.#now();
  }

  /** Takes the newest snapshot; draws now if the interval has passed, else once when it has. */
  update(progress: Progress): void {
    if (this.#stopped) return;
    this.#latest = progress;
    this.#schedule();
  }

  /** A stream for log lines: each write clears the progress line first, and the line comes back on the next redraw. */
  logStream(): Writable {
    return new Writable({
      write: (chunk: Buffer | string, _encoding, done) => {
        this.#clear();
        this.#stream.write(chunk);
        if (!this.#stopped) this.#schedule();
        done();
      },
    });
  }

  /** Removes the line for good; later updates are ignored. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#clear();
  }

  /** The line's text for a snapshot at time `now` (no colour codes when colour is off). */
  render(p: Progress, now: number = this.#now()): string {
    // A pseudo-terminal may report 0 columns until it is sized; treat that as unknown.
    const width = Math.max(20, (this.#stream.columns || 80) - 1);
    const elapsed = now - this.#started;
    const rate = this.#rate(p.bytes, now);
    const parts: Array<[string, (string | undefined)?]> = [
      [p.listComplete ? `${p.done}/${p.read} done` : `${p.done} done, ${p.read} read`],
      [`${p.failed} failed`, p.failed > 0 ? '\x1b[31m' : undefined],
      [`${p.skipped} skipped`],
      [formatBytes(p.bytes)],
      [`${formatBytes(rate)}/s`, '\x1b[36m'],
    ];
    if (p.listComplete && p.done > 0 && p.done < p.read) {
      parts.push([`ETA ${formatDuration(((p.read - p.done) * elapsed) / p.done)}`]);
    }
    parts.push([`${p.inFlight} in flight`]);
    // Drop trailing parts rather than wrap: a wrapped line cannot be cleared with one \r.
    let text = '';
    let painted = '';
    for (const [part, paint] of parts) {
      const next = text === '' ? part : `${text} · ${part}`;
      if (next.length > width) break;
      painted += (text === '' ? '' : ' · ') + (this.#color && paint ? `${paint}${part}\x1b[0m` : part);
      text = next;
    }
    return painted;
  }

  #schedule(): void {
    if (this.#timer) return;
    const wait = this.#lastDraw + this.#interval - this.#now();
    if (wait <= 0) this.#draw();
    else this.#timer = setTimeout(() => this.#draw(), wait).unref();
  }

  #draw(): void {
    this.#timer = undefined;
    if (this.#stopped || !this.#latest) return;
    const now = this.#now();
    this.#lastDraw = now;
    this.#samples.push({ t: now, bytes: this.#latest.bytes });
    this.draws++;
    this.#stream.write(CLEAR + this.render(this.#latest, now));
    this.#shown = true;
  }

  #clear(): void {
    if (!this.#shown) return;
    this.#stream.write(CLEAR);
    this.#shown = false;
  }

  #rate(bytes: number, now: number): number {
    while (this.#samples.length > 1 && now - this.#samples[0]!.t > RATE_WINDOW_MS) this.#samples.shift();
    const first = this.#samples[0];
    if (!first || now - first.t <= 0) return 0;
    return Math.round(((bytes - first.bytes) * 1000) / (now - first.t));
  }
}
