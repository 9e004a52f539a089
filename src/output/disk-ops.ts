/**
 * The file operations the writer thread runs (writer-thread.ts), as plain
 * data so that a batch of them crosses to the thread in one message and
 * their answers come back in one. Each runs synchronously there: on that
 * thread a blocking call costs nothing but its own time, whereas each async
 * call on the loop is a round trip to libuv's pool (a wake-up and a signal
 * back, tens of microseconds of kernel time each on a VM). Each operation is
 * written once, as the calls it makes, so that it runs the same on libuv's
 * pool while no thread is ready yet ({@link runOnPool}).
 */
import {
  close,
  closeSync,
  fdatasync,
  fdatasyncSync,
  lstatSync,
  open,
  openSync,
  renameSync,
  rmSync,
  utimesSync,
  writeSync,
  writev,
} from 'node:fs';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
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
    const body = op.op === 'keep' && op.body !== undefined ? new Uint8Array(slab, op.body.at, op.body.size) : undefined;
    try {
      return runBlocking(stepsOf(op, body));
    } catch (error) {
      return error as DiskFailure;
    }
  });
}

/**
 * Runs `op` on libuv's pool, one call at a time, for when no writer thread
 * is ready yet: the same steps as on the thread, so the same guarantees and
 * the same failures. Resolves with the answer; a failure is an answer too.
 */
export async function runOnPool(op: DiskOp, body: Uint8Array | undefined): Promise<DiskAnswer> {
  const steps = stepsOf(op, body);
  try {
    let next = steps.next();
    while (next.done !== true) {
      let value: unknown;
      try {
        value = await callOnPool(next.value);
      } catch (error) {
        next = steps.throw(error);
        continue;
      }
      next = steps.next(value);
    }
    return next.value;
  } catch (error) {
    return error as DiskFailure;
  }
}

/**
 * One file-system call of an operation. An operation is written once, as
 * the calls it makes ({@link stepsOf}); the writer thread makes them
 * blocking ({@link runBlocking}), and {@link runOnPool} on libuv's pool.
 */
type Call =
  | { call: 'open'; file: string; flags: 'w' | 'a' }
  | { call: 'write'; fd: number; data: Uint8Array }
  | { call: 'close'; fd: number }
  | { call: 'sync'; fd: number }
  | { call: 'remove'; file: string }
  | { call: 'taken'; file: string }
  | { call: 'rename'; from: string; to: string }
  | { call: 'touch'; file: string; mtime: number };

/** An operation's calls: each yielded call is answered with its result, or thrown into it as its error. */
type Steps<T> = Generator<Call, T, unknown>;

function runBlocking<T>(steps: Steps<T>): T {
  let next = steps.next();
  while (next.done !== true) {
    let value: unknown;
    try {
      value = callBlocking(next.value);
    } catch (error) {
      next = steps.throw(error);
      continue;
    }
    next = steps.next(value);
  }
  return next.value;
}

function callBlocking(step: Call): unknown {
  switch (step.call) {
    case 'open':
      return openSync(step.file, step.flags);
    case 'write':
      for (let at = 0; at < step.data.length;) at += writeSync(step.fd, step.data, at, step.data.length - at);
      return undefined;
    case 'close':
      return closeSync(step.fd);
    case 'sync':
      return fdatasyncSync(step.fd);
    case 'remove':
      return rmSync(step.file, { force: true });
    case 'taken':
      return lstatSync(step.file, { throwIfNoEntry: false }) !== undefined;
    case 'rename':
      return renameSync(step.from, step.to);
    case 'touch':
      return utimesSync(step.file, new Date(), new Date(step.mtime));
  }
}

async function callOnPool(step: Call): Promise<unknown> {
  switch (step.call) {
    case 'open':
      // A descriptor, not a FileHandle: the loop and the thread pass it on and close it themselves.
      return openOnPool(step.file, step.flags);
    case 'write':
      return writeOnPool(step.fd, step.data);
    case 'close':
      return closeOnPool(step.fd);
    case 'sync':
      return syncOnPool(step.fd);
    case 'remove':
      return fs.rm(step.file, { force: true });
    case 'taken':
      return fs.lstat(step.file).then(
        () => true,
        (error: { code?: string }) => (error.code === 'ENOENT' ? false : Promise.reject(error)),
      );
    case 'rename':
      return fs.rename(step.from, step.to);
    case 'touch':
      return fs.utimes(step.file, new Date(), new Date(step.mtime));
  }
}

const openOnPool = promisify(open);
const closeOnPool = promisify(close);
const syncOnPool = promisify(fdatasync);
const writeOnPool = (fd: number, data: Uint8Array): Promise<void> =>
  new Promise((resolve, reject) => writeAll(fd, [data], data.length, (error) => (error ? reject(error) : resolve())));

