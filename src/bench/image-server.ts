/**
 * The `resize` scenario's fixture server, in a process of its own as the
 * suite's others are: serves the JPEGs of one folder (named `0.jpg`,
 * `1.jpg`, …) at `/img/N.jpg`, image N modulo their count, so that a long
 * list of distinct URLs needs only a few files. Prints its origin on the
 * first line of stdout, then serves until stdin closes.
 *
 *   node dist/bench/image-server.js FOLDER
 */
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

const folder = process.argv[2] ?? '.';
const names = (await readdir(folder)).filter((name) => /^\d+\.jpg$/.test(name));
const images = await Promise.all(names.map((_, i) => readFile(path.join(folder, `${i}.jpg`))));

const server = createServer((req, res) => {
  const match = /^\/img\/(\d+)\.jpg$/.exec(req.url ?? '');
  const image = match && images.length > 0 ? images[Number(match[1]) % images.length] : undefined;
  if (image === undefined) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': image.length }).end(image);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
const stop = (): void => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.stdin.resume().on('end', stop);
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
