/**
 * `imgdl report`: the manifests of several runs (the shards of one list, a
 * run and its reruns) merged into one summary, in the shape of a run's
 * `--json` summary.
 *
 * Each URL counts once, by its last record: manifests are read last file
 * first and each file from its end, so the first record met for a URL is
 * the one that counts, and the rest of the URL's records are passed over.
 * What is kept per URL is its fingerprint (about 10 bytes), so a report over
 * millions of records needs tens of megabytes, not gigabytes.
 */
import fs from 'node:fs/promises';
import { fingerprint, FingerprintSet, type Fingerprint } from '../names/fingerprints.js';
import { parseRecord, type ItemResult } from './record.js';
import { formatBytes, formatDuration, formatFailures, RunReport, type RunSummary } from './run-report.js';

/**
 * The summary of merged manifests: a run's `--json` summary, with what
 * manifests cannot tell (the mode, the concurrency and the wall time of the
 * runs, hence the rates) as null, and where it came from.
 */
export type ManifestSummary = Omit<RunSummary, 'mode' | 'concurrency' | 'wallMs' | 'filesPerSec' | 'bytesPerSec'> & {
  mode: 'report';
  concurrency: null;
  wallMs: null;
  filesPerSec: null;
  bytesPerSec: null;
  /** Manifest files read. */
  manifests: number;
  /** Records read, every URL's earlier records included. */
  records: number;
  /** Lines that were not records (a line cut short by a crash, say), which are passed over. */
  unreadable: number;
};

/** How many bytes of a manifest are read at once, from its end backwards. */
const BLOCK = 256 * 1024;

/**
 * Merges `files` (given oldest first: later files are later runs) into one
 * summary. Throws the file-system error of a manifest that cannot be read.
 */
export async function summarizeManifests(files: readonly string[]): Promise<ManifestSummary> {
  const report = new RunReport('report', 0, false);
  const counted = new FingerprintSet();
  // URLs met so far only as "duplicate" records: one of them counts as skipped unless a real record turns up.
  const onlyDuplicates = new FingerprintSet();
  const key: Fingerprint = { hi: 0, lo: 0 };
  let records = 0;
  let unreadable = 0;
  for (let f = files.length - 1; f >= 0; f--) {
    for await (const line of linesBackwards(files[f]!)) {
      const record = recordOf(line);
      if (record === undefined) {
        unreadable++;
        continue;
      }
      records++;
      if (counted.has(fingerprint(record.url, key))) continue;
      if (record.status === 'skipped' && record.skipReason === 'duplicate') {
        onlyDuplicates.add(key);
        continue;
      }
      counted.add(key);
      onlyDuplicates.delete(key);
      report.add(record);
    }
  }
  for (let n = onlyDuplicates.size; n > 0; n--) report.add(DUPLICATE);
  const s = report.summary();
  // The keys in the order of a run's --json summary.
  return {
    mode: 'report',
    concurrency: null,
    total: s.total,
    ok: s.ok,
    failed: s.failed,
    skipped: s.skipped,
    bytes: s.bytes,
    wallMs: null,
    filesPerSec: null,
    bytesPerSec: null,
    p50Ms: s.p50Ms,
    p95Ms: s.p95Ms,
    maxMs: s.maxMs,
    errors: s.errors,
    manifests: files.length,
    records,
    unreadable,
  };
}

/** What a URL seen only as a second listing counts as. */
const DUPLICATE: ItemResult = {
  url: '',
  source: '',
  line: 0,
  status: 'skipped',
  path: null,
  bytes: 0,
  ms: 0,
  httpStatus: null,
  attempts: 0,
  contentType: null,
  sniffedType: null,
  skipReason: 'duplicate',
  error: null,
};

/** A manifest line as a record, with what a report adds up defaulted; undefined when it is not one. */
function recordOf(line: string): ItemResult | undefined {
  const record = parseRecord(line);
  if (record === undefined) return undefined;
  return {
    ...record,
    bytes: typeof record.bytes === 'number' ? record.bytes : 0,
    ms: typeof record.ms === 'number' ? record.ms : 0,
    error: record.error ?? null,
  } as ItemResult;
}

/** The lines of `file`, last first, read in blocks from its end. */
export async function* linesBackwards(file: string): AsyncGenerator<string> {
  const handle = await fs.open(file, 'r');
  try {
    let position = (await handle.stat()).size;
    // The start of a line whose end was in the block read before (which lies after it in the file).
    let carry = Buffer.alloc(0);
    const block = Buffer.alloc(BLOCK);
    while (position > 0) {
      const length = Math.min(BLOCK, position);
      position -= length;
      const { bytesRead } = await handle.read(block, 0, length, position);
      const bytes = Buffer.concat([block.subarray(0, bytesRead), carry]);
      let end = bytes.length;
      const lines: string[] = [];
      for (let lf = bytes.lastIndexOf(0x0a, end - 1); lf !== -1; lf = bytes.lastIndexOf(0x0a, end - 1)) {
        if (lf + 1 < end) lines.push(bytes.toString('utf8', lf + 1, end));
        end = lf;
        if (end === 0) break;
      }
      carry = Buffer.from(bytes.subarray(0, end));
      yield* lines;
    }
    if (carry.length > 0) yield carry.toString('utf8');
  } finally {
    await handle.close();
  }
}

/** The summary as a few lines for a person: counts, bytes, per-file times, failures by code. */
export function formatManifestSummary(s: ManifestSummary, style: { color?: boolean | undefined } = {}): string {
  const paint = (code: string, text: string): string => (style.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const failed = `${s.failed} failed`;
  const files = `${s.manifests} manifest${s.manifests === 1 ? '' : 's'}`;
  const lines = [
    `${paint('32', `${s.ok} ok`)}, ${s.failed > 0 ? paint('31', failed) : failed}, ${s.skipped} skipped of ${s.total} URLs ` +
      `(${files}, ${s.records} records; each URL counted by its last)`,
    `  saved     ${formatBytes(s.bytes)}`,
    `  per file  p50 ${formatDuration(s.p50Ms)} · p95 ${formatDuration(s.p95Ms)} · max ${formatDuration(s.maxMs)}`,
  ];
  lines.push(...formatFailures(s.errors, paint));
  if (s.unreadable > 0) lines.push(`  ${s.unreadable} line${s.unreadable === 1 ? ' was not a record' : 's were not records'}, passed over`);
  return lines.join('\n');
}
