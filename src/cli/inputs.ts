/**
 * Where a command's list comes from: URLs given as arguments, then each
 * `-i FILE` (or stdin) in turn, each read in its format (see
 * input/open-list.ts).
 */
import { openList, type ListReading, type OpenedList } from '../input/open-list.js';
import { itemsFromArgs, type ListItem } from '../input/text-list.js';
import type { BatchedSource } from '../input/source.js';

/** An input opened for reading, named as messages name it (`stdin` for `-`). */
export type OpenedInput = OpenedList;

/**
 * Opens each input before the run starts, reading as far as its columns, so
 * that an unreadable file or a missing column is a usage error, not a
 * failure halfway. On such an error the inputs already opened are let go.
 */
export async function openInputs(inputs: readonly string[], reading: ListReading = {}): Promise<OpenedInput[]> {
  const opened: OpenedInput[] = [];
  try {
    for (const name of inputs) opened.push(await openList(name, reading));
  } catch (error) {
    for (const input of opened) await input.close();
    // Stdin read as far as a header would keep the process alive.
    if (inputs.includes('-')) process.stdin.destroy();
    throw error;
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
    for (const input of inputs) yield* input.batches();
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
