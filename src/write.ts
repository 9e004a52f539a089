/**
 * Writing one file: the body streams into a temp file beside its target, and
 * only a complete file is renamed to the final name. A failed or aborted
 * write removes the temp file, so nothing partial ever sits at a final name.
 */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileSystemError, ImgdlError } from './errors.js';
import { splitExt } from './naming.js';
import type { OnExists } from './options.js';

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

/** A file-system failure as an imgdl error that keeps the system code (ENOSPC, EACCES, ...) in its message. */
export function fileSystemError(error: unknown, action: string, file: string, url?: string): ImgdlError {
  if (error instanceof ImgdlError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const label = typeof code === 'string' ? `${code} ` : '';
  return new FileSystemError(`${label}while ${action} ${file}`, { url, cause: error });
}

/**
 * Streams `body` into `temp`, returning the bytes written. On any failure the
 * temp file is removed and the error is rethrown, classified by `classify`
 * (read-side errors are the caller's to name; write-side ones are FILESYSTEM).
 */
export async function streamToFile(
  body: Readable,
  temp: string,
  classifyReadError: (error: unknown) => ImgdlError,
): Promise<number> {
  const file = createWriteStream(temp);
  let writeFailed = false;
  file.once('error', () => {
    writeFailed = true;
  });
  try {
    await pipeline(body, file);
    return file.bytesWritten;
  } catch (error) {
    body.destroy();
    await fs.rm(temp, { force: true }).catch(() => undefined);
    throw writeFailed ? fileSystemError(error, 'writing', temp) : classifyReadError(error);
  }
}

/**
 * Moves a complete temp file to its final place. With `rename`, an existing
 * file keeps its name and the new one gets `stem-1.ext`, `stem-2.ext`, ...;
 * otherwise the final name is replaced. Returns the path actually written.
 */
export async function commitFile(temp: string, finalPath: string, onExists: OnExists): Promise<string> {
  let target = finalPath;
  if (onExists === 'rename') {
    const { stem, ext } = splitExt(finalPath);
    for (let n = 1; await exists(target); n++) target = `${stem}-${n}${ext}`;
  }
  try {
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true }).catch(() => undefined);
    throw fileSystemError(error, 'renaming into', target);
  }
  return target;
}

/** Creates the folders a file needs, remembering those made so each is created once per run. */
export class FolderMaker {
  readonly #made = new Set<string>();
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
