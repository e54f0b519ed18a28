/**
 * The write-ahead log: its file format and the writer. Reading and judging a
 * segment after a crash is wal-reader.ts; deciding what to do across segments
 * (and the recovery modes) is recovery.ts.
 *
 * One segment file (`NNNNNN.log`) per memtable generation, plus one more each
 * time an append fails for a transient reason (the failed record may have left
 * a partial write behind, so nothing is appended after it). A segment is
 * created as `NNNNNN.log.tmp` holding only its header record, preallocated
 * with zeros, synced, then renamed into place and the directory synced: so
 * every `.log` file starts with an intact header and has at least its
 * preallocated size, and an empty or shortened segment is damage, never a
 * crash artefact.
 *
 * Record framing (little-endian):
 *
 *   [header crc32c: u32]    crc32c of the next 8 bytes
 *   [payload length: u32]
 *   [payload crc32c: u32]
 *   [payload: length bytes] [record type u8] then the record's body
 *   [trailer: 8 bytes]      a copy of the length and payload crc32c
 *
 * Record types:
 *   HEADER (first record, exactly once): ["IMPLWAL2"][segment number varint]
 *     [sync mode u8: 1 fsync, 0 none][preallocated bytes varint]
 *     [previous segment number varint, 0 = none][end of the previous segment's records varint]
 *   BATCH (type 4; written by this version): [synced end varint] then the
 *     batch body [op count u32] then per op [type u8: 1 put, 2 del][key length
 *     varint][key][value length varint][value] (no value for del). One per
 *     `_write` call, i.e. per group commit. "Synced end" is the offset up to
 *     which the segment was known durable (its last completed fsync) when the
 *     record was written: a surviving record is proof that everything before
 *     that offset was synced, which is how recovery tells a hole left by
 *     reordered writeback of unsynced records (no surviving record claims it
 *     synced) from damage to synced ones (wal-recovery.ts).
 *   BATCH (type 2; older segments): the batch body alone, no synced end.
 *   END (optional, last): [next segment number varint]: written once the next
 *     segment exists, so a deleted newest segment is noticed.
 *
 * The chain: a segment's header names its predecessor and where the
 * predecessor's records end, so recovery can tell a predecessor that lost
 * records (truncated, damaged, missing) from one that simply ends, and can
 * ignore whatever a failed append left after that end.
 *
 * The trailer is the last thing written, so a torn write never has an intact
 * trailer (a strict prefix arrived), while bit rot leaves it intact (or is
 * itself the damage): wal-reader.ts uses it to tell the two apart.
 */
import { type Vfs, type VfsFile, errorCodeOf } from '../../vfs/vfs.js';
import type { WriteOp } from '../engine.js';
import { assert } from '../../util/assert.js';
import { crc32c } from '../../util/crc32c.js';
import { GrowableBuffer } from './coding.js';

export const RECORD_HEADER_BYTES = 12;
export const RECORD_TRAILER_BYTES = 8;
export const RECORD_HEADER = 1;
/** A batch without a synced end (segments written before type 4); still read. The reader reports both batch types as this one. */
export const RECORD_BATCH = 2;
export const RECORD_END = 3;
/** A batch that starts with its synced end (see the format above). */
export const RECORD_BATCH_WITH_SYNCED_END = 4;
export const OP_PUT = 1;
export const OP_DEL = 2;
export const SEGMENT_MAGIC = Buffer.from('IMPLWAL2', 'latin1');
/** Suffix of a segment being created; leftovers are deleted on open. */
export const SEGMENT_TEMP_SUFFIX = '.tmp';

/** What a segment's HEADER record says. */
export interface SegmentHeader {
  readonly number: number;
  /** Whether every record was synced before it was acknowledged. */
  readonly syncMode: 'fsync' | 'none';
  /** Size the file was created with (zeros after the header); a shorter file was cut. */
  readonly preallocatedBytes: number;
  /** The segment written before this one (0 = none: the first since the store or since recovery found none). */
  readonly previousNumber: number;
  /** Offset where the previous segment's records end; what lies after it there is not part of the log. */
  readonly previousEnd: number;
}

