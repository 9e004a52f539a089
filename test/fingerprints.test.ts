import { describe, expect, it } from 'vitest';
import { fingerprint, FingerprintMap, FingerprintSet, type Fingerprint } from '../src/names/fingerprints.js';

/** The string whose UTF-16LE bytes are `bytes` (an even number of them), to check against byte-oriented test vectors. */
function fromBytes(bytes: string): string {
  const raw = Buffer.from(bytes, 'latin1');
  let text = '';
  for (let i = 0; i < raw.length; i += 2) text += String.fromCharCode(raw[i]! | (raw[i + 1]! << 8));
  return text;
}

const hex = (key: Fingerprint): string => key.hi.toString(16).padStart(8, '0') + key.lo.toString(16).padStart(8, '0');

/** A pseudo-random sequence, the same on every run. */
function numbers(seed: number): () => number {
  let state = seed;
  return () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
}

describe('fingerprint', () => {
  // MurmurHash3 x86_128, seed 0, first 64 bits (h1, h2), of these bytes: the published reference values.
  it.each([
    ['He', '47f82b373b8fc728'],
    ['Hello Wo', 'db37ce0fe9a99ae0'],
    ['Hello World!', '6bee9883eb1be4f5'],
    ['Hello World! Hello World', '776c2a21a491f2be'],
  ])('of the bytes %j is MurmurHash3 x86_128 %s', (bytes, expected) => {
    expect(hex(fingerprint(fromBytes(bytes)))).toBe(expected);
  });

  it('tells similar URLs apart', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200_000; i++) seen.add(hex(fingerprint(`https://img.example/photos/${i}.jpg`)));
    expect(seen.size).toBe(200_000);
  });
});

describe('FingerprintSet', () => {
  it.each([
    ['spread over every segment', 0],
    ['crowded into one segment, so that runs wrap around its end', 0xff],
  ])('answers as a Set does through growth and removals (%s)', (_label, segment) => {
    const next = numbers(segment + 7);
    // Few distinct keys and many operations, so keys come and go and runs wrap.
    const pool = Array.from({ length: 3_000 }, () => ({
      hi: ((segment === 0 ? next() & 0xff000000 : segment << 24) | (next() & 0xffffff)) >>> 0,
      lo: (next() | 1) >>> 0,
    }));
    const set = new FingerprintSet();
    const reference = new Map<string, Fingerprint>();
    for (let op = 0; op < 30_000; op++) {
      const key = pool[next() % pool.length]!;
      const id = hex(key);
      const choice = next() % 3;
      if (choice === 0) expect(set.add(key)).toBe(!reference.has(id));
      else if (choice === 1) expect(set.delete(key)).toBe(reference.has(id));
      else expect(set.has(key)).toBe(reference.has(id));
      if (choice === 0) reference.set(id, key);
      if (choice === 1) reference.delete(id);
    }
    expect(set.size).toBe(reference.size);
    for (const key of reference.values()) expect(set.has(key)).toBe(true);
  });

  it('keeps a key in at most 12 bytes, whatever the count', () => {
    const set = new FingerprintSet();
    const key: Fingerprint = { hi: 0, lo: 0 };
    for (let i = 1; i <= 300_000; i++) {
      set.add(fingerprint(`https://img.example/${i}.jpg`, key));
      if (i % 25_000 === 0) expect(set.byteLength / i).toBeLessThanOrEqual(12);
    }
  });
});

describe('FingerprintMap', () => {
  it('keeps each value (40 bits of it) with its key through growth', () => {
    const map = new FingerprintMap();
    const value: Fingerprint = { hi: 0, lo: 0 };
    for (let i = 0; i < 100_000; i++) map.set(fingerprint(`name-${i}`), { hi: i, lo: i * 3 });
    // Setting again replaces.
    map.set(fingerprint('name-5'), { hi: 55, lo: 555 });
    expect(map.size).toBe(100_000);
    for (const i of [0, 1, 4_999, 99_999]) {
      expect(map.get(fingerprint(`name-${i}`), value)).toBe(true);
      expect(value).toEqual({ hi: i & 0xff, lo: i * 3 });
      expect(FingerprintMap.same(value, { hi: i, lo: i * 3 })).toBe(true);
      expect(FingerprintMap.same(value, { hi: i, lo: i * 3 + 1 })).toBe(false);
    }
    expect(map.get(fingerprint('name-5'), value) && value).toEqual({ hi: 55, lo: 555 });
    expect(map.get(fingerprint('absent'), value)).toBe(false);
    expect(map.byteLength / map.size).toBeLessThanOrEqual(18);
  });

  it('answers as a Map does, keys crowded into one segment so that runs wrap around its end', () => {
    const next = numbers(11);
    const pool = Array.from({ length: 3_000 }, () => ({ hi: ((0xff << 24) | (next() & 0xffffff)) >>> 0, lo: (next() & 0xffffff00) >>> 0 }));
    const map = new FingerprintMap();
    const reference = new Map<string, Fingerprint>();
    const value: Fingerprint = { hi: 0, lo: 0 };
    for (let op = 0; op < 20_000; op++) {
      const key = pool[next() % pool.length]!;
      const id = hex(key);
      if (next() % 2 === 0) {
        const stored = { hi: next() & 0xff, lo: next() };
        map.set(key, stored);
        reference.set(id, stored);
      } else {
        const known = reference.get(id);
        expect(map.get(key, value)).toBe(known !== undefined);
        if (known) expect(value).toEqual(known);
      }
    }
    expect(map.size).toBe(reference.size);
  });

  it('stores a key whose kept bits are all zero', () => {
    const map = new FingerprintMap();
    const value: Fingerprint = { hi: 0, lo: 0 };
    map.set({ hi: 0, lo: 1 }, { hi: 1, lo: 2 });
    expect(map.get({ hi: 0, lo: 1 }, value) && value).toEqual({ hi: 1, lo: 2 });
    expect(map.size).toBe(1);
  });
});
