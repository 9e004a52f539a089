/**
 * Shared test scaffolding: fixture servers and temp folders that are always
 * cleaned up, and a way to run the built CLI as a user would.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect } from 'vitest';
import { download } from '../src/run/download.js';
import type { Source } from '../src/input/source.js';
import { startFixtureServer, type FixtureServer, type FixtureServerOptions } from '../src/dev/fixture-server.js';
import type { ValidationError } from '../src/errors.js';
import type { Options } from '../src/options.js';
import type { ItemResult } from '../src/record/record.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fixture server on a fresh port, closed (with every connection) after the test. */
export async function serve(options: FixtureServerOptions = {}): Promise<FixtureServer> {
  const server = await startFixtureServer(options);
  cleanups.push(() => server.close());
  return server;
}

/** A fresh temp folder, removed after the test. */
export async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-test-'));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `download()` to the end and returns every record. */
export async function collect(source: Source, options: Options): Promise<ItemResult[]> {
  const results: ItemResult[] = [];
  for await (const result of download(source, options)) results.push(result);
  return results;
}

/** Every file below `dir`, as sorted relative POSIX paths. */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
}

/** The repository root. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The README from the line that starts with `start` up to the next `end` (a heading of the same level). */
export async function readmeSection(start: string, end: string): Promise<string> {
  const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
  const from = readme.indexOf(start);
  expect(from).toBeGreaterThan(-1);
  return readme.slice(from, readme.indexOf(end, from + 1));
}

/** The bodies of the fenced code blocks of `lang` in `text`. */
export function codeBlocks(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

/** What a CLI run printed and how it ended. */
export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How {@link runCli} runs the CLI. */
export interface CliOptions {
  /** What stdin carries; bytes for input that is not valid UTF-8. */
  stdin?: string | Buffer;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Leave stdin open (e.g. to stop the run with a signal while it still reads). */
  keepStdinOpen?: boolean;
  /** Called once the child runs, e.g. to send it signals or close its stdout. */
  onSpawn?: (child: ChildProcessWithoutNullStreams, output: { readonly stderr: string }) => void;
}

/** Runs the built CLI (`bin/imgdl.js`) with `args`, feeding `stdin` (or an empty stdin). */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/imgdl.js'), ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    if (options.keepStdinOpen) child.stdin.write(options.stdin ?? '');
    else child.stdin.end(options.stdin ?? '');
    options.onSpawn?.(child, {
      get stderr() {
        return stderr;
      },
    });
  });
}

/** The error `fn` throws; fails the test when it throws nothing. */
export function caught(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (error) {
    return error as ValidationError;
  }
  throw new Error('expected a throw');
}
