/**
 * The pager of the `btree` engine: every page read and write of the open
 * file goes through here. Reads come back verified (checksum, page number,
 * type, and a commit stamp not later than the version being read) as
 * `PageView`s, through the page cache; writes are coalesced into runs of
 * consecutive pages and kept a bounded number in flight.
 *
 * Who calls: the engine (open, commit), the readers (cursor.ts), the write
 * transaction (txn.ts) and the checker (check.ts). Single-threaded.
 */
import type { VfsFile } from '../../vfs/vfs.js';
import {
  checkStamp,
  decodeRun,
  pageStamp,
  pageCorruption,
  PageType,
  scanEntries,
  verifyPage,
  type OverflowRef,
  type PageGeometry,
  type PageView,
} from './page.js';
import type { PageCache } from './page-cache.js';

/** Page writes a commit keeps in flight at once. */
const WRITES_IN_FLIGHT = 16;
/** Most pages one coalesced write carries. */
const PAGES_PER_WRITE_MAX = 256;
/**
 * Writes of at most this many bytes in all go through the file's synchronous
 * `writeSync` when it has one: a copy into the OS page cache costs a few µs,
 * a thread-pool round trip ~30 µs (measured; README "Performance"), and a
 * small commit is a handful of pages. Larger commits keep their writes in
 * flight on the thread pool instead of blocking the event loop.
 */
const SYNC_WRITE_BYTES_MAX = 64 * 1024;

/** One page (or a run of consecutive pages) to write: `bytes` is a whole number of pages. */
export interface PageWrite {
  readonly page: number;
  readonly bytes: Buffer;
}

export class Pager {
  /**
   * Pages [0, readablePages) may be read; a reference past it is corruption.
   * The engine sets it to the committed page count, a running transaction
   * raises it to the pages it has allocated.
   */
  readablePages: number;
  /** Positional writes issued (a figure for stats: coalescing shows as fewer calls than pages). */
  writeCalls = 0;
  /** See `scratch`. */
  private scratchBuffer = Buffer.alloc(0);

  constructor(
    readonly path: string,
    readonly file: VfsFile,
    readonly geometry: PageGeometry,
    readonly cache: PageCache,
    readablePages: number,
  ) {
    this.readablePages = readablePages;
  }

  /**
   * Leaf or branch `page` of version `version` from the cache, or undefined
   * on a miss (counted). Synchronous: the cached read path awaits nothing.
   */
  cachedView(page: number, version: number): PageView | undefined {
    const view = this.cache.get(page);
    if (view !== undefined) checkStamp(this.path, page, view.stamp, version);
    return view;
  }

  /** Verified leaf or branch `page` of version `version`, from the cache or the file (then cached). */
  async readView(page: number, version: number): Promise<PageView> {
    return this.cachedView(page, version) ?? this.loadAndCache(page, version);
  }

  /** Reads a page that just missed the cache (without counting a second miss) and caches it. */
  async loadAndCache(page: number, version: number): Promise<PageView> {
    const view = await this.loadView(page, version);
    this.cache.put(view);
    return view;
  }

  /** Reads and verifies a leaf or branch page of version `version` from the file, bypassing the cache (and its overflow keys). */
  async loadView(page: number, version: number): Promise<PageView> {
    const bytes = await this.readRaw(page, 1);
    const type = verifyPage(this.path, page, bytes, this.geometry.pageBytes, [PageType.Leaf, PageType.Branch], version) as PageType.Leaf | PageType.Branch;
    const { keyRuns } = scanEntries(this.path, page, bytes);
    let bigKeys: Array<Buffer | undefined> | undefined;
    if (keyRuns.length > 0) {
      bigKeys = new Array<Buffer | undefined>(bytes.readUInt16LE(6)).fill(undefined);
      for (const { index, ref } of keyRuns) bigKeys[index] = await this.readRun(ref, version);
    }
    return { page, stamp: pageStamp(bytes), bytes, type, count: bytes.readUInt16LE(6), bigKeys, keyRuns: keyRuns.map((run) => run.ref) };
  }

  /** `pages` consecutive pages from `page`, unverified. */
  async readRaw(page: number, pages: number): Promise<Buffer> {
    if (page + pages > this.readablePages) {
      throw pageCorruption(this.path, page, `is referenced but lies beyond the end of the database (${this.readablePages} pages)`);
    }
    return this.file.read(page * this.geometry.pageBytes, pages * this.geometry.pageBytes);
  }

