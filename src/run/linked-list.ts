/**
 * A list of objects linked through fields of their own (`previous`,
 * `next`), for the paths every request crosses: the requests in flight
 * under a signal (http/request.ts) and the scheduler's ready hosts
 * (run/scheduler.ts). Adding and removing allocate nothing, and an object
 * that leaves lets go of its neighbours. A Set there made a new table on
 * nearly every change, and V8 keeps a replaced table, with the objects it
 * held, pointing at its successor: once one reached the old generation,
 * every request's objects were promoted (flood list: 77 MB promoted against
 * 10 MB linked, 5 full collections against 2, and a second one again for
 * the scheduler's one-host Sets).
 */

/** The fields an object of a {@link LinkedList} links through; undefined while it is in none. */
export interface Links<T> {
  previous: T | undefined;
  next: T | undefined;
}

/** Objects in the order they were added; an object is in one list at most. */
export class LinkedList<T extends Links<T>> {
  first: T | undefined = undefined;
  last: T | undefined = undefined;

  /** Adds `item` at the end. */
  push(item: T): void {
    item.previous = this.last;
    item.next = undefined;
    if (this.last === undefined) this.first = item;
    else this.last.next = item;
    this.last = item;
  }

  /** Takes `item` out; nothing when it is not in the list (never was, or has left already). */
  remove(item: T): void {
    const { previous, next } = item;
    if (previous === undefined && this.first !== item) return;
    if (previous === undefined) this.first = next;
    else previous.next = next;
    if (next === undefined) this.last = previous;
    else next.previous = previous;
    item.previous = item.next = undefined;
  }

  /** The objects, first to last, copied: each may leave the list while the copy is gone through. */
  toArray(): T[] {
    const items: T[] = [];
    for (let item = this.first; item !== undefined; item = item.next) items.push(item);
    return items;
  }
}
