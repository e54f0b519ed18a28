/**
 * The write transaction of the `btree` engine: one `_write` call, applied
 * copy-on-write to the committed version and committed with (at most) one
 * fsync.
 *
 * How to use (the engine does this, one transaction at a time):
 *   const txn = new WriteTxn(pager, freeSpace, committed, { oldestPinned, durableTxn }, { baseTxn, unsynced });
 *   await txn.put(key, value); await txn.delete(key); ...
 *   const result = await txn.commit({ sync, slot }, onMetaWrite);   // undefined: nothing changed
 *   // or, on any error before the commit returns: txn.abort()
 *
 * Copy-on-write: every page the transaction changes is first copied to a
 * page no committed version uses ("touch"); the old page is recorded as freed
 * by this transaction. A page the transaction itself allocated and then no
 * longer needs is free at once ("recycled"). Committed pages are never
 * modified in place.
 *
 * A copied page is kept as bytes (RawNode, page-edit.ts) while the edits it
 * gets are the ones a lone write makes: a new child page number in a branch,
 * one leaf entry inserted, replaced or removed that still fits the page. A
 * page that must split, merge or refill, or that holds overflow keys, is
 * decoded into a node and encoded again at commit. Both give the same bytes.
 *
 * Commit (see the engine's file comment for the crash argument):
 *   1. The changed pages, big keys' overflow runs and a new free list are
 *      written.
 *   2. Both copies of the meta slot the engine chose (never the one holding
 *      the durable base) are written with one write; the meta page carries
 *      the base and the proof of the pages written since it
 *      (commit-proof.ts). With `sync`, one fsync follows.
 */
import { assert } from '../../util/assert.js';
import { compareBytes } from '../../util/bytes.js';
import { provedPagesOf, type ProvedPage, type UnsyncedPages } from './commit-proof.js';
import { encodeMetaSlot, metaPage, type Meta } from './meta.js';
import type { FreeSpace } from './freelist.js';
import {
  nodeFromView,
  nodeLowerBound,
  nodeUpperBound,
  rawFromView,
  rebalanceSiblings,
  splitNode,
  type BranchNode,
  type DirtyNode,
  type LeafNode,
  type RawNode,
  type TreeNode,
} from './node.js';
import { leafEntryBytesAt, setChildAt, spliceLeafEntry } from './page-edit.js';
import type { PageWrite, Pager } from './pager.js';
import {
  childAt,
  compareWithEntry,
  encodeBranch,
  encodeLeaf,
  encodeRun,
  HEADER_BYTES,
  isOverflowRef,
  lowerBound,
  pageCorruption,
  PageType,
  sealPage,
  upperBound,
  valueRefAt,
  type OverflowRef,
  type PageView,
} from './page.js';

/** A branch on the way from the root to a leaf, with the index of the child taken. */
interface PathStep {
  readonly node: BranchNode | RawNode;
  readonly index: number;
}

/** What a commit made durable, for the engine to install. */
export interface CommitResult {
  readonly meta: Meta;
  /** The pages the commit wrote, ready for the page cache. */
  readonly views: readonly PageView[];
  readonly pagesWritten: number;
  /** Pages of the durable base this commit freed: they are not reused before a sync. */
  readonly basePagesFreed: number;
}

/** Where a transaction's version stands against durability (owned by the engine). */
export interface Durability {
  /** The newest synced commit: what the new meta page names as its base. */
  readonly baseTxn: number;
  /** The proof set of the committed version (commit-proof.ts); the commit updates it. */
  readonly unsynced: UnsyncedPages;
}

export class WriteTxn {
  readonly id: number;
  private root: number;
  private depth: number;
  private keyCount: number;
  private pageCount: number;
  /** Pages written by this transaction, by their (new) page number. */
  private readonly dirty = new Map<number, DirtyNode>();
  /** Pages of the committed version this transaction no longer uses. */
  private readonly freed: number[] = [];
  /** Pages this transaction allocated and released again: free right away. */
  private readonly recycled: number[] = [];
  /** Overflow runs this transaction wrote (by first page), with their pages' checksums for the commit proof. */
  private readonly newRuns = new Map<number, ProvedPage[]>();
  /** End (page number after the last page) of the overflow runs written so far by this transaction. */
  private runsEnd = 0;
  /** The free space as it was before the transaction, restored on abort. */
  private readonly reusableBefore: number[];

