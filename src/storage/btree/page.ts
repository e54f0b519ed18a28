/**
 * The on-disk page format of the `btree` engine.
 *
 * The file is an array of fixed-size pages (`pageBytes`, 4 KiB by default, a
 * power of two from 512 to 32 KiB). Pages 0 to 3 are the meta pages (two
 * alternating slots, each written twice; their format is in meta.ts); every
 * other page is a branch, a leaf, an overflow page or a free-list page, or is
 * free.
 *
 * Every page starts with the same 24-byte header:
 *
 *   offset 0  u32  CRC-32 of bytes [4, pageBytes) of the page
 *   offset 4  u8   page type (PageType)
 *   offset 5  u8   reserved, 0
 *   offset 6  u16  count: entries (leaf, branch, free list), 0 otherwise
 *   offset 8  u32  the page's own number (catches misdirected writes and reads)
 *   offset 12 u32  extra: branch = leftmost child; free list = next free-list
 *                  page (0 = none); overflow = index of the page in its run
 *   offset 16 f64  the commit (txn id) that wrote the page. A version `v` only
 *                  ever references pages written by commits <= v, so a page
 *                  stamped later than the version reading it was reused while
 *                  still in use (or a later, unfinished commit wrote over it):
 *                  reads check this and report it as corruption.
 *
 * Leaf and branch pages are slotted: after the header, `count` u16 offsets,
 * then the entries in key order. An entry is
 *
 *   u16 keyLength, u8 flags, u32 word, key bytes (or a u32 overflow page when
 *   flags & KEY_OVERFLOW), then for a leaf the value bytes (or a u32 overflow
 *   page when flags & VALUE_OVERFLOW).
 *
 * `word` is the value length in a leaf and the right child's page number in a
 * branch. A branch with `count` separators has `count + 1` children: the child
 * left of separator i holds keys < key(i), the child right of it keys >= key(i).
 *
 * Keys longer than `keyInlineMax` and values longer than `valueInlineMax` go to
 * an overflow run: `ceil(length / payloadBytes)` consecutive pages, each with
 * the common header (type OVERFLOW), so a flipped bit names the exact page.
 * The inline limits keep every entry at most a quarter of a page, which is
 * what makes "split in two" and "merge or redistribute with one sibling"
 * always sufficient (see node.ts).
 *
 * All integers are little-endian.
 */
import { crc32 } from 'node:zlib';
import { ImpulseError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { compareBytes, partitionPoint } from '../../util/bytes.js';
import { corruption } from '../../util/corruption.js';
import { checksumOfPacked } from './checksum.js';

export const HEADER_BYTES = 24;
export const SLOT_BYTES = 2;
export const ENTRY_HEADER_BYTES = 7;
export const PAGE_BYTES_MIN = 512;
export const PAGE_BYTES_MAX = 32 * 1024;
/** Pages [0, META_PAGES) hold the meta pages: two slots, each written twice (meta.ts). */
export const META_PAGES = 4;

export const enum PageType {
  Meta = 1,
  Branch = 2,
  Leaf = 3,
  Overflow = 4,
  FreeList = 5,
}

export const KEY_OVERFLOW = 1;
export const VALUE_OVERFLOW = 2;

/** Size-derived limits of one page format. */
export class PageGeometry {
  /** Bytes after the header: what entries, overflow data or free-list entries may use. */
  readonly payloadBytes: number;
  /** Keys longer than this many bytes are stored in an overflow run. */
  readonly keyInlineMax: number;
  /** Values longer than this many bytes are stored in an overflow run. */
  readonly valueInlineMax: number;
  /** A non-root leaf or branch below this many entry bytes is merged or refilled from a sibling. */
  readonly fillBytesMin: number;
  /** Free-list entries (u32 page numbers) per free-list page. */
  readonly freeListEntriesPerPage: number;

  constructor(readonly pageBytes: number) {
    if (!Number.isSafeInteger(pageBytes) || pageBytes < PAGE_BYTES_MIN || pageBytes > PAGE_BYTES_MAX || (pageBytes & (pageBytes - 1)) !== 0) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `btree pageBytes must be a power of two from ${PAGE_BYTES_MIN} to ${PAGE_BYTES_MAX}, got ${pageBytes}`);
    }
    this.payloadBytes = pageBytes - HEADER_BYTES;
    this.keyInlineMax = Math.floor(this.payloadBytes / 10);
    this.valueInlineMax = Math.floor(this.payloadBytes / 8);
    this.fillBytesMin = Math.floor(this.payloadBytes / 4);
    this.freeListEntriesPerPage = Math.floor(this.payloadBytes / 4);
    // Every entry must fit in a quarter page; the split/merge arguments rely on it.
    assert(this.leafEntryBytes(this.keyInlineMax, this.valueInlineMax) <= this.fillBytesMin, 'inline limits too large for the page', pageBytes);
  }

  /** Bytes a leaf entry takes in its page, slot included. */
  leafEntryBytes(keyLength: number, valueLength: number): number {
    return (
      SLOT_BYTES +
      ENTRY_HEADER_BYTES +
      (keyLength > this.keyInlineMax ? 4 : keyLength) +
      (valueLength > this.valueInlineMax ? 4 : valueLength)
    );
  }

  /** Bytes a branch separator entry takes in its page, slot included. */
  branchEntryBytes(keyLength: number): number {
    return SLOT_BYTES + ENTRY_HEADER_BYTES + (keyLength > this.keyInlineMax ? 4 : keyLength);
  }

  /** Pages in the overflow run of a `length`-byte key or value. */
  runPages(length: number): number {
    return Math.ceil(length / this.payloadBytes);
  }
}

