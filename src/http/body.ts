/**
 * The shape of a response as the rest of the downloader sees it: headers at
 * once, the body a chunk at a time into a {@link BodySink}. Kept apart from
 * the code that makes requests, so that whoever consumes a body (the output
 * room) does not depend on how it was fetched.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ImgdlError } from '../errors.js';

/** A 2xx response; its body comes through {@link ResponseBody.pipe}, and must be piped or aborted. */
export interface FetchedResponse {
  /** The URL that answered, after redirects. */
  url: URL;
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

/**
 * Where a response body goes, a chunk at a time, as undici hands it over:
 * synchronously, with no stream and no promise per chunk.
 */
export interface BodySink {
  /** Takes the next chunk; returning false asks for no more until {@link ResponseBody.resume}. */
  write(chunk: Buffer): boolean;
  /** The body is complete. */
  end(): void;
  /** The body failed; the error is already classified (ETIMEDOUT, NETWORK, ABORTED, ...). */
  fail(error: ImgdlError): void;
}

/** The body side of a response: where it goes, and a way to slow it down or stop it. */
export interface ResponseBody {
  /** Sends the body to `sink`, starting with what arrived before this call. Call once. */
  pipe(sink: BodySink): void;
  /** Lets a paused body flow again. */
  resume(): void;
  /**
   * Stops the body unread, closing its connection; a sink already given
   * gets no more calls. For bodies not worth reading (too large, not wanted).
   */
  abort(): void;
}

/** First value of a header that may have been sent more than once. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The response's validator usable in If-Range: a strong ETag, else Last-Modified. */
export function strongValidator(response: FetchedResponse): { etag: string } | { lastModified: string } | undefined {
  const etag = header(response.headers, 'etag');
  const lastModified = header(response.headers, 'last-modified');
  if (etag !== undefined && !etag.startsWith('W/')) return { etag };
  if (lastModified !== undefined) return { lastModified };
  return undefined;
}

/** Content-Length as a number, undefined when absent or malformed (undici then reads to the end). */
export function contentLength(response: FetchedResponse): number | undefined {
  const value = header(response.headers, 'content-length');
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}
