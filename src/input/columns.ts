/**
 * The columns a structured list (CSV, TSV, JSONL, Parquet) is read for, and
 * one row's values turned into a {@link ListItem}: the URL cell, the caption
 * and saved columns carried as `fields`. Every reader goes through here, so a
 * row without a usable URL fails the same way whatever its format.
 */
import { Buffer } from 'node:buffer';
import { UsageError } from '../errors.js';
import type { ListItem } from './source.js';

/** Which columns of a structured list are read, by name. */
export interface ColumnChoice {
  /** The column holding the URL. */
  url: string;
  /** The column carried as `fields.caption`, if any. */
  caption?: string | undefined;
  /** Columns carried into `fields` under their own names. */
  save: readonly string[];
}

/** The columns read by default: `url`, and nothing carried. */
export const DEFAULT_COLUMNS: ColumnChoice = { url: 'url', save: [] };

/** C0 controls and DEL: a URL cell holding them is not a URL someone meant (a text list refuses them too). */
const CONTROL = /[\x00-\x1f\x7f]/;
/** How much of an offending cell or line a bad row keeps to show. */
const SHOWN_CHARS = 1024;

/**
 * Where each chosen column sits among the values a reader hands over: the
 * readers read the {@link RowLayout.columns} in that order, the URL first.
 */
export class RowLayout {
  /** The distinct columns to read: the URL's, the caption's, then the saved ones. */
  readonly columns: readonly string[];
  readonly #choice: ColumnChoice;
  readonly #caption: number;
  readonly #saved: ReadonlyArray<readonly [string, number]>;
  /** False when no column is carried, so that items have no `fields` at all. */
  readonly #carries: boolean;

  constructor(choice: ColumnChoice) {
    const columns = [choice.url];
    const at = (name: string): number => {
      const found = columns.indexOf(name);
      return found === -1 ? columns.push(name) - 1 : found;
    };
    this.#choice = choice;
    this.#caption = choice.caption === undefined ? -1 : at(choice.caption);
    this.#saved = choice.save.map((name) => [name, at(name)] as const);
    this.#carries = this.#caption !== -1 || this.#saved.length > 0;
    this.columns = columns;
  }

  /**
   * Throws a {@link UsageError} when the list lacks a chosen column, naming
   * it and the columns the list has, so a misspelt flag stops the run before
   * any request.
   */
  check(source: string, have: readonly string[], what = 'columns'): void {
    const missing = this.columns.filter((name) => !have.includes(name));
    if (missing.length === 0) return;
    const flag = (name: string): string =>
      name === this.#choice.url ? '--url-col' : name === this.#choice.caption ? '--caption-col' : '--save-cols';
    const named = missing.map((name) => `"${name}" (${flag(name)})`).join(', ');
    const shown = have.length === 0 ? 'none' : have.map((name) => JSON.stringify(name)).join(', ');
    throw new UsageError(`${source} has no column${missing.length === 1 ? '' : 's'} ${named}; its ${what}: ${shown}`);
  }

  /**
   * One row as an item. `values` follow {@link columns}; `undefined` is a
   * value the row does not have (a JSONL object without the key). A row
   * whose URL cell is missing, empty or not text is a `bad-row` item that
   * still carries its other columns; a URL that is text but not http(s) is
   * left to the URL check every item goes through.
   */
  item(values: readonly unknown[], source: string, line: number): ListItem {
    const cell = values[0];
    const item: ListItem = { url: '', source, line };
    if (typeof cell === 'string') {
      item.url = cell.trim();
      if (item.url === '') badRow(item, `empty URL in column "${this.#choice.url}"`);
      else if (CONTROL.test(item.url)) badRow(item, `URL in column "${this.#choice.url}" holds control characters`);
    } else if (cell === undefined || cell === null) badRow(item, `no URL in column "${this.#choice.url}"`);
    else badRow(item, `URL in column "${this.#choice.url}" is not text: ${shownValue(cell)}`);
    if (item.url.length > SHOWN_CHARS) item.url = item.url.slice(0, SHOWN_CHARS);
    if (this.#carries) item.fields = this.#fields(values);
    return item;
  }

  #fields(values: readonly unknown[]): Record<string, unknown> {
    const fields: Record<string, unknown> = {};
    if (this.#caption !== -1) {
      const caption = values[this.#caption];
      if (caption !== undefined && caption !== null) fields.caption = typeof caption === 'string' ? caption : shownValue(caption);
    }
    for (const [name, index] of this.#saved) {
      const value = values[index];
      if (value !== undefined) fields[name] = plainValue(value);
    }
    return fields;
  }
}

/** A row that gives no usable URL, failing alone with `reason` (see {@link ListItem.reason}). */
export function badRow(item: ListItem, reason: string): ListItem {
  item.problem = 'bad-row';
  item.reason = reason;
  return item;
}

/** The start of an offending line or cell, as a bad row keeps it. */
export function shownText(text: string): string {
  return text.length > SHOWN_CHARS ? text.slice(0, SHOWN_CHARS) : text;
}

/**
 * A value as the manifest's JSON can hold it: a Parquet INT64 (a bigint) as
 * a number when exact, else as text; a date as ISO text; bytes as base64.
 */
export function plainValue(value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (Array.isArray(value)) return value.map(plainValue);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, plainValue(inner)]));
  }
  return value;
}

/** A value that is not text, written as text: JSON where JSON can say it. */
function shownValue(value: unknown): string {
  const plain = plainValue(value);
  return shownText(typeof plain === 'string' ? plain : (JSON.stringify(plain) ?? String(plain)));
}
