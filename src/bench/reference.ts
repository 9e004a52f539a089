/**
 * The bench suite's bare-undici reference: the smallest loop that downloads a
 * list with undici and writes the same files imgdl writes (`N.jpg` for the
 * N-th URL), with none of imgdl's guarantees (no temp file and rename, no
 * sniffing, no retries, no size limit). It is the practical limit for Node
 * on the machine, so imgdl's time over it is what imgdl's own work costs.
 *
 *   node dist/bench/reference.js LIST OUT CONCURRENCY
 *
 * `Agent.dispatch` with a handler and synchronous file calls: the cheapest
 * way to drive undici and the file system found when this was written
 * (`request()` with a Readable body and `fs/promises` costs several times
 * the CPU per file).
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Agent, type Dispatcher } from 'undici';

const [list, out, limit] = process.argv.slice(2);
if (list === undefined || out === undefined) {
  process.stderr.write('usage: node reference.js LIST OUT [CONCURRENCY]\n');
  process.exit(2);
}
const concurrency = Number(limit ?? 16);
const urls = readFileSync(list, 'utf8').split('\n').filter(Boolean);
const agent = new Agent({ keepAliveTimeout: 10_000 });
let next = 0;
let active = 0;
let failed = 0;

/** Saves one response body to `file`, chunk by chunk as it arrives. */
class SaveHandler implements Dispatcher.DispatchHandler {
  fd = -1;
  constructor(readonly file: string) {}
  // undici takes a handler for its current interface only when it has this method.
  onRequestStart(): void {}
  onResponseStart(controller: Dispatcher.DispatchController, status: number): void {
    if (status !== 200) return controller.abort(new Error(`HTTP ${status}`));
    this.fd = openSync(this.file, 'w');
  }
  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    writeSync(this.fd, chunk);
  }
  onResponseEnd(): void {
    closeSync(this.fd);
    finish();
  }
  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.fd !== -1) closeSync(this.fd);
    process.stderr.write(`${this.file}: ${error.message}\n`);
    failed++;
    finish();
  }
}

function finish(): void {
  active--;
  fill();
}

function fill(): void {
  while (active < concurrency && next < urls.length) {
    const url = new URL(urls[next]!);
    next++;
    active++;
    agent.dispatch({ origin: url.origin, path: url.pathname + url.search, method: 'GET' }, new SaveHandler(path.join(out!, `${next}.jpg`)));
  }
  if (active === 0) {
    void agent.close();
    process.exitCode = failed > 0 ? 1 : 0;
  }
}

fill();
