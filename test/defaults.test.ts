import { beforeAll, describe, expect, it } from 'vitest';
import { fullParse, quickParse } from '../src/cli/args.js';
import { parseArgs } from '../src/cli/cluster.js';
import { DEFAULTS, resolveOptions, type Options } from '../src/options.js';
import { runCli } from './helpers.js';

type Key = keyof typeof DEFAULTS;

/** A flag, the option it sets, and how its value on argv becomes that option's (seconds to ms for --max-retry-after). */
const FLAGS: Array<[flag: string, option: Key, toOption?: (value: unknown) => unknown]> = [
  ['out', 'out'],
  ['mode', 'mode'],
  ['concurrency', 'concurrency'],
  ['dedupe', 'dedupe'],
  ['on-exists', 'onExists'],
  ['layout', 'layout'],
  ['timeout', 'timeoutMs'],
  ['retries', 'retries'],
  ['retry-delay', 'retryDelayMs'],
  ['max-retry-after', 'maxRetryAfterMs', (seconds) => (seconds as number) * 1000],
  ['max-size', 'maxSize'],
  ['any-type', 'anyType'],
  ['speed-time', 'speedTime'],
  ['http2', 'http2'],
  ['remote-time', 'remoteTime'],
  ['adapt', 'adapt'],
  ['location-trusted', 'locationTrusted'],
  ['insecure', 'insecure'],
  ['grace', 'graceMs'],
  ['resize-mode', 'resizeMode'],
  ['quality', 'quality'],
  ['format', 'format'],
  ['shard-size', 'shardSize'],
];

/** `--flag`'s block of a --help text: its line(s) up to the next flag. */
function helpBlock(help: string, flag: string): string {
  const blocks = help.split(/\n(?=\s+(?:-\w, )?--)/);
  const block = blocks.find((b) => new RegExp(`^\\s+(?:-\\w, )?--${flag}\\s`).test(b));
  expect(block, `--${flag} in --help`).toBeDefined();
  return block!.replace(/\s+/g, ' ');
}

/** How yargs shows a default in --help. */
const shown = (value: unknown): string => (typeof value === 'string' ? JSON.stringify(value) : String(value));

describe('the CLI and the library share their defaults (DEFAULTS in options.ts)', () => {
  const help: Record<string, string> = {};
  beforeAll(async () => {
    for (const command of ['', 'worker', 'bench']) help[command] = (await runCli(command ? [command, '--help'] : ['--help'])).stdout;
  });

  it.each(FLAGS)('--%s: a plain run passes DEFAULTS.%s when the flag is not given', async (flag, option, toOption = (v) => v) => {
    for (const argv of [await quickParse([]), await fullParse([])]) {
      const value = toOption((argv as unknown as Record<string, unknown>)[flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())]);
      expect(value).toBe(DEFAULTS[option]);
      // And the library, given nothing, resolves to what the CLI's default resolves to.
      expect(resolveOptions({ [option]: value } as Options)[option]).toEqual(resolveOptions({})[option]);
    }
  });

  it.each(FLAGS)('--%s: --help shows DEFAULTS.%s', (flag, option, toOption) => {
    const value = toOption ? DEFAULTS[option as 'maxRetryAfterMs'] / 1000 : DEFAULTS[option];
    expect(helpBlock(help['']!, flag)).toContain(`[default: ${shown(value)}]`);
  });

  it('--user-agent: --help shows the User-Agent the library sends', () => {
    expect(helpBlock(help['']!, 'user-agent')).toContain(`[default: ${DEFAULTS.userAgent}]`);
    expect(resolveOptions({}).userAgent).toBe(DEFAULTS.userAgent);
  });

  it.each([
    ['out', 'out'],
    ['concurrency', 'concurrency'],
    ['grace', 'graceMs'],
  ] as const)('imgdl worker --%s: parses to and shows DEFAULTS.%s', async (flag, option) => {
    const argv = await parseArgs('worker', ['--queue', 'redis://127.0.0.1:1']);
    expect(argv[flag]).toBe(DEFAULTS[option]);
    expect(helpBlock(help.worker!, flag)).toContain(`[default: ${shown(DEFAULTS[option])}]`);
  });

  it('imgdl bench --concurrency shows DEFAULTS.concurrency', () => {
    expect(helpBlock(help.bench!, 'concurrency')).toContain(`[default: ${DEFAULTS.concurrency}]`);
  });
});
