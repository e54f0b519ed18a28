/**
 * SSTable data blocks.
 *
 * Layout of a block (before its trailing checksum, which the table adds):
 *
 *   entry*   [shared: varint][unshared: varint][value tag: varint][key suffix][value]
 *   restarts [offset: u32] * n
 *   [n: u32]
 *
 * `shared` is the length of the prefix the key has in common with the previous
 * key (shared-prefix compression); every `restartInterval`-th entry is a
 * restart point stored with `shared = 0`, so a lookup binary-searches the
 * restart points and then scans at most one interval. `value tag` is 0 for a
 * tombstone, else value length + 1.
 */
import { compareBytes } from '../../util/bytes.js';
import { corruption } from '../../util/corruption.js';
import { GrowableBuffer } from './coding.js';

/** Builds one block. Keys must be added in strictly increasing order. */
export class BlockBuilder {
  private readonly out = new GrowableBuffer(8192);
  private readonly restarts: number[] = [0];
  private sinceRestart = 0;
  private readonly lastKey = new GrowableBuffer(256);
  entryCount = 0;

  constructor(private readonly restartInterval: number) {}

  /**
   * Adds the key `keySource[keyStart, keyEnd)` with the value
   * `valueSource[valueStart, valueEnd)`, or a tombstone when `valueSource` is
   * null. Ranges rather than views: a flush adds every entry straight from
   * its one memtable buffer without a Buffer object per key and value.
   */
  add(keySource: Uint8Array, keyStart: number, keyEnd: number, valueSource: Uint8Array | null, valueStart: number, valueEnd: number): void {
    const keyLength = keyEnd - keyStart;
    let shared = 0;
    if (this.sinceRestart < this.restartInterval) {
      const last = this.lastKey.buffer;
      const limit = Math.min(this.lastKey.length, keyLength);
      while (shared < limit && last[shared] === keySource[keyStart + shared]) shared++;
    } else {
      this.restarts.push(this.out.length);
      this.sinceRestart = 0;
    }
    const out = this.out;
    out.varint(shared);
    out.varint(keyLength - shared);
    out.varint(valueSource === null ? 0 : valueEnd - valueStart + 1);
    out.append(keySource, keyStart + shared, keyEnd);
    if (valueSource !== null) out.append(valueSource, valueStart, valueEnd);
    this.lastKey.reset();
    this.lastKey.append(keySource, keyStart, keyEnd);
    this.sinceRestart++;
    this.entryCount++;
  }

  /** Bytes the finished block will take (before its checksum). */
  get estimatedBytes(): number {
    return this.out.length + this.restarts.length * 4 + 4;
  }

  get empty(): boolean {
    return this.entryCount === 0;
  }

  /** The last key added (a view, valid until the next add/reset). */
  lastKeyView(): Buffer {
    return this.lastKey.view();
  }

  /** Appends the restart array and returns a view of the block bytes (valid until `reset`). */
  finish(): Buffer {
    for (const restart of this.restarts) this.out.uint32(restart);
    this.out.uint32(this.restarts.length);
    return this.out.view();
  }

  reset(): void {
    this.out.reset();
    this.restarts.length = 1;
    this.restarts[0] = 0;
    this.sinceRestart = 0;
    this.lastKey.reset();
    this.entryCount = 0;
  }
}

/** A verified data block, as held in the block cache. Immutable. */
export class Block {
  readonly restartCount: number;
  readonly restartsOffset: number;

  constructor(
    readonly data: Buffer,
    readonly source: string,
  ) {
    if (data.length < 4) throw corruption('lsm', source, 'data block shorter than its restart count');
    this.restartCount = data.readUInt32LE(data.length - 4);
    this.restartsOffset = data.length - 4 - this.restartCount * 4;
    if (this.restartCount === 0 || this.restartsOffset < 0) throw corruption('lsm', source, `data block has an impossible restart count ${this.restartCount}`);
  }
}