/** Where an overflow value lives: `pages` consecutive pages from `page`. */
export interface OverflowRef {
  readonly page: number;
  readonly length: number;
}

export function isOverflowRef(value: Uint8Array | OverflowRef): value is OverflowRef {
  return !(value instanceof Uint8Array);
}

/**
 * A verified leaf or branch page as the cache holds it: the raw bytes, read in
 * place by the accessors below (no decoding pass on load). `bigKeys[i]` holds
 * entry i's key when that key lives in an overflow run; `keyRuns` lists those
 * runs, which belong to this page and are freed with it.
 */
export interface PageView {
  readonly page: number;
  /** The commit that wrote the page (header stamp). */
  readonly stamp: number;
  readonly bytes: Buffer;
  readonly type: PageType.Leaf | PageType.Branch;
  readonly count: number;
  readonly bigKeys: ReadonlyArray<Buffer | undefined> | undefined;
  readonly keyRuns: readonly OverflowRef[];
}

/** IMPULSE_ERR_ENGINE_CORRUPTION naming the btree file and the damaged page: "page <n> <what>". */
export function pageCorruption(path: string, page: number, what: string): ImpulseError {
  return corruption('btree', path, `page ${page} ${what}`);
}

/** The checksum over bytes [4, end) of a page. */
export function pageChecksum(bytes: Uint8Array): number {
  return crc32(bytes.subarray(4));
}

/**
 * Fills in the header's checksum; call last, after every other byte is
 * final. `end`: where the page's content ends, every byte from it on being
 * zero (the encoders know; the zeros then cost nothing, checksum.ts).
 */
export function sealPage(bytes: Buffer, end = bytes.length): void {
  bytes.writeUInt32LE(checksumOfPacked(bytes, end), 0);
}

/**
 * Checks the checksum, the page number, the type and the commit stamp of a
 * page read from disk for version `version` (the stamp must not be later).
 * Throws IMPULSE_ERR_ENGINE_CORRUPTION naming the page on any mismatch.
 */
export function verifyPage(path: string, page: number, bytes: Buffer, pageBytes: number, expected: readonly PageType[], version: number): PageType {
  if (bytes.length !== pageBytes) throw pageCorruption(path, page, `is cut short (${bytes.length} of ${pageBytes} bytes)`);
  if (bytes.readUInt32LE(0) !== pageChecksum(bytes)) throw pageCorruption(path, page, 'failed its checksum');
  if (bytes.readUInt32LE(8) !== page) throw pageCorruption(path, page, `carries page number ${bytes.readUInt32LE(8)}`);
  const type = bytes[4] as PageType;
  if (!expected.includes(type)) throw pageCorruption(path, page, `has type ${type}, expected ${expected.join(' or ')}`);
  checkStamp(path, page, pageStamp(bytes), version);
  return type;
}

