/**
 * The folder sink's file operations: a part file beside its target, written
 * off the loop in batches or in one synchronous write, and renamed into
 * place only when complete, so nothing partial ever sits at a final name.
 */
import { closeSync, open, renameSync, rmSync, writev, writevSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileSystemError } from '../errors.js';
import { splitExt } from '../names/naming.js';
import type { OnExists } from '../options.js';

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

/** The usual {@link OpenPart}: an open on a pool thread. */
export const openPartFile: OpenPart = (file, flags) =>
  new Promise((resolve, reject) => open(file, flags, (error, fd) => (error ? reject(error) : resolve(fd))));

/** Writes `chunks` (`bytes` in all) at the file's position, going on after a short write; off the loop. */
export function writeAll(fd: number, chunks: Buffer[], bytes: number, done: (error: unknown) => void): void {
  writev(fd, chunks, (error, written) => {
    if (error) return done(error);
    if (written === bytes) return done(null);
    const rest = remainder(chunks, written);
    writeAll(fd, rest, bytes - written, done);
  });
}

/** The part of `chunks` after the first `skip` bytes. */
function remainder(chunks: Buffer[], skip: number): Buffer[] {
  let left = skip;
  let i = 0;
  while (left >= chunks[i]!.length) left -= chunks[i++]!.length;
  return [chunks[i]!.subarray(left), ...chunks.slice(i + 1)];
}

/**
 * Writes a body held in memory to its part file, open as `fd`, and closes
 * it: one write, one close, synchronously. On failure the part file is
 * removed and a FILESYSTEM or DISK_FULL error is thrown.
 */
export function writeWhole(fd: number, part: string, chunks: Buffer[], bytes: number, url?: string): void {
  let open = true;
  try {
    let rest = chunks;
    while (bytes > 0) {
      const written = writevSync(fd, rest);
      bytes -= written;
      if (bytes > 0) rest = remainder(rest, written);
    }
    open = false;
    closeSync(fd);
  } catch (error) {
    if (open) {
      try {
        closeSync(fd);
      } catch {
        // Already failing.
      }
    }
    rmSync(part, { force: true });
    throw fileSystemError(error, 'writing', part, url);
  }
}

/** Removes a file that is no longer wanted, ignoring any failure (it may already be gone). */
export async function removeQuietly(file: string): Promise<void> {
  await fs.rm(file, { force: true }).catch(() => undefined);
}

/**
 * Moves a complete temp file to its final place. With `rename`, an existing
 * file keeps its name and the new one gets `stem-1.ext`, `stem-2.ext`, ...;
 * otherwise the final name is replaced, at once: no promise on the path every
 * file takes. Returns the path actually written.
 */
export function commitFile(temp: string, finalPath: string, onExists: OnExists): string | Promise<string> {
  return onExists === 'rename' ? commitBesides(temp, finalPath) : moveInto(temp, finalPath);
}

/** {@link commitFile} with `rename`: the first of `stem.ext`, `stem-1.ext`, ... that is free. */
async function commitBesides(temp: string, finalPath: string): Promise<string> {
  let target = finalPath;
  const { stem, ext } = splitExt(finalPath);
  for (let n = 1; await exists(target); n++) target = `${stem}-${n}${ext}`;
  return moveInto(temp, target);
}

function moveInto(temp: string, target: string): string {
  try {
    // Synchronous: a local rename is a short system call, cheaper than a round trip to a pool thread.
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw fileSystemError(error, 'renaming into', target);
  }
  return target;
}

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
