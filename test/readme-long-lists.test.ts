/**
 * The README's `--shard K/N` examples (a Kubernetes Indexed Job, a Slurm
 * array, GNU parallel): each, with its index filled in as the scheduler
 * fills it, is a command imgdl accepts, and together the indices cover the
 * shards from 0 to N-1. So the examples cannot rot as flags change.
 */
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { fullParse } from '../src/cli/args.js';
import { parseShard, resolveOptions } from '../src/options.js';
import { codeBlocks, readmeSection } from './helpers.js';

/** The README section these tests read. */
const shardSection = (): Promise<string> => readmeSection('\n#### `--shard K/N`', '\n#### ');

/** The arguments after `imgdl` in a shell command line, quotes removed (the examples quote only whole words). */
function imgdlArgs(line: string): string[] {
  const words = line.replace(/\\\n/g, ' ').replace(/"/g, '').trim().split(/\s+/);
  return words.slice(words.indexOf('imgdl') + 1);
}

/** Parses a command as the CLI does, and checks its --shard as a run would; resolves to the shard. */
async function accepted(args: string[]): Promise<{ index: number; count: number }> {
  const argv = (await fullParse(args)) as unknown as { shard: string; layout: string };
  expect(argv.layout).toBe('sharded');
  resolveOptions({ shard: argv.shard, layout: 'sharded' });
  return parseShard(argv.shard);
}

describe("the README's --shard examples", () => {
  it('has a Kubernetes Indexed Job whose pods take every shard once', async () => {
    const [block] = codeBlocks(await shardSection(), 'yaml');
    const docs = parseAllDocuments(block!);
    expect(docs.map((d) => d.errors)).toEqual([[]]);
    const job = docs[0]!.toJS() as {
      kind: string;
      spec: {
        completionMode: string;
        completions: number;
        template: { spec: { containers: Array<{ command: string[]; args: string[] }> } };
      };
    };
    expect(job.kind).toBe('Job');
    expect(job.spec.completionMode).toBe('Indexed');
    const container = job.spec.template.spec.containers[0]!;
    expect(container.command).toEqual(['sh', '-c']);
    const shards = [];
    for (let index = 0; index < job.spec.completions; index++) {
      // Kubernetes sets JOB_COMPLETION_INDEX from 0 to completions - 1.
      shards.push(await accepted(imgdlArgs(container.args[0]!.replaceAll('$JOB_COMPLETION_INDEX', String(index)))));
    }
    expect(shards).toEqual(Array.from({ length: job.spec.completions }, (_, index) => ({ index, count: job.spec.completions })));
  });

  it('has a Slurm array and a GNU parallel line whose tasks take every shard once', async () => {
    const [slurm, parallel] = codeBlocks(await shardSection(), 'sh');
    const range = /--array=(\d+)-(\d+)/.exec(slurm!)!;
    const [first, last] = [Number(range[1]), Number(range[2])];
    const slurmShards = [];
    for (let task = first; task <= last; task++) {
      const line = slurm!
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .join('\n');
      const filled = line.replaceAll('$SLURM_ARRAY_TASK_ID', String(task)).replaceAll('$SLURM_ARRAY_TASK_COUNT', String(last - first + 1));
      slurmShards.push(await accepted(imgdlArgs(filled)));
    }
    expect(slurmShards.map((s) => s.index)).toEqual(Array.from({ length: last - first + 1 }, (_, i) => i));

    const seq = /\$\(seq (\d+) (\d+)\)/.exec(parallel!)!;
    const command = parallel!.slice(0, parallel!.indexOf(':::')).replace(/^parallel\s+-j\s+\d+\s+/, '');
    const parallelShards = [];
    for (let value = Number(seq[1]); value <= Number(seq[2]); value++)
      parallelShards.push(await accepted(imgdlArgs(command.replaceAll('{}', String(value)))));
    expect(parallelShards.map((s) => `${s.index}/${s.count}`)).toEqual(
      Array.from({ length: parallelShards.length }, (_, i) => `${i}/${parallelShards.length}`),
    );
  });
});
