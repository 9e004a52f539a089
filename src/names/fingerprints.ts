/**
 * Compact per-item memory: what a run must remember about each of millions
 * of items (URLs planned, names claimed, items an earlier manifest records as
 * done, files already in a folder) is kept as 64-bit fingerprints in typed
 * arrays, never as a string and an object per item. A `Set<string>` of URLs
 * costs 100 bytes or more an entry; a fingerprint costs 8 bytes, about 10
 * with the table's free slots.
 *
 * Tables are split into segments that each grow on their own by a small
 * step, so the table never doubles at once: the free slots stay between 12
 * and 24 % of the table, and growing one segment briefly needs only that
 * segment's memory twice, not the whole table's.
 */

/** A 64-bit fingerprint as two unsigned 32-bit halves; never both 0 (that marks a free slot). */
export interface Fingerprint {
  hi: number;
  lo: number;
}

/**
 * The first 64 bits of MurmurHash3 x86_128 (seed 0) of `text`'s UTF-16LE
 * bytes, as `{hi: h1, lo: h2}`. Fast (no allocation but `out`'s), well mixed,
 * and fixed: `--shard` partitions lists by it, so every machine, and every
 * version, must compute the same value. Not a defence against lists crafted
 * to collide; whoever writes the list chooses what it downloads anyway.
 */
export function fingerprint(text: string, out: Fingerprint = { hi: 0, lo: 0 }): Fingerprint {
  const c1 = 0x239b961b;
  const c2 = 0xab0e9789;
  const c3 = 0x38b34ae5;
  const c4 = 0xa1e38b93;
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  let h4 = 0;
  const units = text.length;
  // Eight UTF-16 code units make one 16-byte block.
  const blockEnd = units - (units & 7);
  let i = 0;
  for (; i < blockEnd; i += 8) {
    let k1 = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    let k2 = text.charCodeAt(i + 2) | (text.charCodeAt(i + 3) << 16);
    let k3 = text.charCodeAt(i + 4) | (text.charCodeAt(i + 5) << 16);
    let k4 = text.charCodeAt(i + 6) | (text.charCodeAt(i + 7) << 16);
    k1 = Math.imul(rotl(Math.imul(k1, c1), 15), c2);
    h1 ^= k1;
    h1 = (Math.imul((rotl(h1, 19) + h2) | 0, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, c2), 16), c3);
    h2 ^= k2;
    h2 = (Math.imul((rotl(h2, 17) + h3) | 0, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, c3), 17), c4);
    h3 ^= k3;
    h3 = (Math.imul((rotl(h3, 15) + h4) | 0, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, c4), 18), c1);
    h4 ^= k4;
    h4 = (Math.imul((rotl(h4, 13) + h1) | 0, 5) + 0x32ac3b17) | 0;
  }
  // The tail: up to seven code units, two to a 32-bit word, each word mixed if the tail reaches it.
  const rest = units - i;
  if (rest > 6) h4 ^= Math.imul(rotl(Math.imul(text.charCodeAt(i + 6), c4), 18), c1);
  if (rest > 4) h3 ^= Math.imul(rotl(Math.imul(pair(text, i + 4, rest > 5), c3), 17), c4);
  if (rest > 2) h2 ^= Math.imul(rotl(Math.imul(pair(text, i + 2, rest > 3), c2), 16), c3);
  if (rest > 0) h1 ^= Math.imul(rotl(Math.imul(pair(text, i, rest > 1), c1), 15), c2);
  const bytes = units * 2;
  h1 ^= bytes;
  h2 ^= bytes;
  h3 ^= bytes;
  h4 ^= bytes;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  out.hi = h1 >>> 0;
  out.lo = h2 >>> 0;
  // 0/0 marks a free slot; one fingerprint in 2^64 moves by one.
  if (out.hi === 0 && out.lo === 0) out.lo = 1;
  return out;
}