/** The commit that wrote a page (header offset 16). */
export function pageStamp(bytes: Buffer): number {
  return bytes.readDoubleLE(16);
}

/** Corruption unless a page written by commit `stamp` may belong to version `version`. */
export function checkStamp(path: string, page: number, stamp: number, version: number): void {
  if (stamp > version) {
    throw pageCorruption(path, page, `was written by commit ${stamp}, after version ${version} that references it (reused while still in use, or overwritten by an unfinished later commit)`);
  }
}

export function writeHeader(bytes: Buffer, type: PageType, count: number, page: number, extra: number, stamp: number): void {
  bytes[4] = type;
  bytes[5] = 0;
  bytes.writeUInt16LE(count, 6);
  bytes.writeUInt32LE(page, 8);
  bytes.writeUInt32LE(extra, 12);
  bytes.writeDoubleLE(stamp, 16);
}

// ---- reading leaf and branch pages in place ----------------------------------------------

export function entryOffset(view: PageView, index: number): number {
  return view.bytes.readUInt16LE(HEADER_BYTES + SLOT_BYTES * index);
}

/** Key of entry `index` (a view into the page, or the loaded overflow key). Do not mutate. */
export function keyAt(view: PageView, index: number): Buffer {
  const big = view.bigKeys?.[index];
  if (big !== undefined) return big;
  const offset = entryOffset(view, index);
  const length = view.bytes.readUInt16LE(offset);
  return view.bytes.subarray(offset + ENTRY_HEADER_BYTES, offset + ENTRY_HEADER_BYTES + length);
}

/** Compares `key` with entry `index`'s key: negative when `key` sorts first. */
export function compareWithEntry(view: PageView, index: number, key: Buffer): number {
  const big = view.bigKeys?.[index];
  if (big !== undefined) return compareBytes(key, big);
  const bytes = view.bytes;
  const slot = HEADER_BYTES + SLOT_BYTES * index;
  const offset = bytes[slot]! | (bytes[slot + 1]! << 8);
  const length = bytes[offset]! | (bytes[offset + 1]! << 8);
  const start = offset + ENTRY_HEADER_BYTES;
  return compareBytes(key, bytes, 0, key.length, start, start + length);
}

/** First entry index whose key is >= `key` (`count` when none). */
export function lowerBound(view: PageView, key: Buffer): number {
  return partitionPoint(0, view.count, (index) => compareWithEntry(view, index, key) <= 0);
}

/** First entry index whose key is > `key` (`count` when none): in a branch, the child to descend into. */
export function upperBound(view: PageView, key: Buffer): number {
  return partitionPoint(0, view.count, (index) => compareWithEntry(view, index, key) < 0);
}

/** Child `index` (0..count) of a branch page. */
export function childAt(view: PageView, index: number): number {
  if (index === 0) return view.bytes.readUInt32LE(12);
  return view.bytes.readUInt32LE(entryOffset(view, index - 1) + 3);
}

/** Value of leaf entry `index`: a copy of inline bytes (callers may keep or mutate it), or the overflow run. */
export function valueAt(view: PageView, index: number): Buffer | OverflowRef {
  const bytes = view.bytes;
  const offset = entryOffset(view, index);
  const keyLength = bytes.readUInt16LE(offset);
  const flags = bytes[offset + 2]!;
  const valueLength = bytes.readUInt32LE(offset + 3);
  const valueStart = offset + ENTRY_HEADER_BYTES + ((flags & KEY_OVERFLOW) !== 0 ? 4 : keyLength);
  if ((flags & VALUE_OVERFLOW) !== 0) return { page: bytes.readUInt32LE(valueStart), length: valueLength };
  const copy = Buffer.allocUnsafe(valueLength);
  bytes.copy(copy, 0, valueStart, valueStart + valueLength);
  return copy;
}

/** Value of leaf entry `index` without copying inline bytes (for internal rewrites; the page is immutable). */
export function valueRefAt(view: PageView, index: number): Buffer | OverflowRef {
  const bytes = view.bytes;
  const offset = entryOffset(view, index);
  const keyLength = bytes.readUInt16LE(offset);
  const flags = bytes[offset + 2]!;
  const valueLength = bytes.readUInt32LE(offset + 3);
  const valueStart = offset + ENTRY_HEADER_BYTES + ((flags & KEY_OVERFLOW) !== 0 ? 4 : keyLength);
  if ((flags & VALUE_OVERFLOW) !== 0) return { page: bytes.readUInt32LE(valueStart), length: valueLength };
  return bytes.subarray(valueStart, valueStart + valueLength);
}

