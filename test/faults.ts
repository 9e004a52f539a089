/**
 * Servers that misbehave below HTTP, where msw cannot reach: raw `net`
 * sockets that answer with lying headers, endless headers, resets and stalls.
 * Each is on loopback, port 0, and closed with its sockets after the test.
 */
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';

/** A request as the raw server read it. */
export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** A running raw server. */
export interface RawServer {
  url(path: string): string;
  /** Requests received, in order. */
  readonly requests: RawRequest[];
  close(): Promise<void>;
}

const open: RawServer[] = [];
afterEach(async () => {
  for (const server of open.splice(0)) await server.close();
});

/**
 * A server that reads each request head and hands the socket to `answer`
 * (which writes whatever bytes it likes), closed after the test.
 * `answer` gets the 0-based number of the request, to fail only the first few.
 */
export async function rawServer(answer: (socket: net.Socket, request: RawRequest, index: number) => void): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const requests: RawRequest[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const [start = '', ...lines] = buffered.slice(0, end).split('\r\n');
      const [method = '', path = ''] = start.split(' ');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const request = { method, path, headers };
      requests.push(request);
      answer(socket, request, requests.length - 1);
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  const raw: RawServer = {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    requests,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
  open.push(raw);
  return raw;
}

/** A response head with the given status and headers (`Connection: close` unless overridden). */
export function head(status: number, headers: Record<string, string | number> = {}): string {
  const all: Record<string, string | number> = { connection: 'close', ...headers };
  return `HTTP/1.1 ${status} X\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}
