/**
 * The folder sink's names and folders: a part file beside its target (the
 * writer thread, disk-ops.ts, writes it and renames it into place only when
 * complete, so nothing partial ever sits at a final name), and the folders
 * made for them.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileSystemError } from '../errors.js';

/** Suffix of the temp file an item is written to before it is complete. */
export const PART_SUFFIX = '.part';

/** The temp file for a final path. */
export function partPath(finalPath: string): string {
  return finalPath + PART_SUFFIX;
}

/** True when `file` exists (as anything). */
export async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** Opens a part file for writing and resolves with its descriptor; `flags` is `'w'` (start over) or `'a'` (resume). */
export type OpenPart = (file: string, flags: 'w' | 'a') => Promise<number>;

/** Creates the folders a file needs, remembering those made so each is created once per run. */
export class FolderMaker {
  readonly #made = new Set<string>();
  /** True when the folder `file` goes in was made (or found) this run. */
  has(file: string): boolean {
    return this.#made.has(path.dirname(file));
  }
  async ensureFor(file: string): Promise<void> {
    const dir = path.dirname(file);
    if (this.#made.has(dir)) return;
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (error) {
      throw fileSystemError(error, 'creating folder', dir);
    }
    this.#made.add(dir);
  }
}

/** A file's path as records show it: relative to the output folder, `/`-separated. */
export function toManifestPath(file: string, out: string): string {
  return file
    .slice(out.length + 1)
    .split('\\')
    .join('/');
}
