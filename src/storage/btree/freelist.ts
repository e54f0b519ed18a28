/**
 * Free space of the `btree` engine: which pages a write transaction may hand
 * out, and the persisted free list.
 *
 * A page freed by commit T belonged to version T-1. It waits in `pending`
 * until no version older than T must stay intact, then becomes `reusable`:
 * no reader may pin one (versions.ts), and, when the page belongs to the
 * durable base (written by the newest synced commit or earlier), a commit
 * >= T must be synced, because after a power loss the base is what opening
 * falls back to (commit-proof.ts). A page written after the base and freed
 * before the next sync is in no version opening can fall back to: reusing
 * it can only make an unsynced commit that still reached it unprovable, and
 * that commit was never acknowledged as durable. Sequential unsynced writes
 * free mostly such pages (the leaf and branch the previous commit wrote), so
 * they reuse them at once instead of growing the file until a sync. Pages
 * are never reused inside the transaction that freed them.
 * After a restart no reader exists, so every page on the persisted list is
 * reusable.
 *
 * The persisted list names every free page (reusable and pending alike:
 * after a crash all are free). Up to META_INLINE_FREE_MAX pages it is held in
 * the meta page itself (meta.ts), costing a commit no page of its own; a
 * longer one is a chain of free-list pages, which every commit writes anew to
 * fresh pages, freeing the old chain's pages.
 *
 * Used by one write transaction at a time (txn.ts): `beginTxn`, then
 * `takePage`/`takeRun`, then `writeList` and `install` at commit, or
 * `restore` on abort.
 */
import { decodeFreeListPage, encodeFreeListPage, META_PAGES, pageCorruption } from './page.js';
import { type Meta, META_INLINE_FREE_MAX } from './meta.js';
import type { PageWrite, Pager } from './pager.js';

/** Pages one commit freed, waiting until no version that reaches them must stay intact. */
interface PendingPages {
  /** The commit that freed them. */
  readonly txn: number;
  readonly pages: number[];
  /** They belong to the durable base: reusable only once a commit >= `txn` is synced. */
  readonly waitForSync: boolean;
}

export class FreeSpace {
  /** Whether `reusable` may be out of order (pages were added since the last sort). */
  private unsorted = true;

  private constructor(
    /** Free pages any new transaction may use; sorted descending while a transaction runs. */
    private reusable: number[],
    /** Pages freed by committed transaction `txn`: see the file comment for when they become reusable. */
    private pending: PendingPages[],
    /** The pages holding the committed free list (freed by the next commit, which writes a new one). */
    private listPages: number[],
  ) {}

  /** Reads the persisted free list of `meta`, checking every entry lies inside the file. */
  static async load(pager: Pager, meta: Meta): Promise<FreeSpace> {
    const free: number[] = [...meta.inlineFree]; // decodeMeta checked they lie inside the file
    const chain: number[] = [];
    let page = meta.freeListPage;
    while (page !== 0) {
      if (chain.length >= meta.pageCount || page < META_PAGES || page >= meta.pageCount) throw pageCorruption(pager.path, page, 'is not a valid free-list page number');
      chain.push(page);
      const { entries, nextPage } = decodeFreeListPage(pager.path, pager.geometry, page, await pager.readRaw(page, 1), meta.txn);
      for (const entry of entries) {
        if (entry < META_PAGES || entry >= meta.pageCount) throw pageCorruption(pager.path, page, `lists free page ${entry} outside the file`);
        free.push(entry);
      }
      page = nextPage;
    }
    if (free.length !== meta.freeCount) throw pageCorruption(pager.path, meta.freeListPage, `holds ${free.length} free pages, the meta page says ${meta.freeCount}`);
    // After a restart no reader can pin an old version: every free page is reusable.
    return new FreeSpace(free, [], chain);
  }

  /**
   * Starts a transaction: releases the pending pages no version that must
   * stay intact reaches — `oldestPinned` is the oldest version a reader pins
   * (Infinity when none), `durableTxn` the newest synced commit — and
   * returns what `restore` needs to undo the transaction's allocations.
   */
  beginTxn(oldestPinned: number, durableTxn: number): number[] {
    if (this.pending.length > 0) {
      const stillPending: PendingPages[] = [];
      for (const batch of this.pending) {
        if (batch.txn <= oldestPinned && (!batch.waitForSync || batch.txn <= durableTxn)) {
          for (const page of batch.pages) this.reusable.push(page);
          this.unsorted = true;
        } else stillPending.push(batch);
      }
      this.pending = stillPending;
    }
    // Descending, so takePage() hands out the lowest free page first: consecutive allocations get
    // consecutive numbers where the free space allows, and the commit coalesces their writes.
    if (this.unsorted) this.reusable.sort((a, b) => b - a);
    this.unsorted = false;
    return this.reusable.slice();
  }

