/**
 * One column's values over the rows of a read, kept until its items are
 * made. Text is kept as bytes plus offsets, and decoded a row at a time as
 * items are made: a page's worth of strings made at once
 * would outlive a few young-generation collections while its items are
 * planned, and be promoted, which made the heap of a million-row dry run
 * grow several times larger than its live data.
 */
import { Buffer } from 'node:buffer';

/** A column's values by row (0-based in the file), added as hyparquet hands over its chunks. */
export interface ColumnValues {
  add(start: number, data: ArrayLike<unknown>): void;
  at(row: number): unknown;
}

/** Values as hyparquet decoded them. */
export class PlainValues implements ColumnValues {
  readonly #chunks: Array<{ start: number; data: ArrayLike<unknown> }> = [];

  add(start: number, data: ArrayLike<unknown>): void {
    this.#chunks.push({ start, data });
  }

  /** The value in `row`; undefined when no chunk holds it. */
  at(row: number): unknown {
    // Most often one chunk holds the whole range.
    for (const { start, data } of this.#chunks) if (row >= start && row < start + data.length) return data[row - start];
    return undefined;
  }
}

/** Rows of a text chunk: value `i` is the store's bytes from `offsets[base + i]` to `offsets[base + i + 1]`, or null. */
interface TextChunk {
  start: number;
  length: number;
  base: number;
}

/**
 * What a text column copies its values into, kept from one read to the
 * next: hyparquet's page buffers are then dropped as soon as a page is
 * decoded, and nothing is allocated per read to wait, several reads' worth
 * at a time, for the collector.
 */
export class TextBytes {
  bytes = Buffer.alloc(0);
  offsets = new Int32Array(0);
  nulls = new Uint8Array(0);
}

/**
 * A BYTE_ARRAY column read with hyparquet's `stringFromBytes` left as the
 * bytes ({@link keepBytes}): each value copied into the column's
 * {@link TextBytes}, decoded as UTF-8 when asked for. A chunk whose values
 * are not all byte views (JSON, decimals) is kept as decoded.
 */
export class TextValues implements ColumnValues {
  readonly #text: TextChunk[] = [];
  readonly #plain = new PlainValues();
  readonly #store: TextBytes;
  /** Bytes and offset slots of the store taken by this read's chunks. */
  #used = 0;
  #slots = 0;

  /** `store` is reused: the values of an earlier {@link TextValues} over it are gone. */
  constructor(store: TextBytes) {
    this.#store = store;
  }

  add(start: number, data: ArrayLike<unknown>): void {
    const chunk = this.#copy(start, data);
    if (chunk === undefined) this.#plain.add(start, decodedAll(data));
    else this.#text.push(chunk);
  }

  at(row: number): unknown {
    for (const chunk of this.#text) {
      if (row < chunk.start || row >= chunk.start + chunk.length) continue;
      const slot = chunk.base + row - chunk.start;
      const { bytes, offsets, nulls } = this.#store;
      return nulls[slot] === 1 ? null : bytes.toString('utf8', offsets[slot], offsets[slot + 1]);
    }
    return this.#plain.at(row);
  }

  /** `data`'s byte views copied into the store, or undefined when they are not all views (or null). */
  #copy(start: number, data: ArrayLike<unknown>): TextChunk | undefined {
    let size = 0;
    for (let i = 0; i < data.length; i++) {
      const value = data[i];
      if (value instanceof Uint8Array) size += value.byteLength;
      else if (value !== null && value !== undefined) return undefined;
    }
    this.#reserve(size, data.length + 1);
    const { bytes, offsets, nulls } = this.#store;
    const chunk: TextChunk = { start, length: data.length, base: this.#slots };
    for (let i = 0; i < data.length; i++) {
      const value = data[i] as Uint8Array | null | undefined;
      offsets[this.#slots] = this.#used;
      nulls[this.#slots++] = value === null || value === undefined ? 1 : 0;
      if (value === null || value === undefined) continue;
      bytes.set(value, this.#used);
      this.#used += value.byteLength;
    }
    offsets[this.#slots++] = this.#used;
    return chunk;
  }

  /** Room for `size` more bytes and `slots` more offsets, keeping those already taken. */
  #reserve(size: number, slots: number): void {
    const store = this.#store;
    if (this.#used + size > store.bytes.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.#used + size, store.bytes.length * 2, 64 * 1024));
      store.bytes.copy(grown, 0, 0, this.#used);
      store.bytes = grown;
    }
    if (this.#slots + slots > store.offsets.length) {
      const length = Math.max(this.#slots + slots, store.offsets.length * 2, 4096);
      const offsets = new Int32Array(length);
      offsets.set(store.offsets.subarray(0, this.#slots));
      const nulls = new Uint8Array(length);
      nulls.set(store.nulls.subarray(0, this.#slots));
      store.offsets = offsets;
      store.nulls = nulls;
    }
  }
}

/** hyparquet's parser for text, which keeps the bytes for {@link TextValues} to decode. */
export function keepBytes(bytes: Uint8Array): Uint8Array {
  return bytes;
}

/** Every byte view of `data` decoded as UTF-8, as hyparquet would have. */
function decodedAll(data: ArrayLike<unknown>): unknown[] {
  return Array.from(data, (value) =>
    value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8') : value,
  );
}
