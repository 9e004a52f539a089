/**
 * What a job carries: one batch of list items and the download options every
 * worker applies to them, as plain JSON, and the job's ID, derived from that
 * content so that the same batch enqueued twice is one job.
 */
import { createHash } from 'node:crypto';
import type { ListItem } from '../input/text-list.js';
import { OptionError, resolveOptions, type Options } from '../options.js';
import { ClusterError } from './connection.js';

/**
 * Options that belong to the machine or the process running a batch, not to
 * the list: each worker sets them itself (`-o`, `-c`, its logs, its signals).
 * Every other field of {@link Options} travels with the jobs, so an option
 * added to `Options` reaches the workers without a change here.
 */
export const LOCAL_OPTIONS = [
  'out',
  'mode',
  'concurrency',
  'threads',
  'manifest',
  'onProgress',
  'onHost',
  'logger',
  'signal',
  'stopSignal',
  'graceMs',
  // Content dedupe compares digests within one run; across workers it would need a shared registry.
  'dedupe',
] as const satisfies ReadonlyArray<keyof Options>;

/** The options a job carries: every {@link Options} field except {@link LOCAL_OPTIONS}. */
export type JobOptions = Omit<Options, (typeof LOCAL_OPTIONS)[number]>;

const LOCAL: ReadonlySet<string> = new Set(LOCAL_OPTIONS);

/**
 * The carried part of `options`, checked: it must resolve (the same
 * {@link resolveOptions} a worker will run, so a bad value fails at enqueue,
 * not on every worker) and survive JSON unchanged. Options set to undefined
 * are left out. Throws {@link OptionError}; `dedupe` is refused, since each
 * worker could only compare what it saved itself.
 */
export function carriedOptions(options: Options): JobOptions {
  if (options.dedupe === true) throw new OptionError('dedupe', true, 'false: content dedupe is not available across workers');
  const carried: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    if (LOCAL.has(name) || value === undefined) continue;
    if (JSON.stringify(value) === undefined || JSON.stringify(JSON.parse(JSON.stringify(value))) !== JSON.stringify(value)) {
      throw new OptionError(name, typeof value === 'function' ? '[function]' : value, 'a value that can travel as JSON');
    }
    carried[name] = value;
  }
  resolveOptions(carried as Options);
  return sortedKeys(carried) as JobOptions;
}

/** A copy with object keys in sorted order at every level, so equal options make equal JSON (and equal job IDs). */
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortedKeys((value as Record<string, unknown>)[key])]),
  );
}

/**
 * One item on the wire: `[url, source#, line, index]`, then `name`, `problem` and `fields` (a
 * dataset row's caption and saved columns) when set, each earlier one as null when a later one is set.
 */
export type WireItem = [
  url: string,
  source: number,
  line: number,
  index: number,
  name?: string | null,
  problem?: ListItem['problem'] | null,
  fields?: Record<string, unknown>,
];

/** A job's data. `v` lets a later version refuse what it cannot read instead of misreading it. */
export interface BatchData {
  v: 1;
  options: JobOptions;
  /** Every distinct `source` of the batch's items, referred to by position. */
  sources: string[];
  items: WireItem[];
}

/** Builds a batch from list items that carry their list position in `index`. */
export function encodeBatch(items: readonly ListItem[], options: JobOptions): BatchData {
  const sources: string[] = [];
  const wire = items.map((item): WireItem => {
    let source = sources.indexOf(item.source);
    if (source === -1) source = sources.push(item.source) - 1;
    const tuple: WireItem = [item.url, source, item.line, item.index ?? 0];
    // Items without fields stay as they were on the wire, so their jobs keep the IDs they had.
    if (item.fields !== undefined) tuple.push(item.name ?? null, item.problem ?? null, { ...item.fields });
    else if (item.problem !== undefined) tuple.push(item.name ?? null, item.problem);
    else if (item.name !== undefined) tuple.push(item.name);
    return tuple;
  });
  return { v: 1, options, sources, items: wire };
}

/** The list items of a job's data; throws BAD_JOB for data imgdl did not write. */
export function decodeBatch(data: unknown): { options: JobOptions; items: ListItem[] } {
  const bad = (why: string): never => {
    throw new ClusterError('BAD_JOB', `job data imgdl cannot read: ${why}`);
  };
  if (typeof data !== 'object' || data === null) return bad('not an object');
  const batch = data as Partial<BatchData>;
  if (batch.v !== 1) return bad(`version ${JSON.stringify(batch.v)} (this imgdl reads version 1)`);
  if (typeof batch.options !== 'object' || batch.options === null || Array.isArray(batch.options)) return bad('no options');
  if (!Array.isArray(batch.sources) || !batch.sources.every((s) => typeof s === 'string')) return bad('no sources');
  if (!Array.isArray(batch.items)) return bad('no items');
  const items = batch.items.map((tuple, i): ListItem => {
    const [url, source, line, index, name, problem, fields] = Array.isArray(tuple) ? tuple : [];
    const sourceName = typeof source === 'number' ? batch.sources![source] : undefined;
    if (typeof url !== 'string' || sourceName === undefined || !Number.isInteger(line) || !Number.isInteger(index))
      return bad(`item ${i} is malformed`);
    const item: ListItem = { url, source: sourceName, line: line!, index: index! };
    if (typeof name === 'string') item.name = name;
    if (problem === 'too-long' || problem === 'binary') item.problem = problem;
    if (typeof fields === 'object' && fields !== null && !Array.isArray(fields)) item.fields = fields;
    else if (fields !== undefined) return bad(`item ${i} has malformed fields`);
    return item;
  });
  return { options: batch.options, items };
}

/**
 * The job ID: a digest of the batch's whole content (options, items, their
 * sources and positions), so enqueuing the same list with the same options
 * again names the same jobs, which BullMQ then does not add twice. Prefixed,
 * since BullMQ keeps all-digit IDs for its own counter.
 */
export function batchId(batch: BatchData): string {
  return `b-${createHash('sha256').update(JSON.stringify(batch)).digest('hex').slice(0, 32)}`;
}