/**
 * Decoded entries of restart intervals `[fromRestart, toRestart)` of one
 * block, for iteration: every full key laid end to end in ONE buffer (entry i
 * is `keyBytes[keyStarts[i], keyStarts[i+1])`), and value positions in the
 * block (`valueLengths[i] < 0` is a tombstone). Iterators decode one interval
 * (at most `restartInterval` entries) at a time, so a seek decodes only the
 * entries near its key. An iterator owns one and `decodeBlock` refills it, so
 * stepping through a table allocates nothing per interval: key views into
 * `keyBytes` are valid only until the next decode.
 */
const EMPTY = Buffer.alloc(0);

export class DecodedBlock {
  fromRestart = 0;
  toRestart = 0;
  count = 0;
  /** Grown on the first decode: iterators are made per seek, most decode one interval. */
  keyBytes = EMPTY;
  readonly keyStarts: number[] = [0];
  data: Buffer = Buffer.alloc(0);
  readonly valueStarts: number[] = [];
  readonly valueLengths: number[] = [];
}

/** Result of a point search in a block. */
export const NOT_IN_BLOCK = 0;
export const FOUND_VALUE = 1;
export const FOUND_TOMBSTONE = 2;

/**
 * Scratch space for block searches: one reconstructed key and the position of
 * the found value. Shared because searches are synchronous and JS is
 * single-threaded; never hold it across an await.
 */
const scratch = { key: Buffer.allocUnsafe(64 * 1024), valueStart: 0, valueEnd: 0 };

/**
 * Looks `key` up in `block`. Returns NOT_IN_BLOCK, FOUND_TOMBSTONE or
 * FOUND_VALUE; for FOUND_VALUE the value is `block.data[foundValueStart(), foundValueEnd())`.
 * Keys are compared in place (restart keys) or rebuilt in a scratch buffer: nothing is allocated per entry.
 */
export function searchBlock(block: Block, key: Buffer): number {
  const data = block.data;
  const source = block.source;
  // Scan forward from the last restart point whose key is <= `key`.
  let p = data.readUInt32LE(block.restartsOffset + restartAtOrBefore(block, key) * 4);
  const end = block.restartsOffset;
  const keyBuffer = scratch.key;
  let keyLength = 0;
  while (p < end) {
    p = readEntryHeader(data, p);
    const { shared, unshared, tag } = entryHeader;
    const valueLength = tag === 0 ? 0 : tag - 1;
    if (shared > keyLength || p + unshared + valueLength > end || shared + unshared > keyBuffer.length) {
      throw corruption('lsm', source, 'data block entry is malformed');
    }
    // Byte loops, not Buffer.copy/compare: for keys of tens of bytes a native call costs more than the work.
    for (let i = 0; i < unshared; i++) keyBuffer[shared + i] = data[p + i]!;
    keyLength = shared + unshared;
    p += unshared;
    const order = compareBytes(key, keyBuffer, 0, key.length, 0, keyLength);
    if (order === 0) {
      scratch.valueStart = p;
      scratch.valueEnd = p + valueLength;
      return tag === 0 ? FOUND_TOMBSTONE : FOUND_VALUE;
    }
    if (order < 0) return NOT_IN_BLOCK;
    p += valueLength;
  }
  return NOT_IN_BLOCK;
}

export function foundValueStart(): number {
  return scratch.valueStart;
}

export function foundValueEnd(): number {
  return scratch.valueEnd;
}

/**
 * Index of the last restart point whose key is <= `key` (0 when none is):
 * a seek for `key` only needs the entries from there on.
 */
