/**
 * The suite's `hosts` scenario: per-host politeness under a bad host. Ten
 * loopback hosts (127.0.0.2 to 127.0.0.11), each a server of its own:
 * eight answer in 20 ms, one takes a second for every answer, and one answers
 * 429 with `Retry-After: 1` to everything for its first three seconds. The
 * list interleaves them; `imgdl -c 16` downloads it, and, in the same
 * sitting, the eight good hosts' items alone. The eight should keep their
 * throughput: files/s with the bad hosts over files/s without them.
 *
 * Counted at the servers: each host's first request and last answer (its
 * files/s), its peak of requests in flight, the 429s sent, and any request
 * that reached the 429 host while its Retry-After was in force (there
 * should be none). The CLI's stderr tells how many pauses it logged.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CLI_PATH, formatTable, median } from '../cli/bench.js';
import { generatedImage } from '../dev/fixture-server.js';
import { formatDuration } from '../record/run-report.js';

const GOOD_HOSTS = 8;
const GOOD_ITEMS = 250;
const BAD_ITEMS = 50;
const CONCURRENCY = 16;
const GOOD_LATENCY_MS = 20;
const SLOW_LATENCY_MS = 1000;
const LIMITED_FOR_MS = 3000;
const body = generatedImage('jpg', 5000);

type Role = 'good' | 'slow' | '429';

/** One host's server and what it saw in a run. */
interface Host {
  role: Role;
  origin: string;
  server: Server;
  requests: number;
  inFlight: number;
  peakInFlight: number;
  firstAt: number;
  lastEndAt: number;
  tooMany: number;
  /** Requests that arrived while a Retry-After this host sent was still in force, after the client had it. */
  early: number;
  pausedUntil: number;
  lastTooManyAt: number;
  limitedUntil: number;
}

async function startHost(role: Role, address: string): Promise<Host> {
  const host: Host = { role, origin: '', server: undefined as unknown as Server, ...freshCounts() };
  host.server = createServer((req, res) => {
    const now = performance.now();
    if (host.requests++ === 0) {
      host.firstAt = now;
      host.limitedUntil = now + LIMITED_FOR_MS;
    }
    // A request already on its way when the 429 left crosses it; one sent after the client read it arrives
    // later than that (100 ms is ample on loopback), and the end of the pause gets a network hop of slack.
    if (now > host.lastTooManyAt + 100 && now < host.pausedUntil - 20) host.early++;
    host.peakInFlight = Math.max(host.peakInFlight, ++host.inFlight);
    res.on('close', () => {
      host.inFlight--;
      host.lastEndAt = performance.now();
    });
    req.resume();
    if (role === '429' && now < host.limitedUntil) {
      host.tooMany++;
      host.lastTooManyAt = now;
      host.pausedUntil = Math.max(host.pausedUntil, now + 1000);
      res.writeHead(429, { 'retry-after': '1', 'content-length': '0' }).end();
      return;
    }
    setTimeout(
      () => res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length }).end(body),
      role === 'slow' ? SLOW_LATENCY_MS : GOOD_LATENCY_MS,
    );
  });
  host.server.keepAliveTimeout = 60_000;
  host.server.listen(0, address);
  await once(host.server, 'listening');
  host.origin = `http://${address}:${(host.server.address() as AddressInfo).port}`;
  return host;
}

function resetHost(host: Host): void {
  Object.assign(host, freshCounts());
}

/** What a host has seen, before any request of a run. */
function freshCounts(): Omit<Host, 'role' | 'origin' | 'server'> {
  return {
    requests: 0,
    inFlight: 0,
    peakInFlight: 0,
    firstAt: 0,
    lastEndAt: 0,
    tooMany: 0,
    early: 0,
    pausedUntil: 0,
    lastTooManyAt: 0,
    limitedUntil: 0,
  };
}

/** The list: the hosts' items interleaved, one from each in turn. */
function list(hosts: readonly Host[]): string {
  const lines: string[] = [];
  for (let i = 0; i < GOOD_ITEMS; i++) {
    for (const [h, host] of hosts.entries()) {
      if (host.role !== 'good' && i >= BAD_ITEMS) continue;
      lines.push(`${host.origin}/h${h}/${i}.jpg`);
    }
  }
  return lines.join('\n') + '\n';
}