/** Every entry of a leaf or branch page, read in one pass (see `readEntries`). */
export interface PageEntries {
  /** Keys: views into the page bytes (or the page's loaded overflow keys). */
  readonly keys: Uint8Array[];
  /** Leaf only: values, views into the page bytes or overflow runs. */
  readonly values: Array<Uint8Array | OverflowRef>;
  /** Branch only: the `count + 1` children. */
  readonly children: number[];
  /** Entry bytes (slots included, header excluded) the entries take. */
  readonly bytes: number;
}

/**
 * Every entry of a verified leaf or branch page in one pass over its bytes.
 * The keys and values are plain `Uint8Array` views into the immutable page
 * (cheaper to make than `Buffer` views, which is what decoding a touched page
 * costs most); do not mutate them.
 */
export function readEntries(geometry: PageGeometry, view: PageView): PageEntries {
  const bytes = view.bytes;
  const arrayBuffer = bytes.buffer;
  const base = bytes.byteOffset;
  const count = view.count;
  const isLeaf = view.type === PageType.Leaf;
  const keys = new Array<Uint8Array>(count);
  const values: Array<Uint8Array | OverflowRef> = isLeaf ? new Array<Uint8Array | OverflowRef>(count) : [];
  const children: number[] = isLeaf ? [] : [bytes.readUInt32LE(12)];
  let total = 0;
  for (let index = 0; index < count; index++) {
    const slot = HEADER_BYTES + SLOT_BYTES * index;
    const offset = bytes[slot]! | (bytes[slot + 1]! << 8);
    const keyLength = bytes[offset]! | (bytes[offset + 1]! << 8);
    const flags = bytes[offset + 2]!;
    const word = bytes.readUInt32LE(offset + 3);
    let cursor = offset + ENTRY_HEADER_BYTES;
    if ((flags & KEY_OVERFLOW) !== 0) {
      keys[index] = view.bigKeys![index]!;
      cursor += 4;
    } else {
      keys[index] = new Uint8Array(arrayBuffer, base + cursor, keyLength);
      cursor += keyLength;
    }
    if (!isLeaf) {
      children.push(word);
      total += geometry.branchEntryBytes(keyLength);
      continue;
    }
    values[index] = (flags & VALUE_OVERFLOW) !== 0 ? { page: bytes.readUInt32LE(cursor), length: word } : new Uint8Array(arrayBuffer, base + cursor, word);
    total += geometry.leafEntryBytes(keyLength, word);
  }
  return { keys, values, children, bytes: total };
}

/**
 * The overflow runs referenced by a raw leaf or branch page's keys (and, for
 * a leaf, values), read straight from the bytes. Used on load (to fetch big
 * keys) and by the checker. Assumes the page passed `verifyPage`; a
 * structurally impossible layout (offset out of the page) is corruption.
 */
export function scanEntries(
  path: string,
  page: number,
  bytes: Buffer,
): { keyRuns: Array<{ index: number; ref: OverflowRef }>; valueRuns: OverflowRef[] } {
  const type = bytes[4] as PageType;
  const count = bytes.readUInt16LE(6);
  const keyRuns: Array<{ index: number; ref: OverflowRef }> = [];
  const valueRuns: OverflowRef[] = [];
  if (HEADER_BYTES + SLOT_BYTES * count > bytes.length) throw pageCorruption(path, page, `has ${count} entries, more than fit`);
  for (let index = 0; index < count; index++) {
    const offset = bytes.readUInt16LE(HEADER_BYTES + SLOT_BYTES * index);
    if (offset < HEADER_BYTES || offset + ENTRY_HEADER_BYTES > bytes.length) throw pageCorruption(path, page, `entry ${index} is out of the page`);
    const keyLength = bytes.readUInt16LE(offset);
    const flags = bytes[offset + 2]!;
    const word = bytes.readUInt32LE(offset + 3);
    let cursor = offset + ENTRY_HEADER_BYTES;
    if ((flags & KEY_OVERFLOW) !== 0) {
      if (cursor + 4 > bytes.length) throw pageCorruption(path, page, `entry ${index} is out of the page`);
      keyRuns.push({ index, ref: { page: bytes.readUInt32LE(cursor), length: keyLength } });
      cursor += 4;
    } else {
      cursor += keyLength;
    }
    if (type === PageType.Leaf) {
      if ((flags & VALUE_OVERFLOW) !== 0) {
        if (cursor + 4 > bytes.length) throw pageCorruption(path, page, `entry ${index} is out of the page`);
        valueRuns.push({ page: bytes.readUInt32LE(cursor), length: word });
        cursor += 4;
      } else {
        cursor += word;
      }
    }
    if (cursor > bytes.length) throw pageCorruption(path, page, `entry ${index} is out of the page`);
  }
  return { keyRuns, valueRuns };
}

