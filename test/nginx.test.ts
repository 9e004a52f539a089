/** The nginx helper itself: what later tests rely on it for (TLS with the fixtures' CA, HTTP/2, its access log). */
import http2 from 'node:http2';
import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startNginx } from './nginx.js';

describe('the nginx test server', () => {
  it('serves its root over HTTP/2 and TLS with the fixtures CA, and logs status, protocol and connection', async () => {
    const nginx = await startNginx({ tls: true, http2: true, files: { 'a.txt': 'hello' } });
    const session = http2.connect(nginx.origin, { ca: await fs.readFile(nginx.caFile) });
    const get = (path: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': path });
        let status = 0;
        let body = '';
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        stream.on('end', () => resolve({ status, body })).on('error', reject);
      });
    expect(await get('/a.txt')).toEqual({ status: 200, body: 'hello' });
    expect((await get('/missing.txt')).status).toBe(404);
    session.close();
    const logged = await nginx.requests();
    expect(logged.map((r) => [r.status, r.protocol, r.uri])).toEqual([
      [200, 'HTTP/2.0', '/a.txt'],
      [404, 'HTTP/2.0', '/missing.txt'],
    ]);
    // Both on the one connection the session opened.
    expect(new Set(logged.map((r) => r.connection)).size).toBe(1);
  });
});
