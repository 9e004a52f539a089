/**
 * The suite's `tls` scenario: the latency list (2,000 × 20 kB, 50 ms before
 * each response, 32 at a time) over HTTPS, from a fixture server of its own
 * (bench/h2-server.ts) that speaks HTTP/2 and HTTP/1.1 on one origin. It
 * compares imgdl's `--http2` (a few multiplexed connections) with its default
 * HTTP/1.1 (a connection per slot, each with its own handshake), against curl
 * (HTTP/2 and HTTP/1.1) and wget2 (HTTP/2). Every client trusts the
 * fixtures' private CA.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatBytes } from '../record/run-report.js';
import { imgdl, installed, writeLists } from './contenders.js';
import { measure, type Contender } from './measure.js';
import type { ScenarioResult, Settings } from './scenarios.js';
import { startServer, TLS_CA } from './servers.js';

const FILES = 2000;
const SIZE = 20_000;
const LATENCY_MS = 50;
const C = 32;

/** curl over HTTP/2 or HTTP/1.1, `c` transfers at a time. */
function curl(lists: { curl: string }, c: number, http: '--http2' | '--http1.1'): Contender {
  const args = ['-s', '--no-progress-meter', '-Z', '--parallel-max', String(c), http, '--cacert', TLS_CA];
  return {
    name: `curl -Z --parallel-max ${c} ${http}`,
    argv: (out) => ['curl', ...args, '--output-dir', out, '-K', lists.curl],
    saves: true,
    peer: true,
  };
}

/**
 * curl over HTTP/2 and over HTTP/1.1, and wget2 over HTTP/2, `c` at a time.
 * wget2's --max-threads bounds its connections, not its requests: each
 * HTTP/2 connection carries up to --http2-request-window streams (30 by
 * default), so one thread with a window of `c` is its concurrency `c`.
 */
function tlsPeers(lists: { plain: string; curl: string }, c: number): Contender[] {
  const found: Contender[] = [];
  if (installed('curl')) found.push(curl(lists, c, '--http2'), curl(lists, c, '--http1.1'));
  if (installed('wget2')) {
    found.push({
      name: `wget2 --http2 --http2-request-window=${c}`,
      argv: (out) => [
        'wget2',
        '-q',
        '--no-config',
        '--max-threads=1',
        '--http2',
        `--http2-request-window=${c}`,
        `--ca-certificate=${TLS_CA}`,
        '-P',
        out,
        '-i',
        lists.plain,
      ],
      saves: true,
      peer: true,
    });
  }
  return found;
}

/** Runs the scenario against an HTTP/2-and-HTTP/1.1 TLS fixture server of its own: every contender, `s.runs` times. */
export async function tlsScenario(s: Settings): Promise<ScenarioResult> {
  const server = await startServer(LATENCY_MS, { tls: 'h2' });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-tls-'));
  try {
    const urls = Array.from({ length: FILES }, (_, i) => `${server.origin}/gen/${i + 1}.jpg?bytes=${SIZE}`);
    const lists = await writeLists(dir, urls);
    const c = String(C);
    const contenders: Contender[] = [
      imgdl(`imgdl -c ${c} --http2`, lists.plain, ['-c', c, '--http2', '--cacert', TLS_CA]),
      imgdl(`imgdl -c ${c} (HTTP/1.1)`, lists.plain, ['-c', c, '--cacert', TLS_CA]),
    ];
    if (s.compare !== undefined)
      contenders.push(imgdl(`imgdl -c ${c} --http2 @compare`, lists.plain, ['-c', c, '--http2', '--cacert', TLS_CA], s.compare));
    contenders.push(...tlsPeers(lists, C));
    const rows = await measure('tls', contenders, s.runs, { files: FILES, bytes: FILES * SIZE });
    return {
      scenario: 'tls',
      description: `${FILES} × ${formatBytes(SIZE)} over HTTPS (HTTP/2 or HTTP/1.1), ${LATENCY_MS} ms latency, concurrency ${c}`,
      files: FILES,
      floorMs: Math.ceil(FILES / C) * LATENCY_MS,
      baseline: rows.find((r) => r.name.startsWith('curl'))?.name,
      rows,
    };
  } finally {
    await Promise.all([server.stop(), fs.rm(dir, { recursive: true, force: true })]);
  }
}