// ---- writing leaf and branch pages ---------------------------------------------------------

/** Stores `value` (0..2^32-1) little-endian at `offset`, without writeUInt32LE's checks (the callers' bounds are the page's). */
function storeU32(bytes: Buffer, value: number, offset: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
  bytes[offset + 2] = (value >>> 16) & 0xff;
  bytes[offset + 3] = value >>> 24;
}

/** Copies `source` into `target` at `offset` and returns the offset after it: a loop for short sources, whose set() call costs more than the copy. */
function copyBytes(source: Uint8Array, target: Buffer, offset: number): number {
  const length = source.length;
  if (length > 32) {
    target.set(source, offset);
    return offset + length;
  }
  for (let index = 0; index < length; index++) target[offset + index] = source[index]!;
  return offset + length;
}

/**
 * Serializes a leaf. `keyPages[i]` is the overflow run of key i when it is
 * longer than `keyInlineMax` (allocated by the caller), else ignored.
 */
export function encodeLeaf(
  geometry: PageGeometry,
  page: number,
  stamp: number,
  keys: readonly Uint8Array[],
  values: ReadonlyArray<Uint8Array | OverflowRef>,
  keyPages: ReadonlyArray<number | undefined>,
): Buffer {
  const bytes = Buffer.alloc(geometry.pageBytes);
  writeHeader(bytes, PageType.Leaf, keys.length, page, 0, stamp);
  // Byte stores and copyBytes, not writeUInt*LE and set(): a leaf holds ~100 small entries and
  // those calls' fixed costs were most of a lone write's commit (bench/seq-latency.ts).
  let cursor = HEADER_BYTES + SLOT_BYTES * keys.length;
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index]!;
    const value = values[index]!;
    const slot = HEADER_BYTES + SLOT_BYTES * index;
    bytes[slot] = cursor & 0xff;
    bytes[slot + 1] = cursor >>> 8;
    const bigKey = key.length > geometry.keyInlineMax;
    const bigValue = isOverflowRef(value);
    bytes[cursor] = key.length & 0xff;
    bytes[cursor + 1] = key.length >>> 8;
    bytes[cursor + 2] = (bigKey ? KEY_OVERFLOW : 0) | (bigValue ? VALUE_OVERFLOW : 0);
    storeU32(bytes, value.length, cursor + 3);
    cursor += ENTRY_HEADER_BYTES;
    if (bigKey) {
      storeU32(bytes, keyPages[index]!, cursor);
      cursor += 4;
    } else {
      cursor = copyBytes(key, bytes, cursor);
    }
    if (bigValue) {
      storeU32(bytes, value.page, cursor);
      cursor += 4;
    } else {
      cursor = copyBytes(value, bytes, cursor);
    }
  }
  assert(cursor <= geometry.pageBytes, 'leaf overflows its page', page, cursor);
  sealPage(bytes, cursor);
  return bytes;
}

