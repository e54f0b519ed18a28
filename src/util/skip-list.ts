/**
 * A skip list keyed by strings, with a doubly linked bottom level, so forward
 * and reverse walks from any seek position are O(log n + k). Keys compare with
 * JavaScript's `<` on UTF-16 code units; store byte keys as latin1 strings
 * (`Buffer.toString('latin1')`), which makes that order exactly unsigned byte
 * order.
 *
 * It is the one skip list behind both `OrderedMap` (the memory engine's range
 * index) and the lsm memtable: the caller chooses the node type (any object
 * with `key`, `next` and `prev`, plus whatever it stores), so a memtable entry
 * is one object, not a node pointing at a separate value.
 *
 * Randomness comes from the injected `Random`, so the structure, and anything
 * that depends on its timing, is reproducible. Not safe to modify while a
 * caller walks it across an await unless nodes are never deleted (the
 * memtable never deletes).
 */
import type { Random } from './random.js';

/** Most levels a node can have: 4^32 keys would be needed to use them all. */
const LEVELS_MAX = 32;
/** Chance that a node reaches the next level: 1/4, LevelDB's choice (fewer pointers than 1/2, same expected search cost within a constant). */
const PROMOTION_CHANCE = 0.25;

/** What every node carries. `next[i]` is the next node at level i (`next.length` is its height). */
export interface SkipListNode<N> {
  readonly key: string;
  readonly next: Array<N | undefined>;
  prev: N | undefined;
}

export class SkipList<N extends SkipListNode<N>> {
  private readonly head: N;
  private tail: N | undefined;
  private level = 1;
  private count = 0;
  /** Per level, the last node before the insertion point (scratch of `getOrInsert`/`delete`). */
  private readonly update: N[];

  /**
   * `newNode(key, height)` makes a node with `next` of length `height` (all
   * undefined) and `prev` undefined; it is also called once for the head
   * sentinel (key '').
   */
  constructor(
    private readonly random: Random,
    private readonly newNode: (key: string, height: number) => N,
  ) {
    this.head = newNode('', LEVELS_MAX);
    this.update = new Array<N>(LEVELS_MAX);
  }

  get size(): number {
    return this.count;
  }

  /** The node for `key`, or undefined. */
  get(key: string): N | undefined {
    const node = this.seekGE(key);
    return node !== undefined && node.key === key ? node : undefined;
  }

  /** The node for `key`: the existing one, or a new one (made by `newNode`) linked in. `size` grows exactly when it was new. */
  getOrInsert(key: string): N {
    let node = this.head;
    for (let i = this.level - 1; i >= 0; i--) {
      let next = node.next[i];
      while (next !== undefined && next.key < key) {
        node = next;
        next = node.next[i];
      }
      this.update[i] = node;
    }
    const candidate = node.next[0];
    if (candidate !== undefined && candidate.key === key) return candidate;
    const height = this.randomHeight();
    if (height > this.level) {
      for (let i = this.level; i < height; i++) this.update[i] = this.head;
      this.level = height;
    }
    const created = this.newNode(key, height);
    created.prev = node === this.head ? undefined : node;
    for (let i = 0; i < height; i++) {
      const before = this.update[i]!;
      created.next[i] = before.next[i];
      before.next[i] = created;
    }
    const after = created.next[0];
    if (after !== undefined) after.prev = created;
    else this.tail = created;
    this.count++;
    return created;
  }

  /** Unlinks the node for `key`; returns it, or undefined when absent. */
  delete(key: string): N | undefined {
    let node = this.head;
    for (let i = this.level - 1; i >= 0; i--) {
      let next = node.next[i];
      while (next !== undefined && next.key < key) {
        node = next;
        next = node.next[i];
      }
      this.update[i] = node;
    }
    const target = node.next[0];
    if (target === undefined || target.key !== key) return undefined;
    for (let i = 0; i < target.next.length; i++) {
      const before = this.update[i]!;
      if (before.next[i] === target) before.next[i] = target.next[i];
    }
    const after = target.next[0];
    if (after !== undefined) after.prev = target.prev;
    else this.tail = target.prev;
    while (this.level > 1 && this.head.next[this.level - 1] === undefined) this.level--;
    this.count--;
    return target;
  }

  clear(): void {
    this.head.next.fill(undefined);
    this.tail = undefined;
    this.level = 1;
    this.count = 0;
  }

  first(): N | undefined {
    return this.head.next[0];
  }

  last(): N | undefined {
    return this.tail;
  }

  /** First node with key >= `key` (> when `exclusive`); the first node when `key` is undefined. */
  seekGE(key: string | undefined, exclusive = false): N | undefined {
    if (key === undefined) return this.head.next[0];
    let node = this.head;
    for (let i = this.level - 1; i >= 0; i--) {
      let next = node.next[i];
      while (next !== undefined && next.key < key) {
        node = next;
        next = node.next[i];
      }
    }
    const found = node.next[0];
    return exclusive && found !== undefined && found.key === key ? found.next[0] : found;
  }

  /** Last node with key <= `key` (< when `exclusive`); the last node when `key` is undefined. */
  seekLE(key: string | undefined, exclusive = false): N | undefined {
    if (key === undefined) return this.tail;
    const atOrAfter = this.seekGE(key);
    if (atOrAfter === undefined) return this.tail;
    if (atOrAfter.key === key && !exclusive) return atOrAfter;
    return atOrAfter.prev;
  }

  private randomHeight(): number {
    let height = 1;
    while (height < LEVELS_MAX && this.random.next() < PROMOTION_CHANCE) height++;
    return height;
  }
}
