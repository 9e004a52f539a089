// Download the URLs given as arguments into ./photos, with a progress count
// on stderr, stopping cleanly on Ctrl-C.
import { download } from 'imgdl';

const controller = new AbortController();
process.once('SIGINT', () => controller.abort());

const records = download(process.argv.slice(2), {
  out: 'photos',
  concurrency: 8,
  userAgent: 'my-gallery/1.0',
  signal: controller.signal,
  onProgress: (p) => process.stderr.write(`\r${p.done}/${p.listComplete ? p.read : '?'} done, ${p.bytes} bytes`),
});

let failed = 0;
for await (const record of records) {
  if (record.status === 'failed') failed++;
  console.log(record.status, record.path ?? record.error?.code, record.url);
}
process.exitCode = failed > 0 ? 1 : 0;