  /**
   * `reuse` says which freed pages the transaction may hand out again
   * (`FreeSpace.beginTxn`): `oldestPinned` is the oldest version a reader
   * pins (Infinity when none), `durableTxn` the newest synced commit.
   */
  constructor(
    private readonly pager: Pager,
    private readonly freeSpace: FreeSpace,
    private readonly committed: Meta,
    reuse: { readonly oldestPinned: number; readonly durableTxn: number },
    private readonly durability: Durability,
  ) {
    this.id = committed.txn + 1;
    this.root = committed.root;
    this.depth = committed.depth;
    this.keyCount = committed.keyCount;
    this.pageCount = committed.pageCount;
    this.reusableBefore = freeSpace.beginTxn(reuse.oldestPinned, reuse.durableTxn);
    pager.readablePages = committed.pageCount;
  }

  /** Gives the allocations back: the transaction will not commit. */
  abort(): void {
    this.freeSpace.restore(this.reusableBefore);
  }

  async put(key: Buffer, value: Uint8Array): Promise<void> {
    const geometry = this.pager.geometry;
    let stored: Buffer | OverflowRef;
    if (value.length > geometry.valueInlineMax) {
      const first = this.allocateRun(geometry.runPages(value.length));
      const run = encodeRun(geometry, first, this.id, value);
      await this.pager.writePages(first, run);
      this.newRuns.set(first, provedPagesOf([{ page: first, bytes: run }], geometry.pageBytes));
      this.runsEnd = Math.max(this.runsEnd, first + geometry.runPages(value.length));
      stored = { page: first, length: value.length };
    } else {
      stored = Buffer.from(value);
    }
    if (this.root === 0) {
      const leaf: LeafNode = { kind: 'leaf', page: this.allocatePage(), keys: [], values: [], bytes: 0 };
      this.dirty.set(leaf.page, leaf);
      this.root = leaf.page;
      this.depth = 1;
    }
    const { path, leaf: found } = await this.descend(key);
    if (found.kind === 'raw' && key.length <= geometry.keyInlineMax && this.putRaw(found, key, stored)) {
      await this.rebalancePath(path, found, false);
      return;
    }
    const leaf = this.decoded(found) as LeafNode;
    const index = nodeLowerBound(leaf.keys, key);
    let appended = false;
    if (index < leaf.keys.length && compareBytes(leaf.keys[index]!, key) === 0) {
      const old = leaf.values[index]!;
      if (isOverflowRef(old)) this.releaseRun(old);
      leaf.bytes += geometry.leafEntryBytes(key.length, stored.length) - geometry.leafEntryBytes(key.length, old.length);
      leaf.values[index] = stored;
    } else {
      leaf.keys.splice(index, 0, key);
      leaf.values.splice(index, 0, stored);
      leaf.bytes += geometry.leafEntryBytes(key.length, stored.length);
      this.keyCount++;
      appended = index === leaf.keys.length - 1;
    }
    await this.rebalancePath(path, leaf, appended);
  }

  async delete(key: Buffer): Promise<void> {
    // Look first, so deleting an absent key copies no pages.
    if (!(await this.contains(key))) return;
    const { path, leaf: found } = await this.descend(key);
    if (found.kind === 'raw') {
      const index = lowerBound(found.view, key);
      assert(index < found.view.count && compareWithEntry(found.view, index, key) === 0, 'key found on lookup but not on the write path', key);
      this.spliceRaw(found, index, 1, undefined);
      this.keyCount--;
      await this.rebalancePath(path, found, false);
      return;
    }
    const leaf = this.decoded(found) as LeafNode;
    const index = nodeLowerBound(leaf.keys, key);
    assert(index < leaf.keys.length && compareBytes(leaf.keys[index]!, key) === 0, 'key found on lookup but not on the write path', key);
    const old = leaf.values[index]!;
    if (isOverflowRef(old)) this.releaseRun(old);
    leaf.keys.splice(index, 1);
    leaf.values.splice(index, 1);
    leaf.bytes -= this.pager.geometry.leafEntryBytes(key.length, old.length);
    this.keyCount--;
    await this.rebalancePath(path, leaf, false);
  }

