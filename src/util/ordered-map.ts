/**
 * An ordered map from string keys to values over the shared skip list
 * (skip-list.ts): forward and reverse scans from any seek position are
 * O(log n + k). Keys compare with JavaScript's `<` on UTF-16 code units; store
 * byte keys as latin1 strings (`Buffer.toString('latin1')`), which makes that
 * order exactly unsigned byte order.
 *
 * Randomness comes from the injected `Random` (seeded by default), so the
 * structure, and anything that depends on its timing, is reproducible.
 */
import { SeededRandom, type Random } from './random.js';
import { SkipList, type SkipListNode } from './skip-list.js';

interface Node<V> extends SkipListNode<Node<V>> {
  value: V;
}

export class OrderedMap<V> {
  private readonly list: SkipList<Node<V>>;

  constructor(random: Random = new SeededRandom(0x5eed)) {
    this.list = new SkipList<Node<V>>(random, (key, height) => ({ key, value: undefined as V, next: new Array<Node<V> | undefined>(height), prev: undefined }));
  }

  get size(): number {
    return this.list.size;
  }

  get(key: string): V | undefined {
    return this.list.get(key)?.value;
  }

  has(key: string): boolean {
    return this.list.get(key) !== undefined;
  }

  /** Inserts or replaces. Returns true when the key was new. */
  set(key: string, value: V): boolean {
    const sizeBefore = this.list.size;
    this.list.getOrInsert(key).value = value;
    return this.list.size > sizeBefore;
  }

  /** Removes `key`. Returns true when it was present. */
  delete(key: string): boolean {
    return this.list.delete(key) !== undefined;
  }

  clear(): void {
    this.list.clear();
  }

  /**
   * Entries in ascending order starting at the first key >= `from` (or > it
   * when `exclusive`), or from the smallest key when `from` is undefined.
   */
  *ascending(from?: string, exclusive = false): Generator<[string, V]> {
    for (let node = this.list.seekGE(from, exclusive); node !== undefined; node = node.next[0]) yield [node.key, node.value];
  }

  /**
   * Entries in descending order starting at the last key <= `from` (or < it
   * when `exclusive`), or from the largest key when `from` is undefined.
   */
  *descending(from?: string, exclusive = false): Generator<[string, V]> {
    for (let node = this.list.seekLE(from, exclusive); node !== undefined; node = node.prev) yield [node.key, node.value];
  }
}
