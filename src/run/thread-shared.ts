/**
 * What the threads of a `workers` run share with the main thread: the names
 * claimed this run, (with dedupe) the digests saved, and (with WebDataset
 * shards) the one writer of the shards. All live in the main thread, as in
 * the other modes; each worker reaches them over message ports it opens
 * when it starts.
 *
 * Names are claimed synchronously inside the pipeline (a name found only
 * from the response, such as a Content-Disposition filename or the extension
 * the bytes call for), so a worker asks, then blocks on a shared flag until
 * the main thread has answered; this happens only for those renamed items.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { claimsOverPort, serveClaims, type DigestClaims, type DigestRegistry } from '../names/dedupe.js';
import { serveSamples, type SampleKeeper } from '../output/sample-port.js';

/** How a name is claimed; the run's `NameRegistry` in the main thread, a proxy of it in a worker. */
export interface NameClaims {
  /** Claims a name while an item is planned, in list order; see `NameRegistry.claim`. */
  claim(relPath: string, url: string): string;
  /**
   * Claims a name the response called for (a Content-Disposition name, the
   * extension the bytes show). Absent, {@link claim} answers. A registry
   * shared between processes answers here over the network, which is why it
   * may take its time: the item is mid-flight and can wait.
   */
  claimLater?(relPath: string, url: string): Promise<string>;
}

/** The message a worker sends its parent once, to be served. */
export interface CoordinationMessage {
  imgdlCoordination: true;
  names: MessagePort;
  digests: MessagePort;
  /** Where the worker's committed samples go, for the main thread's shard writer. */
  samples: MessagePort;
  /** Set to 1 and notified by the main thread when a name answer is on `names`. */
  flag: Int32Array;
}

/** True when a message from a worker is its {@link CoordinationMessage}. */
export function isCoordination(message: unknown): message is CoordinationMessage {
  return typeof message === 'object' && message !== null && (message as { imgdlCoordination?: unknown }).imgdlCoordination === true;
}

/** Main thread: answers one worker's name claims from `names`, digest claims from `digests`, and keeps its samples with `samples`. */
export function serveWorker(
  message: CoordinationMessage,
  names: NameClaims,
  digests: DigestRegistry | undefined,
  samples?: SampleKeeper | undefined,
): void {
  if (samples) serveSamples(message.samples, samples);
  message.names.on('message', ({ wanted, url }: { wanted: string; url: string }) => {
    let reply: { name: string } | { error: string };
    try {
      reply = { name: names.claim(wanted, url) };
    } catch (error) {
      reply = { error: String(error) };
    }
    // The answer is queued on the port before the worker is woken to read it.
    message.names.postMessage(reply);
    Atomics.store(message.flag, 0, 1);
    Atomics.notify(message.flag, 0);
  });
  message.names.unref();
  if (digests) {
    serveClaims(message.digests, digests);
    message.digests.unref();
  }
}

/** Worker thread: opens the ports, hands them to the parent with `send`, and returns the proxies and the samples' port. */
export function connectToMain(send: (message: CoordinationMessage, transfer: MessagePort[]) => void): {
  names: NameClaims;
  digests: DigestClaims;
  samples: MessagePort;
} {
  const names = new MessageChannel();
  const digests = new MessageChannel();
  const samples = new MessageChannel();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const theirs = { names: names.port2, digests: digests.port2, samples: samples.port2 };
  send({ imgdlCoordination: true, ...theirs, flag }, Object.values(theirs));
  const port = names.port1;
  const claims = claimsOverPort(digests.port1);
  // The listener starts the port; it must not keep a worker alive on its own.
  digests.port1.unref();
  return {
    names: {
      claim(wanted, url) {
        Atomics.store(flag, 0, 0);
        port.postMessage({ wanted, url });
        Atomics.wait(flag, 0, 0);
        const reply = receiveMessageOnPort(port)?.message as { name: string } | { error: string } | undefined;
        if (reply === undefined || 'error' in reply) throw new Error(`claiming a name failed: ${reply?.error ?? 'no answer'}`);
        return reply.name;
      },
    },
    digests: claims,
    samples: samples.port1,
  };
}
