/**
 * The benchmark suite's fixture server, in a process of its own so that the
 * CPU and memory it uses are never counted against the tool being measured.
 * Prints its origin on the first line of stdout, then serves until stdin
 * closes or it is signalled. Each line `stats` on stdin is answered with one
 * JSON line on stdout: `{ requests, firstRequestAt }`, and `reset` zeroes them.
 *
 *   node dist/bench/server.js [latencyMs]
 */
import { startFixtureServer } from '../fixture-server.js';

const latencyMs = Number(process.argv[2] ?? 0);
const server = await startFixtureServer({ latencyMs });
process.stdout.write(server.origin + '\n');
const stop = (): void => void server.close().then(() => process.exit(0));
let pending = '';
process.stdin.setEncoding('utf8').on('data', (text: string) => {
  pending += text;
  for (let lf = pending.indexOf('\n'); lf !== -1; lf = pending.indexOf('\n')) {
    const command = pending.slice(0, lf).trim();
    pending = pending.slice(lf + 1);
    if (command === 'reset') server.stats.reset();
    if (command === 'stats') process.stdout.write(JSON.stringify({ requests: server.stats.requests, firstRequestAt: server.stats.firstRequestAt ?? null }) + '\n');
  }
});
process.stdin.on('end', stop);
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
