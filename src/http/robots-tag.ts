/**
 * The publishers' opt-out signal: an `X-Robots-Tag` response header that asks
 * robots not to use (`noai`, `noimageai`) or not to index (`noindex`,
 * `noimageindex`) what it is sent with. img2dataset honours the same four by
 * default, so a dataset made with imgdl leaves out what one made with it
 * would.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** The directives that opt a response out of a dataset. */
const OPT_OUT: ReadonlySet<string> = new Set(['noai', 'noimageai', 'noindex', 'noimageindex']);

/**
 * True when the response's `X-Robots-Tag` headers (any number of them, each a
 * comma-separated list) hold an opt-out directive, in any case, bare or for a
 * user agent (`otherbot: noai`): a dataset is for everyone's use, so a
 * directive aimed at any robot counts.
 */
export function optedOut(headers: IncomingHttpHeaders): boolean {
  const sent = headers['x-robots-tag'];
  if (sent === undefined) return false;
  for (const value of Array.isArray(sent) ? sent : [sent]) {
    for (const part of value.split(',')) {
      // `agent: directive` names the robot it is for; a bare directive is for all.
      const directive = part
        .slice(part.indexOf(':') + 1)
        .trim()
        .toLowerCase();
      if (OPT_OUT.has(directive)) return true;
    }
  }
  return false;
}
