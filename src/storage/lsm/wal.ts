/**
 * The write-ahead log. One segment file per memtable generation
 * (`NNNNNN.log`); a segment is never appended to after the process that
 * created it stops, so recovery only ever has to handle a torn tail at the end
 * of a segment.
 *
 * Record layout (little-endian):
 *
 *   [header crc32c: u32]    crc32c of the next 8 bytes
 *   [payload length: u32]
 *   [payload crc32c: u32]
 *   [payload: length bytes] one write batch (see `encodeBatch`)
 *   [trailer: 8 bytes]      a copy of the length and payload crc32c
 *
 * Telling a torn write from bit rot. A crash can leave the last write torn: a
 * prefix of it on disk, the rest missing, zeros or garbage. That is a clean
 * end of log (the write was never acknowledged: acknowledgement follows the
 * sync). A flipped bit in a record that was completely written is corruption
 * and must be reported. The trailer separates the two: it is the last thing
 * written, so a torn write never has an intact trailer (a strict prefix
 * arrived), while bit rot leaves it intact (or is itself the one flipped bit).
 *   - header checksum fails: if one flipped bit explains it and the record
 *     that header describes has an intact trailer → corruption; else torn.
 *   - payload checksum fails: intact trailer → corruption; else torn (and
 *     corruption if anything follows the record: torn writes are last).
 *   - payload verified, trailer damaged: the data is intact (its checksum
 *     passed), so it is replayed; mid-file that is still reported as
 *     corruption, on the final record it is indistinguishable from a write
 *     torn inside its trailer and replay ends there.
 *
 * Group commit: the engine base hands every write queued while the previous
 * one was in flight to one `_write`, which becomes exactly ONE record here,
 * one `write` call and, with sync on, one `sync` (fdatasync).
 */
import type { Vfs, VfsFile } from '../../vfs/vfs.js';
import type { WriteOp } from '../engine.js';
import { assert } from '../../util/assert.js';
import { crc32c } from '../../util/crc32c.js';
import { corruption } from '../../util/corruption.js';
import { Cursor, GrowableBuffer } from './coding.js';

const HEADER_BYTES = 12;
const TRAILER_BYTES = 8;
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
    assert(ops.length > 0, 'WalWriter.append: an empty batch has nothing to log');
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
    record.append(buffer, 4, 12);
    const view = record.view();
    const at = this.position;
    // Advance first: after a failed write the segment is abandoned, never reused.
    this.position += view.length;
    if (sync) {
      await this.file.write(at, view);
      await this.file.sync();
    } else if (this.file.writeSync !== undefined) {
      // Sync off: the record only has to reach the OS, and a small copy into the page cache
      // costs a few microseconds inline against tens for a thread-pool round trip.
      this.file.writeSync(at, view);
    } else {
      await this.file.write(at, view);
    }
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
  const torn = { records, tornTail: true };
  while (position < data.length) {
    torn.records = records;
    if (data.length - position < HEADER_BYTES) return torn;
    if (crc32c(data, position + 4, position + 12) !== data.readUInt32LE(position)) {
      const repaired = repairHeader(data, position);
      if (repaired !== undefined && trailerIntact(data, position, repaired)) {
        throw corruption('lsm', path, `WAL record header at offset ${position} failed its checksum`);
      }
      return torn;
    }
    const length = data.readUInt32LE(position + 4);
    const payloadCrc = data.readUInt32LE(position + 8);
    const start = position + HEADER_BYTES;
    const end = start + length + TRAILER_BYTES;
    // The header arrived but the rest of the record did not.
    if (end > data.length) return torn;
    const intact = trailerIntact(data, position, data.subarray(position + 4, position + 12));
    if (crc32c(data, start, start + length) !== payloadCrc) {
      if (intact || end < data.length) throw corruption('lsm', path, `WAL record at offset ${position} (${length} bytes) failed its checksum`);
      return torn;
    }
    if (!intact && end < data.length) throw corruption('lsm', path, `WAL record trailer at offset ${start + length} is damaged`);
    decodeBatch(data, start, start + length, path, visit);
    records++;
    position = end;
    if (!intact) return { records, tornTail: true };
  }
  return { records, tornTail: false };
}

/** The record's trailer equals `expected` (its header's length and payload checksum, 8 bytes). */
function trailerIntact(data: Buffer, position: number, expected: Buffer): boolean {
  const trailer = position + HEADER_BYTES + expected.readUInt32LE(0);
  return trailer + TRAILER_BYTES <= data.length && data.compare(expected, 0, TRAILER_BYTES, trailer, trailer + TRAILER_BYTES) === 0;
}

/** The header's length and payload-checksum bytes after undoing the one flipped bit that makes its checksum pass, if there is one. */
function repairHeader(data: Buffer, position: number): Buffer | undefined {
  const header = Buffer.from(data.subarray(position, position + HEADER_BYTES));
  for (let bit = 0; bit < HEADER_BYTES * 8; bit++) {
    header[bit >>> 3]! ^= 1 << (bit & 7);
    if (crc32c(header, 4, 12) === header.readUInt32LE(0)) return header.subarray(4, 12);
    header[bit >>> 3]! ^= 1 << (bit & 7);
  }
  return undefined;
}

function decodeBatch(data: Buffer, start: number, end: number, path: string, visit: ReplayVisitor): void {
  if (end - start < 4) throw corruption('lsm', path, 'WAL batch shorter than its count');
  const count = data.readUInt32LE(start);
  const cursor = new Cursor(data, start + 4, end, path);
  for (let i = 0; i < count; i++) {
    if (cursor.remaining < 1) throw corruption('lsm', path, 'WAL batch ends early');
    const type = data[cursor.position++]!;
    const key = cursor.bytes(cursor.varint());
    if (type === OP_PUT) visit(key, cursor.bytes(cursor.varint()));
    else if (type === OP_DEL) visit(key, null);
    else throw corruption('lsm', path, `WAL batch has unknown operation type ${type}`);
  }
  if (cursor.remaining !== 0) throw corruption('lsm', path, 'WAL batch has trailing bytes');
}
