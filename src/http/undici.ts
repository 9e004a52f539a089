/**
 * undici's modules, each loaded from its own file in undici 7's `lib/`
 * rather than through undici's index.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const load = createRequire(import.meta.url);

/**
 * One of undici's own modules, by its path in undici 7's `lib/`, rather than
 * through undici's index, which also loads fetch, WebSocket, EventSource, the
 * cache and the mocks: ~110 ms of CPU at every start, against ~35 ms for the
 * four imgdl uses. A later 7.x release (the range users install) may move a
 * file: then the same export comes from the index, slower to load but never
 * broken.
 *
 * Loaded this way, dispatchers lack the API methods the index adds to
 * `Dispatcher.prototype` (`request`, `stream`, `pipeline`, `upgrade`,
 * `connect`): code here calls `dispatch` only, or brings the method itself.
 */
export function fromUndici<T>(file: string, pick: (undici: typeof Undici) => T): T {
  try {
    const found = load(`undici/lib/${file}`) as unknown;
    if (typeof found === 'function') return found as T;
  } catch {
    // Moved or renamed: fall through to the index.
  }
  return pick(load('undici') as typeof Undici);
}
