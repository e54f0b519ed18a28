/**
 * The block cache: verified data blocks of open tables, bounded by a byte
 * budget. Each table reader owns a `CacheShard` (offset → entry), so a lookup
 * is one Map get on a small map and needs no global key encoding (no limit on
 * file numbers); one shared CLOCK ring (second chance) decides evictions: a
 * hit only sets a flag, so the hot path does no reordering, and the evictor
 * walks entries in insertion order, giving flagged ones a second pass.
 * Closing a table releases its shard's entries at once.
 */
import type { Block } from './block.js';

interface CacheEntry {
  readonly shard: CacheShard;
  readonly offset: number;
  readonly block: Block;
  readonly bytes: number;
  referenced: boolean;
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
  /** Every live entry, oldest first (the CLOCK ring). */
  private readonly ring = new Set<CacheEntry>();
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
    const entry: CacheEntry = { shard, offset, block, bytes, referenced: false };
    shard.entries.set(offset, entry);
    this.ring.add(entry);
    this.bytes += bytes;
    this.evict();
  }

  release(shard: CacheShard): void {
    for (const entry of shard.entries.values()) {
      this.ring.delete(entry);
      this.bytes -= entry.bytes;
    }
    shard.entries.clear();
  }

  get usedBytes(): number {
    return this.bytes;
  }

  get size(): number {
    return this.ring.size;
  }

  clear(): void {
    for (const entry of this.ring) entry.shard.entries.clear();
    this.ring.clear();
    this.bytes = 0;
  }

  private evict(): void {
    // Each step either evicts or clears one flag, so this ends within 2 * size steps.
    while (this.bytes > this.capacityBytes) {
      const first = this.ring.values().next();
      if (first.done) break;
      const entry = first.value;
      this.ring.delete(entry);
      if (entry.referenced) {
        entry.referenced = false;
        this.ring.add(entry);
      } else {
        entry.shard.entries.delete(entry.offset);
        this.bytes -= entry.bytes;
      }
    }
  }
}
