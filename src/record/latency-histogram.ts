/**
 * Per-file times counted in memory that does not grow with the count: the
 * run's summary keeps one, and each host's figures another.
 */

/** Tenths of a millisecond counted one by one up to here (about 105 s); above, within 1/1024 of the value. */
const EXACT_TENTHS = 1 << 20;
/** Buckets a page of the histogram holds: pages are made as values first land in them. */
const PAGE = 1024;

/**
 * Counts of per-file times, the same answers as sorting every time but in
 * memory that does not grow with the count: a 4 kB page for each stretch of
 * 102.4 ms that holds any time, so a run whose files take up to a minute
 * needs at most 2.3 MB however many files it saves. Times are bucketed by
 * tenths of a millisecond (records are rounded to that already) up to about
 * 105 s, and beyond that by 1/1024 of their value.
 */
export class LatencyHistogram {
  readonly #pages = new Map<number, Uint32Array>();
  #count = 0;
  #max = 0;

  /** Times counted. */
  get count(): number {
    return this.#count;
  }

  /** The largest time counted, exactly; 0 when none. */
  get max(): number {
    return this.#max;
  }

  /** Counts one time, in ms. */
  add(ms: number): void {
    const bucket = bucketOf(Math.max(0, Math.round(ms * 10)));
    const index = Math.floor(bucket / PAGE);
    let page = this.#pages.get(index);
    if (!page) this.#pages.set(index, (page = new Uint32Array(PAGE)));
    page[bucket % PAGE]!++;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  /** The nearest-rank `p` percentile (0 < p ≤ 1) in ms; 0 when nothing was counted. */
  percentile(p: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.min(this.#count - 1, Math.max(0, Math.ceil(p * this.#count) - 1));
    let seen = 0;
    for (const index of [...this.#pages.keys()].sort((a, b) => a - b)) {
      const page = this.#pages.get(index)!;
      for (let i = 0; i < PAGE; i++) {
        seen += page[i]!;
        if (seen > rank) return Math.min(this.#max, lowestOf(index * PAGE + i) / 10);
      }
    }
    return this.#max;
  }
}

/** The bucket of a time in tenths of a ms: itself while exact, then 1024 buckets for each doubling. */
function bucketOf(tenths: number): number {
  if (tenths < EXACT_TENTHS) return tenths;
  const octave = Math.floor(Math.log2(tenths)) - 20;
  return EXACT_TENTHS + octave * PAGE + Math.floor(tenths / 2 ** (octave + 10)) - PAGE;
}

/** The smallest time (in tenths of a ms) of a bucket. */
function lowestOf(bucket: number): number {
  if (bucket < EXACT_TENTHS) return bucket;
  const octave = Math.floor((bucket - EXACT_TENTHS) / PAGE);
  return (bucket - EXACT_TENTHS - octave * PAGE + PAGE) * 2 ** (octave + 10);
}

/** Nearest-rank percentile of sorted values; 0 when there are none. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank]!;
}
