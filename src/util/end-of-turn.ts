/**
 * Work gathered during one turn of the event loop and run together at its
 * end: in the check phase, after the poll phase has read every socket that
 * was ready, with one `setImmediate` per turn (not per item), in the order the
 * items were added. The front ends start (HTTP) or answer (RESP) the requests
 * of a turn through it, so that the answers of a turn leave as a burst
 * (src/api/pipeline.ts, point 6; docs/benchmarks.md, "GET over sockets").
 *
 * Items added while the queue runs go to the next turn. The bound is the
 * caller's: each adds a connection at most once per turn.
 */
export class EndOfTurn<T> {
  private items: T[] = [];
  private readonly drain = (): void => {
    const items = this.items;
    this.items = [];
    for (const item of items) this.run(item);
  };

  /** `run` must not throw: an item it throws on would take the rest of its turn with it. */
  constructor(private readonly run: (item: T) => void) {}

  add(item: T): void {
    if (this.items.length === 0) setImmediate(this.drain);
    this.items.push(item);
  }
}
