/**
 * Looking at the bytes as they stream to disk: a digest of the saved file and
 * the image's type and size read from its header. Both happen as the write
 * path passes each chunk, so a file is never read back.
 */
import { createHash, type Hash } from 'node:crypto';
import type { HashAlgorithm } from '../options.js';
import { MAGIC_BYTES, magicKind, type MagicKind } from './sniff.js';

/** Image facts read from the header bytes. */
export interface ImageFacts {
  /** `jpeg`, `png`, `gif`, `webp` or `bmp`. */
  imageType: string;
  width: number;
  height: number;
}

/** What {@link Inspector} learnt about a file once it has streamed through. */
export interface Inspection {
  /** `algorithm:hex`, e.g. `sha256:9f86…`; absent when no hash was asked for. */
  digest?: string;
  /** Absent when the header was not one that the prober knows, or was cut short. */
  image?: ImageFacts;
}

/**
 * Shown every chunk on its way to disk: hashes it (when asked) and probes the
 * image header. Probing stops touching chunks once the size is known, and
 * never holds more than a small header buffer: JPEG segments before the frame
 * header are skipped by their length, not buffered.
 */
export class Inspector {
  readonly #algorithm: HashAlgorithm | undefined;
  readonly #hash: Hash | undefined;
  readonly #probe = new HeaderProbe();

  constructor(algorithm: HashAlgorithm | undefined) {
    this.#algorithm = algorithm;
    this.#hash = algorithm === undefined ? undefined : createHash(algorithm);
  }

  /** Takes in the next chunk of the file. */
  see(chunk: Buffer): void {
    this.#hash?.update(chunk);
    if (!this.#probe.done) this.#probe.feed(chunk);
  }

  /** The digest and image facts; call once, after the stream has finished. */
  result(): Inspection {
    const inspection: Inspection = {};
    if (this.#hash) inspection.digest = `${this.#algorithm}:${this.#hash.digest('hex')}`;
    const image = this.#probe.facts;
    if (image) inspection.image = image;
    return inspection;
  }
}

// More than any real header needs before the dimensions; beyond it the probe gives up rather than buffer.
const MAX_PENDING = 64 * 1024;

/** Reads type and dimensions from the first bytes of PNG, GIF, WebP, BMP and JPEG (segment by segment). */
export class HeaderProbe {
  done = false;
  facts: ImageFacts | undefined;
  #pending: Buffer = Buffer.alloc(0);
  #skip = 0;
  #type: MagicKind | undefined;
  // Offset of the next JPEG marker within #pending.
  #at = 2;

  feed(chunk: Buffer): void {
    let data = chunk;
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, data.length);
      this.#skip -= n;
      data = data.subarray(n);
      if (data.length === 0) return;
    }
    this.#pending = this.#pending.length === 0 ? data : Buffer.concat([this.#pending, data]);
    this.#parse();
    if (!this.done && this.#pending.length > MAX_PENDING) this.#finish(undefined);
  }

  #finish(facts: ImageFacts | undefined): void {
    this.done = true;
    this.facts = facts;
    this.#pending = Buffer.alloc(0);
  }

  #parse(): void {
    const b = this.#pending;
    if (this.#type === undefined) {
      // Decided by the same magic bytes that sniffing decides by.
      if (b.length < MAGIC_BYTES) return;
      this.#type = magicKind(b);
      if (this.#type === undefined) return this.#finish(undefined);
    }
    switch (this.#type) {
      case 'png':
        // Signature (8), IHDR length and type (8), then width and height.
        if (b.length >= 24) this.#finish({ imageType: 'png', width: b.readUInt32BE(16), height: b.readUInt32BE(20) });
        return;
      case 'gif':
        this.#finish({ imageType: 'gif', width: b.readUInt16LE(6), height: b.readUInt16LE(8) });
        return;
      case 'bmp':
        if (b.length >= 26) this.#finish({ imageType: 'bmp', width: b.readInt32LE(18), height: Math.abs(b.readInt32LE(22)) });
        return;
      case 'webp':
        return this.#webp(b);
      case 'jpeg':
        return this.#jpeg();
    }
  }

  #webp(b: Buffer): void {
    if (b.length < 30) return;
    const chunk = b.toString('latin1', 12, 16);
    if (chunk === 'VP8 ') {
      this.#finish({ imageType: 'webp', width: b.readUInt16LE(26) & 0x3fff, height: b.readUInt16LE(28) & 0x3fff });
    } else if (chunk === 'VP8L') {
      const bits = b.readUInt32LE(21);
      this.#finish({ imageType: 'webp', width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 });
    } else if (chunk === 'VP8X') {
      this.#finish({ imageType: 'webp', width: b.readUIntLE(24, 3) + 1, height: b.readUIntLE(27, 3) + 1 });
    } else this.#finish(undefined);
  }

  #jpeg(): void {
    for (;;) {
      const b = this.#pending;
      const p = this.#at;
      if (p + 2 > b.length) return;
      if (b[p] !== 0xff) return this.#finish(undefined);
      const marker = b[p + 1]!;
      // Fill bytes: a marker may be preceded by any number of 0xFF.
      if (marker === 0xff) {
        this.#at = p + 1;
        continue;
      }
      if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        this.#at = p + 2;
        continue;
      }
      // Start of scan or end of image before any frame header: no size to be had.
      if (marker === 0xda || marker === 0xd9) return this.#finish(undefined);
      const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
      if (isFrame) {
        if (p + 9 > b.length) return;
        return this.#finish({ imageType: 'jpeg', height: b.readUInt16BE(p + 5), width: b.readUInt16BE(p + 7) });
      }
      if (p + 4 > b.length) return;
      const next = p + 2 + b.readUInt16BE(p + 2);
      if (next <= b.length) {
        // Drop what has been walked past so the buffer stays small.
        this.#pending = b.subarray(next);
        this.#at = 0;
        continue;
      }
      // The segment runs past what has arrived: skip the rest of it as it streams by.
      this.#skip = next - b.length;
      this.#pending = Buffer.alloc(0);
      this.#at = 0;
      return;
    }
  }
}
