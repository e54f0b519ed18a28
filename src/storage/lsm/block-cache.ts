/**
 * The block cache: verified data blocks keyed by (table file number, block
 * offset), bounded by a byte budget. Eviction is CLOCK (second chance): a hit
 * only sets a flag, so the hot path is one Map lookup and no reordering; the
 * evictor walks entries in insertion order, giving flagged ones a second pass.
 *
 * File numbers are never reused within a process, so entries of deleted
 * tables are never hit again and simply age out.
 */
import { assert } from '../../util/assert.js';
import type { Block } from './block.js';

interface CacheEntry {
  readonly block: Block;
  readonly bytes: number;
  referenced: boolean;
}

/** Per-entry bookkeeping bytes charged on top of the block's own size. */
const ENTRY_OVERHEAD_BYTES = 96;
/** File numbers stay below this so `fileNumber * 2^32 + offset` is a safe integer key. */
export const FILE_NUMBER_MAX = 2 ** 20;

export class BlockCache {
  private readonly entries = new Map<number, CacheEntry>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  /** `capacityBytes`: most bytes of blocks held (0 disables caching). */
  constructor(readonly capacityBytes: number) {}

  static keyOf(fileNumber: number, offset: number): number {
    assert(fileNumber < FILE_NUMBER_MAX, 'file number too large for the block cache key', fileNumber);
    return fileNumber * 0x1_0000_0000 + offset;
  }

  get(key: number): Block | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    entry.referenced = true;
    return entry.block;
  }

  insert(key: number, block: Block): void {
    const bytes = block.data.length + ENTRY_OVERHEAD_BYTES;
    if (bytes > this.capacityBytes || this.entries.has(key)) return;
    this.entries.set(key, { block, bytes, referenced: false });
    this.bytes += bytes;
    this.evict();
  }

  get usedBytes(): number {
    return this.bytes;
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  private evict(): void {
    // Each pass either evicts or clears one flag, so this ends within 2 * size steps.
    while (this.bytes > this.capacityBytes) {
      const first = this.entries.entries().next();
      if (first.done) break;
      const [key, entry] = first.value;
      this.entries.delete(key);
      if (entry.referenced) {
        entry.referenced = false;
        this.entries.set(key, entry);
      } else {
        this.bytes -= entry.bytes;
      }
    }
  }
}
