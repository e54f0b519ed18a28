/**
 * The `btree` engine: an on-disk B+tree in one file, crash-safe by copy-on-write
 * shadow paging with two alternating meta pages (the LMDB / bbolt design).
 *
 * How to use: `new BTreeEngine({ dataDir, vfs?, pageBytes?, cacheBytesMax? })`,
 * then the `Engine` API. `checkTree()` verifies the committed tree on disk.
 *
 * How a write commits (one `_write` call = one transaction = one commit; the
 * base class's group commit hands every write queued meanwhile to one call):
 *
 *   1. Every page the transaction changes is first copied to a page that no
 *      committed version uses ("touch"); the old page is recorded as freed by
 *      this transaction. Pages are never modified in place once committed.
 *   2. The new pages, overflow runs and a fresh copy of the free list are
 *      written, and the file is fsynced (first fsync).
 *   3. The meta page for this version (slot txn % 2, carrying the root, the
 *      free-list head and its own checksum) is written and fsynced (second
 *      fsync). Only this makes the version visible after a crash.
 *
 * After a crash the newest meta page with a valid checksum wins. A crash
 * before step 3 completes (or a torn meta write) leaves the previous version
 * as the newest valid one, and its tree untouched: steps 1-2 only write pages
 * the previous version does not use (pages it freed are reused from the NEXT
 * transaction on). They may overwrite pages of the version before it, but
 * that version's meta sits in the very slot step 3 overwrites, and the
 * previous meta was fsynced by its own commit, so it is never the fallback.
 * Group commit thus costs two fsyncs per `_write`, shared by every write in
 * the group.
 *
 * Readers see a snapshot: a range scan pins the committed version it started
 * on, and a page freed by transaction T is reused only when no reader pins a
 * version older than T. A point read that finds every page in the cache runs
 * without awaiting anything.
 *
 * Failure handling: an I/O error before the meta write rolls the transaction
 * back in memory (the disk still holds the previous version) and the engine
 * stays usable. An error during or after the meta write leaves it unknown
 * which version is on disk, so the engine refuses further writes (reads still
 * serve the last version it knows) until it is reopened.
 */
