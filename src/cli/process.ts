/**
 * What every command does to the process, written once so that run, bench,
 * report, enqueue, worker and status behave alike: their exit codes, what a
 * signal does, when output is coloured, when stdin is read, and how a closed
 * stdout is taken. Only the CLI imports this module; the library never exits,
 * listens for signals or looks at a terminal.
 */
import { UsageError } from '../errors.js';
import type { OpenedInput } from './inputs.js';

/**
 * Every exit code imgdl uses. Each command documents which of these it
 * returns; after a signal it is 128 + the signal's number, as shells report it.
 */
export const EXIT = {
  /** Every item ok or skipped (an empty list included); a command that did what it was asked. */
  ok: 0,
  /** An item failed, or the run could not go on (e.g. the manifest's disk is full, Redis is unreachable). */
  failed: 1,
  /** A usage error: a bad flag or value, an unreadable input. */
  usage: 2,
  /** Stopped by SIGINT (Ctrl-C). */
  SIGINT: 130,
  /** Stopped by SIGTERM. */
  SIGTERM: 143,
} as const;

/** The signals that stop a command gently, then at once. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** The exit code after `signal` stopped a command. */
export function exitCodeAfter(signal: NodeJS.Signals): number {
  return signal === 'SIGTERM' ? EXIT.SIGTERM : EXIT.SIGINT;
}

/** `--color`/`--no-color` when given; otherwise colour only for a terminal, and never when NO_COLOR is set (no-color.org). */
export function useColor(flag: boolean | undefined): boolean {
  return flag ?? (process.stderr.isTTY === true && !('NO_COLOR' in process.env));
}

/**
 * The inputs to read: those given, or stdin when neither a URL nor an input
 * is given and stdin is not a terminal. Throws {@link UsageError} otherwise,
 * since waiting for someone to type a list would look like a hang.
 */
export function inputNames(urls: readonly string[], inputs: readonly string[] | undefined): string[] {
  const names = [...(inputs ?? [])];
  if (urls.length === 0 && names.length === 0) {
    if (process.stdin.isTTY) throw new UsageError('no URLs: give them as arguments, with -i FILE, or pipe a list on stdin');
    names.push('-');
  }
  return names;
}

/**
 * Lets the process end once a command is done: stdin that was read from, or
 * left half read by a command that stopped `early`, would keep it alive.
 */
export function releaseStdin(inputs: readonly OpenedInput[], early = false): void {
  if (early || inputs.some((input) => input.name === 'stdin')) process.stdin.destroy();
}

/** How a command stopped by signals: which stopped it first, if any. */
export interface SignalStop {
  /** The first SIGINT or SIGTERM received, if any. */
  readonly by: NodeJS.Signals | undefined;
  /** Stops listening; the command's own exit code decides from there. */
  dispose(): void;
}

/**
 * The first SIGINT or SIGTERM stops a command gently: `onFirst` says what
 * happens (a log line), then `controller` aborts and the command winds down in
 * its own time. A second one exits at once with {@link exitCodeAfter}, saying
 * `again(signal)` on stderr first, for whoever is impatient (or a supervisor's
 * second SIGTERM): what is left behind must be safe to find, which each
 * command's message explains.
 */
export function stopOnSignals(
  controller: AbortController,
  onFirst: (signal: NodeJS.Signals) => void,
  again?: (signal: NodeJS.Signals) => string,
): SignalStop {
  const state = {
    by: undefined as NodeJS.Signals | undefined,
    dispose(): void {
      for (const name of STOP_SIGNALS) process.off(name, onSignal);
    },
  };
  function onSignal(signal: NodeJS.Signals): void {
    if (state.by !== undefined) {
      if (again) process.stderr.write(again(signal));
      process.exit(exitCodeAfter(signal));
    }
    state.by = signal;
    onFirst(signal);
    controller.abort(new Error(signal));
  }
  for (const name of STOP_SIGNALS) process.on(name, onSignal);
  return state;
}

/**
 * A reader that goes away (`imgdl --json | head -c1`) makes writes to stdout
 * fail with EPIPE, emitted as an error event that would otherwise crash the
 * process with a stack trace. Say so once on stderr and let the command end.
 */
export function guardOutputs(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.stderr.write('imgdl: stdout was closed by its reader (EPIPE); the summary was not printed\n');
  });
  // Nowhere left to report an error about stderr itself.
  process.stderr.on('error', () => undefined);
}
