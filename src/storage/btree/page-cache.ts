/**
 * The page cache of the `btree` engine: verified leaf and branch pages by page
 * number, least recently used first out, bounded by a byte budget.
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

export class PageCache {
  /** Map iteration order is insertion order: the first entry is the least recently used. */
  private readonly pages = new Map<number, PageView>();
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

  /** The cached page, marking it most recently used; counts a hit or a miss. */
  get(page: number): PageView | undefined {
    const view = this.pages.get(page);
    if (view === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Re-insert to move it to the most-recently-used end.
    this.pages.delete(page);
    this.pages.set(page, view);
    return view;
  }

  /** The cached page without touching recency or counters (for the checker). */
  peek(page: number): PageView | undefined {
    return this.pages.get(page);
  }

  put(view: PageView): void {
    this.delete(view.page);
    this.pages.set(view.page, view);
    this.bytesUsed += viewBytes(view);
    this.evict();
  }

  delete(page: number): void {
    const old = this.pages.get(page);
    if (old === undefined) return;
    this.pages.delete(page);
    this.bytesUsed -= viewBytes(old);
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
    while (this.bytesUsed > this.bytesMax && this.pages.size > 0) {
      const oldest = this.pages.keys().next().value as number;
      this.delete(oldest);
    }
  }
}

function viewBytes(view: PageView): number {
  let bytes = view.bytes.length;
  if (view.bigKeys !== undefined) for (const key of view.bigKeys) bytes += key?.length ?? 0;
  return bytes;
}
