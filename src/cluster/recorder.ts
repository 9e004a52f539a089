/**
 * A worker's results, recorded in the queue: which results are worth a
 * record, what a batch run again makes of a file it finds, and this
 * worker's own tally of the records it wrote (its summary, `onRecord`).
 * Whether a record may be written at all is the store's call, made with the
 * batch's lock (see store.ts); what a batch does about a refusal is its own
 * (see batch.ts).
 */
import fs from 'node:fs/promises';
import { resolveInside } from '../names/naming.js';
import type { ItemResult } from '../record/record.js';
import type { HostEvent } from '../run/host-events.js';
import { RunReport, type RunSummary } from '../record/run-report.js';
import type { HostStats } from './host-stats.js';
import type { BatchLock, Recorded, Store } from './store.js';

/** Failures that say nothing about the item itself: not recorded, so the batch runs them again. */
const TRANSIENT = new Set(['ABORTED', 'DISK_FULL']);

/** Where an item's record goes: its key in the queue, and the listing that owns it (see store.ts). */
export interface RecordPlace {
  key: string;
  listing: string;
}

/** What a {@link Recorder} needs of the worker. */
export interface RecorderOptions {
  /** The worker's output folder, resolved: where a batch run again finds its files. */
  out: string;
  /** The worker's `-c`, as its summary states it. */
  concurrency: number;
  /** Called with each record written. */
  onRecord?: ((record: ItemResult) => void) | undefined;
  /** The queue's per-host figures, which this worker's records and host events add to. */
  hostStats?: HostStats | undefined;
}

/** Writes a worker's records to the queue, and counts those it wrote. */
export class Recorder {
  readonly #store: Store;
  readonly #out: string;
  readonly #onRecord: ((record: ItemResult) => void) | undefined;
  readonly #report: RunReport;
  readonly #hostStats: HostStats | undefined;

  constructor(store: Store, options: RecorderOptions) {
    this.#store = store;
    this.#hostStats = options.hostStats;
    this.#report = new RunReport('cluster worker', options.concurrency);
    this.#out = options.out;
    this.#onRecord = options.onRecord;
  }

  /** False for a result that says nothing about its item: it gets no record, so a rerun of its batch runs it again. */
  keeps(result: ItemResult): boolean {
    return !(result.error && TRANSIENT.has(result.error.code));
  }

  /**
   * A result of a batch run again after its worker died (or after Redis lost
   * its last writes in a crash). That worker may have saved the file and died
   * before its record reached Redis; this run then finds the file and skips
   * it. Names are the queue's own, and a file at its final name is always
   * complete, so the file at this item's name is that worker's download:
   * recorded as saved.
   */
  async recovered(result: ItemResult): Promise<ItemResult> {
    if (result.status !== 'skipped' || result.skipReason !== 'exists' || result.path === null) return result;
    try {
      const { size } = await fs.stat(resolveInside(this.#out, result.path));
      return { ...result, status: 'ok', skipReason: null, bytes: size };
    } catch {
      return result;
    }
  }

  /** Writes `record` for the batch held under `lock`; resolves to the store's answer (see {@link Store.record}). */
  write(place: RecordPlace, record: ItemResult, lock: BatchLock): Promise<Recorded> {
    return this.#store.record(place.key, place.listing, record, lock);
  }

  /** Counts a record the store took: in this worker's summary, and to `onRecord`. */
  counted(record: ItemResult): void {
    this.#report.add(record);
    this.#hostStats?.add(record);
    this.#onRecord?.(record);
  }

  /** Counts what a run told of a host (429s, pauses, rates) in this worker's per-host figures. */
  hostEvent(event: HostEvent): void {
    this.#report.hosts?.event(event);
    this.#hostStats?.event(event);
  }

  /** Sends the per-host figures not sent yet; never rejects. */
  flush(): Promise<void> {
    return this.#hostStats?.flush() ?? Promise.resolve();
  }

  /** The records this worker wrote, as a run summary. */
  summary(): RunSummary {
    return this.#report.summary();
  }
}