export function restartAtOrBefore(block: Block, key: Buffer): number {
  // Restart 0 always qualifies (a key before it still starts there): search the others for the first
  // whose key is > `key`. Written out rather than `partitionPoint` with a closure: every lookup and seek
  // runs it (see TableReader.findBlock).
  let low = 1;
  let high = block.restartCount;
  while (low < high) {
    const middle = (low + high) >>> 1;
    locateRestartKey(block, middle);
    if (compareBytes(key, block.data, 0, key.length, restartKey.start, restartKey.end) >= 0) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

/** Where the key of the restart point `locateRestartKey` looked at last lies in its block's data (scratch: read it at once). */
const restartKey = { start: 0, end: 0 };

/** Sets `restartKey` to the key of restart point `index` of `block`. */
function locateRestartKey(block: Block, index: number): void {
  const p = readEntryHeader(block.data, block.data.readUInt32LE(block.restartsOffset + index * 4));
  if (entryHeader.shared !== 0) throw corruption('lsm', block.source, 'restart entry has a shared prefix');
  if (p + entryHeader.unshared > block.restartsOffset) throw corruption('lsm', block.source, 'restart key runs past the entries');
  restartKey.start = p;
  restartKey.end = p + entryHeader.unshared;
}

/** The three varints that start an entry, as `readEntryHeader` read them last (scratch: read it at once). */
const entryHeader = { shared: 0, unshared: 0, tag: 0 };

/**
 * Reads the entry header at `p` of `data` into `entryHeader` and returns the
 * offset of the key suffix. Bounds are the caller's to check: a read past the
 * data counts as zero bytes and leaves the offset past the end, which they reject.
 * (The three varints are written out, not a helper called three times: this is
 * the inner loop of every lookup and seek.)
 */
function readEntryHeader(data: Buffer, p: number): number {
  let shared = 0;
  let shift = 0;
  let byte: number;
  do {
    byte = data[p++]!;
    shared |= (byte & 0x7f) << shift;
    shift += 7;
  } while (byte >= 0x80 && shift < 35);
  let unshared = 0;
  shift = 0;
  do {
    byte = data[p++]!;
    unshared |= (byte & 0x7f) << shift;
    shift += 7;
  } while (byte >= 0x80 && shift < 35);
  let tag = 0;
  shift = 0;
  do {
    byte = data[p++]!;
    tag += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte >= 0x80 && shift < 56);
  entryHeader.shared = shared;
  entryHeader.unshared = unshared;
  entryHeader.tag = tag;
  return p;
}

/** Restart point `restart`'s byte offset in `block` (the end of the entries for `restartCount`). */
function restartOffset(block: Block, restart: number): number {
  if (restart >= block.restartCount) return block.restartsOffset;
  const offset = restart === 0 ? 0 : block.data.readUInt32LE(block.restartsOffset + restart * 4);
  if (offset > block.restartsOffset) throw corruption('lsm', block.source, 'restart offset points past the entries');
  return offset;
}

/** Decodes the entries of restart intervals `[fromRestart, toRestart)` of `block` (default: all of them) into `into`, which it returns. */
export function decodeBlock(block: Block, fromRestart = 0, toRestart = block.restartCount, into = new DecodedBlock()): DecodedBlock {
  const data = block.data;
  const end = restartOffset(block, toRestart);
  const { keyStarts, valueStarts, valueLengths } = into;
  keyStarts.length = 1;
  valueStarts.length = 0;
  valueLengths.length = 0;
  let out = into.keyBytes;
  let outLength = 0;
  let previousStart = 0;
  let previousLength = 0;
  let p = restartOffset(block, fromRestart);
  if (p >= end) throw corruption('lsm', block.source, `restart interval ${fromRestart} is empty`);
  while (p < end) {
    p = readEntryHeader(data, p);
    const { shared, unshared, tag } = entryHeader;
    const valueLength = tag === 0 ? 0 : tag - 1;
    if (shared > previousLength || p + unshared + valueLength > end) throw corruption('lsm', block.source, 'data block entry is malformed');
    const keyLength = shared + unshared;
    if (outLength + keyLength > out.length) {
      const grown = Buffer.allocUnsafe(Math.max(out.length * 2, outLength + keyLength, 256));
      out.copy(grown, 0, 0, outLength);
      out = grown;
    }
    // The shared prefix comes from the previous key, which sits just before in `out`.
    for (let i = 0; i < shared; i++) out[outLength + i] = out[previousStart + i]!;
    for (let i = 0; i < unshared; i++) out[outLength + shared + i] = data[p + i]!;
    previousStart = outLength;
    previousLength = keyLength;
    outLength += keyLength;
    keyStarts.push(outLength);
    p += unshared;
    valueStarts.push(p);
    valueLengths.push(tag === 0 ? -1 : valueLength);
    p += valueLength;
  }
  into.keyBytes = out;
  into.fromRestart = fromRestart;
  into.toRestart = toRestart;
  into.count = valueStarts.length;
  into.data = data;
  return into;
}
