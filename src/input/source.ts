/**
 * The seam between where items come from and the run: a source yields
 * items, each a URL, an optional file name, and extra fields carried as they
 * are to the item's record. Any iterable, sync or async, is a source, read
 * lazily; the text list (text-list.ts) is the first kind, and a CSV, JSONL or
 * Parquet reader is another that needs nothing from the run but this.
 */
/** One item as a source gives it. */
export interface SourceItem {
  url: string;
  /** The file name to give it, relative to the output folder; by default the URL's last segment. */
  name?: string | undefined;
  /** Fields the source knows about the item (a CSV row's other columns), carried to its record as `fields`. */
  fields?: Readonly<Record<string, unknown>> | undefined;
}

/** An item as the run plans it, not yet validated: a {@link SourceItem} that says where it was listed (a line of a list, an argument, or `api`). */
export interface ListItem extends SourceItem {
  /** The URL text as written (trimmed). For a too-long line, the start of it. */
  url: string;
  /** NAME given after the URL, if any. */
  name?: string | undefined;
  /** Where it came from: the file path as the user wrote it, 'stdin', or 'argv'. */
  source: string;
  /** 1-based line number in source (argument position for argv). */
  line: number;
  /** Why the line cannot be used as-is, if it can't: 'too-long' | 'binary', or 'bad-row' (a structured list's row, see `reason`). */
  problem?: 'too-long' | 'binary' | 'bad-row' | undefined;
  /** For a 'bad-row' item, why the row gives no usable URL (a JSON parse error, an empty URL cell), for its failure's message. */
  reason?: string | undefined;
  /**
   * 0-based position among the items of the whole list, for a caller that
   * hands a run one slice of a longer list (the cluster's batches), so that
   * anything decided by position is decided as the whole list would decide
   * it. Unset, positions count from the run's own first item.
   */
  index?: number | undefined;
}

/** One entry of a source: a URL, an item, or a list item that also says where it was listed. */
export type SourceEntry = string | SourceItem | ListItem;

/** What `download()` reads from: any iterable, sync or async, consumed lazily. */
export type Source = Iterable<SourceEntry> | AsyncIterable<SourceEntry>;

/**
 * A source that can also hand its entries over an array at a time, as it
 * reads them (the CLI's list reader): planning many at once (the dry run)
 * then skips an await per entry.
 */
export interface BatchedSource<T extends SourceEntry = SourceEntry> extends AsyncIterable<T> {
  batches(): AsyncIterable<T[]>;
}

/** True for a {@link BatchedSource}. */
export function isBatched(source: Source): source is BatchedSource {
  return typeof (source as Partial<BatchedSource>).batches === 'function';
}

/**
 * A source entry as a {@link ListItem}; `index` numbers API entries (from 1). A function rather than
 * a generator around the source: each generator layer cost a tenth of a million-line dry run.
 */
export function toListItem(entry: SourceEntry, index: number): ListItem {
  if (typeof entry === 'string') return { url: entry, source: 'api', line: index };
  if ('source' in entry && 'line' in entry) return entry;
  // Only an item that has fields carries the property, so that records without them stay as they were.
  if (entry.fields === undefined) return { url: entry.url, name: entry.name, source: 'api', line: index };
  return { url: entry.url, name: entry.name, source: 'api', line: index, fields: entry.fields };
}

/** Every kind of source entry as a {@link ListItem}, numbering API entries from 1. */
export async function* toListItems(source: Source): AsyncGenerator<ListItem> {
  let index = 0;
  for await (const entry of source) yield toListItem(entry, ++index);
}
