/**
 * The block cache: verified data blocks of open tables, bounded by a byte
 * budget. Each table reader owns a `CacheShard` (offset → entry), so a lookup
 * is one Map get on a small map and needs no global key encoding (no limit on
 * file numbers); one shared CLOCK ring (second chance) decides evictions: a
 * hit only sets a flag, so the hot path does no reordering, and the evictor
 * (the hand) sweeps the ring, clearing flags and evicting the first unflagged
 * entry. The ring is an array: evicted or released slots become holes that
 * new entries do not reuse; when holes pass half the array it is compacted
 * (amortized O(1) per entry). (A `Set` used as a ring costs O(holes) per
 * `values().next()` after deletions at its front: its insert measured at ~18% of a seek
 * workload's time.) Closing a table releases its shard's entries at once.
 */
import type { Block } from './block.js';

interface CacheEntry {
  readonly shard: CacheShard;
  readonly offset: number;
  readonly block: Block;
  readonly bytes: number;
  referenced: boolean;
  /** Index in the ring. */
  slot: number;
}

/** One table's cached blocks, keyed by block offset. */
export class CacheShard {
  readonly entries = new Map<number, CacheEntry>();

  constructor(private readonly cache: BlockCache) {}

  get(offset: number): Block | undefined {
    const entry = this.entries.get(offset);
    if (entry === undefined) {
      this.cache.misses++;
      return undefined;
    }
    this.cache.hits++;
    entry.referenced = true;
    return entry.block;
  }

  /** The cached block at `offset` without counting a hit or miss or marking it used. */
  peek(offset: number): Block | undefined {
    return this.entries.get(offset)?.block;
  }

  insert(offset: number, block: Block): void {
    this.cache.insert(this, offset, block);
  }

  /** Drops every block of this table (it is being closed). */
  release(): void {
    this.cache.release(this);
  }
}

/** Per-entry bookkeeping bytes charged on top of the block's own size. */
const ENTRY_OVERHEAD_BYTES = 120;

export class BlockCache {
  /** The CLOCK ring: live entries and holes (undefined), oldest first. */
  private ring: Array<CacheEntry | undefined> = [];
  private hand = 0;
  private holes = 0;
  private bytes = 0;
  hits = 0;
  misses = 0;

  /** `capacityBytes`: most bytes of blocks held (blocks larger than this are not cached). */
  constructor(readonly capacityBytes: number) {}

  shard(): CacheShard {
    return new CacheShard(this);
  }

  insert(shard: CacheShard, offset: number, block: Block): void {
    const bytes = block.data.length + ENTRY_OVERHEAD_BYTES;
    if (bytes > this.capacityBytes || shard.entries.has(offset)) return;
    const entry: CacheEntry = { shard, offset, block, bytes, referenced: false, slot: this.ring.length };
    shard.entries.set(offset, entry);
    this.ring.push(entry);
    this.bytes += bytes;
    this.evict();
  }

  release(shard: CacheShard): void {
    for (const entry of shard.entries.values()) this.remove(entry);
    shard.entries.clear();
    this.compactIfSparse();
  }

  get usedBytes(): number {
    return this.bytes;
  }

  get size(): number {
    return this.ring.length - this.holes;
  }

  clear(): void {
    for (const entry of this.ring) entry?.shard.entries.clear();
    this.ring = [];
    this.hand = 0;
    this.holes = 0;
    this.bytes = 0;
  }

  private evict(): void {
    // Each step clears a flag, skips a hole or evicts, so this ends within two sweeps of the ring.
    while (this.bytes > this.capacityBytes && this.size > 0) {
      if (this.hand >= this.ring.length) this.hand = 0;
      const entry = this.ring[this.hand];
      if (entry !== undefined && entry.referenced) {
        entry.referenced = false;
      } else if (entry !== undefined) {
        entry.shard.entries.delete(entry.offset);
        this.remove(entry);
      }
      this.hand++;
    }
    this.compactIfSparse();
  }

  private remove(entry: CacheEntry): void {
    this.ring[entry.slot] = undefined;
    this.holes++;
    this.bytes -= entry.bytes;
  }

  /** Drops the holes once they are half the ring, keeping order and the hand's place. */
  private compactIfSparse(): void {
    if (this.holes * 2 <= this.ring.length) return;
    const ring: CacheEntry[] = [];
    let hand = 0;
    for (let i = 0; i < this.ring.length; i++) {
      if (i === this.hand) hand = ring.length;
      const entry = this.ring[i];
      if (entry === undefined) continue;
      entry.slot = ring.length;
      ring.push(entry);
    }
    this.ring = ring;
    this.hand = this.hand >= this.ring.length + this.holes ? 0 : hand;
    this.holes = 0;
  }
}
