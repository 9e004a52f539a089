/**
 * The benchmark suite's fixture server, in a process of its own so that the
 * CPU and memory it uses are never counted against the tool being measured.
 * Prints its origin on the first line of stdout, then serves until stdin
 * closes or it is signalled.
 *
 *   node dist/bench/server.js [latencyMs]
 */
import { startFixtureServer } from '../fixture-server.js';

const latencyMs = Number(process.argv[2] ?? 0);
const server = await startFixtureServer({ latencyMs });
process.stdout.write(server.origin + '\n');
const stop = (): void => void server.close().then(() => process.exit(0));
process.stdin.on('end', stop).resume();
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
