/**
 * Structured lists in: CSV, TSV, JSONL and Parquet (and their gzipped forms)
 * read through the built CLI against a loopback server, their columns
 * carried into the manifest's `fields`, a bad row failing alone, and a
 * missing column stopping the run before any request.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parquetMetadataAsync, type AsyncBuffer } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { RowLayout } from '../src/input/columns.js';
import { openParquet } from '../src/input/parquet-list.js';
import type { ItemResult } from '../src/record/record.js';
import { writeDatasetList, type DatasetRow } from './dataset-lists.js';
import { runCli, serve, tempDir, type CliRun } from './helpers.js';

/** Runs the CLI on one list into a fresh folder; resolves to the run and its manifest's records in line order. */
async function runList(file: string, args: string[] = []): Promise<{ run: CliRun; records: ItemResult[] }> {
  const dir = path.dirname(file);
  const manifest = path.join(dir, 'run.jsonl');
  const run = await runCli(['-i', file, '-o', path.join(dir, 'out'), '--manifest', manifest, '--no-progress', ...args]);
  const text = await fs.readFile(manifest, 'utf8').catch(() => '');
  const records = text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as ItemResult)
    .sort((a, b) => a.line - b.line);
  return { run, records };
}

const CAPTIONS = ['plain', 'a comma, inside', 'a "quoted" word', 'two\nlines, and "both"', ''];

describe('CSV and TSV lists', () => {
  it('carries captions with quoted commas, quotes and newlines into the manifest exactly, numbered by the line each row starts on', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows = CAPTIONS.map((caption, i) => ({ url: server.url(`/gen/${i}.jpg`), caption, id: i }));
    const file = await writeDatasetList(path.join(dir, 'list.csv'), rows);
    const { run, records } = await runList(file, ['--caption-col', 'caption', '--save-cols', 'id']);
    expect(run.code).toBe(0);
    expect(records.map((r) => [r.status, r.url, r.fields])).toEqual(
      rows.map((row) => ['ok', row.url, { caption: row.caption, id: String(row.id) }]),
    );
    // The header is line 1 and the fourth caption spans two lines.
    expect(records.map((r) => r.line)).toEqual([2, 3, 4, 5, 7]);
    expect(server.stats.requests).toBe(rows.length);
  });

  it('carries the fields through worker threads too', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows = CAPTIONS.map((caption, i) => ({ url: server.url(`/gen/${i}.jpg`), caption, id: i }));
    const file = await writeDatasetList(path.join(dir, 'list.csv'), rows);
    const { run, records } = await runList(file, ['--caption-col', 'caption', '--save-cols', 'id', '--mode', 'workers', '-t', '1']);
    expect(run.code).toBe(0);
    expect(records.map((r) => [r.status, r.fields])).toEqual(rows.map((row) => ['ok', { caption: row.caption, id: String(row.id) }]));
  });

  it('reads a TSV list by its --url-col, with no fields when nothing is carried', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows = [1, 2, 3].map((i) => ({ id: i, image_url: server.url(`/gen/${i}.jpg`), text: `tab\there ${i}` }));
    const file = await writeDatasetList(path.join(dir, 'list.tsv'), rows);
    const { run, records } = await runList(file, ['--url-col', 'image_url']);
    expect(run.code).toBe(0);
    expect(records.map((r) => [r.status, r.url, r.line, 'fields' in r])).toEqual(rows.map((row, i) => ['ok', row.image_url, i + 2, false]));
  });

  it('keeps a quote inside an unquoted field as text', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows = [`${server.url('/gen/1.jpg')}	a 5" tall vase`, `${server.url('/gen/2.jpg')}	say "cheese"`];
    const file = await writeDatasetList(path.join(dir, 'list.tsv'), rows, { columns: ['url', 'caption'] });
    const { run, records } = await runList(file, ['--caption-col', 'caption']);
    expect(run.code).toBe(0);
    expect(records.map((r) => r.fields)).toEqual([{ caption: 'a 5" tall vase' }, { caption: 'say "cheese"' }]);
  });

  it('fails a row without a usable URL alone, naming its file:line and why', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows: DatasetRow[] = [
      { url: server.url('/gen/1.jpg'), caption: 'one' },
      { url: '', caption: 'empty' },
      { url: 'ftp://example.com/a.jpg', caption: 'ftp' },
      'only-one-field',
      { url: server.url('/gen/5.jpg'), caption: 'five' },
    ];
    const file = await writeDatasetList(path.join(dir, 'list.csv'), rows);
    const { run, records } = await runList(file, ['--caption-col', 'caption']);
    expect(run.code).toBe(1);
    expect(records.map((r) => [r.line, r.status, r.error?.code ?? null])).toEqual([
      [2, 'ok', null],
      [3, 'failed', 'INVALID_URL'],
      [4, 'failed', 'UNSUPPORTED_SCHEME'],
      [5, 'failed', 'INVALID_URL'],
      [6, 'ok', null],
    ]);
    expect(records[1]!.error!.message).toBe(`${file}:3: empty URL in column "url" (INVALID_URL)`);
    expect(records[1]!.fields).toEqual({ caption: 'empty' });
    expect(records[3]!.error!.message).toBe(`${file}:5: row has 1 field where the header has 2 (INVALID_URL)`);
    expect(server.stats.requests).toBe(2);
  });
});