/** Serializes a branch with `keys.length` separators and `keys.length + 1` children. */
export function encodeBranch(
  geometry: PageGeometry,
  page: number,
  stamp: number,
  keys: readonly Uint8Array[],
  children: readonly number[],
  keyPages: ReadonlyArray<number | undefined>,
): Buffer {
  assert(children.length === keys.length + 1, 'branch children do not match separators', page, keys.length, children.length);
  const bytes = Buffer.alloc(geometry.pageBytes);
  writeHeader(bytes, PageType.Branch, keys.length, page, children[0]!, stamp);
  let cursor = HEADER_BYTES + SLOT_BYTES * keys.length;
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index]!;
    bytes.writeUInt16LE(cursor, HEADER_BYTES + SLOT_BYTES * index);
    const bigKey = key.length > geometry.keyInlineMax;
    bytes.writeUInt16LE(key.length, cursor);
    bytes[cursor + 2] = bigKey ? KEY_OVERFLOW : 0;
    bytes.writeUInt32LE(children[index + 1]!, cursor + 3);
    cursor += ENTRY_HEADER_BYTES;
    if (bigKey) {
      bytes.writeUInt32LE(keyPages[index]!, cursor);
      cursor += 4;
    } else {
      bytes.set(key, cursor);
      cursor += key.length;
    }
  }
  assert(cursor <= geometry.pageBytes, 'branch overflows its page', page, cursor);
  sealPage(bytes, cursor);
  return bytes;
}

/** Serializes `data` into the run of `geometry.runPages(data.length)` pages starting at `firstPage`, written by commit `stamp`. */
export function encodeRun(geometry: PageGeometry, firstPage: number, stamp: number, data: Uint8Array): Buffer {
  const pages = geometry.runPages(data.length);
  const bytes = Buffer.alloc(pages * geometry.pageBytes);
  for (let index = 0; index < pages; index++) {
    const page = bytes.subarray(index * geometry.pageBytes, (index + 1) * geometry.pageBytes);
    writeHeader(page, PageType.Overflow, 0, firstPage + index, index, stamp);
    const start = index * geometry.payloadBytes;
    const end = Math.min(data.length, start + geometry.payloadBytes);
    page.set(data.subarray(start, end), HEADER_BYTES);
    sealPage(page, HEADER_BYTES + end - start);
  }
  return bytes;
}

/** Verifies every page of a run read from disk for version `version` and returns the `length` data bytes it holds. */
export function decodeRun(path: string, geometry: PageGeometry, ref: OverflowRef, bytes: Buffer, version: number): Buffer {
  const pages = geometry.runPages(ref.length);
  if (bytes.length !== pages * geometry.pageBytes) {
    throw pageCorruption(path, ref.page + Math.floor(bytes.length / geometry.pageBytes), 'is missing (file cut short inside an overflow run)');
  }
  const data = Buffer.allocUnsafe(ref.length);
  for (let index = 0; index < pages; index++) {
    const page = bytes.subarray(index * geometry.pageBytes, (index + 1) * geometry.pageBytes);
    verifyPage(path, ref.page + index, page, geometry.pageBytes, [PageType.Overflow], version);
    if (page.readUInt32LE(12) !== index) throw pageCorruption(path, ref.page + index, `is not page ${index} of its overflow run`);
    const start = index * geometry.payloadBytes;
    page.copy(data, start, HEADER_BYTES, HEADER_BYTES + Math.min(geometry.payloadBytes, ref.length - start));
  }
  return data;
}

// ---- free-list pages -------------------------------------------------------------------------

export function encodeFreeListPage(geometry: PageGeometry, page: number, stamp: number, entries: readonly number[], nextPage: number): Buffer {
  assert(entries.length <= geometry.freeListEntriesPerPage, 'free-list page overfull', page, entries.length);
  const bytes = Buffer.alloc(geometry.pageBytes);
  writeHeader(bytes, PageType.FreeList, entries.length, page, nextPage, stamp);
  for (let index = 0; index < entries.length; index++) bytes.writeUInt32LE(entries[index]!, HEADER_BYTES + 4 * index);
  sealPage(bytes, HEADER_BYTES + 4 * entries.length);
  return bytes;
}

/** The entries and next page of a free-list page read from disk for version `version`. */
export function decodeFreeListPage(path: string, geometry: PageGeometry, page: number, bytes: Buffer, version: number): { entries: number[]; nextPage: number } {
  verifyPage(path, page, bytes, geometry.pageBytes, [PageType.FreeList], version);
  const count = bytes.readUInt16LE(6);
  if (count > geometry.freeListEntriesPerPage) throw pageCorruption(path, page, `claims ${count} free-list entries`);
  const entries: number[] = [];
  for (let index = 0; index < count; index++) entries.push(bytes.readUInt32LE(HEADER_BYTES + 4 * index));
  return { entries, nextPage: bytes.readUInt32LE(12) };
}
