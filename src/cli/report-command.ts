/**
 * `imgdl report`: the manifests of several runs (the shards of one list, a
 * run and its reruns) merged into one summary.
 *
 * Exit codes ({@link EXIT}): 0 when every URL ended ok or skipped, 1 when any
 * failed, 2 for a usage error or an unreadable manifest.
 */
import { strictParser, type YargsModule } from './args.js';
import { EXIT, useColor } from './process.js';

interface ReportArgv {
  manifests: string[];
  json: boolean;
  color: boolean | undefined;
}

function reportParser(yargs: YargsModule['default'], args: string[]) {
  const y = yargs(args)
    .scriptName('imgdl report')
    .usage(
      '$0 MANIFEST... [options]\n\nMerge the manifests of several runs (the shards of one list, a run and its reruns) into one summary. ' +
        'Each URL counts once, by its last record; give the files oldest first.',
    )
    .command('$0 <manifests..>', false)
    .positional('manifests', { type: 'string', array: true, describe: 'Manifest files (--manifest of each run)' })
    .option('json', { type: 'boolean', default: false, describe: "Print the summary as JSON on stdout, in the shape of a run's --json" })
    .option('color', {
      type: 'boolean',
      defaultDescription: 'on for a terminal, off when NO_COLOR is set',
      describe: 'Colour in the summary',
    })
    .example('$0 shard-*.jsonl --json', 'One summary for every shard of a list');
  return strictParser(y, false, args);
}

/** Runs `imgdl report ...args`; resolves to the exit code. */
export async function reportCommand(args: string[]): Promise<number> {
  let argv: ReportArgv;
  try {
    const { default: yargs } = await import('yargs');
    argv = (await reportParser(yargs, args).parseAsync()) as unknown as ReportArgv;
    if ((argv as { help?: boolean }).help) return EXIT.ok;
  } catch (error) {
    process.stderr.write(`imgdl report: ${(error as Error).message}\nTry 'imgdl report --help'.\n`);
    return EXIT.usage;
  }
  const { summarizeManifests, formatManifestSummary } = await import('../record/merge.js');
  let summary;
  try {
    summary = await summarizeManifests(argv.manifests);
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'error';
    process.stderr.write(`imgdl report: cannot read manifest ${(error as { path?: string }).path ?? ''}: ${code}\n`);
    return EXIT.usage;
  }
  const color = useColor(argv.color);
  if (argv.json) process.stdout.write(JSON.stringify({ ...summary, peakRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
  else process.stderr.write(formatManifestSummary(summary, { color }) + '\n');
  return summary.failed > 0 ? EXIT.failed : EXIT.ok;
}
