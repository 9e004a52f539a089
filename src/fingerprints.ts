/**
 * Compact per-item memory: what a run must remember about each of millions
 * of items (URLs planned, names claimed, items an earlier manifest records as
 * done, files already in a folder) is kept as 64-bit fingerprints in typed
 * arrays, never as a string and an object per item. A `Set<string>` of URLs
 * costs 100 bytes or more an entry; a fingerprint costs 8 bytes, about 9 to 11
 * with the table's free slots.
 *
 * Tables are split into segments that each grow on their own by a small
 * step, so the table never doubles at once: the free slots stay between 12
 * and 25 % of the table, and growing one segment briefly needs only that
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
const MAX_LOAD = 0.85;
/** ...by this factor: small steps keep the free share low at every size. */
const GROWTH = 1.2;
/** Slots a segment gets when its first key arrives (segments start empty, so a small table is small). */
const INITIAL_SLOTS = 8;
const EMPTY = new Uint32Array(0);

/**
 * Robin Hood linear-probing tables of 64-bit keys with an optional 64-bit
 * value each, 2^`shift` 32-bit words a slot (2 for a set, 4 for a map), in
 * segments. A key's home slot is bits 8–31 of its `hi` scaled to the
 * segment's size (so any size works, not only powers of two), and each run
 * of full slots is kept in order of those bits (so of home): a lookup for a
 * missing key stops as soon as it meets a key from further on, after a few
 * probes even with 85 % of the slots full, instead of walking the whole run,
 * and a segment grows in one pass, each key going to the first free slot from
 * its new home.
 */
class SegmentedTable {
  readonly #shift: number;
  readonly #slots: Uint32Array[] = [];
  readonly #counts = new Uint32Array(SEGMENTS);
  #size = 0;