  /**
   * Puts `key` into a leaf edited as bytes when the result fits the page;
   * false (nothing changed) when it does not, and the leaf must be decoded
   * to split. The key is inline.
   */
  private putRaw(leaf: RawNode, key: Buffer, stored: Buffer | OverflowRef): boolean {
    const geometry = this.pager.geometry;
    const index = lowerBound(leaf.view, key);
    const exists = index < leaf.view.count && compareWithEntry(leaf.view, index, key) === 0;
    const oldBytes = exists ? leafEntryBytesAt(leaf.view.bytes, index) : 0;
    if (leaf.bytes - oldBytes + geometry.leafEntryBytes(key.length, stored.length) > geometry.payloadBytes) return false;
    this.spliceRaw(leaf, index, exists ? 1 : 0, { key, value: stored });
    if (!exists) this.keyCount++;
    return true;
  }

  /** Replaces `remove` entries at `index` of a leaf edited as bytes by `entry`; frees the removed value's overflow run. */
  private spliceRaw(leaf: RawNode, index: number, remove: 0 | 1, entry: { key: Uint8Array; value: Uint8Array | OverflowRef } | undefined): void {
    const geometry = this.pager.geometry;
    const view = leaf.view;
    if (remove === 1) {
      const old = valueRefAt(view, index);
      if (isOverflowRef(old)) this.releaseRun(old);
      leaf.bytes -= leafEntryBytesAt(view.bytes, index);
    }
    if (entry !== undefined) leaf.bytes += geometry.leafEntryBytes(entry.key.length, entry.value.length);
    const bytes = spliceLeafEntry(view.bytes, view.count, index, remove, entry);
    leaf.view = { ...view, bytes, count: view.count - remove + (entry === undefined ? 0 : 1) };
    leaf.shared = false;
  }

  /** The node as a decoded node (decoding a byte-edited page once; the dirty map then holds the decoded node). */
  private decoded(node: DirtyNode): TreeNode {
    if (node.kind !== 'raw') return node;
    const current = this.dirty.get(node.page);
    if (current !== undefined && current.kind !== 'raw') return current;
    const decoded = nodeFromView(this.pager.geometry, node.view);
    decoded.page = node.page;
    this.dirty.set(node.page, decoded);
    return decoded;
  }

  // ---- pages: allocate, release, touch -------------------------------------------------------

  private allocatePage(): number {
    let page = this.recycled.pop() ?? this.freeSpace.takePage();
    if (page === undefined) {
      page = this.pageCount++;
      this.pager.readablePages = this.pageCount;
    }
    this.pager.cache.delete(page);
    return page;
  }

  /** `pages` consecutive free pages: from the reusable set when it has such a run, else at the end of the file. */
  private allocateRun(pages: number): number {
    if (pages === 1) return this.allocatePage();
    const reused = this.freeSpace.takeRun(pages);
    if (reused !== undefined) {
      for (let page = reused; page < reused + pages; page++) this.pager.cache.delete(page);
      return reused;
    }
    const first = this.pageCount;
    this.pageCount += pages;
    this.pager.readablePages = this.pageCount;
    return first;
  }

  /** Gives back a page this transaction no longer uses (with the overflow runs of its keys). */
  private releasePage(page: number, keyRuns: readonly OverflowRef[]): void {
    if (this.dirty.delete(page)) {
      this.recycled.push(page);
      return;
    }
    this.freed.push(page);
    for (const run of keyRuns) for (let index = 0; index < this.pager.geometry.runPages(run.length); index++) this.freed.push(run.page + index);
  }

  private releaseRun(ref: OverflowRef): void {
    const target = this.newRuns.delete(ref.page) ? this.recycled : this.freed;
    for (let index = 0; index < this.pager.geometry.runPages(ref.length); index++) target.push(ref.page + index);
  }

