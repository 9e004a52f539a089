/**
 * Parquet lists, read with hyparquet one row group at a time (one page at a
 * time where the file has offset indexes) and only the chosen columns:
 * memory holds one row group's columns at most, whatever the length of the
 * file. Items are numbered by row, from 1.
 */
import fs, { type FileHandle } from 'node:fs/promises';
import {
  parquetMetadataAsync,
  parquetRead,
  parquetSchema,
  readOffsetIndex,
  type AsyncBuffer,
  type ColumnChunk,
  type FileMetaData,
} from 'hyparquet';
import { UsageError } from '../errors.js';
import type { RowLayout } from './columns.js';
import { keepBytes, PlainValues, TextBytes, TextValues, type ColumnValues } from './parquet-values.js';
import type { ListItem } from './source.js';

/**
 * How much of the end of the file is read first for the footer: most
 * footers fit, and a small first read keeps the footer apart from the row
 * groups (hyparquet reads more when a footer is larger).
 */
const FOOTER_FETCH_BYTES = 64 * 1024;

/**
 * Items handed over at a time: large enough to spare an await each, and
 * small enough that they are collected young. Beyond the dry run's own
 * batches (1024 items) a batch outlived several of them, and with a caption
 * and a saved column a 1M-row dry run promoted 280 MB of items to the old
 * generation at 2048 or 4096 rows, against 20 MB at 512.
 */
const BATCH_ROWS = 512;

/** A column chunk without an offset index this small is read once for its row group, kept while the URL column is read page by page, rather than the row group read whole. */
const SMALL_CHUNK_BYTES = 2 * 1024 * 1024;

/** A Parquet list opened: its footer read and its columns checked. */
export interface ParquetList {
  readonly metadata: FileMetaData;
  /** Every row's item, in file order, a few thousand at a time. */
  batches(): AsyncGenerator<ListItem[]>;
  /** Lets go of the file (done by {@link batches} once read, or stopped). */
  close(): Promise<void>;
}

/**
 * Opens a Parquet list at `path`: reads its footer and checks the chosen
 * columns against its schema, as a {@link UsageError} naming the columns
 * it has when one is missing, or when the file is not Parquet.
 */
export async function openParquetFile(path: string, source: string, layout: RowLayout): Promise<ParquetList> {
  let handle: FileHandle;
  try {
    handle = await fs.open(path, 'r');
  } catch (error) {
    throw new UsageError(`cannot read input file ${source}: ${(error as { code?: string }).code ?? 'error'}`);
  }
  try {
    const file = fileBuffer(handle, (await handle.stat()).size);
    return await openParquet(file, source, layout, () => handle.close());
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** {@link openParquetFile} over any {@link AsyncBuffer}; `close` is called once its rows are read. */
export async function openParquet(file: AsyncBuffer, source: string, layout: RowLayout, close = async () => {}): Promise<ParquetList> {
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file, { initialFetchSize: FOOTER_FETCH_BYTES });
  } catch (error) {
    throw new UsageError(`cannot read ${source} as Parquet: ${(error as Error).message}`);
  }
  layout.check(source, topColumns(metadata));
  let closed: Promise<void> | undefined;
  const closeOnce = (): Promise<void> => (closed ??= close());
  return { metadata, batches: () => rowGroups(file, metadata, source, layout, closeOnce), close: closeOnce };
}

/** The top-level columns of the file's schema, by name. */
function topColumns(metadata: FileMetaData): string[] {
  return parquetSchema(metadata).children.map((child) => child.element.name);
}

async function* rowGroups(
  file: AsyncBuffer,
  metadata: FileMetaData,
  source: string,
  layout: RowLayout,
  close: () => Promise<void>,
): AsyncGenerator<ListItem[]> {
  const names = layout.columns;
  const types = new Map(parquetSchema(metadata).children.map((child) => [child.element.name, child.element.type]));
  // Each text column's bytes, reused by every read: a read's items are all made before the next read.
  const stores = names.map(() => new TextBytes());
  // The columns read once for their whole row group (see rowRanges), kept while its pages go by.
  const kept: ColumnValues[] = [];
  let keptGroup = -1;
  try {
    for await (const range of rowRanges(file, metadata, names)) {
      const read = (column: number, rows: readonly [number, number], paged: boolean): Promise<ColumnValues> =>
        readColumn(file, metadata, names[column]!, types.get(names[column]!) === 'BYTE_ARRAY', stores[column]!, rows, paged);
      if (range.group[0] !== keptGroup) {
        keptGroup = range.group[0];
        for (let column = 0; column < names.length; column++)
          if (range.whole[column]) kept[column] = await read(column, range.group, false);
      }
      // One column at a time: hyparquet makes an object per text value, and a read of one column's pages
      // leaves fewer of them alive at once (to be promoted to the old generation) than a read of all.
      const columns: ColumnValues[] = [];
      for (let column = 0; column < names.length; column++) {
        columns.push(range.whole[column] ? kept[column]! : await read(column, [range.start, range.end], range.paged));
      }
      yield* itemBatches(columns, range, layout, source);
    }
  } finally {
    await close();
  }
}