  /** Undoes a transaction's allocations (it aborted): `before` is what `beginTxn` returned. */
  restore(before: number[]): void {
    this.reusable = before;
  }

  /** The lowest reusable page, or undefined when there is none. */
  takePage(): number | undefined {
    return this.reusable.pop();
  }

  /** The first of `pages` consecutive reusable pages, or undefined when there is no such stretch. */
  takeRun(pages: number): number | undefined {
    // `reusable` is sorted descending during a transaction (see beginTxn), so a run of consecutive
    // pages is a stretch where each entry is one less than the one before.
    let runStart = 0;
    for (let index = 1; index <= this.reusable.length; index++) {
      if (index - runStart === pages) {
        const first = this.reusable[index - 1]!;
        this.reusable.splice(runStart, pages);
        return first;
      }
      if (index < this.reusable.length && this.reusable[index] !== this.reusable[index - 1]! - 1) runStart = index;
    }
    return undefined;
  }

  /**
   * The new persisted free list for committing transaction `txn` that freed
   * `freed` and allocated-then-released `recycled`: the old chain's pages are
   * added to `freed`. Up to META_INLINE_FREE_MAX free pages, the list goes
   * into the meta page (`inline`, ascending; no pages, no writes). Otherwise
   * the chain's pages come from `allocatePage` (which may take from
   * `recycled` and the reusable pages, so the count is re-evaluated as it
   * allocates). Returns the chain's first page (0 when none), its pages, the
   * page writes, the inline list and the number of free pages listed.
   */
  writeList(
    pager: Pager,
    txn: number,
    freed: number[],
    recycled: readonly number[],
    allocatePage: () => number,
  ): { firstPage: number; listPages: number[]; writes: PageWrite[]; inline: number[]; freeCount: number } {
    const geometry = pager.geometry;
    for (const page of this.listPages) freed.push(page);
    const pendingCount = this.pending.reduce((count, batch) => count + batch.pages.length, 0);
    const freeTotal = (): number => this.reusable.length + recycled.length + pendingCount + freed.length;
    const listPages: number[] = [];
    if (freeTotal() > META_INLINE_FREE_MAX) {
      while (listPages.length < Math.ceil(freeTotal() / geometry.freeListEntriesPerPage)) listPages.push(allocatePage());
    }
    const free = this.reusable.concat(recycled, freed);
    for (const batch of this.pending) for (const page of batch.pages) free.push(page);
    free.sort((a, b) => a - b);
    if (listPages.length === 0) return { firstPage: 0, listPages, writes: [], inline: free, freeCount: free.length };
    const writes: PageWrite[] = [];
    for (let index = 0; index < listPages.length; index++) {
      const entries = free.slice(index * geometry.freeListEntriesPerPage, (index + 1) * geometry.freeListEntriesPerPage);
      writes.push({ page: listPages[index]!, bytes: encodeFreeListPage(geometry, listPages[index]!, txn, entries, listPages[index + 1] ?? 0) });
    }
    return { firstPage: listPages[0]!, listPages, writes, inline: [], freeCount: free.length };
  }

  /**
   * Installs a commit (transaction `txn`): its freed pages wait (those
   * `writtenAfterBase` says were written after the durable base for older
   * readers only, the others for a sync too), its recycled ones are free now.
   * Returns how many freed pages wait for a sync.
   */
  install(txn: number, freed: readonly number[], recycled: readonly number[], listPages: number[], writtenAfterBase: (page: number) => boolean): number {
    const ofBase: number[] = [];
    const afterBase: number[] = [];
    for (const page of freed) (writtenAfterBase(page) ? afterBase : ofBase).push(page);
    if (ofBase.length > 0) this.pending.push({ txn, pages: ofBase, waitForSync: true });
    if (afterBase.length > 0) this.pending.push({ txn, pages: afterBase, waitForSync: false });
    for (const page of recycled) this.reusable.push(page);
    if (recycled.length > 0) this.unsorted = true;
    this.listPages = listPages;
    return ofBase.length;
  }
}