  /**
   * The page as a node this transaction may change: copied to a fresh page
   * number unless it already is one. Edited as bytes (RawNode) unless it has
   * overflow keys (then decoded: their runs are rewritten with the page).
   */
  private async touch(page: number): Promise<DirtyNode> {
    const dirty = this.dirty.get(page);
    if (dirty !== undefined) return dirty;
    const view = await this.pager.readView(page, this.committed.txn);
    const node: DirtyNode = view.bigKeys === undefined ? rawFromView(view) : nodeFromView(this.pager.geometry, view);
    this.releasePage(page, view.keyRuns);
    node.page = this.allocatePage();
    this.dirty.set(node.page, node);
    return node;
  }

  // ---- the tree: look up, descend, rebalance ------------------------------------------------

  private async contains(key: Buffer): Promise<boolean> {
    let page = this.root;
    if (page === 0) return false;
    for (;;) {
      const node = this.dirty.get(page);
      if (node !== undefined && node.kind !== 'raw') {
        if (node.kind === 'leaf') {
          const index = nodeLowerBound(node.keys, key);
          return index < node.keys.length && compareBytes(node.keys[index]!, key) === 0;
        }
        page = node.children[nodeUpperBound(node.keys, key)]!;
        continue;
      }
      const view = node?.view ?? (await this.pager.readView(page, this.committed.txn));
      if (view.type === PageType.Leaf) {
        const index = lowerBound(view, key);
        return index < view.count && compareWithEntry(view, index, key) === 0;
      }
      page = childAt(view, upperBound(view, key));
    }
  }

  /** Touches the root-to-leaf path for `key`, returning it (branches with the child index taken) and the leaf. */
  private async descend(key: Buffer): Promise<{ path: PathStep[]; leaf: LeafNode | RawNode }> {
    const path: PathStep[] = [];
    let node = await this.touch(this.root);
    this.root = node.page;
    while (node.kind === 'branch' || (node.kind === 'raw' && node.view.type === PageType.Branch)) {
      if (path.length + 1 >= this.depth) throw pageCorruption(this.pager.path, node.page, `is a branch at leaf depth ${this.depth}`);
      if (node.kind === 'raw') {
        const index = upperBound(node.view, key);
        const child = await this.touch(childAt(node.view, index));
        if (node.shared) {
          node.view = { ...node.view, bytes: Buffer.from(node.view.bytes) };
          node.shared = false;
        }
        setChildAt(node.view.bytes, index, child.page);
        path.push({ node, index });
        node = child;
        continue;
      }
      const index = nodeUpperBound(node.keys, key);
      const child = await this.touch(node.children[index]!);
      node.children[index] = child.page;
      path.push({ node, index });
      node = child;
    }
    if (path.length + 1 !== this.depth) throw pageCorruption(this.pager.path, node.page, `is a leaf at depth ${path.length + 1}, the tree has depth ${this.depth}`);
    return { path, leaf: node };
  }

  /**
   * Restores the fill bounds along `path` after `start` (its last element's
   * child) changed: an overfull node splits in two and pushes a separator up;
   * an underfull non-root node is merged with, or refilled from, a sibling,
   * which changes its parent; the walk goes up while something changed.
   * Finally a root branch with a single child, or an empty root leaf, is
   * removed (the tree gets shorter).
   *
   * `appended`: the change added a key after every other key of the tree.
   * Then splits along the right edge leave the new right page only a quarter
   * full (see `splitNode`), still within the fill bounds.
   */
  private async rebalancePath(path: PathStep[], start: DirtyNode, appended: boolean): Promise<void> {
    const geometry = this.pager.geometry;
    let node: DirtyNode = start;
    let level = path.length;
    for (;;) {
      if (node.bytes > geometry.payloadBytes) {
        assert(node.kind !== 'raw', 'a page edited as bytes overfilled', node.page);
        let rightEdge = appended;
        for (let step = 0; step < level && rightEdge; step++) rightEdge = path[step]!.index === childCount(path[step]!.node) - 1;
        const { right, separator } = splitNode(geometry, node, rightEdge, this.allocatePage());
        this.dirty.set(right.page, right);
        if (level === 0) {
          const root: BranchNode = {
            kind: 'branch',
            page: this.allocatePage(),
            keys: [separator],
            children: [node.page, right.page],
            bytes: geometry.branchEntryBytes(separator.length),
          };
          this.dirty.set(root.page, root);
          this.root = root.page;
          this.depth++;
          return;
        }
        const step = path[--level]!;
        const parent = this.decoded(step.node) as BranchNode;
        const index = step.index;
        parent.keys.splice(index, 0, separator);
        parent.children.splice(index + 1, 0, right.page);
        parent.bytes += geometry.branchEntryBytes(separator.length);
        node = parent;
        continue;
      }
      if (level > 0 && node.bytes < geometry.fillBytesMin) {
        const step = path[--level]!;
        const parent = this.decoded(step.node) as BranchNode;
        await this.refill(parent, step.index);
        node = parent;
        continue;
      }
      break;
    }
    if (level > 0) return;
    this.shrinkRoot();
  }

