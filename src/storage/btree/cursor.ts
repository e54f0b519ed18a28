/**
 * Reads of the `btree` engine: point lookups and range scans of one
 * committed version.
 *
 * A point read whose whole path is cached runs without awaiting anything;
 * on a cache miss it pins the version (versions.ts) and reads the missing
 * pages. A range scan pins the version it started on and sees exactly that
 * version however many commits happen meanwhile (snapshot isolation): no
 * page that version uses is handed out again while the pin lasts.
 */
import { aboveLower, belowUpper, type Entry, type KeyRange, READ_NOT_SYNC, type SyncRead } from '../engine.js';
import type { Meta } from './meta.js';
import type { Pager } from './pager.js';
import { childAt, compareWithEntry, isOverflowRef, keyAt, lowerBound, pageCorruption, PageType, upperBound, valueAt, type PageView } from './page.js';
import type { VersionPins } from './versions.js';

/** A branch on the scan's path and the child it is in. */
interface Frame {
  readonly view: PageView;
  index: number;
}

export class TreeReader {
  /** Where `descendCached` last stopped (scratch: read right after it returns, never across an await). */
  private readonly miss = { page: 0, level: 0 };

  constructor(
    private readonly pager: Pager,
    private readonly pins: VersionPins,
  ) {}

  /**
   * The value of `key` in version `meta`. Not `async` on purpose: the cached
   * path builds one resolved promise and no async-function frame (the engine
   * base turns a synchronous throw into a rejection).
   */
  get(meta: Meta, key: Buffer): Promise<Buffer | undefined> {
    if (meta.root === 0) return Promise.resolve(undefined);
    const leaf = this.descendCached(meta, key);
    if (leaf === undefined) {
      // A page is not cached: continue from it with the version pinned, since reading it awaits.
      const { page, level } = this.miss;
      return this.pins.pinned(meta.txn, () => this.getSlow(meta, key, page, level));
    }
    const value = this.leafValue(meta, leaf, key);
    return value instanceof Promise ? value : Promise.resolve(value);
  }

  /**
   * `get` on the calling thread: the same answer when every page on the path
   * (and the value: no overflow run) is cached, else READ_NOT_SYNC. Starts no
   * read, so nothing needs pinning.
   */
  getSync(meta: Meta, key: Buffer): SyncRead {
    if (meta.root === 0) return undefined;
    const leaf = this.descendCached(meta, key);
    if (leaf === undefined) return READ_NOT_SYNC;
    const index = lowerBound(leaf, key);
    if (index === leaf.count || compareWithEntry(leaf, index, key) !== 0) return undefined;
    const value = valueAt(leaf, index);
    return isOverflowRef(value) ? READ_NOT_SYNC : value;
  }

  /**
   * The leaf of version `meta` (root not 0) that would hold `key`, walking
   * cached pages only; undefined when a page is not cached, with that page and
   * its level (root = 1) left in `miss`.
   */
  private descendCached(meta: Meta, key: Buffer): PageView | undefined {
    let page = meta.root;
    for (let level = 1; ; level++) {
      const view = this.pager.cachedView(page, meta.txn);
      if (view === undefined) {
        this.miss.page = page;
        this.miss.level = level;
        return undefined;
      }
      if (view.type !== PageType.Branch) return view;
      if (level >= meta.depth) throw pageCorruption(this.pager.path, page, `is a branch at leaf depth ${meta.depth}`);
      page = childAt(view, upperBound(view, key));
    }
  }

  /** Up to `limit` entries of `range` in version `meta`, ascending or descending, with the version pinned. */
  range(meta: Meta, range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    return this.pins.pinned(meta.txn, () => this.scan(meta, range, reverse, limit));
  }

  /** Continues a lookup at `page` (at `level`, root = 1) whose cache lookup just missed. */
  private async getSlow(meta: Meta, key: Buffer, page: number, level: number): Promise<Buffer | undefined> {
    // The first page just missed the cache: load it without counting a second miss.
    let view = await this.pager.loadAndCache(page, meta.txn);
    for (; ; level++) {
      if (view.type === PageType.Branch) {
        if (level >= meta.depth) throw pageCorruption(this.pager.path, page, `is a branch at leaf depth ${meta.depth}`);
        page = childAt(view, upperBound(view, key));
        view = await this.pager.readView(page, meta.txn);
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
    return this.pins.pinned(meta.txn, () => this.pager.readRun(value, meta.txn));
  }

  /**
   * Collects up to `limit` entries of `range` from the tree of version
   * `meta`, ascending or descending. The caller pins the version, so every
   * page this reads stays as it was when the scan began.
   */
  private async scan(meta: Meta, range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    const entries: Entry[] = [];
    if (meta.root === 0) return entries;
    const version = meta.txn;
    const stack: Frame[] = [];
    // Descend to the leaf holding the start bound.
    let view = await this.pager.readView(meta.root, version);
    const startKey = reverse ? range.upper : range.lower;
    while (view.type === PageType.Branch) {
      const index = startKey === undefined ? (reverse ? view.count : 0) : upperBound(view, startKey);
      stack.push({ view, index });
      view = await this.pager.readView(childAt(view, index), version);
    }
    let index = startIndex(view, range, reverse);
    for (;;) {
      while (reverse ? index >= 0 : index < view.count) {
        const key = keyAt(view, index);
        if (reverse ? !aboveLower(key, range) : !belowUpper(key, range)) return entries;
        const value = valueAt(view, index);
        entries.push({ key: Buffer.from(key), value: isOverflowRef(value) ? await this.pager.readRun(value, version) : value });
        if (entries.length === limit) return entries;
        index += reverse ? -1 : 1;
      }
      const next = await this.nextLeaf(stack, reverse, version);
      if (next === undefined) return entries;
      view = next;
      index = reverse ? view.count - 1 : 0;
    }
  }

  /** The next leaf in scan order: climb to the nearest ancestor with a further child, descend its edge. */
  private async nextLeaf(stack: Frame[], reverse: boolean, version: number): Promise<PageView | undefined> {
    let frame = stack.pop();
    while (frame !== undefined && (reverse ? frame.index === 0 : frame.index === frame.view.count)) frame = stack.pop();
    if (frame === undefined) return undefined;
    frame.index += reverse ? -1 : 1;
    stack.push(frame);
    let view = await this.pager.readView(childAt(frame.view, frame.index), version);
    while (view.type === PageType.Branch) {
      const edge = reverse ? view.count : 0;
      stack.push({ view, index: edge });
      view = await this.pager.readView(childAt(view, edge), version);
    }
    return view;
  }
}

/** The index of the first entry of `range` in the leaf the descent found (count or -1 when none is there). */
function startIndex(view: PageView, range: KeyRange, reverse: boolean): number {
  if (!reverse) return range.lower === undefined ? 0 : range.lowerInclusive ? lowerBound(view, range.lower) : upperBound(view, range.lower);
  return range.upper === undefined ? view.count - 1 : (range.upperInclusive ? upperBound(view, range.upper) : lowerBound(view, range.upper)) - 1;
}
