/**
 * The options of how bytes travel, as curl and wget users know them: the
 * stall abort (`--speed-limit` / `--speed-time`), the bandwidth cap
 * (`--limit-rate`) and HTTP/2 (`--http2`). Their fields join
 * {@link ItemOptions} in options.ts, their defaults its `DEFAULTS`, and
 * {@link resolveTransfer} checks them inside `resolveOptions()`.
 */
import { flag, integer, parseSize } from './option-values.js';

/** The fixed defaults of {@link TransferOptions}, spread into options.ts' `DEFAULTS`. */
export const TRANSFER_DEFAULTS = Object.freeze({
  speedTime: 30,
  http2: false,
  remoteTime: true,
} as const);

/** How each item's bytes travel; part of `ItemOptions`, so they go with cluster jobs too. */
export interface TransferOptions {
  /**
   * Abort a body received slower than this many bytes per second for `speedTime` seconds, with
   * `TOO_SLOW` (retried) [`--speed-limit`, curl's name]: bytes, or with a `k`/`M`/`G` suffix
   * (1024-based); 0 for none.
   * @default none
   */
  speedLimit?: number | string | undefined;
  /**
   * Seconds a body may stay under `speedLimit` before it is aborted [`--speed-time`], from 1 to
   * 86400; alone it does nothing.
   * @default 30
   */
  speedTime?: number | undefined;
  /**
   * Cap on the run's download speed, in bytes per second or with a `k`/`M`/`G` suffix (1024-based),
   * kept by slowing reads, not by buffering [`--limit-rate`, curl's name]; 0 for none. The whole
   * run shares it: in `'workers'` mode each thread gets an equal part; in a cluster each worker
   * has the whole cap.
   * @default none
   */
  limitRate?: number | string | undefined;
  /**
   * Offer HTTP/2 to https origins (by ALPN), up to 100 streams per connection, falling back to HTTP/1.1
   * where a server does not speak it [`--http2`]. Off by default while undici 7 has HTTP/2 defects that 8 fixes.
   * @default false
   */
  http2?: boolean | undefined;
  /**
   * Give each saved file the modification time of the server's `Last-Modified`, as wget does, so that
   * `onExists: 'update'` asks about the right date [`--no-remote-time` turns it off].
   * @default true
   */
  remoteTime?: boolean | undefined;
}

/** {@link TransferOptions} checked, with their defaults applied. */
export interface ResolvedTransfer {
  /** Bytes per second; undefined for no stall abort. */
  speedLimit: number | undefined;
  /** How long a body may stay under `speedLimit`, in seconds. */
  speedTime: number;
  /** Bytes per second; undefined for no cap. */
  limitRate: number | undefined;
  http2: boolean;
  remoteTime: boolean;
}

/** Checks {@link TransferOptions}; throws `OptionError` naming the option and the value. */
export function resolveTransfer(options: TransferOptions): ResolvedTransfer {
  const speedLimit = options.speedLimit === undefined ? 0 : parseSize('speedLimit', options.speedLimit);
  const speedTime = integer('speedTime', options.speedTime, TRANSFER_DEFAULTS.speedTime, 1, 86_400);
  const limitRate = options.limitRate === undefined ? 0 : parseSize('limitRate', options.limitRate);
  return {
    speedLimit: speedLimit === 0 ? undefined : speedLimit,
    speedTime,
    limitRate: limitRate === 0 ? undefined : limitRate,
    http2: options.http2 === undefined ? TRANSFER_DEFAULTS.http2 : flag('http2', options.http2),
    remoteTime: options.remoteTime === undefined ? TRANSFER_DEFAULTS.remoteTime : flag('remoteTime', options.remoteTime),
  };
}
