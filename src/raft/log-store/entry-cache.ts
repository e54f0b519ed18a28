/**
 * The recent entries of the Raft log, decoded, so a leader replicating to
 * followers that keep up never reads the disk: a contiguous SUFFIX
 * [first, last] of the log, bounded by `bytesMax` counted in encoded body
 * bytes (at least 17 an entry, so empty entries count too).
 *
 * Entries not yet known to be in their file (the save that wrote them has not
 * finished its `write`) are PINNED: never evicted, whatever the bound, because
 * the file cannot serve them yet. A save's entries stay pinned until its write
 * completes, so the bound may be passed by at most one save.
 */
import { assert } from '../../util/assert.js';
import type { Entry } from '../types.js';

export class EntryCache {
  /** Evicted slots before `head` hold undefined until the next compaction of the array. */
  private entries: Array<Entry | undefined> = [];
  private sizes: number[] = [];
  /** Array position of the first cached entry (eviction advances it; the arrays are compacted now and then). */
  private head = 0;
  /** Index of entries[head]. */
  private firstIndex: number;
  private cachedBytes = 0;
  /** Entries at or after this index are pinned. */
  private pinnedFrom = Infinity;

  constructor(
    /** Eviction target in encoded bytes. */
    private readonly bytesMax: number,
    /** The log's last index + 1 (the cache starts empty). */
    nextIndex: number,
  ) {
    this.firstIndex = nextIndex;
  }

  /** Index of the first cached entry; equals `last + 1` when empty. */
  get first(): number {
    return this.firstIndex;
  }

  get size(): number {
    return this.entries.length - this.head;
  }

  get bytes(): number {
    return this.cachedBytes;
  }

  /**
   * Adds `entry` at the end, first dropping cached entries at or after its
   * index (a conflicting suffix). The entry must follow the log: its index is
   * at most last + 1, and when it is below `first` the whole cache is dropped.
   * The new entry is pinned until `unpin`.
   */
  append(entry: Entry, encodedBytes: number): void {
    const index = entry.index;
    if (index <= this.firstIndex) this.clear(index);
    else {
      assert(index <= this.firstIndex + this.size, 'entry cache: append leaves a gap', index, this.firstIndex, this.size);
      this.truncateFrom(index);
    }
    this.entries.push(entry);
    this.sizes.push(encodedBytes);
    this.cachedBytes += encodedBytes;
    if (index < this.pinnedFrom) this.pinnedFrom = index;
  }

  /** The entries up to now are in their file: they may be evicted. */
  unpin(): void {
    this.pinnedFrom = Infinity;
    this.evict();
  }

  /** The cached entry at `index` (first <= index <= last). */
  get(index: number): Entry {
    const entry = this.entries[this.head + index - this.firstIndex];
    assert(entry !== undefined && entry.index === index, 'entry cache: index not cached', index, this.firstIndex, this.size);
    return entry;
  }

  /** Encoded size of the cached entry at `index`. */
  sizeOf(index: number): number {
    return this.sizes[this.head + index - this.firstIndex]!;
  }

  /** Drops cached entries at or below `index` (compaction). */
  dropThrough(index: number): void {
    while (this.size > 0 && this.firstIndex <= index) this.evictFirst();
    if (this.size === 0 && this.firstIndex <= index) this.firstIndex = index + 1;
  }

  /** Empties the cache; the next entry appended will be `nextIndex`. */
  clear(nextIndex: number): void {
    this.entries = [];
    this.sizes = [];
    this.head = 0;
    this.cachedBytes = 0;
    this.firstIndex = nextIndex;
  }

  private truncateFrom(index: number): void {
    const keep = this.head + (index - this.firstIndex);
    for (let i = keep; i < this.entries.length; i++) this.cachedBytes -= this.sizes[i]!;
    this.entries.length = keep;
    this.sizes.length = keep;
  }

  private evict(): void {
    while (this.cachedBytes > this.bytesMax && this.size > 0 && this.firstIndex < this.pinnedFrom) this.evictFirst();
  }

  private evictFirst(): void {
    this.cachedBytes -= this.sizes[this.head]!;
    this.entries[this.head] = undefined; // release it for the garbage collector
    this.head++;
    this.firstIndex++;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }
}
