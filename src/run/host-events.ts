/**
 * What a run tells about its hosts as it goes, beyond the items' records: a
 * try answered 429 or 503, a pause a server asked for, a change of a host's
 * adapted rate. The report counts them per host (record/run-report.ts); the
 * records alone cannot, since a 429 that a retry mended leaves none in them.
 */

/** One thing a run learnt about a host. */
export interface HostEvent {
  host: string;
  /** A try to the host was answered with this status (429 or 503). */
  status?: number | undefined;
  /** That answer started a pause of the whole host (its Retry-After). */
  paused?: boolean | undefined;
  /** The host's adapted rate is now this (requests a second); null once it is lifted. */
  rate?: number | null | undefined;
  /** A connection to the host was opened speaking this protocol, as TLS negotiated it (`h2`, `http/1.1`); with `--http2`. */
  protocol?: string | undefined;
}

/** Statuses a {@link HostEvent} reports: the answers of a server that wants fewer requests. */
export const THROTTLE_STATUSES: ReadonlySet<number> = new Set([429, 503]);