  constructor(shift: number) {
    this.#shift = shift;
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
    return seek(this.#slots[key.hi >>> (32 - SEGMENT_BITS)]!, this.#shift, key.hi, key.lo);
  }

  /** The segment's words holding `key`. */
  protected segment(key: Fingerprint): Uint32Array {
    return this.#slots[key.hi >>> (32 - SEGMENT_BITS)]!;
  }

  /** Puts `key` where `find` said it would go (-1 - at), value words zeroed; returns the word index it now has. */
  protected insertAt(key: Fingerprint, missing: number): number {
    const s = key.hi >>> (32 - SEGMENT_BITS);
    let at = -1 - missing;
    const count = this.#counts[s]! + 1;
    if (count > (this.#slots[s]!.length >>> this.#shift) * MAX_LOAD) {
      this.#grow(s);
      at = -1 - this.find(key);
    }
    place(this.#slots[s]!, this.#shift, at, key.hi, key.lo);
    this.#counts[s] = count;
    this.#size++;
    return at;
  }

  /** Removes the key at word index `at`, moving the rest of its run back a slot so the run stays in order. */
  protected removeAt(key: Fingerprint, at: number): void {
    const s = key.hi >>> (32 - SEGMENT_BITS);
    const slots = this.#slots[s]!;
    const shift = this.#shift;
    const width = 1 << shift;
    const capacity = slots.length >>> shift;
    let hole = at >>> shift;
    for (;;) {
      const next = hole + 1 === capacity ? 0 : hole + 1;
      const word = next << shift;
      const hi = slots[word]!;
      // An empty slot ends the run; a key at its home starts the next one.
      if ((hi === 0 && slots[word + 1] === 0) || home(hi, capacity) === next) break;
      for (let w = 0; w < width; w++) slots[(hole << shift) + w] = slots[word + w]!;
      hole = next;
    }
    for (let w = 0; w < width; w++) slots[(hole << shift) + w] = 0;
    this.#counts[s]!--;
    this.#size--;
  }

  #grow(s: number): void {
    const old = this.#slots[s]!;
    const shift = this.#shift;
    const width = 1 << shift;
    const oldCapacity = old.length >>> shift;
    const capacity = Math.max(oldCapacity + INITIAL_SLOTS, Math.ceil(oldCapacity * GROWTH));
    const slots = new Uint32Array(capacity << shift);
    // Read from just after an empty slot, so keys come in order and each lands at the end of its run.
    let start = 0;
    while (start < oldCapacity && (old[start << shift] !== 0 || old[(start << shift) + 1] !== 0)) start++;
    for (let n = 1, slot = start + 1; n <= oldCapacity; n++, slot++) {
      if (slot === oldCapacity) slot = 0;
      const from = slot << shift;
      const hi = old[from]!;
      const lo = old[from + 1]!;
      if (hi === 0 && lo === 0) continue;
      // In order, a key goes to the first free slot from its home on.
      let to = home(hi, capacity);
      while (slots[to << shift] !== 0 || slots[(to << shift) + 1] !== 0) to = to + 1 === capacity ? 0 : to + 1;
      for (let w = 0; w < width; w++) slots[(to << shift) + w] = old[from + w]!;
    }
    this.#slots[s] = slots;
  }
}

/** In `slots`: the word index of key `hi`/`lo`, or -1 - (the word index where it would go to keep its run in order). */
function seek(slots: Uint32Array, shift: number, keyHi: number, keyLo: number): number {
  const capacity = slots.length >>> shift;
  if (capacity === 0) return -1;
  let slot = home(keyHi, capacity);
  for (let distance = 0; ; distance++) {
    const at = slot << shift;
    const hi = slots[at]!;
    const lo = slots[at + 1]!;
    if (hi === keyHi && lo === keyLo) return at;
    if (hi === 0 && lo === 0) return -1 - at;
    // Runs are in order of bits 8–31 (so of home, too): meeting a key from further on, this one is not here.
    let theirs = slot - home(hi, capacity);
    if (theirs < 0) theirs += capacity;
    if (theirs < distance || (theirs === distance && (hi & 0xffffff) > (keyHi & 0xffffff))) return -1 - at;
    slot = slot + 1 === capacity ? 0 : slot + 1;
  }
}

/** Writes key `hi`/`lo` at word index `at`, first moving the rest of the run there (if any) one slot on. */
function place(slots: Uint32Array, shift: number, at: number, hi: number, lo: number): void {
  const capacity = slots.length >>> shift;
  const width = 1 << shift;
  // Carry each key of the rest of the run one slot on, from the end of the run back.
  let free = at >>> shift;
  while (slots[free << shift] !== 0 || slots[(free << shift) + 1] !== 0) free = free + 1 === capacity ? 0 : free + 1;
  let to = free;
  while (to << shift !== at) {
    const from = to === 0 ? capacity - 1 : to - 1;
    for (let w = 0; w < width; w++) slots[(to << shift) + w] = slots[(from << shift) + w]!;
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

/** A set of fingerprints: 8 bytes a key, about 9.5–11 with free slots. */
export class FingerprintSet extends SegmentedTable {
  constructor() {
    super(1);
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

/** A map from fingerprint to fingerprint: 16 bytes an entry, about 19–22 with free slots. */
export class FingerprintMap extends SegmentedTable {
  constructor() {
    super(2);
  }

  /** The value of `key` written into `out`; false (and `out` untouched) when there is none. */
  get(key: Fingerprint, out: Fingerprint): boolean {
    const at = this.find(key);
    if (at < 0) return false;
    const slots = this.segment(key);
    out.hi = slots[at + 2]!;
    out.lo = slots[at + 3]!;
    return true;
  }

  /** Sets `key` to `value`. */
  set(key: Fingerprint, value: Fingerprint): void {
    let at = this.find(key);
    if (at < 0) at = this.insertAt(key, at);
    const slots = this.segment(key);
    slots[at + 2] = value.hi;
    slots[at + 3] = value.lo;
  }
}
