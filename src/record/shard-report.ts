/**
 * `imgdl report DIR` over a WebDataset output: the `NNNNN_stats.json` of
 * every complete shard in a folder, summed into one summary (rows by
 * status, failures by error code, skips by reason, bytes, and samples per
 * second over the span from the first shard's start to the last one's end,
 * since shards may have been written side by side on many machines).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileSystemError } from '../errors.js';
import type { ShardStats } from '../output/shard-table.js';
import { formatBytes, formatDuration } from './run-report.js';

/** The sum of a folder's shard stats. */
export interface ShardSummary {
  mode: 'report';
  /** Complete shards found (each with its stats). */
  shards: number;
  /** Rows of the list in them, every status. */
  total: number;
  /** Rows kept as samples (`success`). */
  ok: number;
  failed: number;
  skipped: number;
  /** Bytes of the images in the tars. */
  bytes: number;
  /** From the earliest shard's start to the latest one's end, in ms. */
  wallMs: number;
  /** Samples kept per second over `wallMs`. */
  samplesPerSec: number;
  /** Failed rows by error code. */
  errors: Record<string, number>;
  /** Skipped rows by reason. */
  skipReasons: Record<string, number>;
  /** Files named like stats that could not be read as such, passed over. */
  unreadable: number;
}

/** A stats file's name: `00042_stats.json`. */
const STATS_FILE = /^\d{5,}_stats\.json$/;

/** True when `dir` is a folder (a report over shard stats), not a manifest. */
export async function isFolder(dir: string): Promise<boolean> {
  return (await fs.stat(dir).catch(() => undefined))?.isDirectory() === true;
}

/** Sums the stats of every shard in `dir`; throws the file-system error of a folder that cannot be read. */
export async function summarizeShardStats(dir: string): Promise<ShardSummary> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((name) => STATS_FILE.test(name)).sort();
  } catch (error) {
    throw fileSystemError(error, 'reading', dir);
  }
  const summary: ShardSummary = {
    mode: 'report',
    shards: 0,
    total: 0,
    ok: 0,
    failed: 0,
    skipped: 0,
    bytes: 0,
    wallMs: 0,
    samplesPerSec: 0,
    errors: {},
    skipReasons: {},
    unreadable: 0,
  };
  let start = Infinity;
  let end = -Infinity;
  for (const name of names) {
    const stats = await readStats(path.join(dir, name));
    if (stats === undefined) {
      summary.unreadable++;
      continue;
    }
    summary.shards++;
    summary.total += stats.count;
    summary.ok += stats.status.success ?? 0;
    summary.failed += stats.status.failed ?? 0;
    summary.skipped += stats.status.skipped ?? 0;
    summary.bytes += stats.bytes;
    addCounts(summary.errors, stats.errors);
    addCounts(summary.skipReasons, stats.skipReasons);
    start = Math.min(start, stats.startTime);
    end = Math.max(end, stats.endTime);
  }
  if (summary.shards > 0) {
    summary.wallMs = end - start;
    summary.samplesPerSec = summary.wallMs > 0 ? Math.round((summary.ok / summary.wallMs) * 1000 * 10) / 10 : 0;
  }
  return summary;
}

/** A stats file, or undefined when it does not hold stats (checked as far as the sums need). */
async function readStats(file: string): Promise<ShardStats | undefined> {
  let stats: Partial<ShardStats>;
  try {
    stats = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<ShardStats>;
  } catch {
    return undefined;
  }
  const numbers = [stats.count, stats.bytes, stats.startTime, stats.endTime].every((n) => typeof n === 'number');
  const objects = [stats.status, stats.errors, stats.skipReasons].every((o) => typeof o === 'object' && o !== null);
  return numbers && objects ? (stats as ShardStats) : undefined;
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, n] of Object.entries(from)) if (typeof n === 'number') into[key] = (into[key] ?? 0) + n;
}

/** The summary as a few lines for a person. */
export function formatShardSummary(s: ShardSummary, style: { color?: boolean | undefined } = {}): string {
  const paint = (code: string, text: string): string => (style.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const failed = `${s.failed} failed`;
  const lines = [
    `${paint('32', `${s.ok} ok`)}, ${s.failed > 0 ? paint('31', failed) : failed}, ${s.skipped} skipped of ${s.total} rows ` +
      `(${s.shards} shard${s.shards === 1 ? '' : 's'})`,
    `  saved     ${formatBytes(s.bytes)}`,
    `  wall      ${formatDuration(s.wallMs)} · ${s.samplesPerSec} samples/s`,
  ];
  for (const [code, n] of Object.entries(s.errors).sort(([, a], [, b]) => b - a)) lines.push(`  ${paint('31', code)}  ${n}`);
  for (const [reason, n] of Object.entries(s.skipReasons)) lines.push(`  skipped (${reason})  ${n}`);
  if (s.unreadable > 0) lines.push(`  ${s.unreadable} stats file${s.unreadable === 1 ? ' was' : 's were'} not readable, passed over`);
  return lines.join('\n');
}
