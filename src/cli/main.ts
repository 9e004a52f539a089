/**
 * The CLI's entry (`bin/imgdl.js` calls {@link main}): it sets the process-wide
 * V8 flags and hands the arguments to their command. Each command lives in its
 * own module, loaded only when asked for, and returns its exit code; what
 * every command does to the process (exit codes, signals, colour, stdin) is
 * in process.ts. Everything else is the library, called through `download()`.
 */
import v8 from 'node:v8';
import { runCommand } from './run.js';

/** The V8 flags the CLI sets when it starts: undici's HTTP parser stays on V8's baseline WebAssembly compiler. */
const WASM_FLAGS: readonly string[] = ['--liftoff-only', '--no-wasm-tier-up', '--no-wasm-dynamic-tiering'];

/** Runs the CLI with `args` (without node and script); resolves to the exit code. */
export async function main(args: string[] = process.argv.slice(2)): Promise<number> {
  // undici parses HTTP with a WebAssembly build of llhttp. V8's optimising tier
  // recompiles it once it is hot, which costs ~35 MB of peak RSS and no measurable
  // speed (2000 × 20 kB at -c 32: same CPU time either way). The baseline
  // compiler alone keeps a run near 60 MB. Process-wide, so set only by the CLI,
  // never by the library, and before undici compiles its parser (at the first
  // connection). All three flags, since a flag set at run time does not bring
  // the ones it implies at start: on Node 24 --liftoff-only alone still tiers up.
  // Flags for the JS heap's size (--max-semi-space-size) only work at start and
  // were not worth a launcher: see the README's "Memory" section.
  for (const flag of WASM_FLAGS) v8.setFlagsFromString(flag);
  if (args[0] === 'bench') return (await import('./bench-command.js')).benchCommand(args.slice(1));
  if (args[0] === 'report') return (await import('./report-command.js')).reportCommand(args.slice(1));
  // Loaded only for these commands: the main command never loads the queue's code (bullmq, ioredis).
  if (args[0] === 'enqueue' || args[0] === 'worker' || args[0] === 'status')
    return (await import('./cluster.js')).clusterMain(args[0], args.slice(1));
  if (args[0] === 'dashboard') return (await import('./dashboard-command.js')).dashboardCommand(args.slice(1));
  return runCommand(args);
}