describe('JSONL lists', () => {
  it('fails a line that is not JSON alone, naming file:line and the parse problem; the others download', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows: DatasetRow[] = [
      { url: server.url('/gen/1.jpg'), caption: 'one', id: 1 },
      '{"url": "http://127.0.0.1:9/broken.jpg", ',
      '',
      { url: server.url('/gen/4.jpg'), caption: 'four', id: 4 },
      { caption: 'no url', id: 5 },
      { url: server.url('/gen/6.jpg'), id: 6 },
    ];
    const file = await writeDatasetList(path.join(dir, 'list.jsonl'), rows);
    const { run, records } = await runList(file, ['--caption-col', 'caption', '--save-cols', 'id']);
    expect(run.code).toBe(1);
    expect(records.map((r) => [r.line, r.status])).toEqual([
      [1, 'ok'],
      [2, 'failed'],
      [4, 'ok'],
      [5, 'failed'],
      [6, 'ok'],
    ]);
    expect(records[1]!.error!.message).toMatch(new RegExp(`^${escape(file)}:2: not JSON: .+`));
    expect(run.stderr).toContain(`${file}:2: not JSON`);
    expect(records[3]!.error!.message).toBe(`${file}:5: no URL in column "url" (INVALID_URL)`);
    // JSON values are carried as they are; a key an object lacks is left out.
    expect(records.map((r) => r.fields)).toEqual([
      { caption: 'one', id: 1 },
      undefined,
      { caption: 'four', id: 4 },
      { caption: 'no url', id: 5 },
      { id: 6 },
    ]);
    expect(server.stats.requests).toBe(3);
  });
});

describe('Parquet lists', () => {
  it('reads every row group, numbering rows from 1 and carrying saved columns with their types', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows = [1, 2, 3, 4, 5].map((i) => ({ url: server.url(`/gen/${i}.jpg`), caption: `caption ${i}: 猫, café, "q"`, id: i * 10 }));
    const file = await writeDatasetList(path.join(dir, 'list.parquet'), rows, { rowGroupSize: 3 });
    const metadata = await parquetMetadataAsync(await fileBuffer(file));
    expect(metadata.row_groups.map((group) => Number(group.num_rows))).toEqual([3, 2]);
    const { run, records } = await runList(file, ['--caption-col', 'caption', '--save-cols', 'id']);
    expect(run.code).toBe(0);
    expect(records.map((r) => [r.line, r.status, r.url, r.fields])).toEqual(
      rows.map((row, i) => [i + 1, 'ok', row.url, { caption: row.caption, id: row.id }]),
    );
    expect(server.stats.requests).toBe(5);
  });

  it('fails a row whose URL is null alone', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows = [{ url: server.url('/gen/1.jpg') }, { url: null }, { url: server.url('/gen/3.jpg') }];
    const file = await writeDatasetList(path.join(dir, 'list.parquet'), rows);
    const { run, records } = await runList(file);
    expect(run.code).toBe(1);
    expect(records.map((r) => [r.line, r.status, r.error?.message ?? null])).toEqual([
      [1, 'ok', null],
      [2, 'failed', `${file}:2: no URL in column "url" (INVALID_URL)`],
      [3, 'ok', null],
    ]);
  });

  it.each([
    ['with a column without offset index, a row group whole', { url: 'url', caption: 'caption', save: ['id'] }],
    ['with offset indexes, page by page', { url: 'url', save: [] }],
  ])('reads one row group at a time (%s): the first items come before any other row group is read', async (_, columns) => {
    const dir = await tempDir();
    const rows = Array.from({ length: 300 }, (_, i) => ({ url: `http://h.example/${i}.jpg`, caption: `row ${i} `.repeat(20), id: i }));
    const file = await writeDatasetList(path.join(dir, 'list.parquet'), rows, { rowGroupSize: 100 });
    const whole = await fileBuffer(file);
    const reads: Array<[number, number]> = [];
    const watched: AsyncBuffer = {
      byteLength: whole.byteLength,
      slice(start, end = whole.byteLength) {
        reads.push([start, end]);
        return whole.slice(start, end);
      },
    };
    const list = await openParquet(watched, 'list.parquet', new RowLayout(columns));
    // The footer's first read may take in the whole of a small file: count what is read for rows.
    reads.length = 0;
    const groups = list.metadata.row_groups.map((group) => {
      const chunks = group.columns.map((column) => column.meta_data!);
      const start = Math.min(...chunks.map((c) => Number(c.dictionary_page_offset ?? c.data_page_offset)));
      return [start, start + Number(group.total_compressed_size ?? group.total_byte_size)] as const;
    });
    expect(groups).toHaveLength(3);
    const groupsRead = (): number[] =>
      groups.flatMap(([from, to], index) => (reads.some(([start, end]) => start < to && end > from) ? [index] : []));

    const batches = list.batches();
    const first = await batches.next();
    expect(first.done).toBe(false);
    expect((first.value as unknown[]).length).toBeGreaterThan(0);
    expect(groupsRead()).toEqual([0]);
    let count = (first.value as unknown[]).length;
    for await (const items of batches) count += items.length;
    expect(count).toBe(300);
    expect(groupsRead()).toEqual([0, 1, 2]);
  });
});

