/**
 * The meta pages of the `btree` engine: their format, and choosing the
 * committed version when a file is opened.
 *
 * Pages 0 and 1 of the file are the two meta slots. Commit `txn` writes its
 * meta page to slot `txn % 2`, so the slot it overwrites holds the version
 * before the previous one. Besides the common page header (checksum, type
 * Meta, the slot number as the page number) a meta page holds, little-endian:
 *
 *   offset 16 u32 magic "IMPB", u32 magic "TREE", u32 format version, u32 page size
 *   offset 32 f64 txn
 *   offset 40 u32 root, depth, page count, free-list page, free count
 *   offset 60 f64 key count
 *
 * After a crash the valid meta page with the higher txn wins (see
 * `readNewestMeta`).
 */
import { corruption } from '../../util/corruption.js';
import type { VfsFile } from '../../vfs/vfs.js';
import { HEADER_BYTES, META_PAGES, PAGE_BYTES_MAX, PAGE_BYTES_MIN, PageType, pageChecksum, sealPage, writeHeader } from './page.js';

export const FORMAT_VERSION = 1;
const MAGIC_LOW = 0x42504d49; // "IMPB"
const MAGIC_HIGH = 0x45455254; // "TREE"

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
  /** First free-list page, 0 when there is none. */
  readonly freeListPage: number;
  /** Number of free pages recorded in the free list. */
  readonly freeCount: number;
  readonly keyCount: number;
}

export function encodeMeta(pageBytes: number, slot: number, meta: Meta): Buffer {
  const bytes = Buffer.alloc(pageBytes);
  writeHeader(bytes, PageType.Meta, 0, slot, 0);
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
  sealPage(bytes);
  return bytes;
}

/** The meta in `bytes`, or a reason it is not a valid meta page (torn, never written, foreign). */
export function decodeMeta(bytes: Buffer, slot: number): Meta | string {
  if (bytes.length < PAGE_BYTES_MIN) return `meta page ${slot} is cut short (${bytes.length} bytes)`;
  const pageBytes = bytes.readUInt32LE(HEADER_BYTES + 12);
  if (bytes.readUInt32LE(HEADER_BYTES) !== MAGIC_LOW || bytes.readUInt32LE(HEADER_BYTES + 4) !== MAGIC_HIGH) return `meta page ${slot} has no btree magic number`;
  if (bytes.readUInt32LE(HEADER_BYTES + 8) !== FORMAT_VERSION) return `meta page ${slot} has unknown format version ${bytes.readUInt32LE(HEADER_BYTES + 8)}`;
  if (pageBytes < PAGE_BYTES_MIN || pageBytes > PAGE_BYTES_MAX || bytes.length < pageBytes) return `meta page ${slot} has bad page size ${pageBytes}`;
  const page = bytes.subarray(0, pageBytes);
  if (page.readUInt32LE(0) !== pageChecksum(page)) return `meta page ${slot} failed its checksum`;
  if (page[4] !== PageType.Meta || page.readUInt32LE(8) !== slot) return `meta page ${slot} has a wrong header`;
  let cursor = HEADER_BYTES + 16;
  const txn = page.readDoubleLE(cursor);
  cursor += 8;
  const words: number[] = [];
  for (let index = 0; index < 5; index++) {
    words.push(page.readUInt32LE(cursor));
    cursor += 4;
  }
  const keyCount = page.readDoubleLE(cursor);
  const [root, depth, pageCount, freeListPage, freeCount] = words as [number, number, number, number, number];
  return { txn, pageBytes, root, depth, pageCount, freeListPage, freeCount, keyCount };
}

/**
 * Reads both meta pages of `file` and returns the valid one with the higher
 * txn; IMPULSE_ERR_ENGINE_CORRUPTION naming `path` when neither is valid.
 * The page size is recorded in the meta pages themselves and slot 1 sits at
 * offset pageBytes, so `requestedPageBytes` is tried first, then the others.
 */
export async function readNewestMeta(file: VfsFile, path: string, requestedPageBytes: number): Promise<Meta> {
  const reasons: string[] = [];
  const sizes = [requestedPageBytes];
  for (let size = PAGE_BYTES_MIN; size <= PAGE_BYTES_MAX; size *= 2) if (size !== requestedPageBytes) sizes.push(size);
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
      if (!metaIsSane(meta)) {
        reasons.push(`meta page ${slot} has impossible fields`);
        continue;
      }
      if (best === undefined || meta.txn > best.txn) best = meta;
    }
    if (best !== undefined) return best;
  }
  throw corruption('btree', path, `no valid meta page (${[...new Set(reasons)].slice(0, 4).join('; ')})`);
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
    Number.isSafeInteger(meta.keyCount) &&
    meta.keyCount >= 0
  );
}
