/**
 * What the output folders already hold, learnt from one listing per folder
 * instead of a system call per item: which part files an earlier run left to
 * resume, and whether a final name is already taken.
 *
 * Listings are streamed (`fs.opendir`) into compact form: part files by name
 * (a folder holds few), every name as a 64-bit fingerprint. A folder of a
 * million files costs about 10 MB, not the hundred or more that a `Set` of
 * its names would.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fingerprint, FingerprintSet, type Fingerprint } from './fingerprints.js';
import { fold } from './naming.js';
import { exists, PART_SUFFIX } from './write.js';

/** One folder's listing, filled as the directory streams in. */
interface Listing {
  /** Set once every entry has been read. */
  complete: boolean;
  /** Resolves once `complete` is set. */
  ready: Promise<void>;
  /** Part files (`NAME.part`) in the folder, by name. */
  parts: Set<string>;
  /** Fingerprints of every name in the folder, folded as names are compared; undefined when the folder could not be read (other than missing). */
  folded: FingerprintSet | undefined;
}

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
  readonly #key: Fingerprint = { hi: 0, lo: 0 };
  /** The folder asked about last, and its listing: items come in runs of one folder. */
  #lastDir: string | undefined;
  #lastListing: Listing | undefined;

  /** True (once) when `part` was left by an earlier run. */
  async take(part: string): Promise<boolean> {
    const listing = this.#list(path.dirname(part));
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
    const listing = this.#list(path.dirname(file));
    if (!listing.complete || listing.folded === undefined) return false;
    return listing.folded.size === 0 || !listing.folded.has(fingerprint(fold(path.basename(file)), this.#key));
  }

  /** {@link exists}, but waiting for the folder's listing rather than asking the file system meanwhile (the dry run). */
  async existsListed(file: string): Promise<boolean> {
    await this.#list(path.dirname(file)).ready;
    return this.exists(file);
  }

  #list(dir: string): Listing {
    if (dir === this.#lastDir) return this.#lastListing!;
    let listing = this.#folders.get(dir);
    if (!listing) {
      let done!: () => void;
      const ready = new Promise<void>((resolve) => (done = resolve));
      listing = { complete: false, ready, parts: new Set(), folded: new FingerprintSet() };
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
    try {
      for await (const entry of await fs.opendir(dir, { bufferSize: 256 })) {
        const name = entry.name;
        if (name.endsWith(PART_SUFFIX)) listing.parts.add(name);
        listing.folded!.add(fingerprint(fold(name), key));
      }
    } catch (error) {
      // A missing folder holds nothing; one that cannot be read tells nothing, so every question gets a stat.
      if ((error as { code?: unknown }).code !== 'ENOENT') listing.folded = undefined;
    }
  }
}
