/**
 * The search's list of call and return events (walk-through steps 1-4 in
 * search.ts): one doubly linked list sorted by time, calls before returns at
 * equal times. Placing an operation lifts its call and return nodes out of the
 * list; they keep their own links, so undoing in LIFO order puts them back in
 * O(1) ("dancing links").
 *
 * Node `HEAD` (0) is a sentinel before the first event; `END` (-1) stands for
 * the end of the list. Operations with an unknown outcome have no return node
 * (`returnNode[op] === END`).
 */
import type { HistoryOperation } from './search.js';

export const HEAD = 0;
export const END = -1;

export class EventList {
  readonly next: Int32Array;
  readonly prev: Int32Array;
  /** The operation a node belongs to. */
  readonly nodeOperation: Int32Array;
  /** 1 for a call node, 0 for a return node. */
  readonly nodeIsCall: Uint8Array;
  readonly callNode: Int32Array;
  /** END for operations with unknown outcome. */
  readonly returnNode: Int32Array;
  /** Number of nodes including HEAD: a node index past every real node. */
  readonly size: number;

  constructor(operations: readonly HistoryOperation<unknown, unknown>[]) {
    const events: { time: number; isCall: boolean; operation: number }[] = [];
    operations.forEach((operation, index) => {
      events.push({ time: operation.call, isCall: true, operation: index });
      if (operation.return !== undefined) events.push({ time: operation.return, isCall: false, operation: index });
    });
    // Calls before returns at equal times: equal timestamps overlap (see search.ts).
    events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.operation - b.operation);
    this.size = events.length + 1;
    this.next = new Int32Array(this.size);
    this.prev = new Int32Array(this.size);
    this.nodeOperation = new Int32Array(this.size);
    this.nodeIsCall = new Uint8Array(this.size);
    this.callNode = new Int32Array(operations.length);
    this.returnNode = new Int32Array(operations.length).fill(END);
    for (let node = 0; node < this.size; node++) {
      this.next[node] = node + 1 < this.size ? node + 1 : END;
      this.prev[node] = node - 1;
    }
    events.forEach((event, index) => {
      const node = index + 1;
      this.nodeOperation[node] = event.operation;
      this.nodeIsCall[node] = event.isCall ? 1 : 0;
      if (event.isCall) this.callNode[event.operation] = node;
      else this.returnNode[event.operation] = node;
    });
  }

  /** Unlinks the call and return nodes of `op` (placing it). */
  lift(op: number): void {
    const { next, prev } = this;
    const call = this.callNode[op]!;
    next[prev[call]!] = next[call]!;
    if (next[call] !== END) prev[next[call]!] = prev[call]!;
    const ret = this.returnNode[op]!;
    if (ret !== END) {
      next[prev[ret]!] = next[ret]!;
      if (next[ret] !== END) prev[next[ret]!] = prev[ret]!;
    }
  }

  /** Exact inverse of `lift`; valid only in LIFO order (undo of the latest lift). */
  unlift(op: number): void {
    const { next, prev } = this;
    const ret = this.returnNode[op]!;
    if (ret !== END) {
      next[prev[ret]!] = ret;
      if (next[ret] !== END) prev[next[ret]!] = ret;
    }
    const call = this.callNode[op]!;
    next[prev[call]!] = call;
    if (next[call] !== END) prev[next[call]!] = call;
  }

  /** The first return node still in the list, or `size` when there is none (the candidate window ends there). */
  windowEndNode(): number {
    let node = this.next[HEAD]!;
    while (node !== END && this.nodeIsCall[node]) node = this.next[node]!;
    return node === END ? this.size : node;
  }

  /** The first unplaced known operation to complete (the one that forced a backtrack), or undefined. */
  firstReturnNotIn(placed: ReadonlySet<number>): number | undefined {
    for (let node = 1; node < this.size; node++) {
      const op = this.nodeOperation[node]!;
      if (!this.nodeIsCall[node] && !placed.has(op)) return op;
    }
    return undefined;
  }
}
