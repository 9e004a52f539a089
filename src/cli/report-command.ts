/**
 * `imgdl report`: the manifests of several runs (the shards of one list, a
 * run and its reruns) merged into one summary; or, given a folder, the
 * stats of the WebDataset shards in it summed.
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
      '$0 MANIFEST... [options]\n$0 DIR [options]\n\nMerge the manifests of several runs (the shards of one list, a run and its reruns) into one summary. ' +
        'Each URL counts once, by its last record; give the files oldest first. ' +
        "Given a folder of --format webdataset output, sum its shards' NNNNN_stats.json instead.",
    )
    .command('$0 <manifests..>', false)
    .positional('manifests', { type: 'string', array: true, describe: 'Manifest files (--manifest of each run), or one folder of shards' })
    .option('json', { type: 'boolean', default: false, describe: "Print the summary as JSON on stdout, in the shape of a run's --json" })
    .option('color', {
      type: 'boolean',
      defaultDescription: 'on for a terminal, off when NO_COLOR is set',
      describe: 'Colour in the summary',
    })
    .example('$0 shard-*.jsonl --json', 'One summary for every shard of a list')
    .example('$0 dataset/', 'One summary for the tar shards in dataset/ (their _stats.json)');
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
  const shards = await import('../record/shard-report.js');
  if (argv.manifests.length === 1 && (await shards.isFolder(argv.manifests[0]!))) return shardReport(argv, argv.manifests[0]!, shards);
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

/** `imgdl report DIR`: the shard stats in DIR, summed. */
async function shardReport(argv: ReportArgv, dir: string, shards: typeof import('../record/shard-report.js')): Promise<number> {
  let summary;
  try {
    summary = await shards.summarizeShardStats(dir);
  } catch (error) {
    process.stderr.write(`imgdl report: cannot read ${dir}: ${(error as Error).message}\n`);
    return EXIT.usage;
  }
  if (summary.shards === 0) {
    process.stderr.write(`imgdl report: ${dir} holds no complete shard (no NNNNN_stats.json)\n`);
    return EXIT.usage;
  }
  if (argv.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else process.stderr.write(shards.formatShardSummary(summary, { color: useColor(argv.color) }) + '\n');
  return summary.failed > 0 ? EXIT.failed : EXIT.ok;
}
