/**
 * Names in a folder shared by many workers. One process's name registry
 * cannot see the names another process gave: two URLs that both want
 * `img.jpg`, in batches run by two workers at once, would write the same
 * `img.jpg.part` and the later rename would replace the earlier file. So
 * names are claimed in Redis, with the same rules and the same hashed
 * alternatives as the core's registry: the first URL to claim a name keeps
 * it for the life of the queue, and a batch run again gets the same names.
 *
 * A batch's names are claimed in one script before it runs, so that the
 * planner's synchronous claims are answered from memory; a name found only
 * from the response (Content-Disposition, the extension the bytes show) is
 * claimed then, one round trip for that item.
 */
import type { NameClaims } from '../run/thread-shared.js';
import { ValidationError } from '../errors.js';
import { foldName, hashedName, nameOwner } from '../names/naming.js';
import type { Store } from './store.js';

/** The alternatives tried after the wanted name: 8 hex of the URL's digest, then all 40 (unique per URL). */
const HASH_LENGTHS = [8, 40];

function request(wanted: string, url: string): { owner: string; candidates: Array<{ name: string; folded: string }> } {
  const names = [wanted, ...HASH_LENGTHS.map((length) => hashedName(wanted, url, length))];
  return { owner: nameOwner(url), candidates: names.map((name) => ({ name, folded: foldName(name) })) };
}

/** Thrown for the (never yet seen) case where a URL's every candidate name is someone else's. */
function noName(wanted: string): ValidationError {
  return new ValidationError(
    'UNSAFE_NAME',
    `no free name for ${JSON.stringify(wanted)}: it and its hashed alternatives are claimed by other URLs`,
  );
}

/** A {@link NameClaims} shared through Redis by every worker of a queue. */
export class ClusterNames implements NameClaims {
  readonly #store: Store;
  /** `wanted\nurl` → name, for the batches being run. */
  readonly #claimed = new Map<string, string>();

  constructor(store: Store) {
    this.#store = store;
  }

  /** Claims, in one round trip, the names a batch's items will ask for when planned. */
  async prepare(wanted: ReadonlyArray<{ wanted: string; url: string }>): Promise<void> {
    const requests = wanted.map((w) => request(w.wanted, w.url));
    const chosen = await this.#store.claimNames(requests);
    wanted.forEach((w, i) => {
      const name = requests[i]!.candidates[chosen[i]!]?.name;
      if (name !== undefined) this.#claimed.set(`${w.wanted}\n${w.url}`, name);
    });
  }

  /** Forgets what {@link prepare} kept for a batch that is over (the names stay claimed in Redis). */
  forget(wanted: ReadonlyArray<{ wanted: string; url: string }>): void {
    for (const w of wanted) this.#claimed.delete(`${w.wanted}\n${w.url}`);
  }

  /** The name prepared for this item; an item that was not prepared fails (the planner records it as failed). */
  claim(wanted: string, url: string): string {
    const name = this.#claimed.get(`${wanted}\n${url}`);
    if (name === undefined) throw noName(wanted);
    return name;
  }

  async claimLater(wanted: string, url: string): Promise<string> {
    const prepared = this.#claimed.get(`${wanted}\n${url}`);
    if (prepared !== undefined) return prepared;
    const one = request(wanted, url);
    const [chosen] = await this.#store.claimNames([one]);
    const name = one.candidates[chosen ?? -1]?.name;
    if (name === undefined) throw noName(wanted);
    return name;
  }
}
