/**
 * `npm start`: a real download against the embedded fixture server, with no
 * internet. The same list goes through sequential and concurrent mode into
 * fresh temp folders, and the two timings are printed side by side.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { download } from '../run/download.js';
import { startFixtureServer } from './fixture-server.js';
import type { Mode } from '../options.js';
import { RunReport, formatBytes, formatDuration, type RunSummary } from '../record/run-report.js';

const FILES = 80;
const BYTES = 20_000;
const LATENCY_MS = 50;
const CONCURRENCY = 16;

async function run(mode: Mode, urls: string[]): Promise<RunSummary> {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), `imgdl-demo-${mode}-`));
  try {
    const report = new RunReport(mode, mode === 'sequential' ? 1 : CONCURRENCY);
    for await (const record of download(urls, { out, mode, concurrency: CONCURRENCY })) report.add(record);
    return report.summary();
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
}

const server = await startFixtureServer({ latencyMs: LATENCY_MS });
try {
  const urls = Array.from({ length: FILES }, (_, i) => server.url(`/gen/photo-${i}.jpg?bytes=${BYTES}`));
  process.stdout.write(
    `imgdl demo: ${FILES} images of ${formatBytes(BYTES)} from ${server.origin}, ${LATENCY_MS} ms before each response\n\n`,
  );
  const rows: RunSummary[] = [];
  for (const mode of ['sequential', 'concurrent'] as const) {
    process.stdout.write(`  running ${mode}...\n`);
    rows.push(await run(mode, urls));
  }
  const base = rows[0]!.wallMs;
  process.stdout.write('\n  mode         conc  ok   wall      files/s  p50      speedup\n');
  for (const s of rows) {
    process.stdout.write(
      `  ${s.mode.padEnd(12)} ${String(s.concurrency).padEnd(5)} ${String(s.ok).padEnd(4)} ` +
        `${formatDuration(s.wallMs).padEnd(9)} ${String(s.filesPerSec).padEnd(8)} ${formatDuration(s.p50Ms).padEnd(8)} ` +
        `${(base / s.wallMs).toFixed(1)}×\n`,
    );
  }
  const floor = (n: number, c: number): string => formatDuration(Math.ceil(n / c) * LATENCY_MS);
  process.stdout.write(
    `\n  floors from latency alone: sequential ${floor(FILES, 1)}, concurrent ${floor(FILES, CONCURRENCY)}\n` +
      `  try it yourself: node bin/imgdl.js --help\n`,
  );
  if (rows.some((s) => s.failed > 0)) process.exitCode = 1;
} finally {
  await server.close();
}