/** The items of `range`'s rows, made from its columns a batch at a time. */
function* itemBatches(
  columns: readonly ColumnValues[],
  { start, end }: RowRange,
  layout: RowLayout,
  source: string,
): Generator<ListItem[]> {
  // One row's values at a time: the layout reads them and keeps none.
  const values = new Array<unknown>(columns.length);
  // Items made a batch at a time die young, while the columns are read once and dropped whole.
  for (let from = start; from < end; from += BATCH_ROWS) {
    const to = Math.min(end, from + BATCH_ROWS);
    const items = new Array<ListItem>(to - from);
    for (let row = from; row < to; row++) {
      for (let column = 0; column < columns.length; column++) values[column] = columns[column]!.at(row);
      items[row - from] = layout.item(values, source, row + 1);
    }
    yield items;
  }
}

/** Rows read together: `start` to `end`, within the row group `group`. */
interface RowRange {
  start: number;
  end: number;
  /** Read through the offset indexes, a page at a time. */
  paged: boolean;
  /** The row group's first and last-plus-one rows. */
  group: readonly [number, number];
  /** By column: read once for the whole group rather than for each range (a small column without an offset index). */
  whole: readonly boolean[];
}

/**
 * The row ranges read in turn: a row group page by page of its URL column,
 * when that column has an offset index (hyparquet then reads and decodes
 * only the pages of those rows) and so has every other column but a small
 * one (read once for the whole group, and kept while its pages are read);
 * else the row group whole.
 */
async function* rowRanges(file: AsyncBuffer, metadata: FileMetaData, names: readonly string[]): AsyncGenerator<RowRange> {
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const chunks = names.map((name) => group.columns.find((column) => column.meta_data?.path_in_schema[0] === name));
    const indexed = (column: ColumnChunk | undefined): boolean => column?.offset_index_offset !== undefined;
    const small = (column: ColumnChunk | undefined): boolean =>
      Number(column?.meta_data?.total_uncompressed_size ?? Infinity) <= SMALL_CHUNK_BYTES;
    const first = chunks[0];
    const paged = first !== undefined && indexed(first) && chunks.every((column) => indexed(column) || small(column));
    const whole = chunks.map((column) => paged && !indexed(column));
    const starts = paged ? await pageStarts(file, first) : [0];
    for (let page = 0; page < starts.length; page++) {
      const end = page + 1 < starts.length ? rowStart + starts[page + 1]! : rowEnd;
      yield { start: rowStart + starts[page]!, end, paged, group: [rowStart, rowEnd], whole };
    }
    rowStart = rowEnd;
  }
}

/** The first row (within its row group) of each page of `column`, from its offset index. */
async function pageStarts(file: AsyncBuffer, column: ColumnChunk): Promise<number[]> {
  const offset = Number(column.offset_index_offset);
  const bytes = await file.slice(offset, offset + (column.offset_index_length ?? 0));
  const starts = readOffsetIndex({ view: new DataView(bytes), offset: 0 }).page_locations.map((page) => Number(page.first_row_index));
  return starts.length > 0 && starts[0] === 0 ? starts : [0];
}

/**
 * The values of column `name` in rows `rowStart` to `rowEnd` (all in one
 * row group). Asked for these rows only, hyparquet reads this group's
 * column chunk (or, `paged`, its pages that hold these rows) and no other's.
 * A `text` column's values go into `store`, over those of its last read.
 */
async function readColumn(
  file: AsyncBuffer,
  metadata: FileMetaData,
  name: string,
  text: boolean,
  store: TextBytes,
  [rowStart, rowEnd]: readonly [number, number],
  paged: boolean,
): Promise<ColumnValues> {
  const values = text ? new TextValues(store) : new PlainValues();
  await parquetRead({
    file,
    metadata,
    columns: [name],
    rowStart,
    rowEnd,
    useOffsetIndex: paged,
    // Text stays bytes until its row's item is made (see parquet-values.ts).
    parsers: { stringFromBytes: keepBytes },
    // Columns as decoded, kept as they are, without the array per row that assembling rows would make.
    onChunk: ({ columnData, rowStart: chunkStart }) => values.add(chunkStart, columnData),
  });
  return values;
}

/** The file behind `handle` as hyparquet reads files: slices read as asked, each into a buffer of its own. */
function fileBuffer(handle: FileHandle, byteLength: number): AsyncBuffer {
  return {
    byteLength,
    async slice(start: number, end = byteLength): Promise<ArrayBuffer> {
      const bytes = new Uint8Array(Math.max(0, end - start));
      let filled = 0;
      while (filled < bytes.length) {
        const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, start + filled);
        if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${start + filled} of ${byteLength}`);
        filled += bytesRead;
      }
      return bytes.buffer;
    },
  };
}
