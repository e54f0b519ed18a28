/**
 * An ordered map from string keys to values over the shared ordered
 * structure (sorted-chunks.ts): forward and reverse scans from any seek
 * position are O(log n + k). Keys compare with JavaScript's `<` on UTF-16
 * code units; store byte keys as latin1 strings (`Buffer.toString('latin1')`),
 * which makes that order exactly unsigned byte order.
 */
import { ChunkCursor, SortedChunks } from './sorted-chunks.js';

interface Node<V> {
  readonly key: string;
  value: V;
}

export class OrderedMap<V> {
  private readonly nodes = new SortedChunks<Node<V>>();

  get size(): number {
    return this.nodes.size;
  }

  get(key: string): V | undefined {
    return this.nodes.get(key)?.value;
  }

  has(key: string): boolean {
    return this.nodes.get(key) !== undefined;
  }

  /** Inserts or replaces. Returns true when the key was new. */
  set(key: string, value: V): boolean {
    const existing = this.nodes.get(key);
    if (existing !== undefined) {
      existing.value = value;
      return false;
    }
    this.nodes.insert({ key, value });
    return true;
  }

  /** Removes `key`. Returns true when it was present. */
  delete(key: string): boolean {
    return this.nodes.delete(key) !== undefined;
  }

  clear(): void {
    this.nodes.clear();
  }

  /**
   * Entries in ascending order starting at the first key >= `from` (or > it
   * when `exclusive`), or from the smallest key when `from` is undefined.
   * Changes made while iterating are seen from the current key on.
   */
  *ascending(from?: string, exclusive = false): Generator<[string, V]> {
    const cursor = new ChunkCursor(this.nodes);
    for (let node = cursor.seekGE(from, exclusive); node !== undefined; node = cursor.next()) yield [node.key, node.value];
  }

  /**
   * Entries in descending order starting at the last key <= `from` (or < it
   * when `exclusive`), or from the largest key when `from` is undefined.
   */
  *descending(from?: string, exclusive = false): Generator<[string, V]> {
    const cursor = new ChunkCursor(this.nodes);
    for (let node = cursor.seekLE(from, exclusive); node !== undefined; node = cursor.prev()) yield [node.key, node.value];
  }
}