  /** The root after a change: a branch with one child, or an empty leaf, is removed. */
  private shrinkRoot(): void {
    const dirtyRoot = this.dirty.get(this.root);
    assert(dirtyRoot !== undefined, 'root not dirty after a change', this.root);
    // A root left with one child or no entry is rare: decode it then.
    const root = dirtyRoot.kind === 'raw' && dirtyRoot.view.count > 0 ? undefined : this.decoded(dirtyRoot);
    if (root === undefined) return;
    if (root.kind === 'branch' && root.keys.length === 0) {
      this.root = root.children[0]!;
      this.depth--;
      this.releasePage(root.page, []);
    } else if (root.kind === 'leaf' && root.keys.length === 0) {
      this.releasePage(root.page, []);
      this.root = 0;
      this.depth = 0;
    }
  }

  /**
   * Child `index` of `parent` is underfull: combine it with a neighbour (the
   * left one when it has one), merging the two or dealing their entries out
   * again (`rebalanceSiblings`), and fix the parent's separators.
   */
  private async refill(parent: BranchNode, index: number): Promise<void> {
    const geometry = this.pager.geometry;
    const leftIndex = index > 0 ? index - 1 : index;
    assert(parent.children.length >= 2, 'underfull child without a sibling', parent.page);
    const left = this.decoded(await this.touch(parent.children[leftIndex]!));
    parent.children[leftIndex] = left.page;
    const right = this.decoded(await this.touch(parent.children[leftIndex + 1]!));
    parent.children[leftIndex + 1] = right.page;
    const oldSeparator = parent.keys[leftIndex]!;
    const separator = rebalanceSiblings(geometry, left, right, oldSeparator);
    if (separator === undefined) {
      parent.keys.splice(leftIndex, 1);
      parent.children.splice(leftIndex + 1, 1);
      parent.bytes -= geometry.branchEntryBytes(oldSeparator.length);
      this.releasePage(right.page, []);
    } else {
      parent.keys[leftIndex] = separator;
      parent.bytes += geometry.branchEntryBytes(separator.length) - geometry.branchEntryBytes(oldSeparator.length);
    }
  }

  // ---- commit ----------------------------------------------------------------------------

