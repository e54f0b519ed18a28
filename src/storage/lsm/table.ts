/**
 * SSTables: immutable sorted files (`NNNNNN.sst`).
 *
 * File layout:
 *
 *   data block 0 [crc32 u32] ... data block n-1 [crc32 u32]
 *   filter block [crc32 u32]      the table's Bloom filter (bloom.ts)
 *   index block  [crc32 u32]      [count varint] then per data block:
 *                                 [last key length varint][last key][offset varint][length varint]
 *   footer (48 bytes)             [index offset u64][index length u32]
 *                                 [filter offset u64][filter length u32]
 *                                 [entry count u64][format version u32]
 *                                 [crc32 of the previous 36 bytes u32][magic "IMPLSST1"]
 *
 * Every checksum covers the block's bytes; a block's length in the index and
 * footer excludes its 4-byte checksum. Any mismatch is reported as
 * IMPULSE_ERR_ENGINE_CORRUPTION naming the file, never returned as data.
 *
 * The checksum is CRC-32 (zlib's, native) rather than the CRC32C the WAL and
 * manifest use: every block read from disk is verified, and Node has no
 * native CRC32C; in JavaScript a 4 KiB block costs ~4x more to check
 * (measured: ~6 µs against ~1.5 µs), the largest part of a cache miss. Both
 * detect every 1- and 2-bit error and every burst up to 32 bits in a block.
 * (Format version 2; version 1 used CRC32C.)
 *
 * A table is built whole in memory (it is bounded by the target table size
 * plus one block) and written with one write and one sync.
 */
import type { Vfs, VfsFile } from '../../vfs/vfs.js';
import { BloomFilterBuilder, bloomMayContain } from './bloom.js';
import { Block, BlockBuilder, DecodedBlock, FOUND_TOMBSTONE, FOUND_VALUE, NOT_IN_BLOCK, decodeBlock, foundValueEnd, foundValueStart, restartAtOrBefore, searchBlock } from './block.js';
import type { BlockCache, CacheShard } from './block-cache.js';
import { assert } from '../../util/assert.js';
import { compareBytes, partitionPoint } from '../../util/bytes.js';
import { corruption } from '../../util/corruption.js';
import { Cursor, GrowableBuffer } from './coding.js';
import { crc32 } from 'node:zlib';

export const FOOTER_BYTES = 48;
/** Bytes compaction reads per call when it scans a table sequentially. */
const READ_AHEAD_BYTES = 512 * 1024;
const MAGIC = Buffer.from('IMPLSST1', 'latin1');
const FORMAT_VERSION = 2;

export interface TableBuildOptions {
  /** Target uncompressed bytes per data block. */
  readonly blockBytes: number;
  /** Keys between restart points in a data block. */
  readonly restartInterval: number;
  /** Bloom filter bits per key. */
  readonly bloomBitsPerKey: number;
}

/** Accumulates sorted entries and produces a complete table image. */
export class TableBuilder {
  private readonly file = new GrowableBuffer(256 * 1024);
  private readonly block: BlockBuilder;
  private readonly bloom: BloomFilterBuilder;
  private readonly index = new GrowableBuffer(16 * 1024);
  private indexCount = 0;
  private smallestKey: Buffer | undefined;
  private readonly lastKey = new GrowableBuffer(256);
  entryCount = 0;

  constructor(private readonly options: TableBuildOptions) {
    this.block = new BlockBuilder(options.restartInterval);
    this.bloom = new BloomFilterBuilder(options.bloomBitsPerKey);
  }

  /** Adds an entry; keys strictly increasing (asserted: a table out of order would answer lookups wrongly). `value === null` is a tombstone. */
  add(key: Uint8Array, value: Uint8Array | null): void {
    if (value === null) this.addRanges(key, 0, key.length, null, 0, 0);
    else this.addRanges(key, 0, key.length, value, 0, value.length);
  }