/** Appends one framed record of `type` with `body` to `out` (which may already hold records). */
function appendRecord(out: GrowableBuffer, type: number, writeBody: (out: GrowableBuffer) => void): void {
  const start = out.length;
  out.reserve(RECORD_HEADER_BYTES + 1);
  out.length += RECORD_HEADER_BYTES;
  out.byte(type);
  writeBody(out);
  const buffer = out.buffer;
  const payloadLength = out.length - start - RECORD_HEADER_BYTES;
  buffer.writeUInt32LE(payloadLength, start + 4);
  buffer.writeUInt32LE(crc32c(buffer, start + RECORD_HEADER_BYTES, out.length), start + 8);
  buffer.writeUInt32LE(crc32c(buffer, start + 4, start + 12), start);
  out.append(out.buffer, start + 4, start + 12);
}

/** The encoded HEADER record of a segment. */
export function encodeSegmentHeader(header: SegmentHeader): Buffer {
  const out = new GrowableBuffer(64);
  appendRecord(out, RECORD_HEADER, (body) => {
    body.append(SEGMENT_MAGIC);
    body.varint(header.number);
    body.byte(header.syncMode === 'fsync' ? 1 : 0);
    body.varint(header.preallocatedBytes);
    body.varint(header.previousNumber);
    body.varint(header.previousEnd);
  });
  return out.copy();
}

/** Encodes a batch body: [op count: u32] then per op [type u8][key length varint][key][value length varint][value]. */
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

export interface WalCreateOptions {
  readonly syncMode: 'fsync' | 'none';
  /** Zeros the segment starts with (records fill them; a record past them extends the file). */
  readonly preallocatedBytes: number;
  /** The segment this one follows, and where its records end. */
  readonly previous?: { readonly number: number; readonly end: number };
}

/** Appends records to one open segment. Not safe for concurrent appends (the engine never makes them). */
export class WalWriter {
  private readonly record = new GrowableBuffer(64 * 1024);
  /** Offset of the next record. */
  position: number;
  /** Offset just after the last record known written (`position` unless an append failed). */
  validEnd: number;
  /**
   * No more records may follow: an append failed (the segment may end in a
   * partial record, so a successor takes over) or END was written.
   */
  sealed = false;
  /** Which step of the last append failed: a failed `sync` is never retried (fsyncgate), a failed `write` may be transient. */
  failedOperation: 'write' | 'sync' | undefined;
  /** Offset up to which the segment is known durable (its header, then every synced append). */
  private syncedEnd: number;

  private constructor(
    readonly file: VfsFile,
    readonly number: number,
    headerBytes: number,
  ) {
    this.position = headerBytes;
    this.validEnd = headerBytes;
    this.syncedEnd = headerBytes;
  }