/** Code units `at` and (when `both`) `at + 1` as one little-endian 32-bit word. */
function pair(text: string, at: number, both: boolean): number {
  return both ? text.charCodeAt(at) | (text.charCodeAt(at + 1) << 16) : text.charCodeAt(at);
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Segments per table, chosen by a fingerprint's top 8 bits. */
const SEGMENT_BITS = 8;
const SEGMENTS = 1 << SEGMENT_BITS;
/** A segment grows when more than this share of its slots is used... */
const MAX_LOAD = 0.88;
/** ...by this factor: small steps keep the free share low at every size. */
const GROWTH = 1.15;
/** Slots a segment gets when its first key arrives (segments start empty, so a small table is small). */
const INITIAL_SLOTS = 8;
const EMPTY = new Uint32Array(0);

/**
 * Robin Hood linear-probing tables of fingerprints, `width` 32-bit words a
 * slot: the key's `hi` in the first, its `lo` in the second (compared under
 * `loMask`, whose clear bits, and any further words, hold a value), in
 * segments. A key's home slot is bits 8–31 of its `hi` scaled to the
 * segment's size (so any size works, not only powers of two), and each run
 * of full slots is kept in order of those bits (so of home): a lookup for a
 * missing key stops as soon as it meets a key from further on, after a few
 * probes even with 88 % of the slots full, instead of walking the whole run,
 * and a segment grows in one pass, each key going to the first free slot from
 * its new home.
 */
class SegmentedTable {
  readonly #width: number;
  readonly #loMask: number;
  readonly #slots: Uint32Array[] = [];
  readonly #counts = new Uint32Array(SEGMENTS);
  #size = 0;

  constructor(width: number, loMask: number) {
    this.#width = width;
    this.#loMask = loMask;
    for (let s = 0; s < SEGMENTS; s++) this.#slots.push(EMPTY);
  }

  /** Keys held. */
  get size(): number {
    return this.#size;
  }

  /** Bytes of the typed arrays holding the keys (and values). */
  get byteLength(): number {
    let bytes = 0;
    for (const slots of this.#slots) bytes += slots.byteLength;
    return bytes;
  }

  /** The word index of `key`'s slot in its segment, or -1 - (the word index where it would go). */
  protected find(key: Fingerprint): number {
    return seek(this.#slots[key.hi >>> (32 - SEGMENT_BITS)]!, this.#width, this.#loMask, key.hi, key.lo & this.#loMask);
  }

  /** The segment's words holding `key`. */
  protected segment(key: Fingerprint): Uint32Array {
    return this.#slots[key.hi >>> (32 - SEGMENT_BITS)]!;
  }

  /** Puts `key` where `find` said it would go (-1 - at), value bits zeroed; returns the word index it now has. */
  protected insertAt(key: Fingerprint, missing: number): number {
    const s = key.hi >>> (32 - SEGMENT_BITS);
    const width = this.#width;
    let at = -1 - missing;
    const count = this.#counts[s]! + 1;
    if (count > (this.#slots[s]!.length / width) * MAX_LOAD) {
      this.#grow(s);
      at = -1 - this.find(key);
    }
    place(this.#slots[s]!, width, this.#loMask, at, key.hi, key.lo & this.#loMask);
    this.#counts[s] = count;
    this.#size++;
    return at;
  }

  /** Removes the key at word index `at`, moving the rest of its run back a slot so the run stays in order. */
  protected removeAt(key: Fingerprint, at: number): void {
    const s = key.hi >>> (32 - SEGMENT_BITS);
    const slots = this.#slots[s]!;
    const width = this.#width;
    const capacity = slots.length / width;
    let hole = at / width;
    for (;;) {
      const next = hole + 1 === capacity ? 0 : hole + 1;
      const word = next * width;
      const hi = slots[word]!;
      // An empty slot ends the run; a key at its home starts the next one.
      if ((hi === 0 && (slots[word + 1]! & this.#loMask) === 0) || home(hi, capacity) === next) break;
      for (let w = 0; w < width; w++) slots[hole * width + w] = slots[word + w]!;
      hole = next;
    }
    for (let w = 0; w < width; w++) slots[hole * width + w] = 0;
    this.#counts[s]!--;
    this.#size--;
  }

  #grow(s: number): void {
    const old = this.#slots[s]!;
    const width = this.#width;
    const mask = this.#loMask;
    const oldCapacity = old.length / width;
    const capacity = Math.max(oldCapacity + INITIAL_SLOTS, Math.ceil(oldCapacity * GROWTH));
    const slots = new Uint32Array(capacity * width);
    // Read from just after an empty slot, so keys come in order and each lands at the end of its run.
    let start = 0;
    while (start < oldCapacity && (old[start * width] !== 0 || (old[start * width + 1]! & mask) !== 0)) start++;
    for (let n = 1, slot = start + 1; n <= oldCapacity; n++, slot++) {
      if (slot === oldCapacity) slot = 0;
      const from = slot * width;
      const hi = old[from]!;
      if (hi === 0 && (old[from + 1]! & mask) === 0) continue;
      // In order, a key goes to the first free slot from its home on.
      let to = home(hi, capacity);
      while (slots[to * width] !== 0 || (slots[to * width + 1]! & mask) !== 0) to = to + 1 === capacity ? 0 : to + 1;
      for (let w = 0; w < width; w++) slots[to * width + w] = old[from + w]!;
    }
    this.#slots[s] = slots;
  }
}

/**
 * In `slots`: the word index of the key `keyHi`/`keyLo` (`keyLo` already
 * masked), or -1 - (the word index where it would go to keep its run in order).
 */
function seek(slots: Uint32Array, width: number, mask: number, keyHi: number, keyLo: number): number {
  const capacity = slots.length / width;
  if (capacity === 0) return -1;
  let slot = home(keyHi, capacity);
  for (let distance = 0; ; distance++) {
    const at = slot * width;
    const hi = slots[at]!;
    const lo = slots[at + 1]! & mask;
    if (hi === keyHi && lo === keyLo) return at;
    if (hi === 0 && lo === 0) return -1 - at;
    // Runs are in order of bits 8–31 (so of home, too): meeting a key from further on, this one is not here.
    let theirs = slot - home(hi, capacity);
    if (theirs < 0) theirs += capacity;
    if (theirs < distance || (theirs === distance && (hi & 0xffffff) > (keyHi & 0xffffff))) return -1 - at;
    slot = slot + 1 === capacity ? 0 : slot + 1;
  }
}

/** Writes the key `hi`/`lo` at word index `at`, first moving the rest of the run there (if any) one slot on. */
function place(slots: Uint32Array, width: number, mask: number, at: number, hi: number, lo: number): void {
  const capacity = slots.length / width;
  // Carry each key of the rest of the run one slot on, from the end of the run back.
  let free = at / width;
  while (slots[free * width] !== 0 || (slots[free * width + 1]! & mask) !== 0) free = free + 1 === capacity ? 0 : free + 1;
  let to = free;
  while (to * width !== at) {
    const from = to === 0 ? capacity - 1 : to - 1;
    for (let w = 0; w < width; w++) slots[to * width + w] = slots[from * width + w]!;
    to = from;
  }
  slots[at] = hi;
  slots[at + 1] = lo;
  for (let w = 2; w < width; w++) slots[at + w] = 0;
}

/** Bits 8–31 of `hi` (the top 8 chose the segment) scaled to `capacity` slots. */
function home(hi: number, capacity: number): number {
  return (((hi & 0xffffff) * capacity) / 0x1000000) | 0;
}

/** A set of fingerprints: 8 bytes a key, about 9–10.5 with free slots. */
export class FingerprintSet extends SegmentedTable {
  constructor() {
    super(2, 0xffffffff);
  }

  has(key: Fingerprint): boolean {
    return this.find(key) >= 0;
  }

  /** Adds `key`; true when it was not there before. */
  add(key: Fingerprint): boolean {
    const at = this.find(key);
    if (at >= 0) return false;
    this.insertAt(key, at);
    return true;
  }

  /** Removes `key`; true when it was there. */
  delete(key: Fingerprint): boolean {
    const at = this.find(key);
    if (at < 0) return false;
    this.removeAt(key, at);
    return true;
  }
}

/**
 * A map from fingerprint to fingerprint in 12 bytes an entry (about 13.5–16
 * with free slots): keys are told apart by their first 56 bits and values
 * kept to 40 (`hi & 0xff`, `lo`), which is what {@link get} gives back and
 * what equal values must share. Two keys alike in 56 bits, or values in 40,
 * are one chance in 2^56 or 2^40 a pair: about one in a hundred thousand
 * even for ten million values all compared with one another.
 */
export class FingerprintMap extends SegmentedTable {
  readonly #key: Fingerprint = { hi: 0, lo: 0 };

  constructor() {
    super(3, 0xffffff00);
  }

  /** The value of `key` (40 bits of it) written into `out`; false (and `out` untouched) when there is none. */
  get(key: Fingerprint, out: Fingerprint): boolean {
    const k = this.#keyOf(key);
    const at = this.find(k);
    if (at < 0) return false;
    const slots = this.segment(k);
    out.hi = slots[at + 1]! & 0xff;
    out.lo = slots[at + 2]!;
    return true;
  }

  /** Sets `key` to `value` (40 bits of it). */
  set(key: Fingerprint, value: Fingerprint): void {
    const k = this.#keyOf(key);
    let at = this.find(k);
    if (at < 0) at = this.insertAt(k, at);
    const slots = this.segment(k);
    slots[at + 1] = (slots[at + 1]! & 0xffffff00) | (value.hi & 0xff);
    slots[at + 2] = value.lo;
  }

  /** True when `a` and `b` are the same value as far as this map keeps values. */
  static same(a: Fingerprint, b: Fingerprint): boolean {
    return (a.hi & 0xff) === (b.hi & 0xff) && a.lo === b.lo;
  }

  /** `key` as stored: its 56 bits, never all zero (that marks a free slot). */
  #keyOf(key: Fingerprint): Fingerprint {
    this.#key.hi = key.hi;
    this.#key.lo = (key.hi === 0 && key.lo >>> 8 === 0 ? 0x100 : key.lo) & 0xffffff00;
    return this.#key;
  }
}