  /** `add` of `keySource[keyStart, keyEnd)` and `valueSource[valueStart, valueEnd)` (null: a tombstone), without views of them (BlockBuilder.add says why). */
  addRanges(keySource: Uint8Array, keyStart: number, keyEnd: number, valueSource: Uint8Array | null, valueStart: number, valueEnd: number): void {
    if (this.smallestKey === undefined) this.smallestKey = Buffer.from(keySource.subarray(keyStart, keyEnd));
    else if (compareBytes(this.lastKey.buffer, keySource, 0, this.lastKey.length, keyStart, keyEnd) >= 0) {
      assert(false, 'TableBuilder.add: keys must be strictly increasing', this.lastKey.view(), keySource.subarray(keyStart, keyEnd));
    }
    this.block.add(keySource, keyStart, keyEnd, valueSource, valueStart, valueEnd);
    this.bloom.add(keySource, keyStart, keyEnd);
    this.lastKey.reset();
    this.lastKey.append(keySource, keyStart, keyEnd);
    this.entryCount++;
    if (this.block.estimatedBytes >= this.options.blockBytes) this.flushBlock();
  }

  /** Bytes the table would take if finished now (approximately). */
  get estimatedBytes(): number {
    return this.file.length + this.block.estimatedBytes + this.index.length + this.bloom.keyCount * (this.options.bloomBitsPerKey / 8);
  }

  get empty(): boolean {
    return this.entryCount === 0;
  }

  /** Finishes the table: the complete file image and its key bounds. */
  finish(): { image: Buffer; smallest: Buffer; largest: Buffer; entryCount: number } {
    if (!this.block.empty) this.flushBlock();
    const smallest = this.smallestKey;
    assert(smallest !== undefined, 'TableBuilder.finish on an empty table');
    const filterOffset = this.file.length;
    const filter = this.bloom.finish();
    this.appendChecked(filter);
    const indexOffset = this.file.length;
    const indexBody = new GrowableBuffer(this.index.length + 8);
    indexBody.varint(this.indexCount);
    indexBody.append(this.index.view());
    this.appendChecked(indexBody.view());
    const footer = Buffer.alloc(FOOTER_BYTES);
    footer.writeUIntLE(indexOffset, 0, 6);
    footer.writeUInt32LE(indexBody.length, 8);
    footer.writeUIntLE(filterOffset, 12, 6);
    footer.writeUInt32LE(filter.length, 20);
    footer.writeUIntLE(this.entryCount, 24, 6);
    footer.writeUInt32LE(FORMAT_VERSION, 32);
    footer.writeUInt32LE(checksum(footer, 0, 36), 36);
    MAGIC.copy(footer, 40);
    this.file.append(footer);
    return { image: this.file.copy(), smallest, largest: this.lastKey.copy(), entryCount: this.entryCount };
  }

  private flushBlock(): void {
    const offset = this.file.length;
    const lastKey = this.block.lastKeyView();
    this.index.varint(lastKey.length);
    this.index.append(lastKey);
    const body = this.block.finish();
    this.index.varint(offset);
    this.index.varint(body.length);
    this.indexCount++;
    this.appendChecked(body);
    this.block.reset();
  }

  private appendChecked(body: Uint8Array): void {
    this.file.append(body);
    this.file.uint32(checksum(body, 0, body.length));
  }
}

/** Outcome of a point lookup in one table. */
export const TABLE_MISS = 0;
export const TABLE_VALUE = 1;
export const TABLE_TOMBSTONE = 2;

/**
 * An open table: its index and filter in memory, data blocks read on demand
 * through the block cache. Safe for concurrent readers.
 */
export class TableReader {
  /** Last key of each data block, ascending. */
  private readonly blockLastKeys: Buffer[];
  /** The same keys as latin1 strings: JS string order is byte order, and `<` beats a native compare call. */
  private readonly blockLastKeyStrings: string[];
  private readonly blockOffsets: number[];
  private readonly blockLengths: number[];
  bloomUseful = 0;
  bloomFalsePositive = 0;
  /** This table's blocks in the shared block cache. */
  private readonly cached: CacheShard;

  private constructor(
    private readonly file: VfsFile,
    readonly path: string,
    readonly fileNumber: number,
    cache: BlockCache,
    private readonly filter: Buffer,
    index: { lastKeys: Buffer[]; offsets: number[]; lengths: number[] },
    readonly entryCount: number,
  ) {
    this.cached = cache.shard();
    this.blockLastKeys = index.lastKeys;
    this.blockLastKeyStrings = index.lastKeys.map((key) => key.toString('latin1'));
    this.blockOffsets = index.offsets;
    this.blockLengths = index.lengths;
  }