import { ImpulseError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { joinPath, type Vfs, type VfsFile } from '../../vfs/vfs.js';
import { NodeVfs } from '../../vfs/node-vfs.js';
import { aboveLower, belowUpper, Engine, type EngineOptions, type EngineStats, type Entry, type KeyRange, type WriteOp } from '../engine.js';
import {
  childAt,
  compareBytes,
  compareWithEntry,
  corruption,
  decodeFreeListPage,
  decodeMeta,
  decodeRun,
  encodeBranch,
  encodeFreeListPage,
  encodeLeaf,
  encodeMeta,
  encodeRun,
  isOverflowRef,
  keyAt,
  lowerBound,
  META_PAGES,
  PAGE_BYTES_MAX,
  PAGE_BYTES_MIN,
  PageGeometry,
  PageType,
  scanEntries,
  upperBound,
  valueAt,
  valueRefAt,
  verifyPage,
  type Meta,
  type OverflowRef,
  type PageView,
} from './page.js';
import { PageCache } from './page-cache.js';

export const BTREE_FILE_NAME = 'btree.db';
export const DEFAULT_PAGE_BYTES = 4096;
export const DEFAULT_CACHE_BYTES_MAX = 128 * 1024 * 1024;
/** Page writes a commit keeps in flight at once. */
const WRITES_IN_FLIGHT = 16;

export interface BTreeEngineOptions extends EngineOptions {
  /** File-system seam; default the real file system (`NodeVfs`). */
  readonly vfs?: Vfs;
  /** Page size for a NEW file (power of two, 512..32768, default 4096). An existing file keeps its own. */
  readonly pageBytes?: number;
  /** Byte budget of the page cache. Default 128 MiB. */
  readonly cacheBytesMax?: number;
}

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

/** A leaf or branch being changed by the running transaction (decoded, mutable). */
interface LeafNode {
  readonly kind: 'leaf';
  page: number;
  keys: Buffer[];
  values: Array<Buffer | OverflowRef>;
  /** Entry bytes (slots included, header excluded) the page would take. */
  bytes: number;
}

interface BranchNode {
  readonly kind: 'branch';
  page: number;
  keys: Buffer[];
  children: number[];
  bytes: number;
}

type TreeNode = LeafNode | BranchNode;

interface PathStep {
  readonly node: BranchNode;
  readonly index: number;
}

/** The state of one write transaction (one `_write` call). */
interface Txn {
  readonly id: number;
  root: number;
  depth: number;
  keyCount: number;
  pageCount: number;
  /** Pages written by this transaction, by their (new) page number. */
  readonly dirty: Map<number, TreeNode>;
  /** Pages of the committed version this transaction no longer uses. */
  readonly freed: number[];
  /** Pages this transaction allocated and released again: free right away. */
  readonly recycled: number[];
  /** First pages of overflow runs this transaction wrote. */
  readonly newRuns: Set<number>;
  /** End (page number after the last page) of the overflow runs written so far by this transaction. */
  runsEnd: number;
  /** `reusable` as it was before the transaction, restored on abort. */
  readonly reusableBefore: number[];
}

interface Frame {
  readonly view: PageView;
  index: number;
}

export class BTreeEngine extends Engine {
  readonly name = 'btree';
  readonly supports = { durable: true, cheapKeyCount: true } as const;

  private readonly vfs: Vfs;
  private readonly dataDir: string;
  private readonly path: string;
  private readonly requestedPageBytes: number;
  private readonly cache: PageCache;
  private file: VfsFile | undefined;
  private geometry: PageGeometry;
  private committed: Meta | undefined;
  /** Free pages any new transaction may use. */
  private reusable: number[] = [];
  /** Pages freed by committed transaction `txn`; reusable once no reader pins a version older than `txn`. */
  private pending: Array<{ txn: number; pages: number[] }> = [];
  /** The pages holding the committed free list (freed by the next commit, which writes a new one). */
  private freeListPages: number[] = [];
  /** Reader pins: committed txn id → number of readers on it. */
  private readonly readers = new Map<number, number>();
  /** Set when a commit failed after its meta write began: writes are refused until reopen. */
  private poisoned: unknown;
  /** Page count of the running transaction (its reads may reach pages it allocated), else 0. */
  private txnPageCount = 0;
  private commits = 0;
  private pagesWritten = 0;
  private writeCalls = 0;

  constructor(options: BTreeEngineOptions) {
    super(options);
    if (options.dataDir === undefined || options.dataDir.length === 0) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the btree engine needs a data directory');
    }
    this.vfs = options.vfs ?? new NodeVfs();
    this.dataDir = options.dataDir;
    this.path = joinPath(options.dataDir, BTREE_FILE_NAME);
    this.requestedPageBytes = options.pageBytes ?? DEFAULT_PAGE_BYTES;
    this.geometry = new PageGeometry(this.requestedPageBytes);
    const cacheBytesMax = options.cacheBytesMax ?? DEFAULT_CACHE_BYTES_MAX;
    if (!Number.isSafeInteger(cacheBytesMax) || cacheBytesMax < 0) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `btree cacheBytesMax must be a non-negative integer, got ${String(cacheBytesMax)}`);
    }
    this.cache = new PageCache(cacheBytesMax);
    // The tree's entries must fit inline limits that depend on the page size; keys longer than
    // keyInlineMax and values longer than valueInlineMax go to overflow runs, so any key up to
    // 64 KiB (u16 length) is storable.
    if (this.limits.keyBytesMax > 0xffff) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the btree engine stores keys of at most 65535 bytes; keyBytesMax is ${this.limits.keyBytesMax}`);
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  protected async _open(): Promise<void> {
    await this.vfs.mkdir(this.dataDir);
    if (!(await this.vfs.exists(this.path))) await this.createFile();
    const file = await this.vfs.open(this.path);
    try {
      const meta = await this.readNewestMeta(file);
      this.geometry = new PageGeometry(meta.pageBytes);
      const size = await file.size();
      if (size < meta.pageCount * meta.pageBytes) {
        throw corruption(this.path, Math.floor(size / meta.pageBytes), `is missing: the file has ${size} bytes, the tree needs ${meta.pageCount} pages`);
      }
      this.file = file;
      this.committed = meta;
      await this.loadFreeList(meta);
    } catch (error) {
      this.file = undefined;
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  protected async _close(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    this.cache.clear();
    if (file !== undefined) await file.close();
  }

  /**
   * Creates an empty database crash-safely: both meta pages go to a temporary
   * file that is synced and then renamed into place, so `btree.db` either does
   * not exist or is complete.
   */
  private async createFile(): Promise<void> {
    const pageBytes = this.requestedPageBytes;
    const temporary = this.path + '.init';
    const meta: Meta = { txn: 0, pageBytes, root: 0, depth: 0, pageCount: META_PAGES, freeListPage: 0, freeCount: 0, keyCount: 0 };
    const file = await this.vfs.open(temporary, { create: true, truncate: true });
    try {
      await file.write(0, Buffer.concat([encodeMeta(pageBytes, 0, meta), encodeMeta(pageBytes, 1, meta)]));
      await file.sync();
    } finally {
      await file.close();
    }
    await this.vfs.rename(temporary, this.path);
    await this.vfs.syncDir(this.dataDir);
  }

  /** Reads both meta pages and returns the valid one with the higher txn; corruption when neither is valid. */
  private async readNewestMeta(file: VfsFile): Promise<Meta> {
    const reasons: string[] = [];
    // The page size is recorded in the meta pages themselves; slot 1 sits at offset pageBytes,
    // so try the requested size first and then the others.
    const sizes = [this.requestedPageBytes];
    for (let size = PAGE_BYTES_MIN; size <= PAGE_BYTES_MAX; size *= 2) if (size !== this.requestedPageBytes) sizes.push(size);
    for (const pageBytes of sizes) {
      let best: Meta | undefined;
      for (const slot of [0, 1]) {
        const bytes = await file.read(slot * pageBytes, pageBytes);
        const meta = decodeMeta(bytes, slot);
        if (typeof meta === 'string') {
          reasons.push(meta);
          continue;
        }
        if (meta.pageBytes !== pageBytes) continue;
        if (!this.metaIsSane(meta)) {
          reasons.push(`meta page ${slot} has impossible fields`);
          continue;
        }
        if (best === undefined || meta.txn > best.txn) best = meta;
      }
      if (best !== undefined) return best;
    }
    throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `btree file ${this.path}: no valid meta page (${[...new Set(reasons)].slice(0, 4).join('; ')})`);
  }

  private metaIsSane(meta: Meta): boolean {
    return (
      Number.isSafeInteger(meta.txn) &&
      meta.txn >= 0 &&
      meta.pageCount >= META_PAGES &&
      (meta.root === 0 ? meta.depth === 0 : meta.root >= META_PAGES && meta.root < meta.pageCount && meta.depth >= 1) &&
      (meta.freeListPage === 0 || (meta.freeListPage >= META_PAGES && meta.freeListPage < meta.pageCount)) &&
      meta.freeCount < meta.pageCount &&
      Number.isSafeInteger(meta.keyCount) &&
      meta.keyCount >= 0
    );
  }

  private async loadFreeList(meta: Meta): Promise<void> {
    const free: number[] = [];
    const chain: number[] = [];
    let page = meta.freeListPage;
    while (page !== 0) {
      if (chain.length >= meta.pageCount || page < META_PAGES || page >= meta.pageCount) throw corruption(this.path, page, 'is not a valid free-list page number');
      chain.push(page);
      const { entries, nextPage } = decodeFreeListPage(this.path, this.geometry, page, await this.readRaw(page, 1));
      for (const entry of entries) {
        if (entry < META_PAGES || entry >= meta.pageCount) throw corruption(this.path, page, `lists free page ${entry} outside the file`);
        free.push(entry);
      }
      page = nextPage;
    }
    if (free.length !== meta.freeCount) throw corruption(this.path, meta.freeListPage, `holds ${free.length} free pages, the meta page says ${meta.freeCount}`);
    // After a restart no reader can pin an old version: every free page is reusable.
    this.reusable = free;
    this.pending = [];
    this.freeListPages = chain;
  }

  // ---- reads -------------------------------------------------------------------------------

  /**
   * Not `async` on purpose: the cached path builds one resolved promise and no
   * async-function frame (the base class turns a synchronous throw into a
   * rejection).
   */
  protected _get(key: Buffer): Promise<Buffer | undefined> {
    const meta = this.requireCommitted();
    let page = meta.root;
    if (page === 0) return Promise.resolve(undefined);
    // Fast path: walk cached pages without awaiting anything.
    let level = 1;
    for (; ; level++) {
      const view = this.cache.get(page);
      if (view === undefined) break;
      if (view.type === PageType.Branch) {
        if (level >= meta.depth) throw corruption(this.path, page, `is a branch at leaf depth ${meta.depth}`);
        page = childAt(view, upperBound(view, key));
        continue;
      }
      const value = this.leafValue(meta, view, key);
      return value instanceof Promise ? value : Promise.resolve(value);
    }
    // A page is not cached: continue from it with the version pinned, since reading it awaits.
    const missing = page;
    const missingLevel = level;
    return this.pinned(meta, () => this.getSlow(meta, key, missing, missingLevel));
  }

  /** Continues a lookup at `page` (at `level`, root = 1) whose cache lookup just missed. */
  private async getSlow(meta: Meta, key: Buffer, page: number, level: number): Promise<Buffer | undefined> {
    // The first page just missed the cache: load it without counting a second miss.
    let view = await this.loadAndCache(page);
    for (; ; level++) {
      if (view.type === PageType.Branch) {
        if (level >= meta.depth) throw corruption(this.path, page, `is a branch at leaf depth ${meta.depth}`);
        page = childAt(view, upperBound(view, key));
        view = await this.readView(page);
        continue;
      }
      return this.leafValue(meta, view, key);
    }
  }

  private leafValue(meta: Meta, view: PageView, key: Buffer): Buffer | undefined | Promise<Buffer> {
    const index = lowerBound(view, key);
    if (index === view.count || compareWithEntry(view, index, key) !== 0) return undefined;
    const value = valueAt(view, index);
    if (!isOverflowRef(value)) return value;
    return this.pinned(meta, () => this.readRun(value));
  }

  protected async _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    const meta = this.requireCommitted();
    return this.pinned(meta, () => this.scan(meta.root, range, reverse, limit));
  }

  /**
   * Collects up to `limit` entries of `range` from the tree rooted at `root`,
   * ascending or descending. The caller pins the version, so every page this
   * reads stays as it was when the scan began.
   */
  private async scan(root: number, range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    const entries: Entry[] = [];
    if (root === 0) return entries;
    const stack: Frame[] = [];
    // Descend to the leaf holding the start bound.
    let view = await this.readView(root);
    const startKey = reverse ? range.upper : range.lower;
    while (view.type === PageType.Branch) {
      const index = startKey === undefined ? (reverse ? view.count : 0) : upperBound(view, startKey);
      stack.push({ view, index });
      view = await this.readView(childAt(view, index));
    }
    let index: number;
    if (!reverse) {
      index = range.lower === undefined ? 0 : range.lowerInclusive ? lowerBound(view, range.lower) : upperBound(view, range.lower);
    } else {
      index = range.upper === undefined ? view.count - 1 : (range.upperInclusive ? upperBound(view, range.upper) : lowerBound(view, range.upper)) - 1;
    }
    for (;;) {
      while (reverse ? index >= 0 : index < view.count) {
        const key = keyAt(view, index);
        if (reverse ? !aboveLower(key, range) : !belowUpper(key, range)) return entries;
        const value = valueAt(view, index);
        entries.push({ key: Buffer.from(key), value: isOverflowRef(value) ? await this.readRun(value) : value });
        if (entries.length === limit) return entries;
        index += reverse ? -1 : 1;
      }
      // Move to the next leaf: climb to the nearest ancestor with a further child, descend its edge.
      let frame = stack.pop();
      while (frame !== undefined && (reverse ? frame.index === 0 : frame.index === frame.view.count)) frame = stack.pop();
      if (frame === undefined) return entries;
      frame.index += reverse ? -1 : 1;
      stack.push(frame);
      view = await this.readView(childAt(frame.view, frame.index));
      while (view.type === PageType.Branch) {
        const edge = reverse ? view.count : 0;
        stack.push({ view, index: edge });
        view = await this.readView(childAt(view, edge));
      }
      index = reverse ? view.count - 1 : 0;
    }
  }

  /** Runs `read` with version `meta.txn` pinned, so no page of it is reused meanwhile. */
  private async pinned<T>(meta: Meta, read: () => Promise<T>): Promise<T> {
    this.readers.set(meta.txn, (this.readers.get(meta.txn) ?? 0) + 1);
    try {
      return await read();
    } finally {
      const count = this.readers.get(meta.txn)! - 1;
      if (count === 0) this.readers.delete(meta.txn);
      else this.readers.set(meta.txn, count);
    }
  }

  /** A verified leaf or branch page, from the cache or the file. */
  private async readView(page: number): Promise<PageView> {
    return this.cache.get(page) ?? this.loadAndCache(page);
  }

  private async loadAndCache(page: number): Promise<PageView> {
    const view = await this.loadView(page);
    this.cache.put(view);
    return view;
  }

  private async loadView(page: number): Promise<PageView> {
    const bytes = await this.readRaw(page, 1);
    const type = verifyPage(this.path, page, bytes, this.geometry.pageBytes, [PageType.Leaf, PageType.Branch]) as PageType.Leaf | PageType.Branch;
    const { keyRuns } = scanEntries(this.path, page, bytes);
    let bigKeys: Array<Buffer | undefined> | undefined;
    if (keyRuns.length > 0) {
      bigKeys = new Array<Buffer | undefined>(bytes.readUInt16LE(6)).fill(undefined);
      for (const { index, ref } of keyRuns) bigKeys[index] = await this.readRun(ref);
    }
    return { page, bytes, type, count: bytes.readUInt16LE(6), bigKeys, keyRuns: keyRuns.map((run) => run.ref) };
  }

  private async readRaw(page: number, pages: number): Promise<Buffer> {
    const file = this.requireFile();
    const committed = this.committed;
    if (committed !== undefined && page + pages > Math.max(committed.pageCount, this.txnPageCount)) {
      throw corruption(this.path, page, `is referenced but lies beyond the end of the database (${committed.pageCount} pages)`);
    }
    return file.read(page * this.geometry.pageBytes, pages * this.geometry.pageBytes);
  }

  private async readRun(ref: OverflowRef): Promise<Buffer> {
    const bytes = await this.readRaw(ref.page, this.geometry.runPages(ref.length));
    return decodeRun(this.path, this.geometry, ref, bytes);
  }

  // ---- writes ------------------------------------------------------------------------------

  protected async _write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    if (this.poisoned !== undefined) {
      throw new ImpulseError('IMPULSE_ERR_ENGINE_IO', `btree ${this.path}: an earlier commit failed while writing its meta page; reopen the engine`, {
        cause: this.poisoned,
      });
    }
    const txn = this.begin();
    let metaWriteStarted = false;
    try {
      for (const op of ops) {
        if (op.type === 'put') await this.txnPut(txn, Buffer.from(op.key), op.value);
        else await this.txnDelete(txn, Buffer.from(op.key.buffer, op.key.byteOffset, op.key.byteLength));
      }
      await this.commit(txn, sync, () => {
        metaWriteStarted = true;
      });
    } catch (error) {
      this.abort(txn);
      if (metaWriteStarted) this.poisoned = error;
      throw error;
    } finally {
      this.txnPageCount = 0;
    }
  }

  private begin(): Txn {
    const meta = this.requireCommitted();
    // Release pages whose freeing transaction no pinned reader predates.
    let oldestReader = Infinity;
    for (const txn of this.readers.keys()) oldestReader = Math.min(oldestReader, txn);
    const stillPending: Array<{ txn: number; pages: number[] }> = [];
    for (const batch of this.pending) {
      if (batch.txn <= oldestReader) for (const page of batch.pages) this.reusable.push(page);
      else stillPending.push(batch);
    }
    this.pending = stillPending;
    // Descending, so pop() hands out the lowest free page first: consecutive allocations get
    // consecutive numbers where the free space allows, and the commit coalesces their writes.
    this.reusable.sort((a, b) => b - a);
    this.txnPageCount = meta.pageCount;
    return {
      id: meta.txn + 1,
      root: meta.root,
      depth: meta.depth,
      keyCount: meta.keyCount,
      pageCount: meta.pageCount,
      dirty: new Map(),
      freed: [],
      recycled: [],
      newRuns: new Set(),
      runsEnd: 0,
      reusableBefore: this.reusable.slice(),
    };
  }

  private abort(txn: Txn): void {
    this.reusable = txn.reusableBefore;
  }

  private allocatePage(txn: Txn): number {
    let page = txn.recycled.pop() ?? this.reusable.pop();
    if (page === undefined) {
      page = txn.pageCount++;
      this.txnPageCount = txn.pageCount;
    }
    this.cache.delete(page);
    return page;
  }

  /** `pages` consecutive free pages: from the reusable set when it has such a run, else at the end of the file. */
  private allocateRun(txn: Txn, pages: number): number {
    if (pages === 1) return this.allocatePage(txn);
    // `reusable` is sorted descending during a transaction (see begin), so a run of consecutive
    // pages is a stretch where each entry is one less than the one before.
    let runStart = 0;
    for (let index = 1; index <= this.reusable.length; index++) {
      if (index - runStart === pages) {
        const first = this.reusable[index - 1]!;
        this.reusable.splice(runStart, pages);
        for (let page = first; page < first + pages; page++) this.cache.delete(page);
        return first;
      }
      if (index < this.reusable.length && this.reusable[index] !== this.reusable[index - 1]! - 1) runStart = index;
    }
    const first = txn.pageCount;
    txn.pageCount += pages;
    this.txnPageCount = txn.pageCount;
    return first;
  }

  /** Gives back a page this transaction no longer uses (with the overflow runs of its keys). */
  private releasePage(txn: Txn, page: number, keyRuns: readonly OverflowRef[]): void {
    if (txn.dirty.delete(page)) {
      txn.recycled.push(page);
      return;
    }
    txn.freed.push(page);
    for (const run of keyRuns) for (let index = 0; index < this.geometry.runPages(run.length); index++) txn.freed.push(run.page + index);
  }

  private releaseRun(txn: Txn, ref: OverflowRef): void {
    const target = txn.newRuns.delete(ref.page) ? txn.recycled : txn.freed;
    for (let index = 0; index < this.geometry.runPages(ref.length); index++) target.push(ref.page + index);
  }

  /** The page as a node this transaction may change: copied to a fresh page number unless it already is one. */
  private async touch(txn: Txn, page: number): Promise<TreeNode> {
    const dirty = txn.dirty.get(page);
    if (dirty !== undefined) return dirty;
    const view = await this.readView(page);
    const node = nodeFromView(this.geometry, view);
    this.releasePage(txn, page, view.keyRuns);
    node.page = this.allocatePage(txn);
    txn.dirty.set(node.page, node);
    return node;
  }

  private async txnPut(txn: Txn, key: Buffer, value: Uint8Array): Promise<void> {
    let stored: Buffer | OverflowRef;
    if (value.length > this.geometry.valueInlineMax) {
      const first = this.allocateRun(txn, this.geometry.runPages(value.length));
      await this.requireFile().write(first * this.geometry.pageBytes, encodeRun(this.geometry, first, value));
      txn.newRuns.add(first);
      txn.runsEnd = Math.max(txn.runsEnd, first + this.geometry.runPages(value.length));
      stored = { page: first, length: value.length };
    } else {
      stored = Buffer.from(value);
    }
    if (txn.root === 0) {
      const leaf: LeafNode = { kind: 'leaf', page: this.allocatePage(txn), keys: [], values: [], bytes: 0 };
      txn.dirty.set(leaf.page, leaf);
      txn.root = leaf.page;
      txn.depth = 1;
    }
    const { path, leaf } = await this.descend(txn, key);
    const index = nodeLowerBound(leaf.keys, key);
    let appended = false;
    if (index < leaf.keys.length && leaf.keys[index]!.equals(key)) {
      const old = leaf.values[index]!;
      if (isOverflowRef(old)) this.releaseRun(txn, old);
      leaf.bytes += this.geometry.leafEntryBytes(key.length, stored.length) - this.geometry.leafEntryBytes(key.length, old.length);
      leaf.values[index] = stored;
    } else {
      leaf.keys.splice(index, 0, key);
      leaf.values.splice(index, 0, stored);
      leaf.bytes += this.geometry.leafEntryBytes(key.length, stored.length);
      txn.keyCount++;
      appended = index === leaf.keys.length - 1;
    }
    await this.rebalancePath(txn, path, leaf, appended);
  }

  private async txnDelete(txn: Txn, key: Buffer): Promise<void> {
    // Look first, so deleting an absent key copies no pages.
    if (!(await this.containsInTxn(txn, key))) return;
    const { path, leaf } = await this.descend(txn, key);
    const index = nodeLowerBound(leaf.keys, key);
    assert(index < leaf.keys.length && leaf.keys[index]!.equals(key), 'key found on lookup but not on the write path', key);
    const old = leaf.values[index]!;
    if (isOverflowRef(old)) this.releaseRun(txn, old);
    leaf.keys.splice(index, 1);
    leaf.values.splice(index, 1);
    leaf.bytes -= this.geometry.leafEntryBytes(key.length, old.length);
    txn.keyCount--;
    await this.rebalancePath(txn, path, leaf, false);
  }

  private async containsInTxn(txn: Txn, key: Buffer): Promise<boolean> {
    let page = txn.root;
    if (page === 0) return false;
    for (;;) {
      const node = txn.dirty.get(page);
      if (node !== undefined) {
        if (node.kind === 'leaf') {
          const index = nodeLowerBound(node.keys, key);
          return index < node.keys.length && node.keys[index]!.equals(key);
        }
        page = node.children[nodeUpperBound(node.keys, key)]!;
        continue;
      }
      const view = await this.readView(page);
      if (view.type === PageType.Leaf) {
        const index = lowerBound(view, key);
        return index < view.count && compareWithEntry(view, index, key) === 0;
      }
      page = childAt(view, upperBound(view, key));
    }
  }

  /** Touches the root-to-leaf path for `key`, returning it (branches with the child index taken) and the leaf. */
  private async descend(txn: Txn, key: Buffer): Promise<{ path: PathStep[]; leaf: LeafNode }> {
    const path: PathStep[] = [];
    let node = await this.touch(txn, txn.root);
    txn.root = node.page;
    while (node.kind === 'branch') {
      if (path.length + 1 >= txn.depth) throw corruption(this.path, node.page, `is a branch at leaf depth ${txn.depth}`);
      const index = nodeUpperBound(node.keys, key);
      const child = await this.touch(txn, node.children[index]!);
      node.children[index] = child.page;
      path.push({ node, index });
      node = child;
    }
    if (path.length + 1 !== txn.depth) throw corruption(this.path, node.page, `is a leaf at depth ${path.length + 1}, the tree has depth ${txn.depth}`);
    return { path, leaf: node };
  }

  /**
   * Restores the fill bounds along `path` after `node` (its last element's
   * child) changed: an overfull node splits in two and pushes a separator up;
   * an underfull non-root node is merged with, or refilled from, a sibling,
   * which changes its parent; the walk goes up while something changed.
   * Finally a root branch with a single child, or an empty root leaf, is
   * removed (the tree gets shorter).
   *
   * Why one sibling is always enough: every entry is at most a quarter of a
   * page (PageGeometry), so two siblings holding more than a page between
   * them can be split into two halves that are each at least a quarter full.
   *
   * `appended`: the change added a key after every other key of the tree.
   * Then splits along the right edge leave the new right page only a quarter
   * full (ascending loads fill pages to ~75%, not ~50%; LMDB and SQLite have
   * the same append optimization), still within the fill bounds.
   */
  private async rebalancePath(txn: Txn, path: PathStep[], start: TreeNode, appended: boolean): Promise<void> {
    const capacity = this.geometry.payloadBytes;
    let node: TreeNode = start;
    let level = path.length;
    for (;;) {
      if (node.bytes > capacity) {
        let rightEdge = appended;
        for (let step = 0; step < level && rightEdge; step++) rightEdge = path[step]!.index === path[step]!.node.children.length - 1;
        const { right, separator } = this.split(txn, node, rightEdge);
        if (level === 0) {
          const root: BranchNode = {
            kind: 'branch',
            page: this.allocatePage(txn),
            keys: [separator],
            children: [node.page, right.page],
            bytes: this.geometry.branchEntryBytes(separator.length),
          };
          txn.dirty.set(root.page, root);
          txn.root = root.page;
          txn.depth++;
          return;
        }
        const { node: parent, index } = path[--level]!;
        parent.keys.splice(index, 0, separator);
        parent.children.splice(index + 1, 0, right.page);
        parent.bytes += this.geometry.branchEntryBytes(separator.length);
        node = parent;
        continue;
      }
      if (level > 0 && node.bytes < this.geometry.fillBytesMin) {
        const { node: parent, index } = path[--level]!;
        await this.refill(txn, parent, index);
        node = parent;
        continue;
      }
      break;
    }
    if (level > 0) return;
    // The root: shrink the tree when it has become trivial.
    const root = txn.dirty.get(txn.root);
    assert(root !== undefined, 'root not dirty after a change', txn.root);
    if (root.kind === 'branch' && root.keys.length === 0) {
      txn.root = root.children[0]!;
      txn.depth--;
      this.releasePage(txn, root.page, []);
    } else if (root.kind === 'leaf' && root.keys.length === 0) {
      this.releasePage(txn, root.page, []);
      txn.root = 0;
      txn.depth = 0;
    }
  }

  /**
   * Splits an overfull node into itself (left part) and a new right sibling:
   * about half the bytes each, or, at the right edge of an ascending load
   * (`rightEdge`), a right sibling just a quarter full.
   */
  private split(txn: Txn, node: TreeNode, rightEdge: boolean): { right: TreeNode; separator: Buffer } {
    const geometry = this.geometry;
    const cut = (sizes: number[], pushUp: boolean): number => (rightEdge ? rightEdgeCut(sizes, pushUp, geometry.fillBytesMin) : balancedCut(sizes, pushUp));
    if (node.kind === 'leaf') {
      const sizes = node.keys.map((key, index) => geometry.leafEntryBytes(key.length, node.values[index]!.length));
      const middle = cut(sizes, false);
      const right: LeafNode = {
        kind: 'leaf',
        page: this.allocatePage(txn),
        keys: node.keys.splice(middle),
        values: node.values.splice(middle),
        bytes: sum(sizes, middle, sizes.length),
      };
      node.bytes -= right.bytes;
      txn.dirty.set(right.page, right);
      return { right, separator: shortestSeparator(node.keys[node.keys.length - 1]!, right.keys[0]!) };
    }
    const sizes = node.keys.map((key) => geometry.branchEntryBytes(key.length));
    const middle = cut(sizes, true);
    const separator = node.keys[middle]!;
    const right: BranchNode = {
      kind: 'branch',
      page: this.allocatePage(txn),
      keys: node.keys.splice(middle + 1),
      children: node.children.splice(middle + 1),
      bytes: sum(sizes, middle + 1, sizes.length),
    };
    node.keys.pop();
    node.bytes = sum(sizes, 0, middle);
    txn.dirty.set(right.page, right);
    return { right, separator };
  }

  /**
   * Child `index` of `parent` is underfull: combine it with a neighbour (the
   * left one when it has one). If both fit one page they merge and the parent
   * loses a separator; otherwise the entries are dealt out again evenly and
   * the parent's separator between them is replaced.
   */
  private async refill(txn: Txn, parent: BranchNode, index: number): Promise<void> {
    const geometry = this.geometry;
    const leftIndex = index > 0 ? index - 1 : index;
    assert(parent.children.length >= 2, 'underfull child without a sibling', parent.page);
    const left = await this.touch(txn, parent.children[leftIndex]!);
    parent.children[leftIndex] = left.page;
    const right = await this.touch(txn, parent.children[leftIndex + 1]!);
    parent.children[leftIndex + 1] = right.page;
    const oldSeparator = parent.keys[leftIndex]!;
    const removeRight = (): void => {
      parent.keys.splice(leftIndex, 1);
      parent.children.splice(leftIndex + 1, 1);
      parent.bytes -= geometry.branchEntryBytes(oldSeparator.length);
      this.releasePage(txn, right.page, []);
    };
    const replaceSeparator = (separator: Buffer): void => {
      parent.keys[leftIndex] = separator;
      parent.bytes += geometry.branchEntryBytes(separator.length) - geometry.branchEntryBytes(oldSeparator.length);
    };
    if (left.kind === 'leaf' && right.kind === 'leaf') {
      const keys = left.keys.concat(right.keys);
      const values = left.values.concat(right.values);
      const sizes = keys.map((key, at) => geometry.leafEntryBytes(key.length, values[at]!.length));
      const total = left.bytes + right.bytes;
      if (total <= geometry.payloadBytes) {
        left.keys = keys;
        left.values = values;
        left.bytes = total;
        removeRight();
        return;
      }
      const middle = balancedCut(sizes, false);
      left.keys = keys.slice(0, middle);
      left.values = values.slice(0, middle);
      left.bytes = sum(sizes, 0, middle);
      right.keys = keys.slice(middle);
      right.values = values.slice(middle);
      right.bytes = total - left.bytes;
      replaceSeparator(shortestSeparator(left.keys[left.keys.length - 1]!, right.keys[0]!));
      return;
    }
    assert(left.kind === 'branch' && right.kind === 'branch', 'siblings of different kinds', left.page, right.page);
    const keys = left.keys.concat([oldSeparator], right.keys);
    const children = left.children.concat(right.children);
    const sizes = keys.map((key) => geometry.branchEntryBytes(key.length));
    const total = sum(sizes, 0, sizes.length);
    if (total <= geometry.payloadBytes) {
      left.keys = keys;
      left.children = children;
      left.bytes = total;
      removeRight();
      return;
    }
    const middle = balancedCut(sizes, true);
    left.keys = keys.slice(0, middle);
    left.children = children.slice(0, middle + 1);
    left.bytes = sum(sizes, 0, middle);
    right.keys = keys.slice(middle + 1);
    right.children = children.slice(middle + 1);
    right.bytes = sum(sizes, middle + 1, sizes.length);
    replaceSeparator(keys[middle]!);
  }

  /**
   * Writes the transaction's pages and free list, syncs, then writes and
   * syncs the meta page (see the file comment). `onMetaWrite` is called just
   * before the meta write begins.
   */
  private async commit(txn: Txn, sync: boolean, onMetaWrite: () => void): Promise<void> {
    const committed = this.requireCommitted();
    const file = this.requireFile();
    if (txn.dirty.size === 0 && txn.freed.length === 0 && txn.recycled.length === 0 && txn.newRuns.size === 0) return; // nothing changed
    const geometry = this.geometry;
    const writes: Array<{ page: number; bytes: Buffer }> = [];
    const views: PageView[] = [];
    for (const node of txn.dirty.values()) {
      const keyPages: Array<number | undefined> = [];
      const bigKeys: Array<Buffer | undefined> = [];
      const keyRuns: OverflowRef[] = [];
      for (const key of node.keys) {
        if (key.length > geometry.keyInlineMax) {
          const first = this.allocateRun(txn, geometry.runPages(key.length));
          writes.push({ page: first, bytes: encodeRun(geometry, first, key) });
          keyPages.push(first);
          bigKeys.push(key);
          keyRuns.push({ page: first, length: key.length });
        } else {
          keyPages.push(undefined);
          bigKeys.push(undefined);
        }
      }
      const bytes =
        node.kind === 'leaf'
          ? encodeLeaf(geometry, node.page, node.keys, node.values, keyPages)
          : encodeBranch(geometry, node.page, node.keys, node.children, keyPages);
      writes.push({ page: node.page, bytes });
      views.push({
        page: node.page,
        bytes,
        type: node.kind === 'leaf' ? PageType.Leaf : PageType.Branch,
        count: node.keys.length,
        bigKeys: keyRuns.length > 0 ? bigKeys : undefined,
        keyRuns,
      });
    }
    // A new free list replaces the old one; the old one's pages are freed by this transaction.
    for (const page of this.freeListPages) txn.freed.push(page);
    const pendingCount = this.pending.reduce((count, batch) => count + batch.pages.length, 0);
    const freeTotal = (): number => this.reusable.length + txn.recycled.length + pendingCount + txn.freed.length;
    const freeListPages: number[] = [];
    while (freeListPages.length < Math.ceil(freeTotal() / geometry.freeListEntriesPerPage)) freeListPages.push(this.allocatePage(txn));
    const free = this.reusable.concat(txn.recycled, txn.freed);
    for (const batch of this.pending) for (const page of batch.pages) free.push(page);
    free.sort((a, b) => a - b);
    for (let index = 0; index < freeListPages.length; index++) {
      const entries = free.slice(index * geometry.freeListEntriesPerPage, (index + 1) * geometry.freeListEntriesPerPage);
      writes.push({ page: freeListPages[index]!, bytes: encodeFreeListPage(geometry, freeListPages[index]!, entries, freeListPages[index + 1] ?? 0) });
    }
    // The file must reach the new page count even when the last allocated page ended up free
    // (allocated, then merged away): opening checks the size, and a later read of a free page
    // number must not find the file cut short. A zero page there is simply a free page.
    let writtenEnd = Math.max(committed.pageCount, txn.runsEnd);
    for (const write of writes) writtenEnd = Math.max(writtenEnd, write.page + write.bytes.length / geometry.pageBytes);
    if (writtenEnd < txn.pageCount) writes.push({ page: txn.pageCount - 1, bytes: Buffer.alloc(geometry.pageBytes) });
    await this.writeCoalesced(file, writes);
    if (sync) await file.sync();
    const meta: Meta = {
      txn: txn.id,
      pageBytes: geometry.pageBytes,
      root: txn.root,
      depth: txn.depth,
      pageCount: txn.pageCount,
      freeListPage: freeListPages[0] ?? 0,
      freeCount: free.length,
      keyCount: txn.keyCount,
    };
    onMetaWrite();
    await file.write((txn.id % 2) * geometry.pageBytes, encodeMeta(geometry.pageBytes, txn.id % 2, meta));
    if (sync) await file.sync();
    // Committed: install the new version.
    assert(meta.txn === committed.txn + 1, 'commits out of order', committed.txn, meta.txn);
    this.committed = meta;
    for (const view of views) this.cache.put(view);
    if (txn.freed.length > 0) this.pending.push({ txn: txn.id, pages: txn.freed });
    for (const page of txn.recycled) this.reusable.push(page);
    this.freeListPages = freeListPages;
    this.commits++;
    this.pagesWritten += writes.length;
  }

  /**
   * Writes pages in file order, one write per run of consecutive pages (at
   * most 256 pages per write), with up to WRITES_IN_FLIGHT writes issued
   * concurrently: a random-insert commit touches hundreds of scattered pages,
   * and one write at a time would leave the disk queue (and libuv's thread
   * pool) mostly idle. Every write is settled before this returns, also on
   * failure, so an aborted transaction leaves no write behind it.
   */
  private async writeCoalesced(file: VfsFile, writes: Array<{ page: number; bytes: Buffer }>): Promise<void> {
    writes.sort((a, b) => a.page - b.page);
    const pageBytes = this.geometry.pageBytes;
    const runs: Array<{ page: number; bytes: Buffer }> = [];
    let index = 0;
    while (index < writes.length) {
      const first = writes[index]!;
      const parts = [first.bytes];
      let nextPage = first.page + first.bytes.length / pageBytes;
      let partsPages = first.bytes.length / pageBytes;
      index++;
      while (index < writes.length && writes[index]!.page === nextPage && partsPages < 256) {
        parts.push(writes[index]!.bytes);
        nextPage += writes[index]!.bytes.length / pageBytes;
        partsPages += writes[index]!.bytes.length / pageBytes;
        index++;
      }
      runs.push({ page: first.page, bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts) });
    }
    this.writeCalls += runs.length;
    let next = 0;
    let failure: { error: unknown } | undefined;
    const writer = async (): Promise<void> => {
      while (next < runs.length && failure === undefined) {
        const run = runs[next++]!;
        try {
          await file.write(run.page * pageBytes, run.bytes);
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(WRITES_IN_FLIGHT, runs.length) }, writer));
    if (failure !== undefined) throw failure.error;
  }

  // ---- stats and checking ------------------------------------------------------------------

  protected async _stats(): Promise<EngineStats> {
    const meta = this.requireCommitted();
    const fileBytes = await this.requireFile().size();
    return {
      keyCount: meta.keyCount,
      diskBytes: fileBytes,
      figures: {
        btree_depth: meta.depth,
        btree_page_bytes: meta.pageBytes,
        btree_pages_total: meta.pageCount,
        btree_pages_in_use: meta.pageCount - meta.freeCount,
        btree_pages_free: meta.freeCount,
        btree_cache_bytes: this.cache.bytes,
        btree_cache_bytes_max: this.cache.bytesMax,
        btree_cache_pages: this.cache.size,
        btree_cache_hits: this.cache.hits,
        btree_cache_misses: this.cache.misses,
        btree_cache_hit_ratio: this.cache.hitRatio,
        btree_file_bytes: fileBytes,
        btree_commits: this.commits,
        btree_pages_written: this.pagesWritten,
        btree_write_calls: this.writeCalls,
        btree_txn_id: meta.txn,
        btree_readers: [...this.readers.values()].reduce((a, b) => a + b, 0),
      },
    };
  }

  /**
   * Verifies the committed tree as it is on disk (reading every page from the
   * file, not the cache): keys strictly ascending within each page and inside
   * the bounds its parents give; every leaf at the meta page's depth; every
   * non-root leaf and branch between a quarter full and full (a root at least
   * one entry); the key count matches the meta page; and every page of the
   * file in [2, pageCount) is exactly one of: reachable tree page, overflow
   * page of a reachable entry, free-list page, free page. Throws an
   * `AssertionError` describing the first violation, or an
   * IMPULSE_ERR_ENGINE_CORRUPTION error for a page that fails its checksum.
   * Runs while the engine is open; pins the version it checks.
   */
  async checkTree(): Promise<BTreeCheckReport> {
    const meta = this.requireCommitted();
    return this.pinned(meta, () => this.checkVersion(meta));
  }

  private async checkVersion(meta: Meta): Promise<BTreeCheckReport> {
    const geometry = this.geometry;
    const owner = new Map<number, string>();
    const claim = (page: number, what: string): void => {
      assert(page >= META_PAGES && page < meta.pageCount, `${what} is outside the database`, page, meta.pageCount);
      const previous = owner.get(page);
      assert(previous === undefined, `page ${page} is used twice`, previous, what);
      owner.set(page, what);
    };
    const claimRun = (ref: OverflowRef, what: string): number => {
      const pages = geometry.runPages(ref.length);
      for (let index = 0; index < pages; index++) claim(ref.page + index, what);
      return pages;
    };
    let keys = 0;
    let leafPages = 0;
    let branchPages = 0;
    let overflowPages = 0;
    const walk = async (page: number, level: number, lower: Buffer | undefined, upper: Buffer | undefined): Promise<void> => {
      claim(page, `tree page at level ${level}`);
      const view = await this.loadView(page);
      const isRoot = level === 1;
      const entryKeys: Buffer[] = [];
      let bytes = 0;
      for (let index = 0; index < view.count; index++) entryKeys.push(keyAt(view, index));
      const { valueRuns } = scanEntries(this.path, page, view.bytes);
      for (const run of view.keyRuns) overflowPages += claimRun(run, `overflow key of page ${page}`);
      for (let index = 0; index < entryKeys.length; index++) {
        const key = entryKeys[index]!;
        if (index > 0) assert(Buffer.compare(entryKeys[index - 1]!, key) < 0, `keys out of order in page ${page}`, index, entryKeys[index - 1], key);
        if (lower !== undefined) assert(Buffer.compare(key, lower) >= 0, `key below its parent's bound in page ${page}`, key, lower);
        if (upper !== undefined) assert(Buffer.compare(key, upper) < 0, `key not below its parent's bound in page ${page}`, key, upper);
        bytes += view.type === PageType.Leaf ? geometry.leafEntryBytes(key.length, valueRefAt(view, index).length) : geometry.branchEntryBytes(key.length);
      }
      assert(bytes <= geometry.payloadBytes, `page ${page} overfull`, bytes);
      if (isRoot) assert(view.count >= 1, `root page ${page} is empty`);
      else assert(bytes >= geometry.fillBytesMin, `page ${page} below the fill bound`, bytes, geometry.fillBytesMin);
      if (view.type === PageType.Leaf) {
        assert(level === meta.depth, `leaf ${page} at level ${level}, tree depth ${meta.depth}`);
        leafPages++;
        keys += view.count;
        for (const run of valueRuns) overflowPages += claimRun(run, `overflow value in leaf ${page}`);
        return;
      }
      assert(level < meta.depth, `branch ${page} at level ${level}, tree depth ${meta.depth}`);
      branchPages++;
      for (let index = 0; index <= view.count; index++) {
        await walk(childAt(view, index), level + 1, index === 0 ? lower : entryKeys[index - 1], index === view.count ? upper : entryKeys[index]);
      }
    };
    if (meta.root !== 0) await walk(meta.root, 1, undefined, undefined);
    else assert(meta.depth === 0, 'empty tree with nonzero depth', meta.depth);
    assert(keys === meta.keyCount, 'key count differs from the meta page', keys, meta.keyCount);
    let freeListPages = 0;
    let freePages = 0;
    let page = meta.freeListPage;
    while (page !== 0) {
      claim(page, 'free-list page');
      freeListPages++;
      const { entries, nextPage } = decodeFreeListPage(this.path, geometry, page, await this.readRaw(page, 1));
      for (const entry of entries) claim(entry, 'free page');
      freePages += entries.length;
      page = nextPage;
    }
    assert(freePages === meta.freeCount, 'free count differs from the meta page', freePages, meta.freeCount);
    for (let page = META_PAGES; page < meta.pageCount; page++) assert(owner.has(page), `page ${page} is neither reachable nor free (leaked)`);
    return { depth: meta.depth, keys, leafPages, branchPages, overflowPages, freeListPages, freePages, pageCount: meta.pageCount };
  }

  // ---- small helpers -----------------------------------------------------------------------

  private requireFile(): VfsFile {
    assert(this.file !== undefined, 'btree file used while not open');
    return this.file;
  }

  private requireCommitted(): Meta {
    assert(this.committed !== undefined, 'btree used while not open');
    return this.committed;
  }
}

