/**
 * What the output folders already hold, learnt from one listing per folder
 * instead of a system call per item: which part files an earlier run left to
 * resume, whether a final name is already taken, and (in the sharded layout)
 * under which extension a position was saved.
 *
 * Listings are streamed (`fs.opendir`) into compact form: part files by name
 * (a folder holds few), every other name as a 64-bit fingerprint, and in the
 * sharded layout one byte a position. A folder of a million files costs
 * about 10 MB, not the hundred or more that a `Set` of its names would.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fingerprint, FingerprintSet, type Fingerprint } from '../names/fingerprints.js';
import { splitExt } from '../names/ext.js';
import { foldName, SHARD_FILES } from '../names/naming.js';
import type { Layout } from '../options.js';
import { exists, PART_SUFFIX } from './part-files.js';

/** One folder's listing, filled as the directory streams in. */
interface Listing {
  /** Set once every entry has been read. */
  complete: boolean;
  /** Resolves once `complete` is set. */
  ready: Promise<void>;
  /** Part files (`NAME.part`) in the folder, by name. */
  parts: Set<string>;
  /** Fingerprints of every name in the folder, folded as names are compared; made with the first name (most folders of a first run hold none). */
  folded: FingerprintSet | undefined;
  /** True when the folder could not be read (other than missing): nothing is known about it. */
  unreadable: boolean;
  /** Sharded layout: the extension code of each position of this folder that holds a file (0: none). */
  positions: Uint8Array | undefined;
}

/** Extensions seen in sharded folders, by code (1–254); 255 means one not kept. */
const UNKNOWN_EXTENSION = 255;

/**
 * The part files left in each folder by an earlier run, and the names in it,
 * listed once per folder. Until a folder's listing is complete (a folder of
 * a million files takes a second or two), questions about it are answered by
 * a stat of their own, so a run never waits for a listing to start.
 *
 * Answers are only asked by an item about its own names, before it writes
 * them, and a run claims each name once, so what this run writes while a
 * listing streams cannot mislead it.
 */
export class PartIndex {
  readonly #folders = new Map<string, Listing>();
  readonly #layout: Layout;
  readonly #key: Fingerprint = { hi: 0, lo: 0 };
  readonly #extensions: string[] = [''];
  readonly #codes = new Map<string, number>();
  /** The folder asked about last, and its listing: items come in runs of one folder. */
  #lastDir: string | undefined;
  #lastListing: Listing | undefined;

  constructor(layout: Layout = 'flat') {
    this.#layout = layout;
  }

  /** True (once) when `part` was left by an earlier run. */
  async take(part: string): Promise<boolean> {
    const listing = this.#listFor(part);
    if (!listing.complete) return exists(part);
    return listing.parts.delete(path.basename(part));
  }

  /**
   * True when `file` exists (as anything). A name absent from its folder's
   * listing is taken as absent without a stat: names are claimed once per run,
   * so the only file this run could have put there since is the asker's own.
   * The listing is compared case- and normalisation-insensitively, so on a
   * file system that folds names a near match still gets a real lstat.
   */
  async exists(file: string): Promise<boolean> {
    return this.surelyAbsent(file) ? false : exists(file);
  }

  /** True when `file`'s folder is listed and the name is not in it: {@link exists} would say false without a stat. */
  surelyAbsent(file: string): boolean {
    const listing = this.#listFor(file);
    if (!listing.complete || listing.unreadable) return false;
    return listing.folded === undefined || !listing.folded.has(fingerprint(foldName(path.basename(file)), this.#key));
  }

  /** The listing of `file`'s folder; the folder asked about last is recognised without making its path again. */
  #listFor(file: string): Listing {
    const last = this.#lastDir;
    if (last !== undefined && file.length > last.length + 1 && file.startsWith(last) && file.lastIndexOf(path.sep) === last.length)
      return this.#lastListing!;
    return this.#list(path.dirname(file));
  }

  /** {@link exists}, but waiting for the folder's listing rather than asking the file system meanwhile (the dry run). */
  async existsListed(file: string): Promise<boolean> {
    await this.#list(path.dirname(file)).ready;
    return this.exists(file);
  }

  /**
   * Sharded layout: the file already saved for the position `file` names,
   * whatever its extension (the bytes chose it), or undefined; null while
   * the folder's listing is not complete ({@link savedAs} waits for it).
   */
  savedAsListed(file: string): string | undefined | null {
    const dir = path.dirname(file);
    const listing = this.#list(dir);
    if (!listing.complete) return null;
    // A folder this layout never wrote to (most, on a first run) answers at once.
    if (listing.positions === undefined) return undefined;
    const index = positionIn(path.basename(dir), path.basename(file));
    const code = index === undefined ? 0 : listing.positions[index]!;
    if (code === 0 || code === UNKNOWN_EXTENSION) return undefined;
    return path.join(dir, splitExt(path.basename(file)).stem + this.#extensions[code]);
  }

  /** {@link savedAsListed}, waiting for the folder's listing. */
  async savedAs(file: string): Promise<string | undefined> {
    await this.#list(path.dirname(file)).ready;
    return this.savedAsListed(file) ?? undefined;
  }

  #list(dir: string): Listing {
    if (dir === this.#lastDir) return this.#lastListing!;
    let listing = this.#folders.get(dir);
    if (!listing) {
      let done!: () => void;
      const ready = new Promise<void>((resolve) => (done = resolve));
      listing = { complete: false, ready, parts: new Set(), folded: undefined, unreadable: false, positions: undefined };
      this.#folders.set(dir, listing);
      const filled = listing;
      void this.#read(dir, filled).then(() => {
        filled.complete = true;
        done();
      });
    }
    this.#lastDir = dir;
    this.#lastListing = listing;
    return listing;
  }

  async #read(dir: string, listing: Listing): Promise<void> {
    const key: Fingerprint = { hi: 0, lo: 0 };
    const folder = path.basename(dir);
    try {
      for await (const entry of await fs.opendir(dir, { bufferSize: 256 })) {
        const name = entry.name;
        if (name.endsWith(PART_SUFFIX)) listing.parts.add(name);
        (listing.folded ??= new FingerprintSet()).add(fingerprint(foldName(name), key));
        if (this.#layout === 'sharded') {
          const index = positionIn(folder, name);
          if (index !== undefined) {
            listing.positions ??= new Uint8Array(SHARD_FILES);
            listing.positions[index] ||= this.#code(splitExt(name).ext);
          }
        }
      }
    } catch (error) {
      // A missing folder holds nothing; one that cannot be read tells nothing, so every question gets a stat.
      if ((error as { code?: unknown }).code !== 'ENOENT') listing.unreadable = true;
    }
  }

  #code(ext: string): number {
    let code = this.#codes.get(ext);
    if (code === undefined) {
      code = this.#extensions.length < UNKNOWN_EXTENSION ? this.#extensions.length : UNKNOWN_EXTENSION;
      if (code !== UNKNOWN_EXTENSION) {
        this.#extensions.push(ext);
        this.#codes.set(ext, code);
      }
    }
    return code;
  }
}

/** The index within its folder of a sharded file name (`000120034.png` in `00012` → 34), or undefined for any other name. */
function positionIn(folder: string, name: string): number | undefined {
  const match = /^(\d+)(\.[A-Za-z0-9]{1,16})?$/.exec(name);
  if (!match || !/^\d+$/.test(folder)) return undefined;
  const index = Number(match[1]) - Number(folder) * SHARD_FILES;
  return index >= 0 && index < SHARD_FILES ? index : undefined;
}
