/**
 * The meta pages of the `btree` engine: their format and where they live.
 *
 * Pages 0-3 of the file hold two meta SLOTS of two COPIES each: slot `s` is
 * pages `2s` (copy 0) and `2s + 1` (copy 1). Commit `txn` writes both copies
 * of slot `txn % 2` with one write, so the slot it overwrites holds the
 * version before the previous one and the other slot keeps the previous
 * version. Why two copies, and how opening chooses a version: recovery.ts.
 *
 * Besides the common page header (checksum, type Meta, the page number, the
 * commit stamp = txn) a meta page holds, little-endian, all within the first
 * 512 bytes (one disk sector):
 *
 *   offset 24 u32 magic "IMPB", u32 magic "TREE", u32 format version, u32 page size
 *   offset 40 f64 txn
 *   offset 48 u32 root, depth, page count, free-list page, free count
 *   offset 68 f64 key count
 *   offset 76 f64 base txn: the last commit known synced when this one was written
 *   offset 84 u32 proof pages, u32 proof digest (commit-proof.ts): the pages
 *             reachable in this version written after the base commit
 *   offset 92 u32 inline free count n, then n u32 free page numbers (n at most
 *             META_INLINE_FREE_MAX): a free list this short lives here, with
 *             no free-list page (free-list page 0, free count n)
 *
 * The rest of the page is zeros. Why the free list goes inline when it is
 * short: a sequential writer's free list holds a handful of pages, and writing
 * it to a page of its own cost every commit a 4 KiB page to fill, checksum
 * and write, and freed the previous list page, which the next list then had
 * to name (docs/benchmarks.md, "btree: where a sequential write goes").
 * Formats 2 and 3 are still read: format 3 has no inline free list (its bytes
 * from 92 on are zeros), format 2 no proof fields either (every commit synced
 * before the next: its commits count as their own base).
 */
import { assert } from '../../util/assert.js';
import { HEADER_BYTES, PAGE_BYTES_MAX, PAGE_BYTES_MIN, PageType, pageChecksum, pageStamp, sealPage, writeHeader, META_PAGES } from './page.js';

/**
 * 4: a short free list is held in the meta page itself (inline free pages).
 * 3: the meta page proves the pages its commit wrote (base txn, proof pages
 * and digest), so a commit needs one fsync. 2: meta slots with two copies
 * each (pages 0-3), a commit stamp in every page header; read, not written.
 * 1 (the first format: one copy per slot, 16-byte headers) is not read.
 */
export const FORMAT_VERSION = 4;
const FORMAT_VERSION_READ_MIN = 2;
const MAGIC_LOW = 0x42504d49; // "IMPB"
const MAGIC_HIGH = 0x45455254; // "TREE"
/** Bytes of a meta page's fixed record, up to the inline free count (format 3 ended here). */
const META_RECORD_BYTES_V3 = 92;
/**
 * Free pages a meta page holds itself, at most: with them the record ends at
 * byte 96 + 4 * 100 = 496, inside one 512-byte sector (recovery.ts says why it
 * must) and inside the smallest page (512 bytes).
 */
export const META_INLINE_FREE_MAX = 100;
/** Where format 2's record ended (its meta pages are zeros from here). */
const META_RECORD_BYTES_V2 = 76;

/** One committed version of the tree, as a meta page records it. */
export interface Meta {
  /** Transaction id of the commit that wrote this meta; increases by one per commit. */
  readonly txn: number;
  readonly pageBytes: number;
  /** Root page, 0 when the tree is empty. */
  readonly root: number;
  /** Levels from root to leaves (1 = the root is a leaf, 0 = empty). */
  readonly depth: number;
  /** Pages in the file that belong to the database: [0, pageCount). */
  readonly pageCount: number;
  /** First free-list page, 0 when there is none (the free pages, if any, are then `inlineFree`). */
  readonly freeListPage: number;
  /** Number of free pages recorded in the free list (the chain's, or `inlineFree.length`). */
  readonly freeCount: number;
  /** The free pages, ascending, when the meta page holds them itself (`freeListPage` is then 0); else empty. At most META_INLINE_FREE_MAX. */
  readonly inlineFree: readonly number[];
  readonly keyCount: number;
  /**
   * The newest commit known synced when this one was written: below `txn`
   * (equal only for a new file and format 2). That commit is durable; the
   * pages reachable in this version and stamped after it are what a crash
   * before this commit's fsync may have lost, and what the proof covers.
   */
  readonly baseTxn: number;
  /** How many pages reachable in this version are stamped after `baseTxn` (commit-proof.ts). */
  readonly proofPages: number;
  /** Order-independent digest of those pages' numbers and checksums (commit-proof.ts). */
  readonly proofDigest: number;
}

