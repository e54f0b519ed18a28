/**
 * Record framing of the Raft log's segment files: every byte of a segment is
 * a sequence of checksummed records, and every record belongs to exactly one
 * SAVE (one `save` or `compact` call, written with one `write` and made
 * durable with one fsync).
 *
 * Record layout (little-endian, 20-byte header then the body):
 *
 *   0  headerCrc   u32  crc32c of bytes [4, 20): protects every field below,
 *                       so the length can be trusted before the body is read
 *   4  bodyCrc     u32  crc32c of the body
 *   8  bodyLength  u32
 *   12 saveStart   u32  offset, in this segment, of the first record of the
 *                       save this record belongs to
 *   16 type        u8   RecordType
 *   17 flags       u8   bit 0: END_OF_SAVE (the save's last record); others 0
 *   18 reserved    u16  0
 *   20 body        bodyLength bytes (codec.ts)
 *
 * Why `saveStart` and END_OF_SAVE: recovery applies a save only once it has
 * read its END_OF_SAVE record, so a save is all-or-nothing after a crash. And
 * a record that fails its checksum can be told apart from damage to synced
 * data: a later save is written only after the previous one was fsynced, so a
 * valid record of a LATER save (saveStart past the bad record) after a bad one
 * proves the bad one was durable and then damaged; valid records of the SAME
 * save after a bad one are the normal result of a power cut while the disk
 * wrote that save's pages in some order (see recovery.ts).
 */
import { crc32c } from '../../util/crc32c.js';
import { assert } from '../../util/assert.js';

export const RECORD_HEADER_BYTES = 20;

