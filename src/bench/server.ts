/**
 * The benchmark suite's fixture server, in a process of its own so that the
 * CPU and memory it uses are never counted against the tool being measured.
 * Prints its origin on the first line of stdout, then serves until stdin
 * closes or it is signalled. Each line `stats` on stdin is answered with one
 * JSON line on stdout: `{ requests, firstRequestAt }`, and `reset` zeroes them.
 *
 *   node dist/bench/server.js [latencyMs]
 */
import { createInterface } from 'node:readline';
import { startFixtureServer } from '../dev/fixture-server.js';

const latencyMs = Number(process.argv[2] ?? 0);
const server = await startFixtureServer({ latencyMs });
process.stdout.write(server.origin + '\n');
const stop = (): void => void server.close().then(() => process.exit(0));
createInterface({ input: process.stdin })
  .on('line', (line) => {
    const command = line.trim();
    if (command === 'reset') server.stats.reset();
    if (command === 'stats')
      process.stdout.write(JSON.stringify({ requests: server.stats.requests, firstRequestAt: server.stats.firstRequestAt ?? null }) + '\n');
  })
  .on('close', stop);
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
