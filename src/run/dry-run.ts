/**
 * The dry run: every item validated, deduplicated and named by the same
 * {@link plan} a real run uses, so the names shown are the names a run
 * would give, and no request is made.
 */
import { createRunContext } from './download.js';
import { isBatched, toListItem, type ListItem, type Source, type SourceEntry } from '../input/source.js';
import type { RunContext } from '../item/context.js';
import { plan, type Planned } from '../item/plan.js';
import { resolveOptions, type Options } from '../options.js';
import { fromUndici } from '../http/undici.js';

/** What a run would do with one item. */
export interface PlannedItem {
  /** The URL as listed, credentials redacted. */
  url: string;
  source: string;
  line: number;
  /** `download`: would be fetched; `skipped`: a duplicate, done by an earlier run's manifest, or the file exists under `onExists: 'skip'`; `failed`: invalid. */
  status: 'download' | 'skipped' | 'failed';
  /** The file relative to the output folder, `/`-separated; null when none would be written. */
  path: string | null;
  /** Why it is skipped (`duplicate`, `exists`) or failed (the error message, which names its code); empty for `download`. */
  reason: string;
}

// From undici's own module, as the run's agents are: its index would load fetch, WebSocket and the rest (~100 ms).
const Dispatcher = fromUndici('dispatcher/dispatcher.js', (undici) => undici.Dispatcher);

/** A dispatcher that refuses to dispatch: the dry run's proof that nothing goes on the wire. */
class NoRequests extends Dispatcher {
  override dispatch(): boolean {
    throw new Error('a dry run makes no requests');
  }
}

/**
 * Yields, in list order, what `download(source, options)` would do with each
 * item. A server's Content-Disposition name and `onExists: 'rename'` suffixes
 * are only known during a real run, so those names may still differ.
 */
export async function* planDownload(source: Source, options: Options = {}): AsyncGenerator<PlannedItem> {
  for await (const batch of planBatches(source, options, 1)) yield batch[0]!;
}

/**
 * {@link planDownload} in batches of up to `size` items, for a consumer that
 * handles many at once: a million-line dry run spent a tenth of its time
 * handing items over one by one.
 */
export async function* planBatches(source: Source, options: Options = {}, size = 1024): AsyncGenerator<PlannedItem[]> {
  const resolved = resolveOptions(options);
  // The run's own context (manifest's done items included), with its agent swapped for one that cannot send.
  const real = await createRunContext(resolved);
  await real.agent.destroy();
  const ctx: RunContext = { ...real, agent: new NoRequests() };
  let batch: PlannedItem[] = [];
  let position = 0;
  // A source that reads its entries an array at a time hands them over without an await each.
  const batched = isBatched(source) ? source.batches() : undefined;
  const arrivals: AsyncIterable<SourceEntry[]> | Source = batched ?? source;
  for await (const arrived of arrivals) {
    const entries = batched ? (arrived as SourceEntry[]) : [arrived as SourceEntry];
    for (const entry of entries) {
      const item = toListItem(entry, ++position);
      const found = plan(item, ctx, position - 1, false);
      if (found === undefined) continue;
      const planned = found instanceof Promise ? found.then((decided) => plannedItem(item, decided, ctx)) : plannedItem(item, found, ctx);
      batch.push(planned instanceof Promise ? await planned : planned);
      if (batch.length >= size) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
}

/** What the dry run says of one planned item; a promise only when it must wait (a folder still being listed). */
function plannedItem(item: ListItem, decided: Planned, ctx: RunContext): PlannedItem | Promise<PlannedItem> {
  if ('result' in decided) {
    const r = decided.result;
    const reason = r.error ? r.error.message : (r.skipReason ?? '');
    return { url: r.url, source: r.source, line: r.line, status: r.status === 'failed' ? 'failed' : 'skipped', path: r.path, reason };
  }
  const { task } = decided;
  const planned = (exists: boolean): PlannedItem => ({
    url: task.shownUrl,
    source: item.source,
    line: item.line,
    status: exists ? 'skipped' : 'download',
    path: task.relPath,
    reason: exists ? 'exists' : '',
  });
  // Answered from one listing per folder, as in a run, not a stat per item.
  if (ctx.options.onExists !== 'skip' || ctx.parts.surelyAbsent(task.finalPath)) return planned(false);
  return ctx.parts.existsListed(task.finalPath).then(planned);
}
