/**
 * Logs: pino, always to stderr so that stdout carries only `--json` output.
 * JSON lines when stderr is not a terminal (for machines), short readable
 * lines when it is (for people). The readable form is a small formatter on a
 * pino destination rather than a transport, so no worker thread starts.
 *
 * pino itself is loaded on the first line actually logged: a run with
 * nothing to say (every item ok, at the default level) never pays its ~20 ms.
 */
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import type { DestinationStream, Level, Logger } from 'pino';

/** Logger settings the CLI derives from its flags. */
export interface LogSettings {
  /** -q gives 'error', nothing gives 'warn', -v 'info', -vv 'debug'. */
  level: Level;
  /** Readable lines instead of JSON. Default: whether stderr is a TTY. */
  pretty?: boolean;
  /** Colour in readable lines; the command decides, by the rule every command shares (useColor in process.ts). */
  color: boolean;
  /** Where lines go. Default: stderr. */
  destination?: NodeJS.WritableStream;
}

/** The level for a count of `-v` flags and `-q`. */
export function levelFor(verbose: number, quiet: boolean): Level {
  if (quiet) return 'error';
  return verbose >= 2 ? 'debug' : verbose === 1 ? 'info' : 'warn';
}

const LABELS: Record<number, [string, string]> = {
  10: ['trace', '\x1b[90m'],
  20: ['debug', '\x1b[90m'],
  30: ['info', '\x1b[36m'],
  40: ['warn', '\x1b[33m'],
  50: ['error', '\x1b[31m'],
  60: ['fatal', '\x1b[41m'],
};

/** A destination that turns pino's JSON lines into `warn  message` lines. */
export function readableLines(out: NodeJS.WritableStream, color: boolean): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const entry = JSON.parse(line) as { level: number; msg?: string };
          const [label, paint] = LABELS[entry.level] ?? ['log', ''];
          const tag = label.padEnd(5);
          out.write(`${color ? `${paint}${tag}\x1b[0m` : tag} ${entry.msg ?? ''}\n`);
        } catch {
          out.write(line + '\n');
        }
      }
      done();
    },
  });
}

/** Numeric value of each level, as pino orders them. */
const LEVEL_VALUES: Readonly<Record<Level, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/**
 * A pino logger for the CLI, writing to stderr. What it returns stands in
 * for the logger until a line at or above `settings.level` is logged; only
 * then is pino loaded and made. Calls below the level cost a comparison.
 */
export function createLogger(settings: LogSettings): Logger {
  let logger: Logger | undefined;
  const real = (): Logger => (logger ??= makeLogger(settings));
  const threshold = LEVEL_VALUES[settings.level];
  const method = (level: Level) =>
    LEVEL_VALUES[level] < threshold ? () => undefined : (...args: unknown[]): void => Reflect.apply(real()[level], real(), args);
  const standIn = {
    level: settings.level,
    isLevelEnabled: (level: string) => (LEVEL_VALUES[level as Level] ?? Number.POSITIVE_INFINITY) >= threshold,
    child: (bindings: Record<string, unknown>) => real().child(bindings),
    fatal: method('fatal'),
    error: method('error'),
    warn: method('warn'),
    info: method('info'),
    debug: method('debug'),
    trace: method('trace'),
    silent: () => undefined,
  };
  // The stand-in has every method imgdl calls, not all of pino's: a caller needing more can pass a pino logger.
  return standIn as unknown as Logger;
}

function makeLogger(settings: LogSettings): Logger {
  // pino is CommonJS, so it can be loaded synchronously, from inside the first log call.
  const pino = createRequire(import.meta.url)('pino') as typeof import('pino').default;
  const stderr = settings.destination ?? process.stderr;
  const pretty = settings.pretty ?? process.stderr.isTTY === true;
  const destination = pretty ? readableLines(stderr, settings.color) : stderr;
  return pino({ level: settings.level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, destination as DestinationStream);
}
