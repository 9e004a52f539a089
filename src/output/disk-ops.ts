/**
 * The file operations the writer thread runs (writer-thread.ts), as plain
 * data so that a batch of them crosses to the thread in one message and
 * their answers come back in one. Each runs synchronously there: on that
 * thread a blocking call costs nothing but its own time, whereas each async
 * call on the loop is a round trip to libuv's pool (a wake-up and a signal
 * back, tens of microseconds of kernel time each on a VM).
 */
import { closeSync, fdatasyncSync, lstatSync, openSync, renameSync, rmSync, utimesSync, writeSync } from 'node:fs';
import { splitExt } from '../names/ext.js';

/**
 * Keeps a complete body under its final name. With `body` (a body held in
 * memory), first opens its part file (or takes `fd`, opened already), writes
 * it and closes it, so a small file costs one hand-off; without, the part
 * file is complete, and `fd` (unless -1) is closed. Then removes `drop` (its resume
 * record: gone before the rename, as a record with no part beside it would
 * never be cleaned up) and renames the part into place. With `besides`, an
 * existing file keeps its name and the body takes the first free
 * `stem-N.ext`. Answers with the path written.
 */
export interface KeepOp {
  op: 'keep';
  /** The part file's descriptor when open already, else -1 (with a body, `part` is then created). */
  fd: number;
  part: string;
  final: string;
  besides: boolean;
  /** The modification time to give the kept file, in ms; NaN to leave it as written. */
  mtime: number;
  /** Where the body lies in the batch's slab; undefined when the part file is complete already. */
  body: BodyRef | undefined;
  drop: string | undefined;
}

/**
 * Where a body lies in its batch's slab: one buffer per batch holds every
 * body in it, moved to the thread and back, and used again by the next
 * batch, so bodies on their way to disk cost no allocation and memory stays
 * flat. (Moving each body's own buffer instead left them to the thread's
 * garbage collector, which seldom runs: +35 MB of peak RSS on the latency list.)
 */
export interface BodyRef {
  at: number;
  size: number;
}

/** Opens a part file (`w` to start over, `a` to continue one); answers with its descriptor, valid in every thread. */
export interface OpenOp {
  op: 'open';
  part: string;
  flags: 'w' | 'a';
}

/** Writes a resume record and flushes it to disk before answering, so it is never older than the bytes beside it. */
export interface RecordOp {
  op: 'record';
  file: string;
  text: string;
}

/** Gives up a part file: closes `fd` (unless -1) and removes `files`, quietly (the failure that led here is what is told). */
export interface DropOp {
  op: 'drop';
  fd: number;
  files: string[];
}

/** One operation of a batch. */
export type DiskOp = KeepOp | OpenOp | RecordOp | DropOp;

/** Why an operation failed, as plain data: the system code (ENOSPC, ...) and what was being done to which file. */
export interface DiskFailure {
  failed: true;
  code: string | undefined;
  message: string;
  action: string;
  file: string;
}

/** An operation's answer: a descriptor, the path kept, nothing (a record), or why it failed. */
export type DiskAnswer = number | string | null | DiskFailure;

/** One batch, as the loop sends it: operations, and the slab holding their bodies. */
export interface Batch {
  ops: DiskOp[];
  slab: ArrayBuffer;
}

/** A batch's answers, in its order, and its slab handed back. */
export interface Answers {
  answers: DiskAnswer[];
  slab: ArrayBuffer;
}

/** Runs a batch in order; one operation failing does not stop the others (they belong to other files). */
export function runBatch(ops: readonly DiskOp[], slab: ArrayBuffer): DiskAnswer[] {
  return ops.map((op) => {
    try {
      return runOne(op, slab);
    } catch (error) {
      return error as DiskFailure;
    }
  });
}

function runOne(op: DiskOp, slab: ArrayBuffer): DiskAnswer {
  switch (op.op) {
    case 'keep':
      return keep(op, slab);
    case 'open':
      return attempt('writing', op.part, () => openSync(op.part, op.flags));
    case 'record':
      return attempt('recording how to resume', op.file, () => record(op.file, op.text));
    case 'drop':
      if (op.fd !== -1) closeQuietly(op.fd);
      for (const file of op.files) removeQuietly(file);
      return null;
  }
}

function keep(op: KeepOp, slab: ArrayBuffer): string {
  if (op.body !== undefined) writeWhole(op.fd, op.part, new Uint8Array(slab, op.body.at, op.body.size));
  else if (op.fd !== -1) closePart(op);
  if (op.drop !== undefined) removeQuietly(op.drop);
  let target = op.final;
  if (op.besides) {
    const { stem, ext } = splitExt(target);
    for (let n = 1; lstatSync(target, { throwIfNoEntry: false }) !== undefined; n++) target = `${stem}-${n}${ext}`;
  }
  try {
    renameSync(op.part, target);
  } catch (error) {
    rmSync(op.part, { force: true });
    throw failure(error, 'renaming into', target);
  }
  if (!Number.isNaN(op.mtime))
    attempt('setting the modification time of', target, () => utimesSync(target, new Date(), new Date(op.mtime)));
  return target;
}

/** Closes a part file written in batches; a failure there (a delayed write error) loses the file. */
function closePart(op: KeepOp): void {
  try {
    closeSync(op.fd);
  } catch (error) {
    removeQuietly(op.part);
    if (op.drop !== undefined) removeQuietly(op.drop);
    throw failure(error, 'writing', op.part);
  }
}

/** Writes a body held in memory to its part file and closes it; on failure the part file is removed. */
function writeWhole(given: number, part: string, body: Uint8Array): void {
  let fd = given;
  try {
    if (fd === -1) fd = openSync(part, 'w');
    writeFully(fd, body);
    const closing = fd;
    fd = -1;
    closeSync(closing);
  } catch (error) {
    if (fd !== -1) closeQuietly(fd);
    rmSync(part, { force: true });
    throw failure(error, 'writing', part);
  }
}

function writeFully(fd: number, body: Uint8Array): number {
  for (let at = 0; at < body.length;) at += writeSync(fd, body, at, body.length - at);
  return body.length;
}

function record(file: string, text: string): null {
  const fd = openSync(file, 'w');
  try {
    writeFully(fd, Buffer.from(text));
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return null;
}

function attempt<T>(action: string, file: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    throw failure(error, action, file);
  }
}

function removeQuietly(file: string): void {
  try {
    rmSync(file, { force: true });
  } catch {
    // It may be gone already; the rename is what matters.
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already failing; the part file's removal is what matters.
  }
}

function failure(error: unknown, action: string, file: string): DiskFailure {
  const code = (error as { code?: unknown } | null)?.code;
  return {
    failed: true,
    code: typeof code === 'string' ? code : undefined,
    message: String((error as Error)?.message ?? error),
    action,
    file,
  };
}

/** True when an answer is a failure. */
export function isFailure(answer: DiskAnswer): answer is DiskFailure {
  return typeof answer === 'object' && answer !== null;
}
