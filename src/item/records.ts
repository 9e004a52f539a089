/**
 * The records an item's life ends with, built in one place so that every
 * path (planned, skipped, failed, kept) fills the same fields the same way.
 */
import { toErrorRecord } from '../errors.js';
import type { Inspection } from '../image/inspect.js';
import type { ListItem } from '../input/source.js';
import type { KeepFacts } from '../output/sink.js';
import type { ItemResult, SkipReason } from '../record/record.js';

/** A skipped record: decided without a body (`attempts` and `httpStatus` say what was asked before). */
export function skipped(
  item: ListItem,
  url: string,
  reason: SkipReason,
  path: string | null = null,
  attempts = 0,
  httpStatus: number | null = null,
): ItemResult {
  return carried(item, {
    url,
    source: item.source,
    line: item.line,
    status: 'skipped',
    path,
    bytes: 0,
    ms: 0,
    httpStatus,
    attempts,
    contentType: null,
    sniffedType: null,
    skipReason: reason,
    error: null,
  });
}

/** A failed record, its error in the plain `{code, message}` form that crosses threads. */
export function failed(item: ListItem, url: string, error: unknown, ms: number, httpStatus: number | null, attempts: number): ItemResult {
  return carried(item, {
    url,
    source: item.source,
    line: item.line,
    status: 'failed',
    path: null,
    bytes: 0,
    ms,
    httpStatus,
    attempts,
    contentType: null,
    sniffedType: null,
    skipReason: null,
    error: toErrorRecord(error),
  });
}

/** `record` with the fields the item's source gave it, when it gave any: the source's to carry, not the run's to read. */
export function carried(item: ListItem, record: ItemResult): ItemResult {
  if (item.fields !== undefined) record.fields = item.fields;
  return record;
}

/** The inspection as record fields, leaving out what is unknown. */
export function factFields(facts: Inspection): Pick<ItemResult, 'digest' | 'imageType' | 'width' | 'height'> {
  const fields: Pick<ItemResult, 'digest' | 'imageType' | 'width' | 'height'> = {};
  if (facts.digest !== undefined) fields.digest = facts.digest;
  if (facts.image) {
    fields.imageType = facts.image.imageType;
    fields.width = facts.image.width;
    fields.height = facts.image.height;
  }
  return fields;
}

/**
 * What a sink learns of a body as it is kept: the row it came from, what the inspection saw of the
 * bytes kept, and the size they came in when image work re-encoded them (`original`).
 */
export function keepFacts(
  item: ListItem,
  position: number,
  facts: Inspection,
  original: { originalWidth?: number; originalHeight?: number } = {},
): KeepFacts {
  const image = facts.image;
  if (image === undefined) return { position, item };
  const { imageType, width, height } = image;
  // Not re-encoded: the bytes kept are the original.
  const { originalWidth = width, originalHeight = height } = original;
  return { position, item, imageType, width, height, originalWidth, originalHeight };
}

/**
 * The time now in ms since the epoch, to a fraction of a millisecond: an
 * item's tries may run in different threads, whose `performance.now()`
 * counts from different origins.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Milliseconds since `since` (a {@link now}), to a tenth. */
export function elapsed(since: number): number {
  return Math.round((now() - since) * 10) / 10;
}
