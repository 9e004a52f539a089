/**
 * How a tar shard keeps one writer in `workers` mode: each worker thread
 * builds its samples (the held body, its sha256 and JSON) and forwards them
 * over a `MessagePort` to the main thread, whose {@link ShardWriter} appends
 * them; the image's buffer is transferred, not copied. The thread's commit
 * waits for the main thread's answer, so a sample is in its shard before
 * its record comes back and settles the row.
 */
import type { MessagePort } from 'node:worker_threads';
import { ImgdlError, toErrorRecord, type ErrorRecord } from '../errors.js';
import type { Member } from './shard-writer.js';

/** Keeps a built sample and resolves with the name its record gives it (`00000.tar/000000123.jpg`). */
export interface SampleKeeper {
  keep(position: number, members: readonly Member[], sha256: string): Promise<string>;
}

/** A sample on its way to the main thread. */
interface SampleMessage {
  id: number;
  position: number;
  members: Array<{ name: string; body: Uint8Array }>;
  sha256: string;
}

/** The main thread's answer: the record's name, or why the sample could not be kept. */
type SampleReply = { id: number; path: string } | { id: number; error: ErrorRecord };

/** Worker thread: a keeper that forwards each sample to the main thread and waits for its answer. */
export class PortKeeper implements SampleKeeper {
  readonly #port: MessagePort;
  readonly #waiting = new Map<number, { resolve: (path: string) => void; reject: (error: ImgdlError) => void }>();
  #next = 0;

  constructor(port: MessagePort) {
    this.#port = port;
    port.on('message', (reply: SampleReply) => {
      const waiting = this.#waiting.get(reply.id);
      this.#waiting.delete(reply.id);
      if ('path' in reply) waiting?.resolve(reply.path);
      else waiting?.reject(new ImgdlError(reply.error.code, reply.error.message));
    });
    // The items waiting for answers keep the thread busy; the port alone must not keep it alive.
    port.unref();
  }

  keep(position: number, members: readonly Member[], sha256: string): Promise<string> {
    const id = this.#next++;
    // A body with a buffer of its own (the image) is moved as it is; one that shares Node's pool of small
    // buffers (the JSON) is copied out first, since cloning a view would clone the whole pool.
    const own = members.map(({ name, body }) => ({
      name,
      body: body.byteOffset === 0 && body.buffer.byteLength === body.length ? body : new Uint8Array(body),
    }));
    const message: SampleMessage = { id, position, members: own, sha256 };
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#port.postMessage(
        message,
        own.map(({ body }) => body.buffer as ArrayBuffer),
      );
    });
  }
}

/** Main thread: keeps the samples one worker thread forwards on `port` with `keeper`, and answers each. */
export function serveSamples(port: MessagePort, keeper: SampleKeeper): void {
  port.on('message', ({ id, position, members, sha256 }: SampleMessage) => {
    const bodies = members.map(({ name, body }) => ({ name, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) }));
    keeper.keep(position, bodies, sha256).then(
      (path) => port.postMessage({ id, path } satisfies SampleReply),
      (error: unknown) => port.postMessage({ id, error: toErrorRecord(error) } satisfies SampleReply),
    );
  });
  port.unref();
}