  /** Opens and verifies the footer, filter and index of the table at `path`. */
  static async open(vfs: Vfs, path: string, fileNumber: number, cache: BlockCache): Promise<TableReader> {
    const file = await vfs.open(path, { readOnly: true });
    try {
      const size = await file.size();
      if (size < FOOTER_BYTES) throw corruption('lsm', path, `table is ${size} bytes, shorter than its footer`);
      const footer = await file.read(size - FOOTER_BYTES, FOOTER_BYTES);
      if (footer.length !== FOOTER_BYTES || !footer.subarray(40).equals(MAGIC)) throw corruption('lsm', path, 'table footer has no magic number');
      if (checksum(footer, 0, 36) !== footer.readUInt32LE(36)) throw corruption('lsm', path, 'table footer failed its checksum');
      const indexOffset = footer.readUIntLE(0, 6);
      const indexLength = footer.readUInt32LE(8);
      const filterOffset = footer.readUIntLE(12, 6);
      const filterLength = footer.readUInt32LE(20);
      const entryCount = footer.readUIntLE(24, 6);
      const version = footer.readUInt32LE(32);
      if (version !== FORMAT_VERSION) throw corruption('lsm', path, `table format version ${version} is not supported`);
      if (filterOffset + filterLength + 4 !== indexOffset || indexOffset + indexLength + 4 !== size - FOOTER_BYTES) {
        throw corruption('lsm', path, 'table footer points outside the file');
      }
      const meta = await file.read(filterOffset, size - FOOTER_BYTES - filterOffset);
      const filter = verifiedSlice(meta, 0, filterLength, path, 'filter block');
      const indexBody = verifiedSlice(meta, filterLength + 4, indexLength, path, 'index block');
      const index = parseIndex(indexBody, path, filterOffset);
      return new TableReader(file, path, fileNumber, cache, Buffer.from(filter), index, entryCount);
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  get blockCount(): number {
    return this.blockOffsets.length;
  }

  /** False when the Bloom filter proves `key` (with hashes `hashes`) absent. Counts useful answers. */
  mayContain(hashes: Uint32Array): boolean {
    if (bloomMayContain(this.filter, hashes)) return true;
    this.bloomUseful++;
    return false;
  }

  /** Index of the first block whose last key is >= `key`, or blockCount when none. */
  findBlock(key: Buffer): number {
    // Written out rather than `partitionPoint` with a closure: every seek runs this once per table, and
    // the closure call (megamorphic: partitionPoint serves many callers) measured at ~12% of a seek workload.
    const keys = this.blockLastKeys;
    let low = 0;
    let high = keys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareBytes(keys[middle]!, key) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** `findBlock` for a key given as a latin1 string (point reads: string `<` is byte order, cheaper than any byte loop). */
  findBlockByString(key: string): number {
    const keys = this.blockLastKeyStrings;
    let low = 0;
    let high = keys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (keys[middle]! < key) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The block at `index` when cached, without I/O. */
  cachedBlock(index: number): Block | undefined {
    return this.cached.get(this.blockOffsets[index]!);
  }

  /** Reads, verifies and caches the block at `index`. */
  async readBlock(index: number, fillCache = true): Promise<Block> {
    const offset = this.blockOffsets[index]!;
    const length = this.blockLengths[index]!;
    const raw = await this.file.read(offset, length + 4);
    const body = verifiedSlice(raw, 0, length, this.path, `data block at offset ${offset}`);
    const block = new Block(body, this.path);
    if (fillCache) this.cached.insert(offset, block);
    return block;
  }

  /**
   * `readBlock` with a synchronous positional read, when the file offers one
   * (`VfsFile.readSync`); `undefined` when it does not. Point reads use it on a
   * cache miss: a 4 KiB read from the page cache costs a few microseconds
   * inline against tens for a thread-pool round trip.
   */
  readBlockSync(index: number, fillCache = true): Block | undefined {
    if (this.file.readSync === undefined) return undefined;
    const offset = this.blockOffsets[index]!;
    const length = this.blockLengths[index]!;
    const raw = this.file.readSync(offset, length + 4);
    const body = verifiedSlice(raw, 0, length, this.path, `data block at offset ${offset}`);
    const block = new Block(body, this.path);
    if (fillCache) this.cached.insert(offset, block);
    return block;
  }

  /** Offset and length (with checksum) of block `index`. */
  blockSpan(index: number): { offset: number; end: number } {
    const offset = this.blockOffsets[index]!;
    return { offset, end: offset + this.blockLengths[index]! + 4 };
  }

  /** Offset just past the last data block. */
  get dataEnd(): number {
    const last = this.blockOffsets.length - 1;
    return this.blockOffsets[last]! + this.blockLengths[last]! + 4;
  }

  /** Reads `length` raw bytes at `offset` (for sequential read-ahead). */
  readRaw(offset: number, length: number): Promise<Buffer> {
    return this.file.read(offset, length);
  }

  /** Verifies block `index` out of a read-ahead window that starts at file offset `windowStart`. */
  blockFromWindow(index: number, window: Buffer, windowStart: number): Block {
    const offset = this.blockOffsets[index]!;
    const length = this.blockLengths[index]!;
    const body = verifiedSlice(window, offset - windowStart, length, this.path, `data block at offset ${offset}`);
    return new Block(body, this.path);
  }

  /**
   * Verifies and caches every block lying wholly inside `window` (raw file
   * bytes starting at `windowStart`) that is not cached yet. Returns the block
   * at `wanted` (which must lie inside the window).
   */
  cacheWindow(window: Buffer, windowStart: number, wanted: number): Block {
    let index = this.blockIndexAtOrAfter(windowStart);
    let wantedBlock: Block | undefined;
    const windowEnd = windowStart + window.length;
    for (; index < this.blockOffsets.length; index++) {
      const offset = this.blockOffsets[index]!;
      if (offset + this.blockLengths[index]! + 4 > windowEnd) break;
      let block = this.cached.peek(offset);
      if (block === undefined) {
        block = this.blockFromWindow(index, window, windowStart);
        // Copy out of the window so one cached block does not pin the whole read-ahead buffer.
        block = new Block(Buffer.from(block.data), this.path);
        this.cached.insert(offset, block);
      }
      if (index === wanted) wantedBlock = block;
    }
    if (wantedBlock === undefined) wantedBlock = this.blockFromWindow(wanted, window, windowStart);
    return wantedBlock;
  }

  private blockIndexAtOrAfter(offset: number): number {
    const offsets = this.blockOffsets;
    return partitionPoint(0, offsets.length, (index) => offsets[index]! >= offset);
  }

  /** The block at `index`, from the cache or disk. */
  block(index: number): Block | Promise<Block> {
    return this.cachedBlock(index) ?? this.readBlockSync(index) ?? this.readBlock(index);
  }

  /**
   * Looks `key` up in `block` (which must be this table's block for the key).
   * Returns TABLE_MISS, TABLE_TOMBSTONE, or TABLE_VALUE with the value copied
   * into `out.value` (a copy: cached blocks are shared and must not be handed out).
   */
  searchIn(block: Block, key: Buffer, out: { value: Buffer | undefined }): number {
    const found = searchBlock(block, key);
    if (found === NOT_IN_BLOCK) {
      this.bloomFalsePositive++;
      return TABLE_MISS;
    }
    if (found === FOUND_TOMBSTONE) return TABLE_TOMBSTONE;
    if (found !== FOUND_VALUE) return TABLE_MISS;
    const start = foundValueStart();
    const end = foundValueEnd();
    const value = Buffer.allocUnsafe(end - start);
    block.data.copy(value, 0, start, end);
    out.value = value;
    return TABLE_VALUE;
  }

  async close(): Promise<void> {
    this.cached.release();
    await this.file.close();
  }
}

/** The table checksum (CRC-32, see the module comment) of `data[start, end)`. */
function checksum(data: Uint8Array, start: number, end: number): number {
  return crc32(start === 0 && end === data.length ? data : data.subarray(start, end));
}

function verifiedSlice(buffer: Buffer, start: number, length: number, path: string, what: string): Buffer {
  if (start + length + 4 > buffer.length) throw corruption('lsm', path, `${what} is truncated`);
  const expected = buffer.readUInt32LE(start + length);
  if (checksum(buffer, start, start + length) !== expected) throw corruption('lsm', path, `${what} failed its checksum`);
  return buffer.subarray(start, start + length);
}

function parseIndex(body: Buffer, path: string, dataEnd: number): { lastKeys: Buffer[]; offsets: number[]; lengths: number[] } {
  const cursor = new Cursor(body, 0, body.length, path);
  const count = cursor.varint();
  const lastKeys: Buffer[] = [];
  const offsets: number[] = [];
  const lengths: number[] = [];
  let expectedOffset = 0;
  for (let i = 0; i < count; i++) {
    const key = Buffer.from(cursor.bytes(cursor.varint()));
    const offset = cursor.varint();
    const length = cursor.varint();
    if (offset !== expectedOffset || offset + length + 4 > dataEnd) throw corruption('lsm', path, `index entry ${i} points outside the data blocks`);
    if (i > 0 && Buffer.compare(lastKeys[i - 1]!, key) >= 0) throw corruption('lsm', path, `index keys out of order at entry ${i}`);
    expectedOffset = offset + length + 4;
    lastKeys.push(key);
    offsets.push(offset);
    lengths.push(length);
  }
  if (count === 0 || expectedOffset !== dataEnd || cursor.remaining !== 0) throw corruption('lsm', path, 'index does not cover the data blocks exactly');
  return { lastKeys, offsets, lengths };
}

/**
 * A bidirectional cursor over one table's entries. Positioning methods
 * return a Promise only when a block had to be read from disk; callers write
 * `const wait = it.next(); if (wait) await wait;` so cached scans stay synchronous.
 *
 * It decodes one restart interval of a block at a time (block.ts
 * `DecodedBlock`): a seek decodes the interval its key falls in, a step past
 * either end of an interval decodes the neighbouring one.
 */
export class TableIterator {
  private blockIndex = -1;
  private block: Block | undefined;
  /** The decoded interval (refilled in place: see `key`). */
  private readonly decoded = new DecodedBlock();
  private position = 0;
  valid = false;

  /** Sequential read-ahead (compaction): the bytes of several blocks read with one call. */
  private window: Buffer | undefined;
  private windowStart = 0;
  /** Blocks this iterator had to read (drives scan read-ahead). */
  private cacheMisses = 0;

  /**
   * `fillCache`: whether blocks read from disk enter the block cache. Scans
   * fill it; compaction does not (it would evict the hot set) and reads ahead
   * `READ_AHEAD_BYTES` at a time instead, so a table costs a few large reads
   * rather than one read per block.
   */
  constructor(
    readonly table: TableReader,
    private readonly fillCache = true,
  ) {}

  private keyView: Buffer | undefined;
  private keyViewPosition = -1;

  /**
   * The current key: a view into this iterator's decoded interval, valid
   * until the iterator moves to another interval. Copy it to keep it.
   */
  get key(): Buffer {
    if (this.keyViewPosition !== this.position || this.keyView === undefined) {
      const decoded = this.decoded;
      this.keyView = decoded.keyBytes.subarray(decoded.keyStarts[this.position]!, decoded.keyStarts[this.position + 1]!);
      this.keyViewPosition = this.position;
    }
    return this.keyView;
  }

  /** The value (a view into a cached block), or null for a tombstone. */
  get value(): Buffer | null {
    const decoded = this.decoded;
    const length = decoded.valueLengths[this.position]!;
    if (length < 0) return null;
    const start = decoded.valueStarts[this.position]!;
    return decoded.data.subarray(start, start + length);
  }

  /** Index of the first decoded entry whose key is >= `key` (> `key` when `skipEqual`). */
  private lowerBound(key: Buffer, skipEqual: boolean): number {
    // Written out rather than `partitionPoint` with a closure, as in `findBlock`: every seek of every table runs it.
    const decoded = this.decoded;
    const bytes = decoded.keyBytes;
    const starts = decoded.keyStarts;
    const keyLength = key.length;
    let low = 0;
    let high = decoded.count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const order = compareBytes(bytes, key, starts[middle]!, starts[middle + 1]!, 0, keyLength);
      if (skipEqual ? order > 0 : order >= 0) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  seekFirst(): Promise<void> | undefined {
    return this.load(0, 'first');
  }

  seekLast(): Promise<void> | undefined {
    return this.load(this.table.blockCount - 1, 'last');
  }

  /** Positions at the first key >= `key` (or > when `exclusive`). */
  seekGE(key: Buffer, exclusive: boolean): Promise<void> | undefined {
    const index = this.table.findBlock(key);
    if (index >= this.table.blockCount) {
      this.valid = false;
      return undefined;
    }
    const after = (): Promise<void> | undefined => {
      // Within the interval of the last restart <= key; if all of it is smaller, the answer starts the next one.
      this.decode(restartAtOrBefore(this.block!, key));
      this.position = this.lowerBound(key, exclusive);
      return this.position < this.decoded.count ? undefined : this.forward();
    };
    const wait = this.loadBlock(index);
    return wait === undefined ? after() : wait.then(after);
  }

  /** Positions at the last key <= `key` (or < when `exclusive`). */
  seekLE(key: Buffer, exclusive: boolean): Promise<void> | undefined {
    let index = this.table.findBlock(key);
    if (index >= this.table.blockCount) index = this.table.blockCount - 1;
    const after = (): Promise<void> | undefined => {
      // First position whose key is > key (>= when exclusive); the answer is one before it, maybe in an earlier interval.
      this.decode(restartAtOrBefore(this.block!, key));
      this.position = this.lowerBound(key, !exclusive) - 1;
      return this.position >= 0 ? undefined : this.backward();
    };
    const wait = this.loadBlock(index);
    return wait === undefined ? after() : wait.then(after);
  }

  next(): Promise<void> | undefined {
    this.position++;
    return this.position < this.decoded.count ? undefined : this.forward();
  }

  prev(): Promise<void> | undefined {
    this.position--;
    return this.position >= 0 ? undefined : this.backward();
  }

  /** To the first entry after the decoded interval: the next interval of this block, or the next block. */
  private forward(): Promise<void> | undefined {
    const next = this.decoded.toRestart;
    if (next >= this.block!.restartCount) return this.load(this.blockIndex + 1, 'first');
    this.decode(next);
    this.position = 0;
    return undefined;
  }

  /** To the last entry before the decoded interval: the previous interval of this block, or the previous block. */
  private backward(): Promise<void> | undefined {
    const previous = this.decoded.fromRestart - 1;
    if (previous < 0) return this.load(this.blockIndex - 1, 'last');
    this.decode(previous);
    this.position = this.decoded.count - 1;
    return undefined;
  }

  /** Positions at the first or last entry of block `index` (invalid past either end of the table). */
  private load(index: number, at: 'first' | 'last'): Promise<void> | undefined {
    if (index < 0 || index >= this.table.blockCount) {
      this.valid = false;
      return undefined;
    }
    const after = (): undefined => {
      this.decode(at === 'first' ? 0 : this.block!.restartCount - 1);
      this.position = at === 'first' ? 0 : this.decoded.count - 1;
      return undefined;
    };
    const wait = this.loadBlock(index, at);
    return wait === undefined ? after() : wait.then(after);
  }

  private decode(restart: number): void {
    decodeBlock(this.block!, restart, restart + 1, this.decoded);
    this.keyView = undefined;
  }

  /** Makes block `index` current: from the cache, an inline read, or (the returned Promise) an asynchronous read. `at`: the direction of travel, for read-ahead. */
  private loadBlock(index: number, at: 'first' | 'last' = 'first'): Promise<void> | undefined {
    const cached = this.table.cachedBlock(index);
    if (cached !== undefined) return this.setBlock(index, cached);
    const { offset, end } = this.table.blockSpan(index);
    if (this.fillCache) {
      // Scans read ahead adaptively: the first miss reads one block; each further miss of
      // this iterator doubles the read (up to READ_AHEAD_BYTES) and caches every block in it.
      this.cacheMisses++;
      if (this.cacheMisses === 1) {
        // A seek's first miss is one block: read it inline when the file can.
        const block = this.table.readBlockSync(index, true);
        if (block !== undefined) return this.setBlock(index, block);
        return this.table.readBlock(index, true).then((block) => this.setBlock(index, block));
      }
      const span = Math.min(READ_AHEAD_BYTES, 4096 * 2 ** Math.min(this.cacheMisses, 8));
      const from = at === 'first' ? offset : Math.max(0, end - span);
      const to = at === 'first' ? Math.min(this.table.dataEnd, Math.max(end, offset + span)) : end;
      return this.table.readRaw(from, to - from).then((window) => this.setBlock(index, this.table.cacheWindow(window, from, index)));
    }
    if (this.window !== undefined && offset >= this.windowStart && end <= this.windowStart + this.window.length) {
      return this.setBlock(index, this.table.blockFromWindow(index, this.window, this.windowStart));
    }
    // Read ahead in the direction of travel, at least the whole block.
    const start = at === 'first' ? offset : Math.max(0, end - READ_AHEAD_BYTES);
    const stop = at === 'first' ? Math.min(this.table.dataEnd, Math.max(end, offset + READ_AHEAD_BYTES)) : end;
    const from = Math.min(start, offset);
    return this.table.readRaw(from, stop - from).then((window) => {
      this.window = window;
      this.windowStart = from;
      this.setBlock(index, this.table.blockFromWindow(index, window, from));
    });
  }

  private setBlock(index: number, block: Block): undefined {
    this.blockIndex = index;
    this.block = block;
    this.valid = true;
    return undefined;
  }
}
