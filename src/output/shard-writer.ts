/**
 * The one writer of a run's WebDataset shards, on the main thread. A shard
 * is written as `NNNNN.tar.part`: tar-stream's pack piped to a file stream,
 * each sample appended as its body is committed, with the pack's
 * backpressure reaching the commit. It ends once every row of the list with
 * a position in it has settled (the last shard's rows are known when the
 * list ends): the tar is closed, synced and renamed to `NNNNN.tar`, then its
 * Parquet table and, last, its stats are written, each through a temporary
 * name. A killed run thus leaves `.tar.part` files, never a truncated
 * `.tar`; and a shard whose stats exist is complete, so a rerun skips it and
 * redoes the others from scratch.
 */
import { createWriteStream, existsSync, rmSync, type WriteStream } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { createRequire } from 'node:module';
import type { Pack } from 'tar-stream';
import { fileSystemError, type ImgdlError } from '../errors.js';
import type { Shard } from '../option-values.js';
import type { ItemResult } from '../record/record.js';
import { shardName, ShardTable, writeAtomically } from './shard-table.js';

/** tar-stream, required on the first shard: a run without shards does not load it (see parquetWriter in shard-table.ts). */
let tarModule: typeof import('tar-stream') | undefined;
function tarStream(): typeof import('tar-stream') {
  return (tarModule ??= createRequire(import.meta.url)('tar-stream') as typeof import('tar-stream'));
}

/** One member of a sample's tar entries: `000000123.jpg`, `000000123.json`, `000000123.txt`. */
export interface Member {
  name: string;
  body: Buffer;
}

/**
 * The files of shard `shard` in `dir`: the tar, its part file, its table and its stats. With `tag`
 * (a cluster worker's lock token) the part file is `00003.tar.TAG.part`, so that two workers that
 * both write the shard (one taken over from the other) never write the same part file.
 */
export function shardFiles(dir: string, shard: number, tag?: string): { tar: string; part: string; parquet: string; stats: string } {
  const base = path.join(dir, shardName(shard));
  const part = tag === undefined ? `${base}.tar.part` : `${base}.tar.${tag}.part`;
  return { tar: `${base}.tar`, part, parquet: `${base}.parquet`, stats: `${base}_stats.json` };
}

/** One shard being written. */
class TarShard {
  readonly index: number;
  readonly files: ReturnType<typeof shardFiles>;
  readonly table = new ShardTable();
  readonly started = Date.now();
  /** Rows settled so far. */
  settled = 0;
  /** Set when a row was stopped (the run is stopping): the shard is not complete, whatever its count. */
  interrupted = false;
  failure: ImgdlError | undefined;
  readonly #pack: Pack = tarStream().pack();
  readonly #file: WriteStream;
  /** Samples committed whose rows have not settled yet: what the table takes from them. */
  readonly #samples = new Map<number, { sha256: string; bytes: number }>();
  /** Settles once the file is closed, whether the pack ended or was destroyed. */
  readonly #closed: Promise<void>;

