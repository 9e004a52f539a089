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

/** Items handed over at a time: small enough that they are collected young, large enough to spare an await each. */
const BATCH_ROWS = 4096;

/** A column chunk without an offset index this small is read again for each page of the URL column rather than the row group read whole. */
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
  // Each text column's bytes, reused by every read: a read's items are all made before the next read.
  const stores = layout.columns.map(() => new TextBytes());
  try {
    for await (const [rowStart, rowEnd, paged] of rowRanges(file, metadata, layout.columns)) {
      const columns = await readRows(file, metadata, layout.columns, stores, [rowStart, rowEnd, paged]);
      // One row's values at a time: the layout reads them and keeps none.
      const values = new Array<unknown>(columns.length);
      // Items made a batch at a time die young, while the columns are read once and dropped whole.
      for (let from = rowStart; from < rowEnd; from += BATCH_ROWS) {
        const to = Math.min(rowEnd, from + BATCH_ROWS);
        const items = new Array<ListItem>(to - from);
        for (let row = from; row < to; row++) {
          for (let column = 0; column < columns.length; column++) values[column] = columns[column]!.at(row);
          items[row - from] = layout.item(values, source, row + 1);
        }
        yield items;
      }
    }
  } finally {
    await close();
  }
}

/**
 * The row ranges read in turn, `[start, end, paged]`: a row group page by
 * page of its URL column, when that column has an offset index (hyparquet
 * then reads and decodes only the pages of those rows) and so has every
 * other column read but a small one (read again for each page, which costs
 * little); else the row group whole.
 */
async function* rowRanges(file: AsyncBuffer, metadata: FileMetaData, names: readonly string[]): AsyncGenerator<[number, number, boolean]> {
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const read = group.columns.filter((column) => names.includes(column.meta_data?.path_in_schema[0] ?? ''));
    const first = read.find((column) => column.meta_data?.path_in_schema[0] === names[0]);
    const indexed = (column: ColumnChunk): boolean => column.offset_index_offset !== undefined;
    const small = (column: ColumnChunk): boolean => Number(column.meta_data?.total_uncompressed_size ?? Infinity) <= SMALL_CHUNK_BYTES;
    const paged = first !== undefined && indexed(first) && read.every((column) => indexed(column) || small(column));
    const starts = paged ? await pageStarts(file, first) : [0];
    for (let page = 0; page < starts.length; page++) {
      yield [rowStart + starts[page]!, page + 1 < starts.length ? rowStart + starts[page + 1]! : rowEnd, paged];
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
 * The values of `names` in rows `rowStart` to `rowEnd` (all in one row
 * group), a column each. Asked for these rows only, hyparquet reads this
 * group's column chunks (or, `paged`, their pages that hold these rows)
 * and no other's.
 */
async function readRows(
  file: AsyncBuffer,
  metadata: FileMetaData,
  names: readonly string[],
  stores: readonly TextBytes[],
  [rowStart, rowEnd, paged]: [number, number, boolean],
): Promise<ColumnValues[]> {
  const types = new Map(parquetSchema(metadata).children.map((child) => [child.element.name, child.element.type]));
  const columns = names.map((name, i): ColumnValues => (types.get(name) === 'BYTE_ARRAY' ? new TextValues(stores[i]!) : new PlainValues()));
  await parquetRead({
    file,
    metadata,
    columns: [...names],
    rowStart,
    rowEnd,
    useOffsetIndex: paged,
    // Text stays bytes until its row's item is made (see parquet-values.ts).
    parsers: { stringFromBytes: keepBytes },
    // Columns as decoded, kept as they are, without the array per row that assembling rows would make.
    onChunk: ({ columnName, columnData, rowStart: chunkStart }) => columns[names.indexOf(columnName)]?.add(chunkStart, columnData),
  });
  return columns;
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
