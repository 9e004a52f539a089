/**
 * The commands a scenario compares: imgdl's, the bare-undici reference
 * (reference.ts), and the peer tools that are installed (curl, wget2,
 * aria2c), each given the list in the format it reads.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI_PATH } from '../cli/bench.js';
import type { Contender } from './measure.js';

const REFERENCE_PATH = fileURLToPath(new URL('./reference.js', import.meta.url));
/** The reference's row name. */
export const REFERENCE = 'bare undici (reference)';

/** Whether `tool` is on the PATH. */
export function installed(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** Writes the list in the formats each tool reads; names are `N.jpg` everywhere. */
export async function writeLists(
  dir: string,
  urls: readonly string[],
): Promise<{ plain: string; curl: string; aria2: string; named: string }> {
  const names = urls.map((_, i) => `${i + 1}.jpg`);
  const files = {
    plain: path.join(dir, 'urls.txt'),
    named: path.join(dir, 'named.txt'),
    curl: path.join(dir, 'curl.cfg'),
    aria2: path.join(dir, 'aria2.txt'),
  };
  await fs.writeFile(files.plain, urls.join('\n') + '\n');
  await fs.writeFile(files.named, urls.map((u, i) => `${u} ${names[i]}`).join('\n') + '\n');
  await fs.writeFile(files.curl, urls.map((u, i) => `url = "${u}"\noutput = "${names[i]}"\n`).join(''));
  await fs.writeFile(files.aria2, urls.map((u, i) => `${u}\n  out=${names[i]}\n`).join(''));
  return files;
}

/** The Node binary running the suite, which runs every Node command too. */
export const node = process.execPath;

/** The peer tools installed here, each downloading the list `c` at a time. */
export function peers(lists: { plain: string; curl: string; aria2: string }, c: number): Contender[] {
  const found: Contender[] = [];
  if (installed('curl')) {
    found.push({
      name: c === 1 ? 'curl (sequential)' : `curl -Z --parallel-max ${c}`,
      argv: (out) => [
        'curl',
        '-s',
        '--no-progress-meter',
        ...(c === 1 ? [] : ['-Z', '--parallel-max', String(c)]),
        '--output-dir',
        out,
        '-K',
        lists.curl,
      ],
      saves: true,
      peer: true,
    });
  }
  if (installed('wget2')) {
    found.push({
      name: `wget2 --max-threads=${c}`,
      argv: (out) => ['wget2', '-q', '--no-config', `--max-threads=${c}`, '-P', out, '-i', lists.plain],
      saves: true,
      peer: true,
    });
  }
  if (installed('aria2c')) {
    found.push({
      name: `aria2c -j ${c}`,
      argv: (out) => [
        'aria2c',
        '-q',
        '-j',
        String(c),
        '-d',
        out,
        '-i',
        lists.aria2,
        // Defaults that would measure something else: preallocation, a session summary, 5 connections per server.
        '--file-allocation=none',
        '--max-connection-per-server=16',
        '--auto-file-renaming=false',
        '--summary-interval=0',
      ],
      saves: true,
      peer: true,
    });
  }
  return found;
}

/** An imgdl command (this build's CLI, or `cli`) over `list`, quiet. */
export function imgdl(name: string, list: string, args: string[], cli: string = CLI_PATH): Contender {
  return { name, argv: (out) => [node, cli, '-i', list, '-o', out, '-q', ...args], saves: true };
}

/** The bare-undici reference over `list`, `c` at a time. */
export function reference(list: string, c: number): Contender {
  return { name: REFERENCE, argv: (out) => [node, REFERENCE_PATH, list, out, String(c)], saves: true };
}
