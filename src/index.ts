/**
 * imgdl as a library: `download(source, options)` yields one record per item.
 *
 * @example
 * import { download } from 'imgdl';
 * for await (const record of download(['https://example.com/a.jpg'], { out: 'photos' })) {
 *   console.log(record.status, record.path);
 * }
 */
export { download } from './run/download.js';
export type { Source, SourceEntry } from './input/source.js';
export { planDownload, type PlannedItem } from './run/dry-run.js';
export type { Progress } from './run/progress.js';
export type { HostEvent } from './run/host-events.js';
export {
  ImgdlError,
  NetworkError,
  TimeoutError,
  HttpStatusError,
  ProxyError,
  ValidationError,
  FileSystemError,
  describeError,
  type ErrorCode,
  type ErrorRecord,
} from './errors.js';
export { readList, itemsFromArgs, type ListItem } from './input/text-list.js';
export { resolveOptions, OptionError, VERSION, type Options, type ResolvedOptions, type Mode, type OnExists } from './options.js';
export type { ItemResult, ItemStatus, SkipReason } from './record/record.js';
export { RunReport, formatSummary, type RunSummary, type SummaryStyle } from './record/run-report.js';
export { HostFigures, type HostSummary } from './record/host-figures.js';
