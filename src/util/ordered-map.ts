/**
 * An ordered map from string keys to values: a skip list with a doubly linked
 * bottom level, so both forward and reverse scans from any seek position are
 * O(log n + k). Keys compare with JavaScript's `<` on UTF-16 code units; store
 * byte keys as latin1 strings (`Buffer.toString('latin1')`), which makes that
 * order exactly unsigned byte order.
 *
 * Randomness comes from the injected `Random` (seeded by default), so the
 * structure, and anything that depends on its timing, is reproducible.
 */
import { type Random, SeededRandom } from './random.js';

const LEVELS_MAX = 32;
const PROMOTION_CHANCE = 0.25;

interface Node<V> {
  key: string;
  value: V;
  next: Array<Node<V> | undefined>;
  prev: Node<V> | undefined;
}

export class OrderedMap<V> {
  private readonly head: Node<V> = { key: '', value: undefined as V, next: new Array(LEVELS_MAX).fill(undefined), prev: undefined };
  private tail: Node<V> | undefined;
  private level = 1;
  private count = 0;
  private readonly update: Array<Node<V>> = new Array(LEVELS_MAX);

  constructor(private readonly random: Random = new SeededRandom(0x5eed)) {}

  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    const node = this.findGreaterOrEqual(key);
    return node !== undefined && node.key === key ? node.value : undefined;
  }

  has(key: string): boolean {
    const node = this.findGreaterOrEqual(key);
    return node !== undefined && node.key === key;
  }

  /** Inserts or replaces. Returns true when the key was new. */
  set(key: string, value: V): boolean {
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
    if (candidate !== undefined && candidate.key === key) {
      candidate.value = value;
      return false;
    }
    const height = this.randomHeight();
    if (height > this.level) {
      for (let i = this.level; i < height; i++) this.update[i] = this.head;
      this.level = height;
    }
    const created: Node<V> = { key, value, next: new Array(height), prev: node === this.head ? undefined : node };
    for (let i = 0; i < height; i++) {
      const before = this.update[i]!;
      created.next[i] = before.next[i];
      before.next[i] = created;
    }
    const after = created.next[0];
    if (after !== undefined) after.prev = created;
    else this.tail = created;
    this.count++;
    return true;
  }

  /** Removes `key`. Returns true when it was present. */
  delete(key: string): boolean {
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
    if (target === undefined || target.key !== key) return false;
    for (let i = 0; i < target.next.length; i++) {
      const before = this.update[i]!;
      if (before.next[i] === target) before.next[i] = target.next[i];
    }
    const after = target.next[0];
    if (after !== undefined) after.prev = target.prev;
    else this.tail = target.prev;
    while (this.level > 1 && this.head.next[this.level - 1] === undefined) this.level--;
    this.count--;
    return true;
  }

  clear(): void {
    this.head.next.fill(undefined);
    this.tail = undefined;
    this.level = 1;
    this.count = 0;
  }

  /**
   * Entries in ascending order starting at the first key >= `from` (or > it
   * when `exclusive`), or from the smallest key when `from` is undefined.
   */
  *ascending(from?: string, exclusive = false): Generator<[string, V]> {
    let node = from === undefined ? this.head.next[0] : this.findGreaterOrEqual(from);
    if (exclusive && node !== undefined && node.key === from) node = node.next[0];
    while (node !== undefined) {
      yield [node.key, node.value];
      node = node.next[0];
    }
  }

  /**
   * Entries in descending order starting at the last key <= `from` (or < it
   * when `exclusive`), or from the largest key when `from` is undefined.
   */
  *descending(from?: string, exclusive = false): Generator<[string, V]> {
    let node: Node<V> | undefined;
    if (from === undefined) {
      node = this.tail;
    } else {
      const atOrAfter = this.findGreaterOrEqual(from);
      if (atOrAfter === undefined) node = this.tail;
      else if (atOrAfter.key === from && !exclusive) node = atOrAfter;
      else node = atOrAfter.prev;
    }
    while (node !== undefined) {
      yield [node.key, node.value];
      node = node.prev;
    }
  }

  private findGreaterOrEqual(key: string): Node<V> | undefined {
    let node = this.head;
    for (let i = this.level - 1; i >= 0; i--) {
      let next = node.next[i];
      while (next !== undefined && next.key < key) {
        node = next;
        next = node.next[i];
      }
    }
    return node.next[0];
  }

  private randomHeight(): number {
    let height = 1;
    while (height < LEVELS_MAX && this.random.next() < PROMOTION_CHANCE) height++;
    return height;
  }
}