/**
 * Writes `chunks` (`bytes` in all) at the file's position, going on after a
 * short write, on libuv's pool: a large body's batch (folder-sink.ts), or
 * an operation's write while no writer thread is ready. The chunks go as they
 * are, with no copy: through the writer thread they would have to be copied
 * into its slab, which on bulk (16 × 64 MiB) cost 20 % more CPU and wall
 * time and 17 MiB more peak RSS, for 4 hand-offs per MiB saved.
 */
export function writeAll(fd: number, chunks: readonly Uint8Array[], bytes: number, done: (error: unknown) => void): void {
  writev(fd, chunks, (error, written) => {
    if (error) return done(error);
    if (written === bytes) return done(null);
    writeAll(fd, remainder(chunks, written), bytes - written, done);
  });
}

/** The part of `chunks` after the first `skip` bytes. */
function remainder(chunks: readonly Uint8Array[], skip: number): Uint8Array[] {
  let left = skip;
  let i = 0;
  while (left >= chunks[i]!.length) left -= chunks[i++]!.length;
  return [chunks[i]!.subarray(left), ...chunks.slice(i + 1)];
}

function stepsOf(op: DiskOp, body: Uint8Array | undefined): Steps<DiskAnswer> {
  switch (op.op) {
    case 'keep':
      return keep(op, body);
    case 'open':
      return attempt('writing', op.part, { call: 'open', file: op.part, flags: op.flags });
    case 'record':
      return record(op.file, op.text);
    case 'drop':
      return drop(op);
  }
}

function* keep(op: KeepOp, body: Uint8Array | undefined): Steps<string> {
  if (body !== undefined) yield* writeWhole(op.fd, op.part, body);
  else if (op.fd !== -1) yield* closePart(op);
  if (op.drop !== undefined) yield* removeQuietly(op.drop);
  let target = op.final;
  if (op.besides) {
    const { stem, ext } = splitExt(target);
    for (let n = 1; (yield { call: 'taken', file: target }) === true; n++) target = `${stem}-${n}${ext}`;
  }
  try {
    yield { call: 'rename', from: op.part, to: target };
  } catch (error) {
    yield { call: 'remove', file: op.part };
    throw failure(error, 'renaming into', target);
  }
  if (!Number.isNaN(op.mtime)) yield* attempt('setting the modification time of', target, { call: 'touch', file: target, mtime: op.mtime });
  return target;
}

/** Closes a part file written in batches; a failure there (a delayed write error) loses the file. */
function* closePart(op: KeepOp): Steps<void> {
  try {
    yield { call: 'close', fd: op.fd };
  } catch (error) {
    yield* removeQuietly(op.part);
    if (op.drop !== undefined) yield* removeQuietly(op.drop);
    throw failure(error, 'writing', op.part);
  }
}

/** Writes a body held in memory to its part file and closes it; on failure the part file is removed. */
function* writeWhole(given: number, part: string, body: Uint8Array): Steps<void> {
  let fd = given;
  try {
    if (fd === -1) fd = (yield { call: 'open', file: part, flags: 'w' }) as number;
    yield { call: 'write', fd, data: body };
    const closing = fd;
    fd = -1;
    yield { call: 'close', fd: closing };
  } catch (error) {
    if (fd !== -1) yield* closeQuietly(fd);
    yield { call: 'remove', file: part };
    throw failure(error, 'writing', part);
  }
}

function* record(file: string, text: string): Steps<null> {
  try {
    const fd = (yield { call: 'open', file, flags: 'w' }) as number;
    try {
      yield { call: 'write', fd, data: Buffer.from(text) };
      yield { call: 'sync', fd };
    } finally {
      yield { call: 'close', fd };
    }
  } catch (error) {
    throw failure(error, 'recording how to resume', file);
  }
  return null;
}

function* drop(op: DropOp): Steps<null> {
  if (op.fd !== -1) yield* closeQuietly(op.fd);
  for (const file of op.files) yield* removeQuietly(file);
  return null;
}

function* attempt(action: string, file: string, step: Call): Steps<number | null> {
  try {
    const value = yield step;
    return typeof value === 'number' ? value : null;
  } catch (error) {
    throw failure(error, action, file);
  }
}

function* removeQuietly(file: string): Steps<void> {
  try {
    yield { call: 'remove', file };
  } catch {
    // It may be gone already; the rename is what matters.
  }
}

function* closeQuietly(fd: number): Steps<void> {
  try {
    yield { call: 'close', fd };
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
