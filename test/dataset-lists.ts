/**
 * Dataset lists for tests: rows written as CSV, TSV, JSON Lines or Parquet,
 * the format (and gzip) chosen by the file's extension, as imgdl chooses it
 * when reading them back.
 */
import fs from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { parquetWriteFile, type BasicType, type ColumnSource } from 'hyparquet-writer';

/** A cell value a dataset list can hold; null and undefined are empty. */
export type Cell = string | number | boolean | null | undefined;

/** One row, by column name. A string instead is a line written as it is (a broken row, for CSV, TSV and JSONL). */
export type DatasetRow = Readonly<Record<string, Cell>> | string;

/** How {@link writeDatasetList} writes. */
export interface DatasetListOptions {
  /** The columns, in order; by default every key of the rows, in order of first appearance. */
  columns?: readonly string[];
  /** Parquet: rows per row group (default: all in one). */
  rowGroupSize?: number;
}

/**
 * Writes `rows` to `file` in the format its extension names (`.csv`, `.tsv`,
 * `.jsonl`, `.parquet`), gzipped when it ends in `.gz`; resolves to `file`.
 */
export async function writeDatasetList(file: string, rows: readonly DatasetRow[], options: DatasetListOptions = {}): Promise<string> {
  const gzip = file.endsWith('.gz');
  const base = gzip ? file.slice(0, -3) : file;
  const columns = options.columns ?? columnsOf(rows);
  if (base.endsWith('.parquet')) {
    if (gzip) throw new Error('a Parquet list is not gzipped');
    const table = Object.fromEntries(
      columns.map((name) => [name, rows.map((row) => (typeof row === 'string' ? null : (row[name] ?? null)))]),
    );
    writeParquetColumns(file, table, options.rowGroupSize ?? Math.max(1, rows.length));
    return file;
  }
  let text: string;
  if (base.endsWith('.jsonl')) text = rows.map((row) => (typeof row === 'string' ? row : JSON.stringify(row))).join('\n') + '\n';
  else if (base.endsWith('.csv')) text = delimited(rows, columns, ',');
  else if (base.endsWith('.tsv')) text = delimited(rows, columns, '\t');
  else throw new Error(`no dataset format for ${file}`);
  await fs.writeFile(file, gzip ? gzipSync(text) : text);
  return file;
}

/**
 * Writes a Parquet file from whole columns (`{ url: [...], id: [...] }`),
 * `rowGroupSize` rows to a row group: for long lists, with no object per row.
 */
export function writeParquetColumns(file: string, columns: Readonly<Record<string, readonly Cell[]>>, rowGroupSize: number): void {
  const columnData: ColumnSource[] = Object.entries(columns).map(([name, data]) => ({ name, data: [...data], type: typeOf(data) }));
  parquetWriteFile({ filename: file, columnData, rowGroupSize });
}

/** Every key of the rows, in order of first appearance. */
function columnsOf(rows: readonly DatasetRow[]): string[] {
  const columns = new Set<string>();
  for (const row of rows) if (typeof row !== 'string') for (const key of Object.keys(row)) columns.add(key);
  return [...columns];
}

/** Rows as CSV or TSV text with a header row; fields quoted where they hold the delimiter, a quote or a line break. */
function delimited(rows: readonly DatasetRow[], columns: readonly string[], delimiter: string): string {
  const field = (value: Cell): string => {
    const text = value === null || value === undefined ? '' : String(value);
    return text.includes(delimiter) || /["\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [columns.map(field).join(delimiter)];
  for (const row of rows) lines.push(typeof row === 'string' ? row : columns.map((name) => field(row[name])).join(delimiter));
  return lines.join('\n') + '\n';
}

/** The Parquet type of a column from its values (hyparquet-writer's guess fails on a column of nulls). */
function typeOf(data: readonly Cell[]): BasicType {
  const values = data.filter((value) => value !== null && value !== undefined);
  if (values.length > 0 && values.every((value) => typeof value === 'boolean')) return 'BOOLEAN';
  if (values.length > 0 && values.every((value) => typeof value === 'number')) {
    return values.every((value) => Number.isInteger(value) && Math.abs(value as number) < 2 ** 31) ? 'INT32' : 'DOUBLE';
  }
  return 'STRING';
}