/** Body kinds (codec.ts has their layouts). */
export const RecordType = {
  /** First record of every segment: magic, format version, sequence number, first index. */
  segmentHeader: 1,
  /** One log entry. An entry at an index <= the last one truncates the log from there first. */
  entry: 2,
  hardState: 3,
  /** The snapshot boundary (an installed snapshot, or a compaction). */
  snapshot: 4,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

const FLAG_END_OF_SAVE = 1;

/** The largest offset or length a header can hold (u32). Segments stay below it. */
export const RECORD_OFFSET_MAX = 0xffff_ffff;

/** A record body ready to be laid out in a save (codec.ts makes them). */
export interface RecordBody {
  readonly type: RecordType;
  readonly length: number;
  /** Writes exactly `length` bytes at `target[at]`. */
  writeTo(target: Buffer, at: number): void;
}

/**
 * Lays out `bodies` as the records of ONE save that starts at offset
 * `saveStart` of its segment: one buffer to write there with one `write`, the
 * last record flagged END_OF_SAVE. Returns the bytes and each record's offset
 * in the segment.
 */
export function encodeSave(bodies: readonly RecordBody[], saveStart: number): { bytes: Buffer; offsets: number[] } {
  assert(bodies.length > 0, 'a save has at least one record');
  const total = saveBytes(bodies);
  assert(saveStart + total <= RECORD_OFFSET_MAX, 'raft log: a segment would pass 4 GiB', saveStart, total);
  const bytes = Buffer.allocUnsafe(total);
  const offsets: number[] = [];
  let at = 0;
  for (let i = 0; i < bodies.length; i++) {
    const body = bodies[i]!;
    body.writeTo(bytes, at + RECORD_HEADER_BYTES);
    writeRecordHeader(bytes, at, body.length, saveStart, body.type, i === bodies.length - 1);
    offsets.push(saveStart + at);
    at += RECORD_HEADER_BYTES + body.length;
  }
  return { bytes, offsets };
}

/** Bytes the records of `bodies` take on disk, headers included. */
export function saveBytes(bodies: readonly RecordBody[]): number {
  let total = 0;
  for (const body of bodies) total += RECORD_HEADER_BYTES + body.length;
  return total;
}

/** A header that passed its checksum and structure checks. */
export interface RecordHeader {
  readonly bodyCrc: number;
  readonly bodyLength: number;
  readonly saveStart: number;
  readonly type: RecordType;
  readonly endOfSave: boolean;
}

/**
 * Writes the header of the record at `at` in `buffer`, whose body of
 * `bodyLength` bytes is already in place at `at + RECORD_HEADER_BYTES`.
 */
function writeRecordHeader(buffer: Buffer, at: number, bodyLength: number, saveStart: number, type: RecordType, endOfSave: boolean): void {
  const bodyStart = at + RECORD_HEADER_BYTES;
  buffer.writeUInt32LE(crc32c(buffer, bodyStart, bodyStart + bodyLength), at + 4);
  buffer.writeUInt32LE(bodyLength, at + 8);
  buffer.writeUInt32LE(saveStart, at + 12);
  buffer[at + 16] = type;
  buffer[at + 17] = endOfSave ? FLAG_END_OF_SAVE : 0;
  buffer[at + 18] = 0;
  buffer[at + 19] = 0;
  buffer.writeUInt32LE(crc32c(buffer, at + 4, bodyStart), at);
}

/**
 * The header at `at` if it is intact: enough bytes before `end`, checksum,
 * known type, no unknown flags. Does not look at the body.
 */
export function readRecordHeader(buffer: Buffer, at: number, end: number): RecordHeader | undefined {
  if (end - at < RECORD_HEADER_BYTES) return undefined;
  const type = buffer[at + 16]!;
  // Cheap structure checks first: the forward scan of recovery calls this at every byte offset.
  if (type < RecordType.segmentHeader || type > RecordType.snapshot) return undefined;
  if ((buffer[at + 17]! & ~FLAG_END_OF_SAVE) !== 0 || buffer[at + 18] !== 0 || buffer[at + 19] !== 0) return undefined;
  if (crc32c(buffer, at + 4, at + RECORD_HEADER_BYTES) !== buffer.readUInt32LE(at)) return undefined;
  return {
    bodyCrc: buffer.readUInt32LE(at + 4),
    bodyLength: buffer.readUInt32LE(at + 8),
    saveStart: buffer.readUInt32LE(at + 12),
    type: type as RecordType,
    endOfSave: (buffer[at + 17]! & FLAG_END_OF_SAVE) !== 0,
  };
}

/** True when the body of the record at `at` (described by `header`) lies before `end` and passes its checksum. */
export function bodyIntact(buffer: Buffer, at: number, end: number, header: RecordHeader): boolean {
  const bodyStart = at + RECORD_HEADER_BYTES;
  const bodyEnd = bodyStart + header.bodyLength;
  return bodyEnd <= end && crc32c(buffer, bodyStart, bodyEnd) === header.bodyCrc;
}

/** The complete, checksum-valid record at `at`, or undefined. */
export function readRecord(buffer: Buffer, at: number, end: number): RecordHeader | undefined {
  const header = readRecordHeader(buffer, at, end);
  return header !== undefined && bodyIntact(buffer, at, end, header) ? header : undefined;
}

/**
 * The first offset in [from, end) holding a complete, valid record, and that
 * record; undefined when there is none. Tries every byte offset (a damaged
 * record's length cannot be trusted to find the next one); the header's cheap
 * checks and its own checksum keep that linear in the bytes scanned. A random
 * byte string passes a header checksum with probability 2^-32 per offset and
 * then also needs a matching body checksum, so garbage is not mistaken for a
 * record in practice.
 */
export function findNextValidRecord(buffer: Buffer, from: number, end: number): { offset: number; header: RecordHeader } | undefined {
  for (let at = from; at + RECORD_HEADER_BYTES <= end; at++) {
    const header = readRecord(buffer, at, end);
    if (header !== undefined) return { offset: at, header };
  }
  return undefined;
}

/** Total bytes of the record described by `header`. */
export function recordBytes(header: RecordHeader): number {
  return RECORD_HEADER_BYTES + header.bodyLength;
}
