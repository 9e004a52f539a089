/**
 * The resume record: what is kept beside a part file so that a later run can
 * ask the server for the rest, and check it is still the same file.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SNIFF_BYTES } from '../image/sniff.js';
import type { Logger } from 'pino';
import type { Resume } from './sink.js';

/**
 * What is kept beside a part file so a later run can check the server still
 * has the same file. Written, and flushed to disk, before the first byte
 * reaches the part file (by the writer thread: disk-ops.ts), so it survives
 * a crash as well as a stop.
 */
export interface PartMeta {
  /** First 16 hex of sha1 of the URL: a part file belongs to one URL. */
  key: string;
  /** Strong ETag of the response the part came from. */
  etag?: string | undefined;
  /** Last-Modified of that response. */
  lastModified?: string | undefined;
  /** The whole file's size as that response announced it, when it did. */
  total?: number | undefined;
}

/** The file beside a part file holding its {@link PartMeta}. */
export function partMetaPath(part: string): string {
  return `${part}.json`;
}

/** The key that ties a part file to its URL, without writing the URL (or its credentials) to disk. */
export function partKey(url: string): string {
  return createHash('sha1').update(url).digest('hex').slice(0, 16);
}

/** The resume record beside `part`, or why there is none to use: `missing` or `unreadable`. */
export async function readPartMeta(part: string): Promise<PartMeta | 'missing' | 'unreadable'> {
  let text: string;
  try {
    text = await fs.readFile(partMetaPath(part), 'utf8');
  } catch (error) {
    return (error as { code?: unknown }).code === 'ENOENT' ? 'missing' : 'unreadable';
  }
  try {
    const meta = JSON.parse(text) as Partial<PartMeta> | null;
    const total = meta?.total;
    if (typeof meta?.key !== 'string' || (total !== undefined && !Number.isSafeInteger(total))) return 'unreadable';
    return meta as PartMeta;
  } catch {
    return 'unreadable';
  }
}

/** A part file from an earlier run that a ranged request may continue. */
class PartResume implements Resume {
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  constructor(
    readonly part: string,
    readonly size: number,
    readonly head: Buffer,
    readonly validator: string,
    meta: PartMeta,
  ) {
    this.etag = meta.etag;
    this.lastModified = meta.lastModified;
  }

  async replay(through: { see(chunk: Buffer): void }): Promise<void> {
    for await (const chunk of createReadStream(this.part, { start: 0, end: this.size - 1 })) through.see(chunk as Buffer);
  }

  discard(): Promise<void> {
    return removePart(this.part);
  }
}

/**
 * The part file left by an earlier run, when its resume record belongs to
 * the URL keyed `key`, carries a validator and fits the file; otherwise the
 * part file is removed, to start over, and the log says why (at -v).
 */
export async function findResume(part: string, key: string, logger: Logger | undefined): Promise<Resume | undefined> {
  const found = await resumeState(part, key);
  const name = path.basename(part);
  if (typeof found === 'string') {
    logger?.info({ part }, `starting ${name} over: ${found}`);
    await removePart(part);
    return undefined;
  }
  logger?.info({ part, from: found.size }, `resuming ${name} from byte ${found.size}`);
  return found;
}

/** The part file's state when it can be continued, else why not. */
async function resumeState(part: string, key: string): Promise<PartResume | string> {
  const meta = await readPartMeta(part);
  if (meta === 'missing') return 'there is no resume record beside it (the server gave no ETag or Last-Modified)';
  if (meta === 'unreadable') return 'its resume record is unreadable';
  if (meta.key !== key) return 'its resume record is for another URL';
  const validator = meta.etag ?? meta.lastModified;
  if (validator === undefined) return 'its resume record has no validator';
  try {
    const handle = await fs.open(part, 'r');
    try {
      const { size } = await handle.stat();
      if (size === 0) return 'it is empty';
      if (meta.total !== undefined && size >= meta.total) return `it holds ${size} bytes of a ${meta.total}-byte file`;
      const head = Buffer.alloc(Math.min(size, SNIFF_BYTES));
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      return new PartResume(part, size, head.subarray(0, bytesRead), validator, meta);
    } finally {
      await handle.close();
    }
  } catch (error) {
    return `it cannot be read (${(error as { code?: string }).code ?? String(error)})`;
  }
}

/** Removes a part file and its resume record. */
export async function removePart(part: string): Promise<void> {
  await Promise.all([fs.rm(part, { force: true }), fs.rm(partMetaPath(part), { force: true })]).catch(() => undefined);
}