  /**
   * Creates segment `number` at `path` durably: header written to
   * `path + '.tmp'`, preallocated, synced, renamed to `path`, directory
   * synced. On failure the temporary file is removed (best effort; open
   * deletes leftovers) and nothing named `path` exists.
   */
  static async create(vfs: Vfs, dir: string, path: string, number: number, options: WalCreateOptions): Promise<WalWriter> {
    const temp = path + SEGMENT_TEMP_SUFFIX;
    let header: Buffer;
    try {
      try {
        header = await writeSegmentFile(vfs, temp, number, options);
      } catch (error) {
        // Preallocation only saves metadata updates; a file-size limit (EFBIG) or a nearly full disk
        // must not keep the store from starting or rotating. One retry without it; its header says 0.
        // Any other error (EIO) is the disk's and is surfaced.
        if (!(error instanceof PreallocationError)) throw error;
        header = await writeSegmentFile(vfs, temp, number, { ...options, preallocatedBytes: 0 });
      }
      await vfs.rename(temp, path);
    } catch (error) {
      await vfs.unlink(temp).catch(() => undefined);
      throw error;
    }
    try {
      // The segment's name must be durable before any record in it is acknowledged. (Reopened under its
      // final name so that errors name the segment.)
      await vfs.syncDir(dir);
      return new WalWriter(await vfs.open(path), number, header.length);
    } catch (error) {
      // Abandoned: no record will be written to it. Should the unlink fail too, recovery skips an empty segment nothing names.
      await vfs.unlink(path).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Appends `ops` as one record; with `sync`, returns after the record is
   * durable. Returns the bytes written. On failure the writer is `sealed`.
   */
  async append(ops: readonly WriteOp[], sync: boolean): Promise<number> {
    assert(ops.length > 0, 'WalWriter.append: an empty batch has nothing to log');
    assert(!this.sealed, 'WalWriter.append on a sealed segment (after a failed append or END)');
    const record = this.record;
    record.reset();
    appendRecord(record, RECORD_BATCH_WITH_SYNCED_END, (body) => {
      body.varint(this.syncedEnd);
      encodeBatch(ops, body);
    });
    const view = record.view();
    const at = this.position;
    // Advance first: after a failed write the segment is abandoned, never reused.
    this.position += view.length;
    this.failedOperation = 'write';
    try {
      if (sync) {
        await this.file.write(at, view);
        this.failedOperation = 'sync';
        await this.file.sync();
      } else if (this.file.writeSync !== undefined) {
        // Sync off: the record only has to reach the OS, and a small copy into the page cache
        // costs a few microseconds inline against tens for a thread-pool round trip.
        this.file.writeSync(at, view);
      } else {
        await this.file.write(at, view);
      }
    } catch (error) {
      this.sealed = true;
      throw error;
    }
    this.failedOperation = undefined;
    this.validEnd = this.position;
    if (sync) this.syncedEnd = this.position;
    return view.length;
  }

  /** True when records were appended without sync since the last sync. */
  get hasUnsyncedRecords(): boolean {
    return this.syncedEnd < this.validEnd;
  }

  /**
   * Makes every record appended so far durable. Also on a segment sealed by a
   * failed write: its valid records must be durable before a successor is
   * created (whatever the failed write left after them is ignored, see
   * `validEnd`). A failed sync seals the segment (never retried: fsyncgate)
   * and leaves `failedOperation` 'sync'.
   */
  async syncRecords(): Promise<void> {
    assert(!this.sealed || this.failedOperation === 'write', 'WalWriter.syncRecords on a segment sealed by a failed sync or by END');
    const end = this.validEnd;
    this.failedOperation = 'sync';
    try {
      await this.file.sync();
    } catch (error) {
      this.sealed = true;
      throw error;
    }
    this.failedOperation = undefined;
    this.syncedEnd = end;
  }

  /**
   * Appends the END record naming the segment that follows (and with `sync`,
   * syncs it). Best effort for the caller: a failed write leaves bytes after
   * `validEnd`, which the successor's header tells recovery to ignore.
   */
  async appendEnd(nextNumber: number, sync: boolean): Promise<void> {
    assert(!this.sealed, 'WalWriter.appendEnd on a sealed segment');
    const record = this.record;
    record.reset();
    appendRecord(record, RECORD_END, (body) => body.varint(nextNumber));
    const at = this.position;
    this.position += record.length;
    this.sealed = true;
    this.failedOperation = 'write';
    await this.file.write(at, record.view());
    this.failedOperation = 'sync';
    if (sync) await this.file.sync();
    this.failedOperation = undefined;
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

/** Errnos with which a file system refuses to preallocate for want of room (the segment can still be written without it). */
const PREALLOCATION_REFUSALS: ReadonlySet<string> = new Set(['EFBIG', 'ENOSPC', 'EDQUOT']);

/** The preallocating truncate of a new segment was refused for want of room (see `WalWriter.create`). */
class PreallocationError extends Error {}

/** Writes a new segment's header into `temp`, preallocates and syncs it; returns the header. */
async function writeSegmentFile(vfs: Vfs, temp: string, number: number, options: WalCreateOptions): Promise<Buffer> {
  const header = encodeSegmentHeader({
    number,
    syncMode: options.syncMode,
    preallocatedBytes: options.preallocatedBytes,
    previousNumber: options.previous?.number ?? 0,
    previousEnd: options.previous?.end ?? 0,
  });
  const created = await vfs.open(temp, { create: true, truncate: true });
  try {
    await created.write(0, header);
    if (options.preallocatedBytes > header.length) {
      try {
        await created.truncate(options.preallocatedBytes);
      } catch (error) {
        if (PREALLOCATION_REFUSALS.has(errorCodeOf(error) ?? '')) throw new PreallocationError('preallocation refused', { cause: error });
        throw error;
      }
    }
    await created.sync();
  } finally {
    await created.close();
  }
  return header;
}
