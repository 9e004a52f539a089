/**
 * Logs: pino, always to stderr so that stdout carries only `--json` output.
 * JSON lines when stderr is not a terminal (for machines), short readable
 * lines when it is (for people). The readable form is a small formatter on a
 * pino destination rather than a transport, so no worker thread starts.
 */
import { Writable } from 'node:stream';
import pino, { type DestinationStream, type Level, type Logger } from 'pino';

/** Logger settings the CLI derives from its flags. */
export interface LogSettings {
  /** -q gives 'error', nothing gives 'warn', -v 'info', -vv 'debug'. */
  level: Level;
  /** Readable lines instead of JSON. Default: whether stderr is a TTY. */
  pretty?: boolean;
  /** Colour in readable lines. Default: off when NO_COLOR is set. */
  color?: boolean;
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

/** A pino logger for the CLI, writing to stderr. */
export function createLogger(settings: LogSettings): Logger {
  const stderr = settings.destination ?? process.stderr;
  const pretty = settings.pretty ?? process.stderr.isTTY === true;
  const color = settings.color ?? (pretty && !('NO_COLOR' in process.env));
  const destination = pretty ? readableLines(stderr, color) : stderr;
  return pino({ level: settings.level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, destination as DestinationStream);
}
