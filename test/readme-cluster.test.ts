/**
 * The README's "Many machines" section: its Kubernetes manifests parse as
 * YAML with the objects a reader expects, and every imgdl command in it,
 * plain or in a manifest, is one imgdl's own parser accepts. So the section
 * cannot rot as flags change.
 */
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { COMMANDS, parseArgs, type Command } from '../src/cli/cluster.js';
import { parseDashboard } from '../src/cli/dashboard-command.js';
import { codeBlocks, readmeSection } from './helpers.js';

/** The README section these tests read. */
const manyMachines = (): Promise<string> => readmeSection('\n## Many machines\n', '\n## ');

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    replicas?: number;
    template?: { spec: { containers: Container[]; restartPolicy?: string; terminationGracePeriodSeconds?: number } };
  };
}

/** `imgdl <command> ...` must parse as that command does. */
async function expectAccepted(args: readonly string[]): Promise<void> {
  const [command, ...rest] = args;
  if (command === 'dashboard') {
    await expect(parseDashboard(rest.map((arg) => arg.replace(/^(\w+:)"\$\w+"$/, '$1secret'))), args.join(' ')).resolves.toBeTypeOf(
      'object',
    );
    return;
  }
  expect(COMMANDS).toContain(command);
  await expect(parseArgs(command as Command, rest), args.join(' ')).resolves.toBeTypeOf('object');
}

describe("the README's Many machines section", () => {
  it('has Kubernetes manifests that parse: a Redis that never evicts, a Deployment of workers, a Job that enqueues', async () => {
    const objects: K8sObject[] = [];
    for (const block of codeBlocks(await manyMachines(), 'yaml')) {
      for (const doc of parseAllDocuments(block)) {
        expect(doc.errors).toEqual([]);
        objects.push(doc.toJS() as K8sObject);
      }
    }
    const byKind = (kind: string): K8sObject[] => objects.filter((o) => o.kind === kind);
    expect(objects.every((o) => typeof o.apiVersion === 'string' && typeof o.metadata?.name === 'string')).toBe(true);

    const redis = byKind('StatefulSet')[0]!.spec.template!.spec.containers[0]!;
    expect(redis.image).toMatch(/^redis:/);
    expect(redis.args!.join(' ')).toContain('--maxmemory-policy noeviction');
    expect(redis.args!.join(' ')).toContain('--appendonly yes');
    const service = byKind('Service')[0]!;
    const queueUrl = `redis://${service.metadata.name}:6379`;

    const [workers] = byKind('Deployment');
    expect(workers!.spec.replicas).toBeGreaterThan(1);
    const worker = workers!.spec.template!.spec.containers[0]!;
    expect(worker.command).toEqual(['imgdl']);
    expect(worker.args!.slice(0, 3)).toEqual(['worker', '--queue', queueUrl]);
    await expectAccepted(worker.args!);
    // The pod's grace outlasts the worker's own, so SIGTERM can hand the batch back before the kill.
    const grace = Number(worker.args![worker.args!.indexOf('--grace') + 1]);
    expect(workers!.spec.template!.spec.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(grace);

    const [job] = byKind('Job');
    const enqueue = job!.spec.template!.spec.containers[0]!;
    expect(job!.spec.template!.spec.restartPolicy).toBe('Never');
    expect(enqueue.command).toEqual(['imgdl']);
    expect(enqueue.args!.slice(0, 3)).toEqual(['enqueue', '--queue', queueUrl]);
    await expectAccepted(enqueue.args!);
  });

  it('is checked by a parser that refuses what the command refuses', async () => {
    await expect(parseArgs('worker', ['--queue', 'redis://h:6379', '--no-such-flag'])).rejects.toThrow('Unknown argument');
    await expect(parseArgs('enqueue', ['-i', 'urls.txt'])).rejects.toThrow('Missing required argument: queue');
  });

  it('has plain commands that imgdl accepts', async () => {
    const commands = codeBlocks(await manyMachines(), 'sh')
      .flatMap((block) => block.split('\n'))
      .map((line) => line.replace(/\s+#.*$/, '').trim())
      .filter((line) => line.startsWith('imgdl '));
    expect(commands.map((c) => c.split(/\s+/)[1])).toEqual(['enqueue', 'worker', 'status', 'dashboard', 'dashboard']);
    for (const command of commands) await expectAccepted(command.split(/\s+/).slice(1));
  });
});