describe('gzipped lists and --input-format', () => {
  it.each(['list.csv.gz', 'list.jsonl.gz', 'list.tsv.gz'])('reads %s, gunzipping as it streams', async (name) => {
    const server = await serve();
    const dir = await tempDir();
    const rows = [1, 2, 3].map((i) => ({ url: server.url(`/gen/${i}.jpg`), caption: `c, ${i}` }));
    const file = await writeDatasetList(path.join(dir, name), rows);
    const { run, records } = await runList(file, ['--caption-col', 'caption']);
    expect(run.code).toBe(0);
    expect(records.map((r) => [r.status, r.url, r.fields])).toEqual(rows.map((row) => ['ok', row.url, { caption: row.caption }]));
  });

  it('reads every list in the --input-format given, whatever its extension; without it, by extension', async () => {
    const server = await serve();
    const dir = await tempDir();
    const rows = [1, 2].map((i) => ({ caption: `c ${i}`, url: server.url(`/gen/${i}.jpg`) }));
    const csv = await writeDatasetList(path.join(dir, 'list.csv'), rows);
    const file = path.join(dir, 'list.txt');
    await fs.rename(csv, file);
    const asCsv = await runList(file, ['--input-format', 'csv']);
    expect(asCsv.run.code).toBe(0);
    expect(asCsv.records.map((r) => [r.status, r.url])).toEqual(rows.map((row) => ['ok', row.url]));
    // Read as text, each line is one invalid URL.
    const asText = await runCli(['-n', '-i', file]);
    expect(asText.code).toBe(1);
    expect(asText.stderr).toContain('0 to download, 0 skipped, 3 invalid');
  });

  it('reads stdin as CSV with --input-format csv, and refuses Parquet from stdin', async () => {
    const server = await serve();
    const csv = `url,caption\n${server.url('/gen/1.jpg')},one\n`;
    const read = await runCli(['-n', '--input-format', 'csv'], { stdin: csv });
    expect(read.code).toBe(0);
    expect(read.stdout).toBe(`${server.url('/gen/1.jpg')}\t1.jpg\n`);
    const parquet = await runCli(['-n', '--input-format', 'parquet', '-i', '-'], { stdin: csv });
    expect(parquet.code).toBe(2);
    expect(parquet.stderr).toContain('a Parquet list cannot be read from stdin');
  });
});

describe('a missing column', () => {
  it.each([
    ['list.csv', ['--url-col', 'image'], '"image" (--url-col); its columns: "url", "caption", "id"'],
    ['list.tsv', ['--caption-col', 'text'], '"text" (--caption-col); its columns: "url", "caption", "id"'],
    ['list.jsonl', ['--save-cols', 'id,license'], '"license" (--save-cols); its first object has the keys: "url", "caption", "id"'],
    [
      'list.parquet',
      ['--url-col', 'URL', '--save-cols', 'width'],
      'columns "URL" (--url-col), "width" (--save-cols); its columns: "url", "caption", "id"',
    ],
  ])('in %s is a usage error (exit 2) before any request, naming the columns the file has', async (name, flags, said) => {
    const server = await serve();
    const dir = await tempDir();
    const rows = [1, 2].map((i) => ({ url: server.url(`/gen/${i}.jpg`), caption: `c ${i}`, id: i }));
    // A first list that is fine, so that a request could have been made before the second is checked.
    const good = await writeDatasetList(
      path.join(dir, 'good.jsonl'),
      rows.map((row) => ({ ...row, image: row.url, text: '', license: '', URL: '', width: 1 })),
    );
    const file = await writeDatasetList(path.join(dir, name), rows);
    const run = await runCli(['-i', good, '-i', file, '-o', path.join(dir, 'out'), ...flags]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`imgdl: ${file} has no column`);
    expect(run.stderr).toContain(said);
    expect(server.stats.requests).toBe(0);
  });
});

/** A file read whole, as hyparquet reads from memory. */
async function fileBuffer(file: string): Promise<AsyncBuffer> {
  const bytes = await fs.readFile(file);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return { byteLength: buffer.byteLength, slice: (start, end) => buffer.slice(start, end) };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
