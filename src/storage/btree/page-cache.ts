/**
 * The page cache of the `btree` engine: verified leaf and branch pages by page
 * number, bounded by a byte budget, evicted by CLOCK (second chance): a hit
 * only sets a flag, and eviction walks entries in insertion order, giving a
 * flagged entry one more round. That approximates LRU without reordering a
 * map on every hit, which measured as 40% of a cached point read.
 *
 * Pages are immutable once committed (copy-on-write), so a cached page never
 * goes stale while its number belongs to a version some reader can see; the
 * engine drops an entry when it hands the page number out again, and puts the
 * new contents in at commit. Overflow runs are not cached: they are read whole
 * per access and would crowd out the tree.
 *
 * Single-threaded (JavaScript); no locking.
 */
import type { PageView } from './page.js';

interface CacheEntry {
  readonly view: PageView;
  referenced: boolean;
}

export class PageCache {
  /** Map iteration order is insertion order: the clock hand starts at the first entry. */
  private readonly pages = new Map<number, CacheEntry>();
  private bytesUsed = 0;
  hits = 0;
  misses = 0;

  /** `bytesMax`: budget for cached page bytes (page size plus overflow keys held by the page). */
  constructor(readonly bytesMax: number) {}

  get bytes(): number {
    return this.bytesUsed;
  }

  get size(): number {
    return this.pages.size;
  }

  /** The cached page, marking it recently used; counts a hit or a miss. */
  get(page: number): PageView | undefined {
    const entry = this.pages.get(page);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    entry.referenced = true;
    return entry.view;
  }

  /** The cached page without touching recency or counters. */
  peek(page: number): PageView | undefined {
    return this.pages.get(page)?.view;
  }

  put(view: PageView): void {
    this.delete(view.page);
    this.pages.set(view.page, { view, referenced: false });
    this.bytesUsed += viewBytes(view);
    this.evict();
  }

  delete(page: number): void {
    const old = this.pages.get(page);
    if (old === undefined) return;
    this.pages.delete(page);
    this.bytesUsed -= viewBytes(old.view);
  }

  clear(): void {
    this.pages.clear();
    this.bytesUsed = 0;
  }

  /** Hits / (hits + misses), 0 before the first lookup. */
  get hitRatio(): number {
    const lookups = this.hits + this.misses;
    return lookups === 0 ? 0 : this.hits / lookups;
  }

  private evict(): void {
    // Each pass either evicts the entry under the hand or clears its flag and moves it behind
    // the hand, so this ends within two rounds of the map.
    while (this.bytesUsed > this.bytesMax && this.pages.size > 0) {
      const [page, entry] = this.pages.entries().next().value as [number, CacheEntry];
      this.pages.delete(page);
      if (entry.referenced) {
        entry.referenced = false;
        this.pages.set(page, entry);
      } else {
        this.bytesUsed -= viewBytes(entry.view);
      }
    }
  }
}

function viewBytes(view: PageView): number {
  let bytes = view.bytes.length;
  if (view.bigKeys !== undefined) for (const key of view.bigKeys) bytes += key?.length ?? 0;
  return bytes;
}
