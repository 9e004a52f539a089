/**
 * Parquet lists, read with hyparquet one row group at a time and only the
 * chosen columns: memory holds one row group's columns, whatever the length
 * of the file. Items are numbered by row, from 1.
 */
import fs, { type FileHandle } from 'node:fs/promises';
import { parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { UsageError } from '../errors.js';
import type { RowLayout } from './columns.js';
import type { ListItem } from './source.js';

/**
 * How much of the end of the file is read first for the footer: most
 * footers fit, and a small first read keeps the footer apart from the row
 * groups (hyparquet reads more when a footer is larger).
 */
const FOOTER_FETCH_BYTES = 64 * 1024;

/** A Parquet list opened: its footer read and its columns checked. */
export interface ParquetList {
  readonly metadata: FileMetaData;
  /** Every row's item, one array per row group, in file order. */
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
  const columns = [...layout.columns];
  try {
    let rowStart = 0;
    for (const group of metadata.row_groups) {
      const rowEnd = rowStart + Number(group.num_rows);
      let rows: unknown[][] = [];
      // Only this group's rows: hyparquet then reads this group's column chunks and no other's.
      await parquetRead({ file, metadata, columns, rowStart, rowEnd, rowFormat: 'array', onComplete: (read) => (rows = read) });
      const items = new Array<ListItem>(rows.length);
      for (let i = 0; i < rows.length; i++) items[i] = layout.item(rows[i]!, source, rowStart + i + 1);
      rows = [];
      rowStart = rowEnd;
      if (items.length > 0) yield items;
    }
  } finally {
    await close();
  }
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
