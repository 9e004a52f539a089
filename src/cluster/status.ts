/**
 * The queue's progress across all workers: jobs from BullMQ, items from the
 * queue's own counters (each item counted once, however often its batch ran).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ErrorCode } from '../errors.js';
import { formatHosts } from '../record/host-figures.js';
import { formatBytes } from '../record/run-report.js';
import { QUEUE_NAME, connectProducer, parseQueueUrl } from './connection.js';
import { readHostStats, type QueueHostSummary } from './host-stats.js';
import { Store } from './store.js';

/** What `imgdl status --json` prints. */
export interface ClusterStatus {
  /** Jobs (batches) by state. `completed` counts batches finished, though their jobs are removed. */
  jobs: { waiting: number; active: number; delayed: number; completed: number; failed: number };
  /** Workers connected to the queue now. */
  workers: number;
  /** Items enqueued (list lines, duplicates included). */
  total: number;
  ok: number;
  failed: number;
  /** Skipped items: file already there, or the URL listed more than once (`duplicates`). */
  skipped: number;
  /** Listings of a URL already listed elsewhere in the queue, counted in `skipped`. */
  duplicates: number;
  /** Items with no record yet: `total - ok - failed - skipped`. */
  pending: number;
  /** Bytes saved. */
  bytes: number;
  /** Files saved per second, from the first record to the last. */
  filesPerSec: number;
  /** Failures grouped by error code, each with a count and one example URL. */
  errors: Partial<Record<ErrorCode, { count: number; example: string }>>;
  /** The busiest hosts (by requests) and every host with failures, summed over the workers (see host-stats.ts). */
  hosts: QueueHostSummary[];
}

/** Reads the status through an open connection; the building block of {@link queueStatus} and `--watch`. */
export async function readStatus(client: Redis, queue: Queue): Promise<ClusterStatus> {
  const store = new Store(client, QUEUE_NAME);
  const [stored, counts, workers, hosts] = await Promise.all([
    store.read(),
    queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed'),
    queue.getWorkersCount(),
    readHostStats(client, QUEUE_NAME),
  ]);
  const n = (value: string | undefined): number => Number(value ?? 0) || 0;
  const c = stored.counts;
  const [total, ok, failed, skipped] = [n(c.listed), n(c.ok), n(c.failed), n(c.skipped)];
  const seconds = (n(c.lastAt) - n(c.firstAt)) / 1000;
  const errors: ClusterStatus['errors'] = {};
  for (const [code, count] of Object.entries(stored.errors)) {
    if (n(count) > 0) errors[code as ErrorCode] = { count: n(count), example: stored.examples[code] ?? '' };
  }
  return {
    jobs: {
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts['waiting-children'] ?? 0),
      active: counts.active ?? 0,
      delayed: counts.delayed ?? 0,
      completed: stored.done,
      failed: counts.failed ?? 0,
    },
    workers,
    total,
    ok,
    failed,
    skipped,
    duplicates: n(c.duplicates),
    pending: Math.max(0, total - ok - failed - skipped),
    bytes: n(c.bytes),
    filesPerSec: seconds > 0 ? Math.round((ok / seconds) * 10) / 10 : 0,
    errors,
    hosts,
  };
}

/** The queue's status. Throws INVALID_QUEUE_URL, or REDIS_UNAVAILABLE when Redis cannot be reached. */
export async function queueStatus(queueUrl: string): Promise<ClusterStatus> {
  const address = parseQueueUrl(queueUrl);
  const client = await connectProducer(address);
  const queue = new Queue(QUEUE_NAME, { connection: client });
  queue.on('error', () => undefined);
  try {
    return await readStatus(client, queue);
  } finally {
    await queue.close().catch(() => undefined);
    client.disconnect();
  }
}

/**
 * The status as a few lines for a person: jobs, items, bytes and rate, then
 * failures by code (most frequent first) with one example each, and the
 * hosts that failed items or throttled, as in the run summary. `rate` replaces the average files/s (e.g. `--watch`'s recent rate).
 */
export function formatStatus(s: ClusterStatus, rate?: number): string {
  const j = s.jobs;
  const lines = [
    `jobs   ${j.waiting} waiting, ${j.active} active, ${j.delayed} delayed, ${j.completed} completed, ${j.failed} failed · ${s.workers} worker${s.workers === 1 ? '' : 's'}`,
    `items  ${s.ok} ok, ${s.failed} failed, ${s.skipped} skipped, ${s.pending} pending of ${s.total}` +
      (s.duplicates > 0 ? ` (${s.duplicates} duplicate listings skipped)` : ''),
    `saved  ${formatBytes(s.bytes)} · ${rate ?? s.filesPerSec} files/s`,
  ];
  const groups = Object.entries(s.errors).sort(([, a], [, b]) => b.count - a.count);
  const width = Math.max(0, ...groups.map(([code]) => code.length));
  groups.forEach(([code, group], i) =>
    lines.push(`${i === 0 ? 'failures ' : '         '}${code.padEnd(width)}  ×${group.count}  e.g. ${group.example}`),
  );
  lines.push(...formatHosts(s.hosts));
  return lines.join('\n');
}

/** One line for `--watch`: the figures that move. */
export function formatStatusLine(s: ClusterStatus, rate: number): string {
  return (
    `${s.ok + s.failed + s.skipped}/${s.total} done · ${s.ok} ok · ${s.failed} failed · ${s.skipped} skipped · ${s.pending} pending · ` +
    `${formatBytes(s.bytes)} · ${rate} files/s · jobs ${s.jobs.waiting} waiting ${s.jobs.active} active · ${s.workers} workers`
  );
}