  constructor(index: number, dir: string, tag: string | undefined) {
    this.index = index;
    this.files = shardFiles(dir, index, tag);
    // What an earlier run left of this shard is redone from scratch: no stale tar or table may outlive it
    // (a run that finds stats never opens the shard). Not so for a cluster worker's part (a tag): the files
    // in place may be those of the worker that holds the batch now, and only the rename may replace them.
    if (tag === undefined) {
      rmSync(this.files.tar, { force: true });
      rmSync(this.files.parquet, { force: true });
    }
    this.#file = createWriteStream(this.files.part, { flags: 'w' });
    this.#closed = new Promise((resolve) => {
      const failed = (error: unknown): void => {
        this.failure ??= fileSystemError(error, 'writing', this.files.part);
        // Samples waiting for the pack to drain into the file hear of it, rather than wait for ever.
        this.#pack.destroy(this.failure);
      };
      this.#file.on('error', failed);
      this.#pack.on('error', failed);
      this.#file.on('close', resolve);
    });
    this.#pack.pipe(this.#file);
  }

  /** Appends a sample; resolves once the pack has taken its members (its backpressure). */
  add(position: number, members: readonly Member[], sha256: string, bytes: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.#samples.set(position, { sha256, bytes });
    const taken: Array<Promise<void>> = [];
    try {
      for (const { name, body } of members) {
        taken.push(
          new Promise((resolve, reject) => {
            const entry = this.#pack.entry({ name, size: body.length }, body, (error) => (error ? reject(error) : resolve()));
            // Its callback hears of a failure; the entry's own error event must not go unheard.
            entry.on('error', () => undefined);
          }),
        );
      }
    } catch (error) {
      // The members already handed over fail with the pack; their answers say nothing more.
      void Promise.allSettled(taken);
      return Promise.reject(this.failure ?? fileSystemError(error, 'writing', this.files.part));
    }
    return Promise.all(taken).then(
      () => undefined,
      (error: unknown) => {
        throw this.failure ?? fileSystemError(error, 'writing', this.files.part);
      },
    );
  }

  /** The row at `position` ended with `result`. */
  settle(position: number, result: ItemResult): void {
    const sample = this.#samples.get(position);
    this.#samples.delete(position);
    this.table.add(position, result, sample?.sha256, sample?.bytes ?? 0);
    this.settled++;
    if (result.error?.code === 'ABORTED') this.interrupted = true;
  }

  /**
   * Ends the tar, renames it into place, then writes the table and, last, the stats; resolves to
   * false, with the part file removed, when `mayFinish` says the shard is no longer this writer's.
   */
  async finish(mayFinish: (() => Promise<boolean>) | undefined): Promise<boolean> {
    this.#pack.finalize();
    await this.#closed;
    if (this.failure !== undefined) throw this.failure;
    const { part, tar, parquet, stats } = this.files;
    try {
      // On disk before the rename, so that a crash of the machine cannot leave a short tar under the final name.
      const handle = await open(part, 'r+');
      await handle.sync().finally(() => handle.close());
      // Asked last, right before the rename: a writer that lost the shard never renames over the winner's tar.
      if (mayFinish !== undefined && !(await mayFinish())) {
        rmSync(part, { force: true });
        return false;
      }
      await rename(part, tar);
    } catch (error) {
      throw fileSystemError(error, 'finishing', part);
    }
    await this.table.writeParquet(parquet);
    writeAtomically(stats, JSON.stringify(this.table.stats(this.index, this.started, Date.now())) + '\n');
    return true;
  }

  /** Stops writing: the part file stays, for a rerun to replace. */
  async drop(): Promise<void> {
    this.#pack.destroy();
    this.#file.destroy();
    await this.#closed;
  }
}

/** Where a {@link ShardWriter} writes, and which shards are its own. */
export interface ShardWriterOptions {
  /** The output folder. */
  out: string;
  shardSize: number;
  /** With `--shard K/N`, the tar shards whose number modulo N is K are this run's. */
  shard: Shard | undefined;
  logger: Logger | undefined;
  /** Names the part files (see {@link shardFiles}). Default none: `00003.tar.part`. */
  partTag?: string | undefined;
  /** The list's length when known before the run (a cluster batch's shard), so its last shard ends with its last row. */
  rows?: number | undefined;
  /** Asked right before a shard's tar is renamed into place: false leaves the shard to another writer. Default: always true. */
  mayFinish?: (() => Promise<boolean>) | undefined;
}

/** A run's shards: which rows are its own, their samples, and their ends. */
export class ShardWriter {
  readonly #options: ShardWriterOptions;
  readonly #open = new Map<number, TarShard>();
  /** Whether each shard met is complete: its stats existed when the run reached it, or it ended in this run. */
  readonly #done = new Map<number, boolean>();
  readonly #finishing = new Set<Promise<void>>();
  /** The shards whose tar, table and stats this writer put in place. */
  readonly #complete = new Set<number>();
  #failure: unknown;
  /** The list's length once it is known. */
  #rows: number | undefined;

  constructor(options: ShardWriterOptions) {
    this.#options = options;
    this.#rows = options.rows;
  }

  /** True once shard `index`'s tar, table and stats were put in place by this writer. */
  complete(index: number): boolean {
    return this.#complete.has(index);
  }

