/**
 * Credentials stay with the origin the user sent them to: a redirect to
 * another scheme, host or port gets no Authorization, Cookie,
 * Proxy-Authorization or URL credentials unless --location-trusted says so.
 * Two real loopback origins (127.0.0.1 and 127.0.0.2), the built CLI.
 */
import { http, HttpResponse, type RequestHandler } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import { listFiles, runCli, serve, tempDir } from './helpers.js';

const png = generatedImage('png', 2_000);
const CREDENTIALS = ['authorization', 'cookie', 'proxy-authorization'] as const;

type Seen = Array<Record<string, string | undefined>>;

/** What each request for `path` carried, among the credential headers. */
function recording(path: string, seen: Seen, answer: () => Response) {
  return http.get(path, ({ request }) => {
    seen.push(Object.fromEntries(CREDENTIALS.map((name) => [name, request.headers.get(name) ?? undefined])));
    return answer();
  });
}

const image = (): Response => new HttpResponse(png, { headers: { 'content-type': 'image/png' } });
const redirectTo = (location: string) => (): Response => new HttpResponse(null, { status: 302, headers: { location } });

/** Origin A answers /a.png with a redirect to `target(b)`; both origins record what they were sent. */
async function twoOrigins(target: (b: { url(path: string): string }) => string) {
  const atA: Seen = [];
  const atB: Seen = [];
  const b = await serve({ host: '127.0.0.2', handlers: [recording('*/b.png', atB, image)] });
  const a = await serve({ handlers: [recording('*/a.png', atA, redirectTo(target(b))), recording('*/b.png', atB, image)] });
  return { a, b, atA, atB };
}

const HEADER_FLAGS = ['-H', 'Authorization: Bearer SECRET', '--cookie', 'session=SECRET', '-H', 'Proxy-Authorization: Basic U0VDUkVU'];
const SENT = { authorization: 'Bearer SECRET', cookie: 'session=SECRET', 'proxy-authorization': 'Basic U0VDUkVU' };
const NONE = { authorization: undefined, cookie: undefined, 'proxy-authorization': undefined };
/** `user:secret` as Basic credentials. */
const URL_BASIC = `Basic ${Buffer.from('user:secret').toString('base64')}`;

describe('credentials on redirects', () => {
  it('sends none of them to another origin (127.0.0.1 → 127.0.0.2)', async () => {
    const { a, b, atA, atB } = await twoOrigins((b) => b.url('/b.png'));
    const out = await tempDir();
    const run = await runCli([a.url('/a.png'), '-o', out, ...HEADER_FLAGS]);
    expect(run.code, run.stderr).toBe(0);
    expect(atA).toEqual([SENT]);
    expect(atB).toEqual([NONE]);
    expect(b.origin).not.toBe(a.origin);
    expect(await listFiles(out)).toEqual(['a.png']);
  });

  it('sends URL credentials (user:pass@) to their own origin only', async () => {
    const { a, atA, atB } = await twoOrigins((b) => b.url('/b.png'));
    const out = await tempDir();
    const listed = a.url('/a.png').replace('http://', 'http://user:secret@');
    const run = await runCli([listed, '-o', out]);
    expect(run.code, run.stderr).toBe(0);
    expect(atA).toEqual([{ ...NONE, authorization: URL_BASIC }]);
    expect(atB).toEqual([NONE]);
  });

  it('sends all of them to every hop with --location-trusted', async () => {
    const { a, atA, atB } = await twoOrigins((b) => b.url('/b.png'));
    const out = await tempDir();
    const run = await runCli([a.url('/a.png'), '-o', out, '--location-trusted', ...HEADER_FLAGS]);
    expect(run.code, run.stderr).toBe(0);
    expect(atA).toEqual([SENT]);
    expect(atB).toEqual([SENT]);
  });

  it('sends URL credentials to every hop with --location-trusted', async () => {
    const { a, atB } = await twoOrigins((b) => b.url('/b.png'));
    const listed = a.url('/a.png').replace('http://', 'http://user:secret@');
    const run = await runCli([listed, '-o', await tempDir(), '--location-trusted']);
    expect(run.code, run.stderr).toBe(0);
    expect(atB).toEqual([{ ...NONE, authorization: URL_BASIC }]);
  });

  it('keeps them on a redirect within the same origin', async () => {
    const { a, atA, atB } = await twoOrigins(() => '/b.png');
    const listed = a.url('/a.png').replace('http://', 'http://user:secret@');
    const headers = ['--cookie', 'session=SECRET', '-H', 'Proxy-Authorization: Basic U0VDUkVU'];
    const run = await runCli([listed, '-o', await tempDir(), ...headers]);
    expect(run.code, run.stderr).toBe(0);
    const expected = { ...SENT, authorization: URL_BASIC };
    expect(atA).toEqual([expected]);
    expect(atB).toEqual([expected]);
  });

  it('counts a different port on the same host as another origin', async () => {
    const atA: Seen = [];
    const atOther: Seen = [];
    const other = await serve({ handlers: [recording('*/b.png', atOther, image)] });
    const a = await serve({ handlers: [recording('*/a.png', atA, redirectTo(other.url('/b.png')))] });
    const run = await runCli([a.url('/a.png'), '-o', await tempDir(), ...HEADER_FLAGS]);
    expect(run.code, run.stderr).toBe(0);
    expect(atA).toEqual([SENT]);
    expect(atOther).toEqual([NONE]);
  });

  it('gives them back when a redirect returns to the listed origin', async () => {
    const atA: Seen = [];
    const atB: Seen = [];
    const handlersOfA: RequestHandler[] = [];
    const a = await serve({ handlers: handlersOfA });
    const b = await serve({ host: '127.0.0.2', handlers: [recording('*/hop.png', atB, redirectTo(a.url('/b.png')))] });
    handlersOfA.push(recording('*/a.png', atA, redirectTo(b.url('/hop.png'))), recording('*/b.png', atA, image));
    const run = await runCli([a.url('/a.png'), '-o', await tempDir(), ...HEADER_FLAGS]);
    expect(run.code, run.stderr).toBe(0);
    expect(atB).toEqual([NONE]);
    expect(atA).toEqual([SENT, SENT]);
  });
});
