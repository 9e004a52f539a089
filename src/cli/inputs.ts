/**
 * Where a command's list comes from: URLs given as arguments, then each
 * `-i FILE` (or stdin) in turn.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { UsageError } from '../errors.js';
import { itemsFromArgs, readListBatches, type ListItem } from '../input/text-list.js';
import type { BatchedSource } from '../input/source.js';

/** An input opened for reading, named as messages name it (`stdin` for `-`). */
export interface OpenedInput {
  name: string;
  stream: Readable;
}

/** Opens each input before the run starts, so an unreadable file is a usage error, not a failure halfway. */
export async function openInputs(inputs: readonly string[]): Promise<OpenedInput[]> {
  const opened: OpenedInput[] = [];
  for (const name of inputs) {
    if (name === '-') {
      opened.push({ name: 'stdin', stream: process.stdin });
      continue;
    }
    try {
      const handle = await fs.open(name, 'r');
      opened.push({ name, stream: createReadStream('', { fd: handle }) });
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'error';
      throw new UsageError(`cannot read input file ${name}: ${code}`);
    }
  }
  return opened;
}

/**
 * The arguments' items, then each input's in turn: one at a time, or (for the dry run, which plans
 * many at once) an array per chunk read, which spares each item an await.
 */
export function allItems(urls: readonly string[], inputs: OpenedInput[]): BatchedSource<ListItem> {
  async function* batches(): AsyncGenerator<ListItem[]> {
    if (urls.length > 0) yield itemsFromArgs(urls);
    for (const input of inputs) yield* readListBatches(input.stream, input.name);
  }
  return {
    batches,
    async *[Symbol.asyncIterator]() {
      for await (const items of batches()) yield* items;
    },
  };
}

/** yargs reads a lone `-` as a positional; `-i -` means stdin, so bind it to the flag before parsing. */
export function bindStdinDash(args: readonly string[]): string[] {
  const bound: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if ((arg === '-i' || arg === '--input') && args[i + 1] === '-') {
      bound.push('--input=-');
      i++;
    } else bound.push(arg);
  }
  return bound;
}