/** The page number of copy `copy` (0 or 1) of meta slot `slot` (0 or 1). */
export function metaPage(slot: number, copy: number): number {
  return 2 * slot + copy;
}

/** The slot commit `txn` writes its meta to. */
export function slotOf(txn: number): number {
  return txn % 2;
}

/**
 * Both copies of `slot` holding `meta`: two pages, to be written with one
 * write at `metaPage(slot, 0) * pageBytes`; into `into` (2 * pageBytes, any
 * contents) when given.
 */
export function encodeMetaSlot(pageBytes: number, slot: number, meta: Meta, into?: Buffer): Buffer {
  const both = into?.fill(0) ?? Buffer.alloc(2 * pageBytes);
  encodeMetaPage(pageBytes, metaPage(slot, 0), meta, both.subarray(0, pageBytes));
  encodeMetaPage(pageBytes, metaPage(slot, 1), meta, both.subarray(pageBytes));
  return both;
}

/** One meta page (`page` in [0, META_PAGES)) holding `meta`, written into `bytes` (zeros, `pageBytes` long) when given. */
export function encodeMetaPage(pageBytes: number, page: number, meta: Meta, bytes: Buffer = Buffer.alloc(pageBytes)): Buffer {
  assert(page >= 0 && page < META_PAGES, 'not a meta page', page);
  assert(bytes.length === pageBytes, 'meta page buffer of the wrong size', bytes.length);
  writeHeader(bytes, PageType.Meta, 0, page, 0, meta.txn);
  let cursor = HEADER_BYTES;
  for (const word of [MAGIC_LOW, MAGIC_HIGH, FORMAT_VERSION, meta.pageBytes]) {
    bytes.writeUInt32LE(word, cursor);
    cursor += 4;
  }
  bytes.writeDoubleLE(meta.txn, cursor);
  cursor += 8;
  for (const word of [meta.root, meta.depth, meta.pageCount, meta.freeListPage, meta.freeCount]) {
    bytes.writeUInt32LE(word, cursor);
    cursor += 4;
  }
  bytes.writeDoubleLE(meta.keyCount, cursor);
  cursor += 8;
  bytes.writeDoubleLE(meta.baseTxn, cursor);
  cursor += 8;
  bytes.writeUInt32LE(meta.proofPages, cursor);
  bytes.writeUInt32LE(meta.proofDigest, cursor + 4);
  cursor += 8;
  assert(cursor === META_RECORD_BYTES_V3, 'meta record layout', cursor);
  const inline = meta.inlineFree;
  assert(inline.length <= META_INLINE_FREE_MAX && (inline.length === 0 || meta.freeListPage === 0), 'inline free list too long or beside a chain', inline.length, meta.freeListPage);
  bytes.writeUInt32LE(inline.length, cursor);
  cursor += 4;
  for (let index = 0; index < inline.length; index++) bytes.writeUInt32LE(inline[index]!, cursor + 4 * index);
  sealPage(bytes, cursor + 4 * inline.length);
  return bytes;
}

/**
 * The meta held by meta page `page` read from disk, or the reason it is not a
 * valid one (torn or damaged, never written, foreign, an unknown format, or
 * fields no commit can have written).
 */
