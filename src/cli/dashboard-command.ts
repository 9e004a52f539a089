/**
 * `imgdl dashboard`'s shell: its flags, the refusal to serve a non-loopback
 * address without a password, and waiting for a signal (process.ts's rule, as
 * for every command). The server is cluster/dashboard.ts; main.ts loads this
 * module only for this command, so nothing else pays for bull-board or Hono.
 *
 * Exit codes ({@link EXIT}): 2 for a usage error (a non-loopback --host
 * without --auth among them), 1 when Redis cannot be reached or the port
 * cannot be bound, 130 after SIGINT and 143 after SIGTERM (how it normally stops).
 */
import { isIP } from 'node:net';
import { describeError, UsageError } from '../errors.js';
import { strictParser, type YargsModule } from './args.js';
import { EXIT, exitCodeAfter, guardOutputs, stopOnSignals } from './process.js';

interface DashboardArgv {
  queue: string;
  port: number;
  host: string;
  auth: string | undefined;
  help?: boolean;
}

function dashboardParser(yargs: YargsModule['default'], args: string[]) {
  const y = yargs(args)
    .scriptName('imgdl dashboard')
    .usage(
      "$0 --queue URL [--port 3000] [--host 127.0.0.1] [--auth USER:PASS]\n\nServe bull-board for the queue's jobs and imgdl's own counts in a browser, until Ctrl-C.",
    )
    .option('queue', {
      type: 'string',
      requiresArg: true,
      demandOption: true,
      describe: 'The queue: redis://HOST:PORT[/DB] (rediss:// for TLS)',
    })
    .option('port', { type: 'number', default: 3000, describe: 'Port to listen on (0: any free one)' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on; anything but loopback needs --auth' })
    .option('auth', { type: 'string', requiresArg: true, describe: 'USER:PASS every page and API route asks for (HTTP Basic)' })
    .example('$0 --queue redis://redis:6379', 'On this machine: http://127.0.0.1:3000/')
    .example(
      '$0 --queue redis://redis:6379 --host 0.0.0.0 --auth ops:$DASHBOARD_PASSWORD',
      'Reachable from other machines, with a password',
    );
  return strictParser(y, false, args);
}

/** Whether `host` only listens on this machine. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '::1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

/** `--auth USER:PASS` split at its first colon. Throws {@link UsageError}. */
export function parseAuth(text: string): { username: string; password: string } {
  const colon = text.indexOf(':');
  if (colon < 1 || colon === text.length - 1) throw new UsageError('--auth takes USER:PASS, both non-empty');
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Parses and checks `imgdl dashboard`'s arguments as the command would, without
 * connecting; undefined after --help. Throws {@link UsageError}. The README's commands are checked with it.
 */
export async function parseDashboard(
  args: string[],
): Promise<{ argv: DashboardArgv; auth: { username: string; password: string } | undefined } | undefined> {
  const { default: yargs } = await import('yargs');
  const argv = (await dashboardParser(yargs, args).parseAsync()) as unknown as DashboardArgv;
  if (argv.help) return undefined;
  if (!Number.isInteger(argv.port) || argv.port < 0 || argv.port > 65535)
    throw new UsageError(`--port must be an integer from 0 to 65535, got ${argv.port}`);
  const auth = argv.auth === undefined ? undefined : parseAuth(argv.auth);
  if (!isLoopback(argv.host) && auth === undefined) {
    throw new UsageError(
      `refusing to serve on ${argv.host} without --auth USER:PASS: anyone who reaches that address could read the jobs (URLs, and headers that may hold secrets) and retry or remove them. Add --auth, or keep the default loopback --host 127.0.0.1 and reach it through an SSH tunnel`,
    );
  }
  return { argv, auth };
}

/** Runs `imgdl dashboard ...args`; resolves to the exit code. */
export async function dashboardCommand(args: string[]): Promise<number> {
  let parsed: Awaited<ReturnType<typeof parseDashboard>>;
  try {
    parsed = await parseDashboard(args);
    if (parsed === undefined) return EXIT.ok;
  } catch (error) {
    process.stderr.write(`imgdl dashboard: ${(error as Error).message}\nTry 'imgdl dashboard --help'.\n`);
    return EXIT.usage;
  }
  const { argv, auth } = parsed;
  guardOutputs();
  const stop = new AbortController();
  const stopping = stopOnSignals(stop, () => undefined);
  try {
    const { startDashboard, BOARD_PATH } = await import('../cluster/dashboard.js');
    let dashboard;
    try {
      dashboard = await startDashboard({ queue: argv.queue, port: argv.port, host: argv.host, auth });
    } catch (error) {
      const usage = (error as { code?: string }).code === 'INVALID_QUEUE_URL';
      process.stderr.write(`imgdl dashboard: ${describeError(error)}\n`);
      return usage ? EXIT.usage : EXIT.failed;
    }
    process.stderr.write(
      `imgdl dashboard: serving ${dashboard.url}/ (bull-board at ${dashboard.url}${BOARD_PATH}/)${auth ? ', asking for --auth' : ''}; Ctrl-C to stop\n`,
    );
    if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
    await dashboard.close();
  } finally {
    stopping.dispose();
  }
  return stopping.by === undefined ? EXIT.ok : exitCodeAfter(stopping.by);
}