  /** See `Sink.rowAt`: another machine's shard is not this run's; a complete one is kept already. */
  rowAt(position: number): 'fetch' | { kept: string } | undefined {
    const shard = Math.floor(position / this.#options.shardSize);
    const slice = this.#options.shard;
    if (slice !== undefined && shard % slice.count !== slice.index) return undefined;
    return this.#isDone(shard) ? { kept: `${shardName(shard)}.tar` } : 'fetch';
  }

  /** The name of the tar that holds the row at `position`: `00001.tar`. */
  tarName(position: number): string {
    return `${shardName(Math.floor(position / this.#options.shardSize))}.tar`;
  }

  /** Appends a sample to the shard of `position`; rejects with FILESYSTEM or DISK_FULL. */
  sample(position: number, members: readonly Member[], sha256: string, bytes: number): Promise<void> {
    return this.#shardOf(position).add(position, members, sha256, bytes);
  }

  /** See `Sink.settle`: the row's shard ends once each of its rows has. */
  settle(position: number, result: ItemResult): void {
    const index = Math.floor(position / this.#options.shardSize);
    // A complete shard's rows were skipped without a request; its files stay as they are.
    if (this.#done.get(index) === true) return;
    const shard = this.#shardOf(position);
    shard.settle(position, result);
    if (shard.settled >= this.#expected(index)) this.#end(shard);
  }

  /** See `Sink.end`: ends the shards whose rows have all settled, leaves the others as part files. */
  async end(rows: number | undefined): Promise<void> {
    this.#rows = rows ?? this.#options.rows;
    for (const shard of [...this.#open.values()]) {
      if (shard.settled >= this.#expected(shard.index)) this.#end(shard);
      else {
        this.#open.delete(shard.index);
        this.#track(shard.drop());
      }
    }
    while (this.#finishing.size > 0) await Promise.all(this.#finishing);
    if (this.#failure !== undefined) throw this.#failure;
  }

  #isDone(shard: number): boolean {
    let done = this.#done.get(shard);
    if (done === undefined) {
      // Asked once per shard, in list order, so a file check per 10,000 rows or so.
      done = !this.#open.has(shard) && existsSync(shardFiles(this.#options.out, shard).stats);
      this.#done.set(shard, done);
    }
    return done;
  }

  /** Rows of the list in shard `index`: a whole shard's worth until the list's end says the last one has fewer. */
  #expected(index: number): number {
    const { shardSize } = this.#options;
    const rows = this.#rows;
    return rows === undefined ? shardSize : Math.min(shardSize, rows - index * shardSize);
  }

  #shardOf(position: number): TarShard {
    const index = Math.floor(position / this.#options.shardSize);
    let shard = this.#open.get(index);
    if (shard === undefined) {
      shard = new TarShard(index, this.#options.out, this.#options.partTag);
      this.#open.set(index, shard);
      this.#done.set(index, false);
    }
    return shard;
  }

  /** Ends `shard`: finished when it is whole, else dropped (a row was stopped, or a write failed). */
  #end(shard: TarShard): void {
    this.#open.delete(shard.index);
    // Ended once: a row of it met later (none should be) must not start it again over its files.
    this.#done.set(shard.index, true);
    if (shard.interrupted || shard.failure !== undefined) {
      if (shard.failure !== undefined) this.#failure ??= shard.failure;
      this.#track(shard.drop());
      return;
    }
    const name = shardName(shard.index);
    this.#track(
      shard.finish(this.#options.mayFinish).then(
        (finished) => {
          if (!finished) return this.#options.logger?.warn({ shard: name }, `shard ${name} left to the writer that holds it now`);
          this.#complete.add(shard.index);
          this.#options.logger?.info({ shard: name }, `shard ${name} complete`);
        },
        (error: unknown) => {
          this.#failure ??= error;
          this.#options.logger?.error({ error }, `shard ${name} could not be finished: ${String(error)}`);
        },
      ),
    );
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => void (this.#failure ??= error));
    this.#finishing.add(tracked);
    void tracked.finally(() => this.#finishing.delete(tracked));
  }
}
