/**
 * An ordered set of nodes keyed by strings: sorted arrays ("chunks") of at
 * most CHUNK_MAX nodes, in order, with the first key of each chunk in a
 * separate array. A lookup is two binary searches over short contiguous
 * arrays, an insert one array splice (a memmove of at most CHUNK_MAX
 * pointers), and a walk goes through contiguous memory: several times
 * cheaper in JavaScript than a skip list, whose every step chases a pointer
 * to a node allocated anywhere in the heap.
 *
 * Keys compare with JavaScript's `<` on UTF-16 code units; store byte keys as
 * latin1 strings (`Buffer.toString('latin1')`), which makes that order exactly
 * unsigned byte order. It is the one ordered structure behind both
 * `OrderedMap` (the memory engine's range index) and the lsm memtable; the
 * caller picks the node type, so a memtable entry is one object.
 *
 * `ChunkCursor` walks it in either direction. Inserts and deletes move nodes
 * between positions, so a cursor notices a change (`version`) and finds its
 * place again by key: a cursor held across an await stays correct while the
 * set changes underneath it.
 */

/** Most nodes in one chunk; a full chunk splits in two. */
const CHUNK_MAX = 128;

export interface ChunkNode {
  readonly key: string;
}

export class SortedChunks<N extends ChunkNode> {
  /** Non-empty chunks in key order (one empty chunk only while the set is empty). */
  chunks: N[][] = [[]];
  /** `firstKeys[i]` is `chunks[i][0].key` ('' for the empty set). */
  private firstKeys: string[] = [''];
  private count = 0;
  /** Changes whenever a node moves: cursors compare it to know their position is stale. */
  version = 0;

  get size(): number {
    return this.count;
  }

  /** The node with `key`, or undefined. */
  get(key: string): N | undefined {
    const chunk = this.chunks[this.chunkFor(key)]!;
    const index = lowerBound(chunk, key);
    const node = chunk[index];
    return node !== undefined && node.key === key ? node : undefined;
  }

  /** Inserts `node`, whose key must not be present (the caller checked, e.g. with its own hash index). */
  insert(node: N): void {
    const chunkIndex = this.chunkFor(node.key);
    const chunk = this.chunks[chunkIndex]!;
    const index = lowerBound(chunk, node.key);
    chunk.splice(index, 0, node);
    if (index === 0) this.firstKeys[chunkIndex] = node.key;
    if (chunk.length > CHUNK_MAX) {
      const right = chunk.splice(CHUNK_MAX >>> 1);
      this.chunks.splice(chunkIndex + 1, 0, right);
      this.firstKeys.splice(chunkIndex + 1, 0, right[0]!.key);
    }
    this.count++;
    this.version++;
  }

  /**
   * Inserts `nodes` (keys absent, distinct) at once: merged in one pass when
   * they are many, one by one when few. `sorted`: they are in key order
   * already; otherwise they are sorted in place first.
   */
  insertAll(nodes: N[], sorted = false): void {
    if (nodes.length === 0) return;
    if (nodes.length * CHUNK_MAX < this.count) {
      for (const node of nodes) this.insert(node);
      return;
    }
    if (!sorted) nodes.sort(byKey);
    const merged: N[] = [];
    let i = 0;
    for (const chunk of this.chunks) {
      for (const node of chunk) {
        while (i < nodes.length && nodes[i]!.key < node.key) merged.push(nodes[i++]!);
        merged.push(node);
      }
    }
    while (i < nodes.length) merged.push(nodes[i++]!);
    this.rebuild(merged);
  }

  /** Removes the node with `key`; returns it, or undefined when absent. */
  delete(key: string): N | undefined {
    const chunkIndex = this.chunkFor(key);
    const chunk = this.chunks[chunkIndex]!;
    const index = lowerBound(chunk, key);
    const node = chunk[index];
    if (node === undefined || node.key !== key) return undefined;
    chunk.splice(index, 1);
    if (chunk.length === 0 && this.chunks.length > 1) {
      this.chunks.splice(chunkIndex, 1);
      this.firstKeys.splice(chunkIndex, 1);
    } else if (index === 0) {
      this.firstKeys[chunkIndex] = chunk[0]?.key ?? '';
    }
    this.count--;
    this.version++;
    return node;
  }

