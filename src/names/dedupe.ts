/**
 * Deduplication by content: the first file saved with a digest keeps it; a
 * later item whose bytes hash the same is not saved, and its record names the
 * file it duplicates. The registry lives in the thread that plans the run, so
 * items running in worker threads ask it through a message port.
 */
import type { MessagePort } from 'node:worker_threads';

/** Where items ask whether their content was already saved this run. */
export interface DigestClaims {
  /**
   * Claims `digest` for `path`. Resolves to undefined when the claim is new
   * (the caller saves its file), or to the path of the file that holds it.
   */
  claim(digest: string, path: string): Promise<string | undefined>;
  /** After a claim: the file was saved at `path` (null: it could not be saved, so the digest is free again). */
  settle(digest: string, path: string | null): void;
}

/** The registry itself: one per run, in the planning thread. */
export class DigestRegistry implements DigestClaims {
  readonly #owners = new Map<string, string>();

  claim(digest: string, path: string): Promise<string | undefined> {
    return Promise.resolve(this.claimNow(digest, path));
  }

  /** {@link claim} without the promise, for answering worker messages in order. */
  claimNow(digest: string, path: string): string | undefined {
    const owner = this.#owners.get(digest);
    if (owner !== undefined) return owner;
    this.#owners.set(digest, path);
    return undefined;
  }

  settle(digest: string, path: string | null): void {
    if (path === null) this.#owners.delete(digest);
    else this.#owners.set(digest, path);
  }
}

/** A message a worker sends to the registry. */
export type DigestMessage =
  { op: 'claim'; id: number; digest: string; path: string } | { op: 'settle'; digest: string; path: string | null };

/** Answers a worker's claims on `port` from `registry` until the port closes. */
export function serveClaims(port: MessagePort, registry: DigestRegistry): void {
  port.on('message', (message: DigestMessage) => {
    if (message.op === 'claim') port.postMessage({ id: message.id, owner: registry.claimNow(message.digest, message.path) });
    else registry.settle(message.digest, message.path);
  });
}

/** The worker's side of {@link serveClaims}. */
export function claimsOverPort(port: MessagePort): DigestClaims {
  let nextId = 0;
  const waiting = new Map<number, (owner: string | undefined) => void>();
  port.on('message', (reply: { id: number; owner?: string }) => {
    waiting.get(reply.id)?.(reply.owner);
    waiting.delete(reply.id);
  });
  return {
    claim(digest, path) {
      const id = nextId++;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        port.postMessage({ op: 'claim', id, digest, path } satisfies DigestMessage);
      });
    },
    settle(digest, path) {
      port.postMessage({ op: 'settle', digest, path } satisfies DigestMessage);
    },
  };
}
