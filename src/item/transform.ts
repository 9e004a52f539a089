/**
 * Image work, between the receiver and the sink: with `imageWork` (resizing,
 * re-encoding, size checks) the item's sink entry is wrapped in an
 * {@link ImageHold}, which holds the judged chunks (bounded by `maxSize`,
 * which the receiver enforces) instead of passing them on; at keep
 * ({@link keptBody}) the image is checked, resized and re-encoded with sharp
 * (image/resize.ts), and the new bytes go to the real entry. It runs in
 * whichever thread runs the try, so `--mode workers` moves decoding off the
 * main thread. And before any of it, the publishers' opt-out ({@link optsOut}).
 *
 * Checks alone (`minSize`, `maxAspectRatio`) re-encode nothing: the bytes
 * stream to the entry as they arrive, and a copy is held only until the
 * header has told the size, or to the end when the header is one the probe
 * cannot read (then sharp reads it).
 */
import { createHash } from 'node:crypto';
import type { FetchedResponse } from '../http/body.js';
import { optedOut } from '../http/robots-tag.js';
import type { Sniffed } from '../image/sniff.js';
import type { ImageWork } from '../image-options.js';
import { HeaderProbe, type Inspection } from '../image/inspect.js';
import { formatExtension, measureImage, transformImage, type Size } from '../image/resize.js';
import type { HashAlgorithm, ResolvedOptions } from '../options.js';
import type { BodyStart, KeepFacts, SinkEntry, SinkHandler } from '../output/sink.js';
import type { SkipReason } from '../record/record.js';
import type { Receiver } from './receive.js';

/**
 * True when the response opts out of datasets (see http/robots-tag.ts) and the
 * run honours it: the body is then dropped unread, before any byte is kept.
 */
export function optsOut(response: FetchedResponse, options: Pick<ResolvedOptions, 'honorOptOut'>): boolean {
  if (!options.honorOptOut || !optedOut(response.headers)) return false;
  response.body.abort();
  return true;
}

/** The sink entry an item's body goes to: `entry` itself, or wrapped in an {@link ImageHold} when images are worked on. */
export function holding(entry: SinkEntry, options: Pick<ResolvedOptions, 'imageWork' | 'hash'>): SinkEntry {
  return options.imageWork === undefined ? entry : new ImageHold(entry, options.imageWork, options.hash);
}

/** The type a kept image is saved as when it is re-encoded (its extension names the file); undefined when kept as received. */
export function encodedAs(options: Pick<ResolvedOptions, 'imageWork'>): Sniffed | undefined {
  const format = options.imageWork?.encode?.format;
  if (format === undefined) return undefined;
  return { mime: format === 'jpg' ? 'image/jpeg' : `image/${format}`, ext: formatExtension(format) };
}

/** What is kept of a body: its size and facts (of the bytes kept), and, when re-encoded, the size it came in. */
export interface KeptBody {
  bytes: number;
  facts: Inspection;
  original: { originalWidth?: number; originalHeight?: number };
}

/** An image the checks refused: why, and what its header told (for the skipped record). */
export interface Refused {
  refused: SkipReason;
  facts: Inspection;
}

/**
 * What is kept of a received body: as received, or, through an
 * {@link ImageHold}, checked and re-encoded (written to the real entry now),
 * or why the checks refused it. Reads the receiver's inspection once.
 */
export async function keptBody(entry: SinkEntry, receiver: Receiver, url: string): Promise<KeptBody | Refused> {
  const received = receiver.inspector.result();
  if (!(entry instanceof ImageHold)) return { bytes: receiver.bytes, facts: received, original: {} };
  return entry.keep(received, receiver.bytes, url);
}

/** A sink entry that holds an image's bytes for the work done at keep; see the module's comment. */
export class ImageHold implements SinkEntry {
  readonly #entry: SinkEntry;
  readonly #work: ImageWork;
  readonly #hash: HashAlgorithm | undefined;
  #held: Buffer[] = [];
  #holding = true;
  /** Checks alone: reads the size as the bytes pass, so that they need not be held once it is known. */
  readonly #probe: HeaderProbe | undefined;

  constructor(entry: SinkEntry, work: ImageWork, hash: HashAlgorithm | undefined) {
    this.#entry = entry;
    this.#work = work;
    this.#hash = hash;
    this.#probe = work.encode === undefined ? new HeaderProbe() : undefined;
  }

  begin(start: BodyStart, handler: SinkHandler): Promise<void> {
    // A re-encoded body is written whole at keep: nothing in its part file could be continued, so no resume record.
    return this.#entry.begin(this.#work.encode === undefined ? start : { ...start, validator: undefined }, handler);
  }

  write(chunk: Buffer): boolean {
    if (this.#holding) this.#held.push(chunk);
    if (this.#probe === undefined) return true;
    if (!this.#probe.done) {
      this.#probe.feed(chunk);
      // The header told the size: the bytes kept so far are no longer needed.
      if (this.#probe.done && this.#probe.facts !== undefined) [this.#holding, this.#held] = [false, []];
    }
    return this.#entry.write(chunk);
  }

  /** The checks, then the re-encoding written to the real entry; or why the image is skipped. */
  async keep(received: Inspection, bytes: number, url: string): Promise<KeptBody | Refused> {
    const { encode, minSize, maxAspectRatio } = this.#work;
    const held = this.#held;
    this.#held = [];
    const whole = (): Buffer => (held.length === 1 ? held[0]! : Buffer.concat(held));
    if (minSize !== undefined || maxAspectRatio !== undefined) {
      // The header's size when the probe read it (no decode); sharp reads it otherwise.
      const size: Size = received.image ?? (await measureImage(whole(), url));
      const refused = refusal(size, minSize, maxAspectRatio);
      if (refused !== undefined) return { refused, facts: received };
    }
    if (encode === undefined) return { bytes, facts: received, original: {} };
    const image = await transformImage(whole(), encode, url);
    this.#entry.write(image.data);
    const facts: Inspection = { image: { imageType: image.imageType, width: image.width, height: image.height } };
    // The digest is of the bytes kept, as for any file (dedupe compares what is kept); the received bytes' is not recorded.
    const algorithm = this.#hash;
    if (algorithm !== undefined) facts.digest = `${algorithm}:${createHash(algorithm).update(image.data).digest('hex')}`;
    return {
      bytes: image.data.length,
      facts,
      original: { originalWidth: image.original.width, originalHeight: image.original.height },
    };
  }

  commit(relPath: string, facts: KeepFacts): Promise<string> {
    return this.#entry.commit(relPath, facts);
  }

  abort(keepResumable: boolean): Promise<void> {
    this.#held = [];
    return this.#entry.abort(keepResumable);
  }
}

/** Why an image of `size` is skipped by the checks, or undefined when it passes them. */
export function refusal(size: Size, minSize: number | undefined, maxAspectRatio: number | undefined): SkipReason | undefined {
  const shorter = Math.min(size.width, size.height);
  const longer = Math.max(size.width, size.height);
  if (minSize !== undefined && shorter < minSize) return 'too-small';
  if (maxAspectRatio !== undefined && (shorter === 0 || longer / shorter > maxAspectRatio)) return 'aspect-ratio';
  return undefined;
}