  clear(): void {
    this.rebuild([]);
  }

  /** Index of the chunk where `key` belongs: the last whose first key is <= `key` (0 when none is). */
  chunkFor(key: string): number {
    const firstKeys = this.firstKeys;
    let low = 1;
    let high = firstKeys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (firstKeys[middle]! <= key) low = middle + 1;
      else high = middle;
    }
    return low - 1;
  }

  /** Replaces the contents with `sorted` (ascending), cut into half-full chunks so the next inserts rarely split. */
  private rebuild(sorted: N[]): void {
    const chunks: N[][] = [];
    const step = CHUNK_MAX >>> 1;
    for (let start = 0; start < sorted.length; start += step) chunks.push(sorted.slice(start, start + step));
    if (chunks.length === 0) chunks.push([]);
    this.chunks = chunks;
    this.firstKeys = chunks.map((chunk) => chunk[0]?.key ?? '');
    this.count = sorted.length;
    this.version++;
  }
}

function byKey(a: ChunkNode, b: ChunkNode): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Index of the first node in `chunk` whose key is >= `key`. (Hand-written: this is every lookup's inner loop.) */
function lowerBound(chunk: readonly ChunkNode[], key: string): number {
  let low = 0;
  let high = chunk.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (chunk[middle]!.key < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * A position in a `SortedChunks`, moving in either direction. `node` is the
 * node at the position (undefined: before the first or after the last).
 * After the set changed, the next move first finds the current key again.
 */
export class ChunkCursor<N extends ChunkNode> {
  node: N | undefined;
  private chunk = 0;
  private index = 0;
  private version: number;

  constructor(private readonly set: SortedChunks<N>) {
    this.version = set.version;
  }

  /** To the first node with key >= `key` (> when `exclusive`); the first node when `key` is undefined. */
  seekGE(key: string | undefined, exclusive = false): N | undefined {
    this.version = this.set.version;
    if (key === undefined) {
      this.chunk = 0;
      this.index = 0;
    } else {
      this.chunk = this.set.chunkFor(key);
      this.index = lowerBound(this.set.chunks[this.chunk]!, key);
    }
    this.settle();
    if (exclusive && this.node !== undefined && this.node.key === key) return this.next();
    return this.node;
  }

  /** To the last node with key <= `key` (< when `exclusive`); the last node when `key` is undefined. */
  seekLE(key: string | undefined, exclusive = false): N | undefined {
    if (key === undefined) {
      this.version = this.set.version;
      this.chunk = this.set.chunks.length - 1;
      this.index = this.set.chunks[this.chunk]!.length - 1;
      this.settle();
      return this.node;
    }
    const atOrAfter = this.seekGE(key);
    if (atOrAfter !== undefined && atOrAfter.key === key && !exclusive) return atOrAfter;
    return this.prev();
  }

  next(): N | undefined {
    if (this.version !== this.set.version) return this.node === undefined ? undefined : this.seekGE(this.node.key, true);
    if (this.chunk < 0) {
      this.chunk = 0;
      this.index = 0;
    } else {
      this.index++;
    }
    this.settle();
    return this.node;
  }

  prev(): N | undefined {
    if (this.version !== this.set.version) return this.node === undefined ? undefined : this.seekLE(this.node.key, true);
    this.index--;
    this.settle();
    return this.node;
  }

  /**
   * Moves (chunk, index) onto a node, crossing chunk boundaries; past the
   * last node it rests at (chunks.length, 0), before the first at (-1, 0),
   * with `node` undefined, and a step back (or forward) from there finds the
   * last (or first) node.
   */
  private settle(): void {
    const chunks = this.set.chunks;
    while (this.chunk < chunks.length && this.index >= chunks[this.chunk]!.length) {
      this.chunk++;
      this.index = 0;
    }
    while (this.index < 0) {
      this.chunk = Math.min(this.chunk, chunks.length) - 1;
      if (this.chunk < 0) {
        this.index = 0;
        break;
      }
      this.index = chunks[this.chunk]!.length - 1;
    }
    this.node = this.chunk >= 0 && this.chunk < chunks.length ? chunks[this.chunk]![this.index] : undefined;
  }
}