function nodeFromView(geometry: PageGeometry, view: PageView): TreeNode {
  const keys: Buffer[] = [];
  let bytes = 0;
  if (view.type === PageType.Leaf) {
    const values: Array<Buffer | OverflowRef> = [];
    for (let index = 0; index < view.count; index++) {
      const key = keyAt(view, index);
      const value = valueRefAt(view, index);
      keys.push(key);
      values.push(value);
      bytes += geometry.leafEntryBytes(key.length, value.length);
    }
    return { kind: 'leaf', page: view.page, keys, values, bytes };
  }
  const children = [childAt(view, 0)];
  for (let index = 0; index < view.count; index++) {
    const key = keyAt(view, index);
    keys.push(key);
    children.push(childAt(view, index + 1));
    bytes += geometry.branchEntryBytes(key.length);
  }
  return { kind: 'branch', page: view.page, keys, children, bytes };
}

/** First index whose key is >= `key`. */
function nodeLowerBound(keys: readonly Buffer[], key: Buffer): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareBytes(keys[middle]!, key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** First index whose key is > `key`: the child of a branch that covers `key`. */
function nodeUpperBound(keys: readonly Buffer[], key: Buffer): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareBytes(keys[middle]!, key) <= 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

function sum(sizes: readonly number[], from: number, to: number): number {
  let total = 0;
  for (let index = from; index < to; index++) total += sizes[index]!;
  return total;
}

/**
 * Where to cut entries of these sizes so both sides get about half the bytes.
 * For a leaf the cut `m` gives [0, m) and [m, n), 1 <= m <= n-1. For a branch
 * entry `m` moves up to the parent and the sides are [0, m) and (m, n),
 * 1 <= m <= n-2 (each side keeps at least one separator).
 */
function balancedCut(sizes: readonly number[], pushUp: boolean): number {
  const total = sum(sizes, 0, sizes.length);
  const first = 1;
  const last = pushUp ? sizes.length - 2 : sizes.length - 1;
  assert(last >= first, 'too few entries to split', sizes.length);
  let best = first;
  let bestWorst = Infinity;
  let left = sum(sizes, 0, first);
  for (let cut = first; cut <= last; cut++) {
    const right = total - left - (pushUp ? sizes[cut]! : 0);
    const worst = Math.max(left, right);
    if (worst < bestWorst) {
      bestWorst = worst;
      best = cut;
    }
    left += sizes[cut]!;
  }
  return best;
}

/**
 * The cut for a split at the right edge of an ascending load: the right side
 * gets the fewest last entries that make it at least `fillBytesMin` (so the
 * left stays as full as it can, and both sides within the fill bounds because
 * each entry is at most a quarter page). Same index conventions as balancedCut.
 */
function rightEdgeCut(sizes: readonly number[], pushUp: boolean, fillBytesMin: number): number {
  let right = 0;
  let cut = sizes.length;
  // For a branch, entry `cut` moves up, so the right side is (cut, n).
  while (cut > 1 && right < fillBytesMin) {
    cut--;
    if (pushUp && cut === sizes.length - 1) continue;
    right += sizes[pushUp ? cut + 1 : cut]!;
  }
  assert(cut >= 1 && (!pushUp || cut <= sizes.length - 2), 'right-edge cut out of range', sizes.length, cut);
  return cut;
}

/**
 * The shortest key `s` with `left < s <= right`: a prefix of `right` one byte
 * longer than what it shares with `left`. Short separators keep branches wide.
 */
function shortestSeparator(left: Buffer, right: Buffer): Buffer {
  assert(Buffer.compare(left, right) < 0, 'separator bounds out of order', left, right);
  const shared = Math.min(left.length, right.length);
  let index = 0;
  while (index < shared && left[index] === right[index]) index++;
  return Buffer.from(right.subarray(0, index + 1));
}
