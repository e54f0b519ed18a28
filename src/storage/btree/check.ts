/**
 * `checkTree()` of the `btree` engine: verifies one committed version as it
 * is on disk, reading every page from the file (not the cache).
 *
 * Asserts: keys strictly ascending within each page and inside the bounds
 * its parents give; every leaf at the meta page's depth; every non-root leaf
 * and branch between a quarter full and full (a root at least one entry);
 * every leaf and branch packed (entries in slot order, no gaps, zeros after:
 * the byte edits of page-edit.ts rely on it) and, when cached, identical to
 * the file's copy; the key count and the free count match the meta page; and every page of
 * the file in [META_PAGES, pageCount) is exactly one of: reachable tree page,
 * overflow page of a reachable entry, free-list page, free page — never two,
 * never none (a leak). A violation is an `AssertionError` describing it; a
 * page that fails its checksum is IMPULSE_ERR_ENGINE_CORRUPTION.
 */
import { assert } from '../../util/assert.js';
import { compareBytes } from '../../util/bytes.js';
import type { Meta } from './meta.js';
import type { Pager } from './pager.js';
import { childAt, decodeFreeListPage, keyAt, META_PAGES, PageType, scanEntries, valueRefAt, type OverflowRef } from './page.js';
import { unpackedReason } from './page-edit.js';

/** What `checkTree()` found; every field is a count. */
export interface BTreeCheckReport {
  readonly depth: number;
  readonly keys: number;
  readonly leafPages: number;
  readonly branchPages: number;
  readonly overflowPages: number;
  readonly freeListPages: number;
  readonly freePages: number;
  readonly pageCount: number;
}

/** Checks version `meta` of the file behind `pager`. The caller keeps the version pinned while this runs. */
export async function checkVersion(pager: Pager, meta: Meta): Promise<BTreeCheckReport> {
  const owner = new Map<number, string>();
  const claim = (page: number, what: string): void => {
    assert(page >= META_PAGES && page < meta.pageCount, `${what} is outside the database`, page, meta.pageCount);
    const previous = owner.get(page);
    assert(previous === undefined, `page ${page} is used twice`, previous, what);
    owner.set(page, what);
  };
  const tree = await checkTreePages(pager, meta, claim);
  const free = await checkFreeList(pager, meta, claim);
  for (let page = META_PAGES; page < meta.pageCount; page++) assert(owner.has(page), `page ${page} is neither reachable nor free (leaked)`);
  return { depth: meta.depth, ...tree, ...free, pageCount: meta.pageCount };
}

type Claim = (page: number, what: string) => void;

/** Walks the tree of `meta` from its root, claiming every tree and overflow page. */
async function checkTreePages(
  pager: Pager,
  meta: Meta,
  claim: Claim,
): Promise<{ keys: number; leafPages: number; branchPages: number; overflowPages: number }> {
  const geometry = pager.geometry;
  const claimRun = (ref: OverflowRef, what: string): number => {
    const pages = geometry.runPages(ref.length);
    for (let index = 0; index < pages; index++) claim(ref.page + index, what);
    return pages;
  };
  const counts = { keys: 0, leafPages: 0, branchPages: 0, overflowPages: 0 };
  const walk = async (page: number, level: number, lower: Buffer | undefined, upper: Buffer | undefined): Promise<void> => {
    claim(page, `tree page at level ${level}`);
    const view = await pager.loadView(page, meta.txn);
    // Lone writes edit pages as bytes (page-edit.ts), which relies on every page being packed;
    // and the cached copy of a page, if any, must be the page as written.
    const unpacked = unpackedReason(view.bytes, view.count, view.type === PageType.Leaf);
    assert(unpacked === undefined, `page ${page} is not packed: ${unpacked}`);
    const cached = pager.cache.peek(page);
    if (cached !== undefined) {
      const same = cached.bytes.equals(view.bytes) && cached.count === view.count && cached.type === view.type && cached.stamp === view.stamp;
      assert(same, `the cached page ${page} differs from the page in the file`);
    }
    const isRoot = level === 1;
    const entryKeys: Buffer[] = [];
    let bytes = 0;
    for (let index = 0; index < view.count; index++) entryKeys.push(keyAt(view, index));
    const { valueRuns } = scanEntries(pager.path, page, view.bytes);
    for (const run of view.keyRuns) counts.overflowPages += claimRun(run, `overflow key of page ${page}`);
    for (let index = 0; index < entryKeys.length; index++) {
      const key = entryKeys[index]!;
      if (index > 0) assert(compareBytes(entryKeys[index - 1]!, key) < 0, `keys out of order in page ${page}`, index, entryKeys[index - 1], key);
      if (lower !== undefined) assert(compareBytes(key, lower) >= 0, `key below its parent's bound in page ${page}`, key, lower);
      if (upper !== undefined) assert(compareBytes(key, upper) < 0, `key not below its parent's bound in page ${page}`, key, upper);
      bytes += view.type === PageType.Leaf ? geometry.leafEntryBytes(key.length, valueRefAt(view, index).length) : geometry.branchEntryBytes(key.length);
    }
    assert(bytes <= geometry.payloadBytes, `page ${page} overfull`, bytes);
    if (isRoot) assert(view.count >= 1, `root page ${page} is empty`);
    else assert(bytes >= geometry.fillBytesMin, `page ${page} below the fill bound`, bytes, geometry.fillBytesMin);
    if (view.type === PageType.Leaf) {
      assert(level === meta.depth, `leaf ${page} at level ${level}, tree depth ${meta.depth}`);
      counts.leafPages++;
      counts.keys += view.count;
      for (const run of valueRuns) counts.overflowPages += claimRun(run, `overflow value in leaf ${page}`);
      return;
    }
    assert(level < meta.depth, `branch ${page} at level ${level}, tree depth ${meta.depth}`);
    counts.branchPages++;
    for (let index = 0; index <= view.count; index++) {
      await walk(childAt(view, index), level + 1, index === 0 ? lower : entryKeys[index - 1], index === view.count ? upper : entryKeys[index]);
    }
  };
  if (meta.root !== 0) await walk(meta.root, 1, undefined, undefined);
  else assert(meta.depth === 0, 'empty tree with nonzero depth', meta.depth);
  assert(counts.keys === meta.keyCount, 'key count differs from the meta page', counts.keys, meta.keyCount);
  return counts;
}

/** Reads the free list of `meta` (held inline in the meta page, or a chain of pages), claiming its pages and the free pages it lists. */
async function checkFreeList(pager: Pager, meta: Meta, claim: Claim): Promise<{ freeListPages: number; freePages: number }> {
  let freeListPages = 0;
  for (const entry of meta.inlineFree) claim(entry, 'free page');
  let freePages = meta.inlineFree.length;
  let page = meta.freeListPage;
  while (page !== 0) {
    claim(page, 'free-list page');
    freeListPages++;
    const { entries, nextPage } = decodeFreeListPage(pager.path, pager.geometry, page, await pager.readRaw(page, 1), meta.txn);
    for (const entry of entries) claim(entry, 'free page');
    freePages += entries.length;
    page = nextPage;
  }
  assert(freePages === meta.freeCount, 'free count differs from the meta page', freePages, meta.freeCount);
  return { freeListPages, freePages };
}
