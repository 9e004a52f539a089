/**
 * WebDataset shards in the queue: one batch is one shard. Enqueuing cuts
 * the list on shard boundaries (enqueue.ts); a worker's batch then writes
 * its whole shard, the tar, its Parquet table and its stats, into the
 * worker's `-o` folder, through a writer of its own (see {@link BatchShard}).
 * A worker's run serves many batches at once, so the run's sink
 * ({@link ShardRouter}) hands each sample and each settled row to the
 * writer of the batch whose shard holds its position.
 *
 * A batch completes only once its tar is renamed into place and its stats
 * written; a batch a worker never finished is run again whole, every row
 * fetched again, and its shard rewritten from scratch. Each writer's part
 * file is named after its lock token (`00003.tar.TOKEN.part`), and the
 * rename is made only while the batch's lock is still the writer's, so a
 * worker that lost its batch leaves or removes its part file and never
 * renames it over the tar of the worker that holds the batch now.
 */
import { mkdirSync } from 'node:fs';
import { ClusterError } from './connection.js';
import type { ListItem } from '../input/source.js';
import type { ResolvedOptions } from '../options.js';
import { SampleEntry } from '../output/shard-sink.js';
import { ShardWriter } from '../output/shard-writer.js';
import type { SampleKeeper } from '../output/sample-port.js';
import type { Resume, Sink, SinkEntry, SinkTarget } from '../output/sink.js';
import type { ItemResult } from '../record/record.js';
import { ImgdlError } from '../errors.js';

const ABSENT: Promise<boolean> = Promise.resolve(false);
const NO_RESUME: Promise<undefined> = Promise.resolve(undefined);

/** The shard a list position falls in. */
function shardOf(position: number, shardSize: number): number {
  return Math.floor(position / shardSize);
}

/** The sink of a worker's run with `format: 'webdataset'`: each position goes to the writer of its batch's shard. */
export class ShardRouter implements Sink {
  readonly #shardSize: number;
  readonly #writers = new Map<number, ShardWriter>();
  readonly #keeper: SampleKeeper;

  constructor(shardSize: number) {
    this.#shardSize = shardSize;
    this.#keeper = {
      keep: async (position, members, sha256) => {
        const writer = this.#writers.get(shardOf(position, shardSize));
        // A batch's writer leaves only once each of its rows has settled, so this is never expected.
        if (writer === undefined) throw new ImgdlError('FILESYSTEM', `no shard is being written for row ${position}`);
        await writer.sample(position, members, sha256, members[0]?.body.length ?? 0);
        return `${writer.tarName(position)}/${members[0]?.name ?? ''}`;
      },
    };
  }

  /** Routes the rows of shard `index` to `writer` until {@link leave}. */
  join(index: number, writer: ShardWriter): void {
    this.#writers.set(index, writer);
  }

  /** Stops routing shard `index` to `writer` (a later batch of the same shard may have joined meanwhile). */
  leave(index: number, writer: ShardWriter): void {
    if (this.#writers.get(index) === writer) this.#writers.delete(index);
  }

  /** Nothing is kept under a name: a batch's shard is rewritten whole. */
  has(): Promise<boolean> {
    return ABSENT;
  }

  resumable(): Promise<Resume | undefined> {
    return NO_RESUME;
  }

  open(target: SinkTarget): SinkEntry {
    return new SampleEntry(this.#keeper, target);
  }

  /** Every row handed to the run is fetched: the batch decided which rows run, and a shard runs them all. */
  rowAt(): 'fetch' {
    return 'fetch';
  }

  settle(position: number, result: ItemResult): void {
    this.#writers.get(shardOf(position, this.#shardSize))?.settle(position, result);
  }

  /** Each batch ends its own shard (see {@link BatchShard.end}); the run's end leaves them to it. */
  end(): Promise<void> {
    return Promise.resolve();
  }
}

/** One batch's shard: its number, rows and writer. */
export class BatchShard {
  /** The shard's number: `00003.tar` for 3. */
  readonly index: number;
  readonly writer: ShardWriter;

  /**
   * The shard of a batch's `items`, written into `options.out`, or undefined for a batch of plain
   * files. Throws BAD_JOB when the items are not one shard's rows. `tag` names the part file, and
   * `mayFinish` is asked before the tar is renamed into place.
   */
  static of(items: readonly ListItem[], options: ResolvedOptions, tag: string, mayFinish: () => Promise<boolean>): BatchShard | undefined {
    if (options.format !== 'webdataset' || items.length === 0) return undefined;
    const { shardSize } = options;
    const index = shardOf(items[0]!.index ?? 0, shardSize);
    const first = index * shardSize;
    // The rows of one shard in list order, from its first: what enqueue cuts, and what the shard's keys assume.
    if (items.length > shardSize || items.some((item, i) => item.index !== first + i))
      throw new ClusterError('BAD_JOB', `job data imgdl cannot read: its items are not the rows of one shard of ${shardSize}`);
    return new BatchShard(index, options, first + items.length, tag, mayFinish);
  }

  private constructor(index: number, options: ResolvedOptions, rows: number, tag: string, mayFinish: () => Promise<boolean>) {
    this.index = index;
    // A worker's run is not download(), which makes the folder; a folder that cannot be made fails the first sample.
    try {
      mkdirSync(options.out, { recursive: true });
    } catch {
      // Reported, with its cause, by the shard's writer.
    }
    this.writer = new ShardWriter({
      out: options.out,
      shardSize: options.shardSize,
      shard: undefined,
      logger: options.logger,
      // A lock token is BullMQ's (a UUID and a counter); only file-name-safe characters are kept.
      partTag: tag.replace(/[^A-Za-z0-9-]/g, '-'),
      rows,
      mayFinish,
    });
  }

  /**
   * Ends the shard once the batch's rows are over: true when its tar, table and stats are in
   * place, false when it was left as a part file (a row did not finish, or the batch was lost).
   * Rejects with FILESYSTEM or DISK_FULL.
   */
  async end(router: ShardRouter | undefined): Promise<boolean> {
    try {
      await this.writer.end(undefined);
    } finally {
      router?.leave(this.index, this.writer);
    }
    return this.writer.complete(this.index);
  }
}
