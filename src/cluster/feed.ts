/**
 * A source for a long-lived run: items are pushed in as batches arrive and
 * read out as the run's pool has room, so one run can go from one batch to
 * the next without draining in between.
 */
import type { ListItem } from '../input/text-list.js';

/** An async iterable of list items that others push into; it ends once {@link end} is called and it is empty. */
export class Feed implements AsyncIterable<ListItem> {
  #items: ListItem[] = [];
  #head = 0;
  #ended = false;
  #wake: (() => void) | undefined;

  /** Items pushed and not yet read. */
  get waiting(): number {
    return this.#items.length - this.#head;
  }

  /** Adds items after those already waiting. */
  push(items: readonly ListItem[]): void {
    if (this.#ended) throw new Error('push after end');
    this.#items.push(...items);
    this.#wakeUp();
  }

  /** Takes out the items waiting that `picked` chooses (a batch taken back), and says how many there were. */
  drop(picked: (item: ListItem) => boolean): number {
    const kept = this.#items.slice(this.#head).filter((item) => !picked(item));
    const dropped = this.waiting - kept.length;
    this.#items = kept;
    this.#head = 0;
    return dropped;
  }

  /** No more items: the iteration ends once those waiting are read. */
  end(): void {
    this.#ended = true;
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ListItem> {
    for (;;) {
      if (this.#head < this.#items.length) {
        const item = this.#items[this.#head]!;
        // Drop what was read now and then, so a long run keeps only what is still waiting.
        if (++this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
          this.#items = this.#items.slice(this.#head);
          this.#head = 0;
        }
        yield item;
      } else if (this.#ended) return;
      else await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
