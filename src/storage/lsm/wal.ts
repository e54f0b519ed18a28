/**
 * The write-ahead log. One segment file per memtable generation
 * (`NNNNNN.log`); a segment is never appended to after the process that
 * created it stops, so recovery only ever has to handle a torn tail at the end
 * of a segment.
 *
 * Record layout (little-endian):
 *
 *   [header crc32c: u32]   crc32c of the next 8 bytes
 *   [payload length: u32]
 *   [payload crc32c: u32]
 *   [payload: length bytes] one write batch (see `encodeBatch`)
 *
 * The header has its own checksum so a damaged length is told apart from a
 * torn write: a torn write (a prefix of the last write survived a crash)
 * leaves an incomplete header or a payload that runs past the end of the file
 * — a clean end of log. A complete header or payload that fails its checksum,
 * with the file's remaining bytes not all zero, is corruption and reported
 * with the file named. (All-zero remaining bytes are a file extended by the OS
 * whose data never reached the disk: also a torn tail.)
 *
 * Group commit: the engine base hands every write queued while the previous
 * one was in flight to one `_write`, which becomes exactly ONE record here,
 * one `write` call and, with sync on, one `sync` (fdatasync).
 */
import type { Vfs, VfsFile } from '../../vfs/vfs.js';
import type { WriteOp } from '../engine.js';
import { crc32c } from './crc32c.js';
import { Cursor, GrowableBuffer, corruption } from './coding.js';

const HEADER_BYTES = 12;
const OP_PUT = 1;
const OP_DEL = 2;

/** Appends records to one open segment. Not safe for concurrent appends (the engine never makes them). */
export class WalWriter {
  private readonly record = new GrowableBuffer(64 * 1024);
  /** Bytes appended to this segment so far. */
  position = 0;

  constructor(
    readonly file: VfsFile,
    readonly number: number,
  ) {}

  /** Appends `ops` as one record; with `sync`, returns after the record is durable. Returns bytes written. */
  async append(ops: readonly WriteOp[], sync: boolean): Promise<number> {
    const record = this.record;
    record.reset();
    record.reserve(HEADER_BYTES);
    record.length = HEADER_BYTES;
    encodeBatch(ops, record);
    const buffer = record.buffer;
    const payloadLength = record.length - HEADER_BYTES;
    buffer.writeUInt32LE(payloadLength, 4);
    buffer.writeUInt32LE(crc32c(buffer, HEADER_BYTES, record.length), 8);
    buffer.writeUInt32LE(crc32c(buffer, 4, 12), 0);
    const view = record.view();
    const at = this.position;
    // Advance first: after a failed write the segment is abandoned, never reused.
    this.position += view.length;
    await this.file.write(at, view);
    if (sync) await this.file.sync();
    return view.length;
  }

  async sync(): Promise<void> {
    await this.file.sync();
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

/** Encodes a batch: [op count: u32] then per op [type u8][key length varint][key][value length varint][value]. */
export function encodeBatch(ops: readonly WriteOp[], out: GrowableBuffer): void {
  out.uint32(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    out.byte(op.type === 'put' ? OP_PUT : OP_DEL);
    out.varint(op.key.byteLength);
    out.append(op.key);
    if (op.type === 'put') {
      out.varint(op.value.byteLength);
      out.append(op.value);
    }
  }
}

/** Receives each replayed operation: `value === null` is a delete. Keys and values are views of the read buffer. */
export type ReplayVisitor = (key: Buffer, value: Buffer | null) => void;

/**
 * Replays every complete record of the segment at `path` in order. Stops
 * cleanly at a torn tail; throws IMPULSE_ERR_ENGINE_CORRUPTION naming the file
 * for a damaged record. Returns the count of records replayed and whether a
 * torn tail was found. A record is only handed to `visit` after its checksum
 * passed, so a batch is replayed whole or not at all.
 */
export async function replaySegment(vfs: Vfs, path: string, visit: ReplayVisitor): Promise<{ records: number; tornTail: boolean }> {
  const data = await vfs.readFile(path);
  let position = 0;
  let records = 0;
  while (position < data.length) {
    // An incomplete header: the tail of a torn write.
    if (data.length - position < HEADER_BYTES) return { records, tornTail: true };
    const headerCrc = data.readUInt32LE(position);
    if (crc32c(data, position + 4, position + 12) !== headerCrc) {
      if (isSingleBitError(data, position + 4, position + 12, headerCrc)) {
        throw corruption(path, `WAL record header at offset ${position} failed its checksum (a flipped bit)`);
      }
      return { records, tornTail: true };
    }
    const length = data.readUInt32LE(position + 4);
    const payloadCrc = data.readUInt32LE(position + 8);
    const start = position + HEADER_BYTES;
    // The header is intact but the payload did not all reach the disk.
    if (start + length > data.length) return { records, tornTail: true };
    if (crc32c(data, start, start + length) !== payloadCrc) {
      if (isSingleBitError(data, start, start + length, payloadCrc) || start + length < data.length) {
        throw corruption(path, `WAL record at offset ${position} (${length} bytes) failed its checksum`);
      }
      return { records, tornTail: true };
    }
    decodeBatch(data, start, start + length, path, visit);
    records++;
    position = start + length;
  }
  return { records, tornTail: false };
}

/**
 * True when the checksum mismatch of `data[start, end)` against `stored` is
 * explained by exactly one flipped bit (in the data or in the stored
 * checksum). That is bit rot on an intact record, which must be reported; a
 * torn write (zeros or garbage after a valid prefix) is essentially never one
 * bit away from a valid record.
 *
 * CRC is affine: flipping bit b of byte p changes the checksum by a syndrome
 * that depends only on (p, b) and the number of bytes after p, namely the
 * table entry for that bit pushed through the remaining bytes as zeros. So all
 * 8n syndromes are produced in one backward pass, with no recomputation.
 */
export function isSingleBitError(data: Uint8Array, start: number, end: number, stored: number): boolean {
  const difference = (crc32c(data, start, end) ^ stored) >>> 0;
  if (difference === 0) return false;
  if ((difference & (difference - 1)) === 0) return true; // the stored checksum itself has one flipped bit
  const syndromes = new Uint32Array(8);
  for (let bit = 0; bit < 8; bit++) syndromes[bit] = crcByteTable(1 << bit);
  for (let p = end - 1; p >= start; p--) {
    for (let bit = 0; bit < 8; bit++) {
      if (syndromes[bit] === difference) return true;
      const value = syndromes[bit]!;
      syndromes[bit] = crcByteTable(value & 0xff) ^ (value >>> 8);
    }
  }
  return false;
}

const BYTE_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crcByteTable(index: number): number {
  return BYTE_TABLE[index]!;
}

function decodeBatch(data: Buffer, start: number, end: number, path: string, visit: ReplayVisitor): void {
  if (end - start < 4) throw corruption(path, 'WAL batch shorter than its count');
  const count = data.readUInt32LE(start);
  const cursor = new Cursor(data, start + 4, end, path);
  for (let i = 0; i < count; i++) {
    if (cursor.remaining < 1) throw corruption(path, 'WAL batch ends early');
    const type = data[cursor.position++]!;
    const key = cursor.bytes(cursor.varint());
    if (type === OP_PUT) visit(key, cursor.bytes(cursor.varint()));
    else if (type === OP_DEL) visit(key, null);
    else throw corruption(path, `WAL batch has unknown operation type ${type}`);
  }
  if (cursor.remaining !== 0) throw corruption(path, 'WAL batch has trailing bytes');
}
