/**
 * A real web server for the tests: Debian's nginx, started from PATH in the
 * foreground on a free loopback port, with a config generated in a temp
 * folder (`-p` prefix, `-c` config, `-e` error log, every temp path inside
 * it), and stopped (the folder removed) after the test. It never reads
 * /etc/nginx, so a system nginx, running or not, plays no part.
 *
 * It serves the files a test puts in its `root`, over plain HTTP or TLS with
 * the fixtures' private CA (`fixtures/tls/`), HTTP/1.1 or HTTP/2, behind
 * nginx's own `limit_req` when asked. Its access log has a line per request,
 * `$status $server_protocol $connection $request_uri`, which is how tests
 * count 429s, protocols and connections as the server saw them.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { launchOnFreePort, spawnUntilReady, stopProcess } from './services.js';

const TLS = fileURLToPath(new URL('../fixtures/tls/', import.meta.url));

/** One request as nginx logged it. */
export interface LoggedRequest {
  status: number;
  /** `HTTP/1.1`, `HTTP/2.0`. */
  protocol: string;
  /** nginx's serial number of the connection it came on. */
  connection: number;
  /** The path and query asked for. */
  uri: string;
}

/** Options of {@link startNginx}. */
export interface NginxOptions {
  /** HTTPS with the fixtures' certificate for 127.0.0.1 and localhost, signed by `fixtures/tls/ca.pem`. Default false. */
  tls?: boolean;
  /** HTTP/2 (over TLS, by ALPN). Default false. */
  http2?: boolean;
  /**
   * nginx's `limit_req` on every request, per client address: `rate` a second (or as nginx writes it,
   * `'1r/m'`), `burst` queued (served without delay with `nodelay`); over that, `status` (default 429).
   */
  limitReq?: { rate: number | string; burst: number; nodelay?: boolean; status?: number };
  /** Files to serve, by path under the root (the test may also write to `root` itself). */
  files?: Record<string, Buffer | string>;
}

/** A running nginx of a test. */
export interface Nginx {
  port: number;
  /** `http://127.0.0.1:PORT` or `https://…`, no trailing slash. */
  origin: string;
  /** The folder it serves. */
  root: string;
  /** The CA that signed its certificate (with `tls`). */
  caFile: string;
  /** The requests it answered so far, in order, read from its access log. */
  requests(): Promise<LoggedRequest[]>;
  /** Stops it and removes its folder. */
  stop(): Promise<void>;
}

const running: Nginx[] = [];
afterEach(async () => {
  for (const server of running.splice(0)) await server.stop();
});

function config(port: number, dir: string, options: NginxOptions): string {
  const limit = options.limitReq;
  const listen = `listen 127.0.0.1:${port}${options.tls ? ' ssl' : ''}${options.http2 ? ' http2' : ''};`;
  return `
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 1024; }
http {
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  types { image/jpeg jpg jpeg; image/png png; image/gif gif; image/webp webp; text/plain txt; }
  default_type application/octet-stream;
  log_format imgdl '$status $server_protocol $connection $request_uri';
  access_log ${dir}/access.log imgdl;
  ${limit ? `limit_req_zone $binary_remote_addr zone=imgdl:1m rate=${typeof limit.rate === 'number' ? `${limit.rate}r/s` : limit.rate};` : ''}
  server {
    ${listen}
    ${options.tls ? `ssl_certificate ${TLS}server.pem; ssl_certificate_key ${TLS}server.key;` : ''}
    root ${dir}/root;
    location / {
      ${limit ? `limit_req zone=imgdl${limit.burst > 0 ? ` burst=${limit.burst}` : ''}${limit.nodelay ? ' nodelay' : ''}; limit_req_status ${limit.status ?? 429};` : ''}
    }
  }
}
`;
}

/** Starts nginx on `port`; resolves once it accepts connections, rejects with its error log when it exits first. */
async function launch(port: number, dir: string, options: NginxOptions): Promise<ChildProcess> {
  const conf = path.join(dir, 'nginx.conf');
  await fs.writeFile(conf, config(port, dir, options));
  const log = path.join(dir, 'error.log');
  // A connection accepted is the proof it listens.
  return spawnUntilReady('nginx', ['-p', dir, '-c', conf, '-e', log], () => accepts(port), log);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(true)).once('error', () => resolve(false));
    socket.once('close', () => socket.destroy());
    socket.unref();
    socket.on('connect', () => socket.end());
  });
}

/** Starts nginx for this test; it is stopped and its folder removed after the test. */
export async function startNginx(options: NginxOptions = {}): Promise<Nginx> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-nginx-'));
  const root = path.join(dir, 'root');
  await fs.mkdir(path.join(dir, 'tmp'), { recursive: true });
  await fs.mkdir(root);
  for (const [name, body] of Object.entries(options.files ?? {})) {
    await fs.mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await fs.writeFile(path.join(root, name), body);
  }
  const { port, child } = await launchOnFreePort(dir, (port) => launch(port, dir, options));
  const server: Nginx = {
    port,
    origin: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    root,
    caFile: path.join(TLS, 'ca.pem'),
    async requests() {
      const log = await fs.readFile(path.join(dir, 'access.log'), 'utf8').catch(() => '');
      return log
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const [status, protocol, connection, uri] = line.split(' ');
          return { status: Number(status), protocol: protocol!, connection: Number(connection), uri: uri! };
        });
    },
    async stop() {
      // SIGTERM is nginx's fast shutdown: the master stops its workers and exits.
      await stopProcess(child, 'SIGTERM');
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
  running.push(server);
  return server;
}
