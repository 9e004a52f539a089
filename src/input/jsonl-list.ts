/**
 * JSON Lines lists: one JSON object per line, read as the lines stream in.
 * A line that is not a JSON object fails alone, naming its line and the
 * parse problem; blank lines are skipped but counted, so numbers match an
 * editor's.
 */
import { StringDecoder } from 'node:string_decoder';
import { badRow, shownText, type RowLayout } from './columns.js';
import type { ListItem } from './source.js';

/** Longest JSONL line read, in characters: a longer one (a runaway file) fails alone, costing no more memory than this. */
export const MAX_JSONL_LINE = 8 * 1024 * 1024;

/**
 * Reads a JSONL list up to its first JSON object and checks the chosen
 * columns against that object's keys (a {@link UsageError} naming them when
 * one is missing; later objects may lack keys, and a row without the URL
 * fails alone), then hands back every line's item, an array per chunk read.
 */
export async function openJsonLines(
  input: AsyncIterable<Uint8Array | string>,
  source: string,
  layout: RowLayout,
): Promise<AsyncGenerator<ListItem[]>> {
  const reader = new JsonLinesReader(source, layout);
  const chunks = input[Symbol.asyncIterator]();
  const held: ListItem[][] = [];
  let ended = false;
  try {
    while (reader.firstKeys === undefined && !ended) {
      const next = await chunks.next();
      ended = next.done === true;
      held.push(ended ? reader.end() : reader.write(next.value as Uint8Array | string));
    }
    if (reader.firstKeys !== undefined) layout.check(source, reader.firstKeys, 'first object has the keys');
  } catch (error) {
    await chunks.return?.();
    throw error;
  }
  return rest(reader, chunks, held, ended);
}

async function* rest(
  reader: JsonLinesReader,
  chunks: AsyncIterator<Uint8Array | string>,
  held: ListItem[][],
  ended: boolean,
): AsyncGenerator<ListItem[]> {
  try {
    for (const items of held) if (items.length > 0) yield items;
    if (ended) return;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
      const items = reader.write(next.value);
      if (items.length > 0) yield items;
    }
    const last = reader.end();
    if (last.length > 0) yield last;
  } finally {
    await chunks.return?.();
  }
}

/** Splits chunks into lines and lines into items, keeping only the unfinished line between chunks. */
class JsonLinesReader {
  /** The keys of the first JSON object read, once one is. */
  firstKeys: string[] | undefined;
  readonly #source: string;
  readonly #layout: RowLayout;
  readonly #decoder = new StringDecoder('utf8');
  #held = '';
  /** The held line grew past {@link MAX_JSONL_LINE}: the rest of it is dropped. */
  #overflow = false;
  #line = 0;

  constructor(source: string, layout: RowLayout) {
    this.#source = source;
    this.#layout = layout;
  }

  /** The items of the lines that `chunk` completes. */
  write(chunk: Uint8Array | string): ListItem[] {
    const text = typeof chunk === 'string' ? chunk : this.#decoder.write(chunk as Buffer);
    const items: ListItem[] = [];
    let start = 0;
    for (let lf = text.indexOf('\n'); lf !== -1; lf = text.indexOf('\n', start)) {
      this.#hold(text.slice(start, lf));
      this.#endLine(items);
      start = lf + 1;
    }
    this.#hold(text.slice(start));
    return items;
  }

  /** The item of a last line without a newline, if there is one. */
  end(): ListItem[] {
    const items: ListItem[] = [];
    this.#hold(this.#decoder.end());
    if (this.#held !== '' || this.#overflow) this.#endLine(items);
    return items;
  }

  #hold(text: string): void {
    if (this.#overflow || text === '') return;
    if (this.#held.length + text.length > MAX_JSONL_LINE) {
      this.#overflow = true;
      this.#held = this.#held.slice(0, 1024);
    } else this.#held += text;
  }

  #endLine(items: ListItem[]): void {
    const text = this.#held;
    const overflow = this.#overflow;
    this.#held = '';
    this.#overflow = false;
    const line = ++this.#line;
    if (overflow) {
      items.push(badRow({ url: shownText(text), source: this.#source, line }, `line is longer than ${MAX_JSONL_LINE} characters`));
      return;
    }
    // A byte order mark is not part of the first line's JSON.
    const trimmed = (line === 1 && text.startsWith('\uFEFF') ? text.slice(1) : text).trim();
    if (trimmed !== '') items.push(this.#item(trimmed, line));
  }

  #item(text: string, line: number): ListItem {
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (error) {
      return badRow({ url: shownText(text), source: this.#source, line }, `not JSON: ${(error as Error).message}`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      return badRow({ url: shownText(text), source: this.#source, line }, 'not a JSON object');
    }
    const object = row as Record<string, unknown>;
    this.firstKeys ??= Object.keys(object);
    const values = this.#layout.columns.map((name) => (Object.hasOwn(object, name) ? object[name] : undefined));
    return this.#layout.item(values, this.#source, line);
  }
}
