/**
 * The dashboard's own page: the queue's items and jobs as `imgdl status`
 * counts them, the hosts a server has paused, and a link to bull-board.
 * Plain HTML with no script; it reloads itself every few seconds.
 */
import type { Redis } from 'ioredis';
import { formatBytes } from '../record/run-report.js';
import type { ClusterStatus } from './status.js';

/** A host a server asked the queue to pause (429 or 503 with Retry-After), and for how much longer. */
export interface PausedHost {
  host: string;
  secondsLeft: number;
}

/**
 * The hosts paused now, from the queue's host books (cluster/host-gate.ts:
 * `imgdl:<queue>:pauses`, host → end on Redis's clock in ms). These are the
 * only per-host figures the queue keeps; items are not counted per host.
 */
export async function pausedHosts(client: Redis, queueName: string): Promise<PausedHost[]> {
  const [[, time], [, entries]] = (await client.multi().time().zrange(`imgdl:${queueName}:pauses`, 0, -1, 'WITHSCORES').exec()) as [
    [unknown, [string, string]],
    [unknown, string[]],
  ];
  const now = Number(time[0]) * 1000 + Number(time[1]) / 1000;
  const hosts: PausedHost[] = [];
  for (let i = 0; i + 1 < entries.length; i += 2) {
    const left = (Number(entries[i + 1]) - now) / 1000;
    if (left > 0) hosts.push({ host: entries[i]!, secondsLeft: Math.ceil(left) });
  }
  return hosts;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/** Refresh period of the page, in seconds. */
export const REFRESH_SECONDS = 5;

/** The page, for `queue` (shown without credentials) with bull-board at `board`. */
export function countsPage(s: ClusterStatus, paused: readonly PausedHost[], where: { queue: string; board: string }): string {
  const shown = where.queue.replace(/\/\/[^@/]*@/, '//');
  const count = (id: string, label: string, value: number | string): string =>
    `<div class="count"><dt>${label}</dt><dd id="${id}">${value}</dd></div>`;
  const errors = Object.entries(s.errors)
    .sort(([, a], [, b]) => b.count - a.count)
    .map(([code, e]) => `<tr><td>${esc(code)}</td><td>${e.count}</td><td>${esc(e.example)}</td></tr>`)
    .join('');
  const hosts =
    paused.length === 0
      ? '<p id="hosts">No host is paused now. The queue keeps no item counts per host (only each host’s limits and pauses, while they hold), so none are shown.</p>'
      : `<table id="hosts"><thead><tr><th>paused host</th><th>seconds left</th></tr></thead><tbody>${paused.map((h) => `<tr><td>${esc(h.host)}</td><td>${h.secondsLeft}</td></tr>`).join('')}</tbody></table><p>The queue keeps no item counts per host, so none are shown.</p>`;
  const j = s.jobs;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${REFRESH_SECONDS}"><link rel="icon" href="data:,">
<title>imgdl dashboard</title><style>body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:900px;padding:0 1rem}
dl{display:flex;flex-wrap:wrap;gap:1rem}.count{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;min-width:7rem}dt{color:#555;font-size:.85rem}dd{margin:0;font-size:1.6rem;font-variant-numeric:tabular-nums}
table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:left}</style></head>
<body><h1>imgdl: <span id="queue">${esc(shown)}</span></h1>
<p>Items across all workers, as <code>imgdl status</code> counts them; refreshed every ${REFRESH_SECONDS} s. Jobs one by one: <a id="board" href="${esc(where.board)}">bull-board</a>.</p>
<h2>Items</h2><dl>${count('ok', 'ok', s.ok)}${count('failed', 'failed', s.failed)}${count('skipped', 'skipped', s.skipped)}${count('pending', 'pending', s.pending)}${count('total', 'total', s.total)}</dl>
<p>${formatBytes(s.bytes)} saved · ${s.filesPerSec} files/s · ${s.workers} worker${s.workers === 1 ? '' : 's'} connected${s.duplicates > 0 ? ` · ${s.duplicates} duplicate listings skipped` : ''}</p>
<h2>Jobs (batches)</h2><dl>${count('jobs-waiting', 'waiting', j.waiting)}${count('jobs-active', 'active', j.active)}${count('jobs-delayed', 'delayed', j.delayed)}${count('jobs-completed', 'completed', j.completed)}${count('jobs-failed', 'failed', j.failed)}</dl>
${errors ? `<h2>Failures by code</h2><table id="errors"><thead><tr><th>code</th><th>items</th><th>example</th></tr></thead><tbody>${errors}</tbody></table>` : ''}
<h2>Hosts</h2>${hosts}
</body></html>
`;
}
