/**
 * CSV and TSV lists, read with csv-parse as they stream: a header row naming
 * the columns, then one item per record. Quoted fields may hold delimiters,
 * quotes and newlines; each item is numbered by the line its record starts
 * on. A record that is not valid CSV, or has more or fewer fields than the
 * header, fails alone; the rest of the list goes on.
 */
import { parse, type CsvError, type InfoRecord, type Parser } from 'csv-parse';
import { badRow, type RowLayout } from './columns.js';
import type { ListItem } from './source.js';

/**
 * Reads a CSV (`delimiter` ',') or TSV ('\t') list up to its header and
 * checks the chosen columns against it (a {@link UsageError} naming the
 * columns it has when one is missing), then hands back the rest as arrays of
 * items, one array per chunk of input read. A list with no header at all (an
 * empty file) has no rows.
 */
export async function openDelimited(
  input: AsyncIterable<Uint8Array | string>,
  source: string,
  layout: RowLayout,
  delimiter: ',' | '\t',
): Promise<AsyncGenerator<ListItem[]>> {
  const reader = new DelimitedReader(source, layout, delimiter);
  const chunks = input[Symbol.asyncIterator]();
  let ended = false;
  try {
    while (reader.header === undefined && !ended) {
      const next = await chunks.next();
      if (next.done) {
        ended = true;
        await reader.end();
      } else await reader.write(next.value);
    }
    if (reader.header !== undefined) layout.check(source, reader.header);
  } catch (error) {
    await chunks.return?.();
    throw error;
  }
  return reader.rest(chunks, ended);
}

/** One list's parser and what it has read: the header, and the items parsed since they were last handed over. */
class DelimitedReader {
  /** The header's fields, once read. */
  header: string[] | undefined;
  readonly #source: string;
  readonly #layout: RowLayout;
  readonly #parser: Parser;
  /** Where each of the layout's columns sits in a record. */
  #indexes: number[] = [];
  #pending: ListItem[] = [];
  /** The line the last record (or skipped record) ended on, and the empty lines seen by then: the next one starts after both. */
  #ended = 0;
  #empty = 0;

  constructor(source: string, layout: RowLayout, delimiter: ',' | '\t') {
    this.#source = source;
    this.#layout = layout;
    // Items are made as records are parsed, in list order with the records csv-parse skips, and never pushed through the stream.
    this.#parser = parse({
      delimiter,
      bom: true,
      relax_column_count: true,
      // A quote inside an unquoted field (a caption's 5" tall) is text, as Python's csv reads it.
      relax_quotes: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      on_record: (record: string[], context: InfoRecord) => this.#record(record, context),
      on_skip: (error: CsvError | undefined) => this.#skip(error),
    });
    // Errors reach the write and end callbacks; without a listener the stream would also throw them at the process.
    this.#parser.on('error', () => {});
  }

  /** Parses one chunk; its records are in the pending items when it resolves. */
  write(chunk: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => this.#parser.write(chunk, (error) => (error ? reject(error) : resolve())));
  }

  /** Parses what is left at the end of the input (a last record without a newline). */
  end(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#parser.once('error', reject);
      this.#parser.end(() => resolve());
    });
  }

  /** The items parsed so far, then those of the rest of the input, an array per chunk. */
  async *rest(chunks: AsyncIterator<Uint8Array | string>, ended: boolean): AsyncGenerator<ListItem[]> {
    try {
      if (this.#pending.length > 0) yield this.#take();
      if (ended) return;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
        await this.write(next.value);
        if (this.#pending.length > 0) yield this.#take();
      }
      await this.end();
      if (this.#pending.length > 0) yield this.#take();
    } finally {
      // Stopped early (the run was stopped): let go of the file.
      await chunks.return?.();
    }
  }

  #take(): ListItem[] {
    const items = this.#pending;
    this.#pending = [];
    return items;
  }

  /** csv-parse's record hook: the header, or one item; null keeps the record out of the stream. */
  #record(record: string[], context: InfoRecord): null {
    const line = this.#startLine(context.empty_lines);
    this.#ended = context.lines;
    if (this.header === undefined) {
      this.header = record;
      this.#indexes = this.#layout.columns.map((name) => record.indexOf(name));
      return null;
    }
    const values = this.#indexes.map((index) => (index === -1 ? undefined : record[index]));
    const item = this.#layout.item(values, this.#source, line);
    if (record.length !== this.header.length) {
      badRow(item, `row has ${record.length} field${record.length === 1 ? '' : 's'} where the header has ${this.header.length}`);
    }
    this.#pending.push(item);
    return null;
  }

  /** csv-parse's hook for a record it could not parse (a stray quote): an item that fails alone, saying why. */
  #skip(error: CsvError | undefined): undefined {
    const line = this.#startLine(this.#parser.info.empty_lines);
    const at = error?.lines;
    this.#ended = typeof at === 'number' ? at : line;
    const reason = `not valid CSV: ${error?.message ?? 'unreadable record'}`;
    if (this.header !== undefined) this.#pending.push(badRow({ url: '', source: this.#source, line }, reason));
    return undefined;
  }

  /** The line a record starts on: after the last one's end and the empty lines skipped since. */
  #startLine(emptyLines: number): number {
    const line = this.#ended + 1 + (emptyLines - this.#empty);
    this.#empty = emptyLines;
    return line;
  }
}