  /**
   * Writes the transaction's pages and free list, then both copies of meta
   * slot `slot` (with its base and proof), then syncs once when `sync`.
   * `onMetaWrite` is called just before the meta write begins. Returns
   * undefined when the transaction changed nothing.
   */
  async commit(options: { readonly sync: boolean; readonly slot: number }, onMetaWrite: () => void): Promise<CommitResult | undefined> {
    if (this.dirty.size === 0 && this.freed.length === 0 && this.recycled.length === 0 && this.newRuns.size === 0) return undefined;
    const geometry = this.pager.geometry;
    const { writes, views } = this.encodeDirty();
    const list = this.freeSpace.writeList(this.pager, this.id, this.freed, this.recycled, () => this.allocatePage());
    writes.push(...list.writes);
    // What the proof covers: every page this commit wrote that the new version reaches (the
    // dirty nodes, their big keys, the free list, the value runs still referenced), not the
    // zero page below.
    const added = provedPagesOf(writes, geometry.pageBytes);
    for (const pages of this.newRuns.values()) added.push(...pages);
    const proof = this.durability.unsynced.preview(this.freed, added);
    // The file must reach the new page count even when the last allocated page ended up free
    // (allocated, then merged away): opening checks the size, and a later read of a free page
    // number must not find the file cut short. A zero page there is simply a free page.
    let writtenEnd = Math.max(this.committed.pageCount, this.runsEnd);
    for (const write of writes) writtenEnd = Math.max(writtenEnd, write.page + write.bytes.length / geometry.pageBytes);
    if (writtenEnd < this.pageCount) writes.push({ page: this.pageCount - 1, bytes: Buffer.alloc(geometry.pageBytes) });
    await this.pager.writeCoalesced(writes);
    const meta: Meta = {
      txn: this.id,
      pageBytes: geometry.pageBytes,
      root: this.root,
      depth: this.depth,
      pageCount: this.pageCount,
      freeListPage: list.firstPage,
      freeCount: list.freeCount,
      inlineFree: list.inline,
      keyCount: this.keyCount,
      baseTxn: this.durability.baseTxn,
      proofPages: proof.pages,
      proofDigest: proof.digest,
    };
    onMetaWrite();
    // Both copies of the slot in one write (recovery.ts says why a crash cannot damage both).
    const slotBytes = encodeMetaSlot(geometry.pageBytes, options.slot, meta, this.pager.scratch(2 * geometry.pageBytes));
    await this.pager.writePages(metaPage(options.slot, 0), slotBytes);
    if (options.sync) await this.pager.file.sync();
    // Before the proof set changes: it tells which freed pages were written after the base.
    const unsynced = this.durability.unsynced;
    const basePagesFreed = this.freeSpace.install(this.id, this.freed, this.recycled, list.listPages, (page) => unsynced.has(page));
    if (options.sync) unsynced.clear();
    else unsynced.apply(this.freed, added);
    return { meta, views, pagesWritten: writes.length, basePagesFreed };
  }

  /** Encodes every dirty node (allocating the overflow runs of its big keys) as page writes and cacheable views. */
  private encodeDirty(): { writes: PageWrite[]; views: PageView[] } {
    const geometry = this.pager.geometry;
    const writes: PageWrite[] = [];
    const views: PageView[] = [];
    for (const node of this.dirty.values()) {
      if (node.kind === 'raw') {
        const view = sealRaw(node, this.id);
        writes.push({ page: view.page, bytes: view.bytes });
        views.push(view);
        continue;
      }
      const keyPages: Array<number | undefined> = [];
      const bigKeys: Array<Buffer | undefined> = [];
      const keyRuns: OverflowRef[] = [];
      for (const key of node.keys) {
        if (key.length > geometry.keyInlineMax) {
          const first = this.allocateRun(geometry.runPages(key.length));
          writes.push({ page: first, bytes: encodeRun(geometry, first, this.id, key) });
          keyPages.push(first);
          bigKeys.push(Buffer.from(key.buffer, key.byteOffset, key.length));
          keyRuns.push({ page: first, length: key.length });
        } else {
          keyPages.push(undefined);
          bigKeys.push(undefined);
        }
      }
      const bytes =
        node.kind === 'leaf'
          ? encodeLeaf(geometry, node.page, this.id, node.keys, node.values, keyPages)
          : encodeBranch(geometry, node.page, this.id, node.keys, node.children, keyPages);
      writes.push({ page: node.page, bytes });
      views.push({
        page: node.page,
        stamp: this.id,
        bytes,
        type: node.kind === 'leaf' ? PageType.Leaf : PageType.Branch,
        count: node.keys.length,
        bigKeys: keyRuns.length > 0 ? bigKeys : undefined,
        keyRuns,
      });
    }
    return { writes, views };
  }
}

/** Children of a branch on the path, decoded or edited as bytes. */
function childCount(node: BranchNode | RawNode): number {
  return node.kind === 'raw' ? node.view.count + 1 : node.children.length;
}

/** A page edited as bytes, as written by commit `stamp`: its header's page number and stamp filled in, checksummed. */
function sealRaw(node: RawNode, stamp: number): PageView {
  const bytes = node.shared ? Buffer.from(node.view.bytes) : node.view.bytes;
  bytes.writeUInt32LE(node.page, 8);
  bytes.writeDoubleLE(stamp, 16);
  sealPage(bytes, HEADER_BYTES + node.bytes);
  return { ...node.view, page: node.page, stamp, bytes };
}