export function decodeMeta(bytes: Buffer, page: number): Meta | string {
  if (bytes.length < PAGE_BYTES_MIN) return `meta page ${page} is cut short (${bytes.length} bytes)`;
  if (bytes.readUInt32LE(HEADER_BYTES) !== MAGIC_LOW || bytes.readUInt32LE(HEADER_BYTES + 4) !== MAGIC_HIGH) return `meta page ${page} has no btree magic number`;
  const version = bytes.readUInt32LE(HEADER_BYTES + 8);
  if (version < FORMAT_VERSION_READ_MIN || version > FORMAT_VERSION) {
    return `meta page ${page} has format version ${version}; this impulse reads versions ${FORMAT_VERSION_READ_MIN} to ${FORMAT_VERSION} only (version 1 files were written by an earlier impulse)`;
  }
  const pageBytes = bytes.readUInt32LE(HEADER_BYTES + 12);
  if (pageBytes < PAGE_BYTES_MIN || pageBytes > PAGE_BYTES_MAX || bytes.length < pageBytes) return `meta page ${page} has bad page size ${pageBytes}`;
  const whole = bytes.subarray(0, pageBytes);
  if (whole.readUInt32LE(0) !== pageChecksum(whole)) return `meta page ${page} failed its checksum`;
  if (whole[4] !== PageType.Meta || whole.readUInt32LE(8) !== page) return `meta page ${page} has a wrong header`;
  let cursor = HEADER_BYTES + 16;
  const txn = whole.readDoubleLE(cursor);
  cursor += 8;
  const words: number[] = [];
  for (let index = 0; index < 5; index++) {
    words.push(whole.readUInt32LE(cursor));
    cursor += 4;
  }
  const keyCount = whole.readDoubleLE(cursor);
  cursor += 8;
  assert(cursor === META_RECORD_BYTES_V2, 'meta record layout', cursor);
  // Format 2 synced every commit before the next began: a commit is its own base, nothing to prove.
  const proof = version === 2 ? { baseTxn: txn, proofPages: 0, proofDigest: 0 } : { baseTxn: whole.readDoubleLE(cursor), proofPages: whole.readUInt32LE(cursor + 8), proofDigest: whole.readUInt32LE(cursor + 12) };
  const inlineCount = version >= 4 ? whole.readUInt32LE(META_RECORD_BYTES_V3) : 0;
  if (inlineCount > META_INLINE_FREE_MAX) return `meta page ${page} has impossible fields`;
  const inlineFree: number[] = [];
  for (let index = 0; index < inlineCount; index++) inlineFree.push(whole.readUInt32LE(META_RECORD_BYTES_V3 + 4 + 4 * index));
  const [root, depth, pageCount, freeListPage, freeCount] = words as [number, number, number, number, number];
  const meta: Meta = { txn, pageBytes, root, depth, pageCount, freeListPage, freeCount, inlineFree, keyCount, ...proof };
  if (pageStamp(whole) !== txn || !metaIsSane(meta)) return `meta page ${page} has impossible fields`;
  return meta;
}

/**
 * What a meta page that failed its checks claims, read without trusting it
 * (for messages only: it tells an operator what a damaged slot probably held).
 * Undefined when the page does not even carry the btree magic number.
 */
export function claimedByDamagedMeta(bytes: Buffer): { readonly txn: number; readonly keyCount: number } | undefined {
  if (bytes.length < HEADER_BYTES + 56) return undefined;
  if (bytes.readUInt32LE(HEADER_BYTES) !== MAGIC_LOW || bytes.readUInt32LE(HEADER_BYTES + 4) !== MAGIC_HIGH) return undefined;
  return { txn: bytes.readDoubleLE(HEADER_BYTES + 16), keyCount: bytes.readDoubleLE(HEADER_BYTES + 44) };
}

/** Fields a checksum cannot vouch for: a meta page with a valid checksum but impossible contents is rejected too. */
function metaIsSane(meta: Meta): boolean {
  return (
    Number.isSafeInteger(meta.txn) &&
    meta.txn >= 0 &&
    meta.pageCount >= META_PAGES &&
    (meta.root === 0 ? meta.depth === 0 : meta.root >= META_PAGES && meta.root < meta.pageCount && meta.depth >= 1) &&
    (meta.freeListPage === 0 || (meta.freeListPage >= META_PAGES && meta.freeListPage < meta.pageCount)) &&
    meta.freeCount < meta.pageCount &&
    // Free pages are listed in the meta page or in a chain, never both; inline ones lie inside the file, ascending.
    (meta.freeListPage === 0 ? meta.freeCount === meta.inlineFree.length : meta.inlineFree.length === 0) &&
    meta.inlineFree.every((page, index) => page >= META_PAGES && page < meta.pageCount && (index === 0 || page > meta.inlineFree[index - 1]!)) &&
    Number.isSafeInteger(meta.keyCount) &&
    meta.keyCount >= 0 &&
    Number.isSafeInteger(meta.baseTxn) &&
    meta.baseTxn >= 0 &&
    meta.baseTxn <= meta.txn &&
    meta.proofPages < meta.pageCount
  );
}
