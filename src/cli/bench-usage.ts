/**
 * Preloaded (`node --import`) into each run `imgdl bench --sweep` measures:
 * when the process exits, writes its CPU time and peak RSS (all threads, as
 * the kernel counts them) as JSON to the file named by IMGDL_BENCH_USAGE.
 * A run's own `--json` summary has no CPU figure, and Node gives a parent
 * none of its child's resource usage.
 */
import fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const target = process.env['IMGDL_BENCH_USAGE'];
// Worker threads load preloads too; only the process's own exit counts.
if (target !== undefined && isMainThread) {
  process.on('exit', () => {
    const usage = process.resourceUsage();
    fs.writeFileSync(target, JSON.stringify({ cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, maxRssBytes: usage.maxRSS * 1024 }));
  });
}
