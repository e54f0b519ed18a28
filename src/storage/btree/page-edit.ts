/**
 * Edits of a leaf or branch page as bytes, without decoding it into a node:
 * what a lone write does to the pages on its path (one leaf entry inserted,
 * replaced or removed; one child pointer per branch), at the cost of a few
 * block copies instead of a decode and an encode of every entry.
 *
 * Every page the engine writes is **packed** (encodeLeaf, encodeBranch): the
 * header, `count` slots, then the entries in slot order with no gap between
 * them, then zeros to the end of the page. The functions here take a packed
 * page and return a packed page, byte for byte what encoding the edited
 * entries would give (page-edit.test.ts checks exactly that), so an edited
 * page and an encoded one cannot be told apart, on disk or in the cache.
 * `checkTree()` verifies every page of a version is packed (check.ts).
 *
 * The header's page number, stamp and checksum are left as they were: the
 * commit fills them in (`sealEdited`). Pure functions; the source is never
 * modified.
 */
import { assert } from '../../util/assert.js';
import { ENTRY_HEADER_BYTES, HEADER_BYTES, isOverflowRef, KEY_OVERFLOW, SLOT_BYTES, VALUE_OVERFLOW, type OverflowRef } from './page.js';

function readU16(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! | (bytes[offset + 1]! << 8);
}

function storeU16(bytes: Uint8Array, value: number, offset: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = value >>> 8;
}

function storeU32(bytes: Uint8Array, value: number, offset: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
  bytes[offset + 2] = (value >>> 16) & 0xff;
  bytes[offset + 3] = value >>> 24;
}

/** Bytes the entry starting at `offset` takes in its page (its slot not included). */
export function entryLength(bytes: Buffer, offset: number, isLeaf: boolean): number {
  const flags = bytes[offset + 2]!;
  let length = ENTRY_HEADER_BYTES + ((flags & KEY_OVERFLOW) !== 0 ? 4 : readU16(bytes, offset));
  if (isLeaf) length += (flags & VALUE_OVERFLOW) !== 0 ? 4 : bytes.readUInt32LE(offset + 3);
  return length;
}

/** Bytes leaf entry `index` takes in its page, its slot included (as `PageGeometry.leafEntryBytes`). */
export function leafEntryBytesAt(bytes: Buffer, index: number): number {
  return SLOT_BYTES + entryLength(bytes, readU16(bytes, HEADER_BYTES + SLOT_BYTES * index), true);
}

/** Where the entries of a packed page with `count` entries end (the first byte of the zero tail). */
export function packedEnd(bytes: Buffer, count: number, isLeaf: boolean): number {
  if (count === 0) return HEADER_BYTES;
  const last = readU16(bytes, HEADER_BYTES + SLOT_BYTES * (count - 1));
  return last + entryLength(bytes, last, isLeaf);
}

/**
 * Why a page is not packed (entries in slot order, no gaps, zeros after), or
 * undefined when it is. For the checker: the byte edits rely on it.
 */
export function unpackedReason(bytes: Buffer, count: number, isLeaf: boolean): string | undefined {
  let expected = HEADER_BYTES + SLOT_BYTES * count;
  for (let index = 0; index < count; index++) {
    const offset = readU16(bytes, HEADER_BYTES + SLOT_BYTES * index);
    if (offset !== expected) return `entry ${index} starts at ${offset}, expected ${expected}`;
    expected = offset + entryLength(bytes, offset, isLeaf);
    if (expected > bytes.length) return `entry ${index} runs past the page`;
  }
  for (let offset = expected; offset < bytes.length; offset++) if (bytes[offset] !== 0) return `byte ${offset} after the entries is not zero`;
  return undefined;
}

/** One leaf entry to insert: an inline key (at most `keyInlineMax` bytes) and an inline value or an overflow run. */
export interface LeafEntry {
  readonly key: Uint8Array;
  readonly value: Uint8Array | OverflowRef;
}

/**
 * A copy of packed leaf `source` (holding `count` entries) with `remove`
 * (0 or 1) entries at `index` replaced by `entry` (when given): an insert
 * (remove 0), a replacement (remove 1) or a removal (no entry). The caller
 * keeps the keys in order and checks that the result fits the page
 * (`PageGeometry.leafEntryBytes`); the key must be inline.
 */
export function spliceLeafEntry(source: Buffer, count: number, index: number, remove: 0 | 1, entry: LeafEntry | undefined): Buffer {
  assert(index >= 0 && index + remove <= count, 'leaf splice out of range', index, remove, count);
  const pageBytes = source.length;
  const slotsEnd = HEADER_BYTES + SLOT_BYTES * count;
  const usedEnd = packedEnd(source, count, true);
  const start = index < count ? readU16(source, HEADER_BYTES + SLOT_BYTES * index) : usedEnd;
  const end = remove === 1 ? start + entryLength(source, start, true) : start;
  const inserted = entry === undefined ? 0 : 1;
  const valueBytes = entry === undefined ? 0 : isOverflowRef(entry.value) ? 4 : entry.value.length;
  const newLength = entry === undefined ? 0 : ENTRY_HEADER_BYTES + entry.key.length + valueBytes;
  // Entries before `index` move by the slot change; entries after it also by the entry's change.
  const slotShift = SLOT_BYTES * (inserted - remove);
  const tailShift = slotShift + newLength - (end - start);
  const newEnd = usedEnd + tailShift;
  assert(newEnd <= pageBytes, 'leaf splice overflows its page', newEnd, pageBytes);
  const out = Buffer.allocUnsafe(pageBytes);
  source.copy(out, 0, 0, HEADER_BYTES);
  storeU16(out, count - remove + inserted, 6);
  for (let at = 0; at < index; at++) storeU16(out, readU16(source, HEADER_BYTES + SLOT_BYTES * at) + slotShift, HEADER_BYTES + SLOT_BYTES * at);
  if (entry !== undefined) storeU16(out, start + slotShift, HEADER_BYTES + SLOT_BYTES * index);
  for (let at = index + remove; at < count; at++) {
    storeU16(out, readU16(source, HEADER_BYTES + SLOT_BYTES * at) + tailShift, HEADER_BYTES + SLOT_BYTES * (at - remove + inserted));
  }
  source.copy(out, slotsEnd + slotShift, slotsEnd, start);
  if (entry !== undefined) writeLeafEntry(out, start + slotShift, entry);
  source.copy(out, start + slotShift + newLength, end, usedEnd);
  out.fill(0, newEnd);
  return out;
}

function writeLeafEntry(out: Buffer, offset: number, { key, value }: LeafEntry): void {
  const big = isOverflowRef(value);
  storeU16(out, key.length, offset);
  out[offset + 2] = big ? VALUE_OVERFLOW : 0;
  storeU32(out, value.length, offset + 3);
  let cursor = offset + ENTRY_HEADER_BYTES;
  out.set(key, cursor);
  cursor += key.length;
  if (big) storeU32(out, value.page, cursor);
  else out.set(value, cursor);
}

/** Sets child `index` (0..count) of a branch page, in place. */
export function setChildAt(bytes: Buffer, index: number, child: number): void {
  storeU32(bytes, child, index === 0 ? 12 : readU16(bytes, HEADER_BYTES + SLOT_BYTES * (index - 1)) + 3);
}
