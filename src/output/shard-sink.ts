/**
 * The tar shard sink of `--format webdataset`: a body is held in memory
 * until it is committed (bounded by `maxSize`, and images are small), then
 * handed to the run's {@link ShardWriter} as one sample: `KEY.EXT` (the
 * image as kept), `KEY.json` (the row and what the bytes are, under
 * img2dataset's names) and `KEY.txt` (the caption, when there is one), KEY
 * being the row's list position in 9 digits. The writer also hears of every
 * row of the list as it plans and settles (see {@link Sink.rowAt}), to
 * know which rows are this run's and when a shard is whole. In a worker
 * thread the samples are built there and forwarded to the main thread's
 * writer (sample-port.ts).
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { ResolvedOptions } from '../options.js';
import type { ItemResult } from '../record/record.js';
import type { BodyStart, KeepFacts, Resume, Sink, SinkEntry, SinkHandler, SinkTarget } from './sink.js';
import { sampleKey, splitFields } from './shard-table.js';
import type { SampleKeeper } from './sample-port.js';
import { ShardWriter, type Member } from './shard-writer.js';

/** One settled answer, shared: a shard sink keeps nothing a name could find. */
const ABSENT: Promise<boolean> = Promise.resolve(false);
const NO_RESUME: Promise<undefined> = Promise.resolve(undefined);
const DONE: Promise<void> = Promise.resolve();

/** What a {@link ShardSink} reads of the options. */
export type ShardSinkOptions = Pick<ResolvedOptions, 'out' | 'shardSize' | 'shard' | 'logger'>;

/** WebDataset tar shards in the output folder, with a table and stats beside each. */
export class ShardSink implements Sink {
  /** The run's one writer of shards (on the main thread; a worker thread's is never used). */
  readonly writer: ShardWriter;
  /** Where committed samples go: the writer, or, in a worker thread, the main thread's writer over a port. */
  readonly keeper: SampleKeeper;

  constructor(options: ShardSinkOptions, keeper?: SampleKeeper) {
    this.writer = new ShardWriter(options);
    this.keeper = keeper ?? writerKeeper(this.writer);
  }

  /** Nothing is kept under a name: which rows are kept already is decided a shard at a time (see {@link rowAt}). */
  has(): Promise<boolean> {
    return ABSENT;
  }

  /** A shard is redone from scratch: nothing is continued. */
  resumable(): Promise<Resume | undefined> {
    return NO_RESUME;
  }

  open(target: SinkTarget): SinkEntry {
    return new SampleEntry(this.keeper, target);
  }

  rowAt(position: number): 'fetch' | { kept: string } | undefined {
    return this.writer.rowAt(position);
  }

  settle(position: number, result: ItemResult): void {
    this.writer.settle(position, result);
  }

  end(rows: number | undefined): Promise<void> {
    return this.writer.end(rows);
  }
}

/** A keeper that appends each sample to `writer`'s shards, and names it `00000.tar/000000123.jpg`. */
export function writerKeeper(writer: ShardWriter): SampleKeeper {
  return {
    async keep(position, members, sha256) {
      await writer.sample(position, members, sha256, members[0]?.body.length ?? 0);
      return `${writer.tarName(position)}/${members[0]?.name ?? ''}`;
    },
  };
}

/** One body held until it is committed as a sample, which `keeper` then keeps. */
export class SampleEntry implements SinkEntry {
  readonly #keeper: SampleKeeper;
  readonly #target: SinkTarget;
  #chunks: Buffer[] = [];
  #bytes = 0;
  #closed = false;

  constructor(keeper: SampleKeeper, target: SinkTarget) {
    this.#keeper = keeper;
    this.#target = target;
  }

  begin(_start: BodyStart, _handler: SinkHandler): Promise<void> {
    return DONE;
  }

  write(chunk: Buffer): boolean {
    if (this.#closed) return false;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    return true;
  }

  async commit(relPath: string, facts: KeepFacts): Promise<string> {
    this.#closed = true;
    // A buffer of its own (not a slice of Node's pool), so that a worker thread can move it to the main thread.
    const image = Buffer.allocUnsafeSlow(this.#bytes);
    let at = 0;
    for (const chunk of this.#chunks) at += chunk.copy(image, at);
    this.#chunks = [];
    const sha256 = createHash('sha256').update(image).digest('hex');
    const key = sampleKey(facts.position);
    // The extension the bytes called for (planning named the item by position, the sniffed type chose this).
    const ext = path.posix.extname(relPath).toLowerCase() || '.bin';
    const { caption, saved } = splitFields(facts.item.fields);
    const json = {
      key,
      url: this.#target.shownUrl,
      caption,
      ...saved,
      status: 'success',
      error_message: null,
      width: facts.width ?? null,
      height: facts.height ?? null,
      original_width: facts.originalWidth ?? facts.width ?? null,
      original_height: facts.originalHeight ?? facts.height ?? null,
      sha256,
    };
    const members: Member[] = [
      { name: key + ext, body: image },
      { name: `${key}.json`, body: Buffer.from(JSON.stringify(json)) },
    ];
    if (caption !== null) members.push({ name: `${key}.txt`, body: Buffer.from(caption) });
    return this.#keeper.keep(facts.position, members, sha256);
  }

  abort(): Promise<void> {
    this.#closed = true;
    this.#chunks = [];
    return DONE;
  }
}
