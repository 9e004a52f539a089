/**
 * Reading back what `--format webdataset` writes, for the tests of one run
 * and of the queue alike: a tar read to its end, a Parquet table, a stats file.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { extract } from 'tar-stream';

/** Every member of a tar, read with tar-stream to its end (a truncated tar fails). */
export async function readTar(file: string): Promise<Map<string, Buffer>> {
  const members = new Map<string, Buffer>();
  const reader = extract();
  createReadStream(file).pipe(reader);
  for await (const entry of reader) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    members.set(entry.header.name, Buffer.concat(chunks));
  }
  return members;
}

/** A shard's Parquet table, a row an object. */
export async function readTable(file: string): Promise<Array<Record<string, unknown>>> {
  return parquetReadObjects({ file: await asyncBufferFromFile(file) });
}

/** A JSON file (a shard's stats). */
export async function readJson(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
}
