import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ImgdlError } from '../src/errors.js';
import type { FetchedResponse } from '../src/http/body.js';
import { createAgent } from '../src/http/fetch.js';
import { requestOnce } from '../src/http/request.js';
import { resolveOptions } from '../src/options.js';

/**
 * A loopback server: `/quick/*` answers at once, `/head/*` sends its headers
 * and some bytes and then waits, `/hang/*` never answers. `waiting` holds the
 * paths of the requests it has not answered whose connection is still open.
 * Closed, with every connection, after each test.
 */
async function holdingServer() {
  const sockets = new Set<Socket>();
  const waiting = new Set<string>();
  const server = http.createServer((request, response) => {
    if (request.url!.startsWith('/quick/')) return response.end('done');
    waiting.add(request.url!);
    request.socket.on('close', () => waiting.delete(request.url!));
    if (request.url!.startsWith('/head/')) {
      response.writeHead(200, { 'content-length': '1000' });
      response.write('some bytes');
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  closing.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { origin, waiting };
}

const closing: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closing.splice(0)) await close();
});

/** How a body ended: 'end', or the code it failed with. */
function bodyEnd(response: FetchedResponse): Promise<string> {
  return new Promise((resolve) =>
    response.body.pipe({ write: () => true, end: () => resolve('end'), fail: (error) => resolve(error.code) }),
  );
}

describe('requests in flight under a signal', () => {
  it('all stop when it aborts, whichever of them finished before, and none under another signal does', async () => {
    const { origin, waiting } = await holdingServer();
    const agent = createAgent(resolveOptions({}));
    closing.push(() => agent.destroy());
    const run = new AbortController();
    const other = new AbortController();
    const get = (path: string, signal: AbortSignal): Promise<FetchedResponse> => {
      const url = new URL(path, origin);
      return requestOnce(agent, url, origin, {}, url.href, signal);
    };
    const failure = (request: Promise<FetchedResponse>): Promise<string> =>
      request.then(
        () => 'answered',
        (error: ImgdlError) => error.code,
      );
    // Started in turns, so that those that finish leave the list first, from its middle and from its ends.
    const quick = [] as Array<Promise<string>>;
    const hanging = [] as Array<Promise<string>>;
    const heads = [] as Array<Promise<FetchedResponse>>;
    for (let i = 0; i < 3; i++) {
      hanging.push(failure(get(`/hang/${i}`, run.signal)));
      quick.push(get(`/quick/${i}`, run.signal).then(bodyEnd));
      heads.push(get(`/head/${i}`, run.signal));
    }
    const elsewhere = get('/head/other', other.signal);
    expect(await Promise.all(quick)).toEqual(['end', 'end', 'end']);
    const bodies = (await Promise.all(heads)).map(bodyEnd);
    const otherBody = bodyEnd(await elsewhere);

    run.abort();
    expect(await Promise.all(hanging)).toEqual(['ABORTED', 'ABORTED', 'ABORTED']);
    expect(await Promise.all(bodies)).toEqual(['ABORTED', 'ABORTED', 'ABORTED']);
    // Their connections are closed; the request under the other signal still holds its own.
    await expect.poll(() => [...waiting]).toEqual(['/head/other']);
    other.abort();
    expect(await otherBody).toBe('ABORTED');
    await expect.poll(() => waiting.size).toBe(0);
  });

  it('is stopped at its start when its signal aborted while it waited for a connection', async () => {
    const { origin } = await holdingServer();
    const agent = createAgent(resolveOptions({ perHost: 1 }));
    closing.push(() => agent.destroy());
    const run = new AbortController();
    const first = requestOnce(agent, new URL('/hang/1', origin), origin, {}, 'first', run.signal).catch((error: ImgdlError) => error.code);
    const queued = requestOnce(agent, new URL('/quick/1', origin), origin, {}, 'queued', run.signal).catch(
      (error: ImgdlError) => error.code,
    );
    run.abort();
    expect([await first, await queued]).toEqual(['ABORTED', 'ABORTED']);
  });
});