/** One run of the CLI over `listFile`; the good hosts' files/s, and what the bad hosts saw. */
async function runOnce(
  hosts: readonly Host[],
  listFile: string,
  out: string,
): Promise<{ goodRate: number; wallMs: number; pauses: number; ok: number }> {
  for (const host of hosts) resetHost(host);
  const started = performance.now();
  const child = spawn(process.execPath, [CLI_PATH, '-i', listFile, '-o', out, '-c', String(CONCURRENCY), '--json', '--retries', '5'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  const wallMs = performance.now() - started;
  const summary = JSON.parse(stdout || '{}') as { ok?: number };
  if (code !== 0) process.stderr.write(`\nhosts: imgdl exited with ${code}: ${stderr.slice(-500)}\n`);
  const good = hosts.filter((h) => h.role === 'good' && h.requests > 0);
  const goodFiles = good.length * GOOD_ITEMS;
  const goodRate = goodFiles / ((Math.max(...good.map((h) => h.lastEndAt)) - started) / 1000);
  return { goodRate, wallMs, pauses: (stderr.match(/pausing every request to it/g) ?? []).length, ok: summary.ok ?? 0 };
}

/** What the scenario reports. */
export interface HostsBenchResult {
  runs: number;
  /** The eight good hosts' files/s, each run, alone and with the two bad hosts in the list. */
  alone: number[];
  mixed: number[];
  /** Median of alone over median of mixed: 1 means the bad hosts cost the good ones nothing. */
  slowdown: number;
  mixedWalls: number[];
  /** Per host of the last mixed run. */
  hosts: Array<{ host: string; role: Role; requests: number; peakInFlight: number; filesPerSec: number; tooMany: number; early: number }>;
  /** Pauses the CLI logged, each mixed run. */
  pauses: number[];
  /** Files saved, each mixed run, of the list's items. */
  ok: number[];
  items: number;
}

/** Runs the scenario `runs` times (mixed list and good hosts alone, interleaved); `progress` hears what runs. */
export async function hostsBench(runs: number, progress?: (what: string) => void): Promise<HostsBenchResult> {
  const roles: Role[] = [...Array<Role>(GOOD_HOSTS).fill('good'), 'slow', '429'];
  const hosts = await Promise.all(roles.map((role, i) => startHost(role, `127.0.0.${i + 2}`)));
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-suite-hosts-'));
  try {
    const mixedList = path.join(dir, 'mixed.txt');
    const aloneList = path.join(dir, 'alone.txt');
    await fs.writeFile(mixedList, list(hosts));
    await fs.writeFile(aloneList, list(hosts.filter((h) => h.role === 'good')));
    const result: HostsBenchResult = {
      runs,
      alone: [],
      mixed: [],
      slowdown: Number.NaN,
      mixedWalls: [],
      hosts: [],
      pauses: [],
      ok: [],
      items: GOOD_HOSTS * GOOD_ITEMS + 2 * BAD_ITEMS,
    };
    for (let run = 1; run <= runs; run++) {
      for (const which of ['alone', 'mixed'] as const) {
        progress?.(`${which} run ${run}/${runs}`);
        const out = path.join(dir, `out-${which}-${run}`);
        const measured = await runOnce(hosts, which === 'alone' ? aloneList : mixedList, out);
        await fs.rm(out, { recursive: true, force: true });
        result[which].push(measured.goodRate);
        if (which === 'mixed') {
          result.mixedWalls.push(measured.wallMs);
          result.pauses.push(measured.pauses);
          result.ok.push(measured.ok);
          result.hosts = hosts.map((h) => ({
            host: h.origin.slice('http://'.length),
            role: h.role,
            requests: h.requests,
            peakInFlight: h.peakInFlight,
            filesPerSec: (h.role === 'good' ? GOOD_ITEMS : BAD_ITEMS) / ((h.lastEndAt - h.firstAt) / 1000),
            tooMany: h.tooMany,
            early: h.early,
          }));
        }
      }
    }
    result.slowdown = median(result.alone) / median(result.mixed);
    return result;
  } finally {
    await Promise.all(hosts.map((h) => new Promise((resolve) => h.server.close(resolve).closeAllConnections())));
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The scenario's table and its slowdown, in the suite's style. */
export function formatHostsBench(r: HostsBenchResult): string {
  const rate = (values: readonly number[]): string =>
    `${median(values).toFixed(0)} (${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)})`;
  const rows = r.hosts.map((h) => [
    h.host,
    h.role,
    String(h.requests),
    String(h.peakInFlight),
    h.filesPerSec.toFixed(1),
    String(h.tooMany),
    String(h.early),
  ]);
  return (
    `\n## hosts: ${GOOD_HOSTS} hosts answering in ${GOOD_LATENCY_MS} ms, one in ${SLOW_LATENCY_MS / 1000} s, one answering 429 (Retry-After: 1) for ${LIMITED_FOR_MS / 1000} s; -c ${CONCURRENCY}\n` +
    formatTable(
      ['the eight good hosts', 'files/s, median (min–max) of ' + r.runs],
      [
        ['alone in the list', rate(r.alone)],
        ['with the slow and the 429 host', rate(r.mixed)],
        ['alone ÷ with', r.slowdown.toFixed(3)],
      ],
    ) +
    `\nwith the bad hosts: run ${formatDuration(median(r.mixedWalls))} (median); saved ${r.ok.join(', ')} of ${r.items}; pauses logged ${r.pauses.join(', ')}\n` +
    `last run, per host (files/s from its first request to its last answer; early = requests inside a Retry-After it sent, 100 ms or more after it):\n` +
    formatTable(['host', 'role', 'requests', 'peak in flight', 'files/s', '429s sent', 'early'], rows) +
    '\n'
  );
}