  /** The verified contents of an overflow run of version `version`. */
  async readRun(ref: OverflowRef, version: number): Promise<Buffer> {
    const bytes = await this.readRaw(ref.page, this.geometry.runPages(ref.length));
    return decodeRun(this.path, this.geometry, ref, bytes, version);
  }

  /**
   * A buffer of `length` bytes (contents undefined) for bytes that are
   * written and then dropped: the meta slot, and consecutive pages joined
   * into one synchronous write. Reused by the next call, so it must not be
   * held past the write it was taken for (writes are settled before the
   * pager's write methods return, and one transaction writes at a time). A
   * commit then allocates no new buffer for them: allocating and collecting
   * 4-64 KiB buffers was a tenth of a lone commit's CPU.
   */
  scratch(length: number): Buffer {
    if (this.scratchBuffer.length < length) this.scratchBuffer = Buffer.allocUnsafe(Math.max(length, SYNC_WRITE_BYTES_MAX));
    return this.scratchBuffer.subarray(0, length);
  }

  /** Writes whole pages at `page` (one write; synchronously when small, see SYNC_WRITE_BYTES_MAX). */
  async writePages(page: number, bytes: Buffer): Promise<void> {
    this.writeCalls++;
    if (bytes.length <= SYNC_WRITE_BYTES_MAX && this.file.writeSync !== undefined) this.file.writeSync(page * this.geometry.pageBytes, bytes);
    else await this.file.write(page * this.geometry.pageBytes, bytes);
  }

  /**
   * Writes pages in file order, one write per run of consecutive pages (at
   * most PAGES_PER_WRITE_MAX pages per write), with up to WRITES_IN_FLIGHT
   * writes issued concurrently: a random-insert commit touches hundreds of
   * scattered pages, and one write at a time would leave the disk queue (and
   * libuv's thread pool) mostly idle. Every write is settled before this
   * returns, also on failure, so an aborted transaction leaves no write
   * behind it. Sorts `writes` in place.
   */
  async writeCoalesced(writes: PageWrite[]): Promise<void> {
    let bytes = 0;
    for (const write of writes) bytes += write.bytes.length;
    const writeSync = bytes <= SYNC_WRITE_BYTES_MAX ? this.file.writeSync?.bind(this.file) : undefined;
    // A synchronous write is done before the next run is joined: one scratch buffer serves every run.
    const runs = coalesce(writes, this.geometry.pageBytes, writeSync !== undefined ? (length) => this.scratch(length) : (length) => Buffer.allocUnsafe(length));
    this.writeCalls += runs.length;
    if (writeSync !== undefined) {
      for (const run of runs) writeSync(run.page * this.geometry.pageBytes, run.join());
      return;
    }
    let next = 0;
    let failure: { error: unknown } | undefined;
    const writer = async (): Promise<void> => {
      while (next < runs.length && failure === undefined) {
        const run = runs[next++]!;
        try {
          await this.file.write(run.page * this.geometry.pageBytes, run.join());
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(WRITES_IN_FLIGHT, runs.length) }, writer));
    if (failure !== undefined) throw failure.error;
  }
}

/** A run of consecutive pages to write as one: `join()` gives its bytes (the one part, or the parts copied into a buffer from `allocate`). */
interface Run {
  readonly page: number;
  join(): Buffer;
}

/** Sorts `writes` by page and groups runs of consecutive pages (at most PAGES_PER_WRITE_MAX each). */
function coalesce(writes: PageWrite[], pageBytes: number, allocate: (length: number) => Buffer): Run[] {
  writes.sort((a, b) => a.page - b.page);
  const runs: Run[] = [];
  let index = 0;
  while (index < writes.length) {
    const first = writes[index]!;
    const parts = [first.bytes];
    let nextPage = first.page + first.bytes.length / pageBytes;
    let partsPages = first.bytes.length / pageBytes;
    index++;
    while (index < writes.length && writes[index]!.page === nextPage && partsPages < PAGES_PER_WRITE_MAX) {
      parts.push(writes[index]!.bytes);
      nextPage += writes[index]!.bytes.length / pageBytes;
      partsPages += writes[index]!.bytes.length / pageBytes;
      index++;
    }
    runs.push({ page: first.page, join: () => (parts.length === 1 ? parts[0]! : joinInto(parts, allocate(partsPages * pageBytes))) });
  }
  return runs;
}

function joinInto(parts: readonly Buffer[], target: Buffer): Buffer {
  let offset = 0;
  for (const part of parts) offset += part.copy(target, offset);
  return target;
}
