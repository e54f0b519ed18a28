/**
 * Reading a WAL segment after a crash (format: wal.ts), and judging what is
 * not a valid record.
 *
 * `scanSegment` parses every valid record of a segment, in order, and
 * describes every stretch of bytes between or after them that is not one
 * (`BadRegion`). After a bad stretch it looks for the next valid record
 * (a record whose header, payload and trailer all verify), so it reports
 * complete records that damage would hide, and the skip-corrupted recovery
 * mode can replay them. Trailing zeros (preallocated, never written) are not
 * a region: they are the clean end of the log.
 *
 * Torn or damaged: a crash can leave the final write of a segment torn, a
 * prefix of the record on disk and, since segments are preallocated with
 * zeros, zeros where the rest should be. Such a region is marked
 * `tornPlausible`. Everything else is damage to data that was written: bytes
 * after a bad spot that include a complete record, a complete record whose
 * header is damaged (an intact payload and trailer at the end of the bad
 * stretch: the trailer is written last, so a torn write never has one), a
 * payload or trailer that is nonzero where a torn write would have left
 * zeros. One exception: a segment whose last record grew it past its
 * preallocated size may end in garbage (the size can reach the disk before
 * the data), so there any final stretch without a complete record is
 * plausibly torn.
 */
import { corruption } from '../../util/corruption.js';
import { crc32c } from '../../util/crc32c.js';
import { Cursor } from './coding.js';
import {
  OP_DEL,
  OP_PUT,
  RECORD_BATCH,
  RECORD_BATCH_WITH_SYNCED_END,
  RECORD_END,
  RECORD_HEADER,
  RECORD_HEADER_BYTES,
  RECORD_TRAILER_BYTES,
  SEGMENT_MAGIC,
  type SegmentHeader,
} from './wal.js';

/**
 * One verified record; its body is `data[bodyStart, bodyEnd)`. Both batch
 * formats are reported as `RECORD_BATCH`, with `bodyStart` at the batch body
 * (after the synced end, when the record has one).
 */
export interface ScannedRecord {
  readonly offset: number;
  readonly end: number;
  readonly type: number;
  readonly bodyStart: number;
  readonly bodyEnd: number;
  /**
   * For a batch written with its synced end (wal.ts, type 4): the offset up to
   * which the segment was durable when the record was written. Undefined for
   * other records, and for a batch of the older format (which says nothing).
   */
  readonly syncedEnd?: number;
}

/** Bytes `[offset, end)` that are not a valid record. */
export interface BadRegion {
  readonly offset: number;
  readonly end: number;
  /** What was wrong at `offset`. */
  readonly detail: string;
  /** The final region of the segment, and consistent with one torn write (see the module comment). */
  readonly tornPlausible: boolean;
}

export interface SegmentScan {
  readonly path: string;
  readonly data: Buffer;
  /** Undefined when the first record is not a valid HEADER (then `regions[0]` starts at 0). */
  readonly header: SegmentHeader | undefined;
  /** Offset just after the header record (0 without a header): where the records start. */
  readonly headerEnd: number;
  /** Valid records after the header, in file order (including any found after bad regions). */
  readonly records: readonly ScannedRecord[];
  readonly regions: readonly BadRegion[];
}

/** Reason a record at some offset does not verify; `header` is set when its header did. */
interface RecordFailure {
  readonly detail: string;
  readonly header?: { readonly length: number; readonly payloadCrc: number };
  readonly payloadVerified?: boolean;
}

/** Parses and classifies the segment whose bytes are `data` (read from `path`, named in errors). */
export function scanSegment(data: Buffer, path: string): SegmentScan {
  const first = parseRecordAt(data, 0);
  const header = 'type' in first && first.type === RECORD_HEADER ? parseHeader(data, first) : undefined;
  const records: ScannedRecord[] = [];
  const regions: BadRegion[] = [];
  const nonzeroEnd = lastNonzero(data) + 1;
  if (header === undefined) {
    regions.push({ offset: 0, end: Math.max(nonzeroEnd, 0), detail: 'the segment has no valid header record', tornPlausible: false });
    return { path, data, header, headerEnd: 0, records, regions };
  }
  const headerEnd = (first as ScannedRecord).end;
  let position = headerEnd;
  while (position < nonzeroEnd) {
    const parsed = parseRecordAt(data, position);
    if ('type' in parsed) {
      records.push(parsed);
      position = parsed.end;
      continue;
    }
    const resume = findNextRecord(data, position + 1, nonzeroEnd);
    const end = resume ?? nonzeroEnd;
    const tornPlausible = resume === undefined && isPlausiblyTorn(data, position, end, parsed, header);
    regions.push({ offset: position, end, detail: parsed.detail, tornPlausible });
    if (resume === undefined) break;
    position = resume;
  }
  return { path, data, header, headerEnd, records, regions };
}

/** Feeds the operations of a BATCH record to `visit` (`value === null` is a delete); returns how many. Keys and values are views of the segment's bytes. */
export function replayBatch(scan: SegmentScan, record: ScannedRecord, visit: (key: Buffer, value: Buffer | null) => void): number {
  const { data, path } = scan;
  const { bodyStart: start, bodyEnd: end } = record;
  if (end - start < 4) throw corruption('lsm', path, `WAL batch at offset ${record.offset} is shorter than its count`);
  const count = data.readUInt32LE(start);
  const cursor = new Cursor(data, start + 4, end, path);
  for (let i = 0; i < count; i++) {
    if (cursor.remaining < 1) throw corruption('lsm', path, `WAL batch at offset ${record.offset} ends early`);
    const type = data[cursor.position++]!;
    const key = cursor.bytes(cursor.varint());
    if (type === OP_PUT) visit(key, cursor.bytes(cursor.varint()));
    else if (type === OP_DEL) visit(key, null);
    else throw corruption('lsm', path, `WAL batch at offset ${record.offset} has unknown operation type ${type}`);
  }
  if (cursor.remaining !== 0) throw corruption('lsm', path, `WAL batch at offset ${record.offset} has trailing bytes`);
  return count;
}

/** The next segment an END record names. */
export function endRecordNext(scan: SegmentScan, record: ScannedRecord): number {
  return new Cursor(scan.data, record.bodyStart, record.bodyEnd, scan.path).varint();
}

/** The operation count a BATCH record declares (for reports about records that are not replayed). */
export function batchOperationCount(scan: SegmentScan, record: ScannedRecord): number {
  return record.bodyEnd - record.bodyStart >= 4 ? scan.data.readUInt32LE(record.bodyStart) : 0;
}

function parseHeader(data: Buffer, record: ScannedRecord): SegmentHeader | undefined {
  const magicEnd = record.bodyStart + SEGMENT_MAGIC.length;
  if (magicEnd > record.bodyEnd || !data.subarray(record.bodyStart, magicEnd).equals(SEGMENT_MAGIC)) return undefined;
  try {
    const cursor = new Cursor(data, magicEnd, record.bodyEnd, 'WAL header');
    const number = cursor.varint();
    const syncByte = cursor.bytes(1)[0]!;
    const preallocatedBytes = cursor.varint();
    const previousNumber = cursor.varint();
    const previousEnd = cursor.varint();
    if (syncByte > 1 || cursor.remaining !== 0) return undefined;
    return { number, syncMode: syncByte === 1 ? 'fsync' : 'none', preallocatedBytes, previousNumber, previousEnd };
  } catch {
    return undefined;
  }
}

/** The record at `offset` if its header, payload and trailer verify and its type is known; else why not. */
function parseRecordAt(data: Buffer, offset: number): ScannedRecord | RecordFailure {
  if (data.length - offset < RECORD_HEADER_BYTES) return { detail: `record header at offset ${offset} is cut off by the end of the file` };
  if (crc32c(data, offset + 4, offset + 12) !== data.readUInt32LE(offset)) {
    return { detail: isZero(data, offset, offset + RECORD_HEADER_BYTES) ? `zeros where a record header should be at offset ${offset}` : `record header at offset ${offset} failed its checksum` };
  }
  const length = data.readUInt32LE(offset + 4);
  const payloadCrc = data.readUInt32LE(offset + 8);
  const header = { length, payloadCrc };
  const start = offset + RECORD_HEADER_BYTES;
  const end = start + length + RECORD_TRAILER_BYTES;
  if (end > data.length) return { detail: `record at offset ${offset} (${length} bytes) runs past the end of the file`, header };
  if (crc32c(data, start, start + length) !== payloadCrc) return { detail: `record at offset ${offset} (${length} bytes) failed its checksum`, header };
  if (data.compare(data, offset + 4, offset + 12, start + length, end) !== 0) {
    return { detail: `record trailer at offset ${start + length} does not match its header`, header, payloadVerified: true };
  }
  const type = length > 0 ? data[start]! : 0;
  if (type === RECORD_BATCH_WITH_SYNCED_END) {
    const cursor = new Cursor(data, start + 1, start + length, 'WAL batch');
    let syncedEnd: number;
    try {
      syncedEnd = cursor.varint();
    } catch {
      return { detail: `batch record at offset ${offset} has no readable synced end`, header, payloadVerified: true };
    }
    // Written before this record, so at most its offset; anything else is not what the writer wrote.
    if (syncedEnd > offset) return { detail: `batch record at offset ${offset} claims the segment was synced up to ${syncedEnd}, past itself`, header, payloadVerified: true };
    return { offset, end, type: RECORD_BATCH, bodyStart: cursor.position, bodyEnd: start + length, syncedEnd };
  }
  if (type !== RECORD_HEADER && type !== RECORD_BATCH && type !== RECORD_END) return { detail: `record at offset ${offset} has unknown type ${type}`, header, payloadVerified: true };
  return { offset, end, type, bodyStart: start + 1, bodyEnd: start + length };
}

/** The offset of the first valid record in [from, limit), or undefined. Skips zero bytes quickly (no record starts with a zero checksum there). */
function findNextRecord(data: Buffer, from: number, limit: number): number | undefined {
  for (let offset = from; offset + RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES <= limit + RECORD_TRAILER_BYTES; offset++) {
    if (data[offset] === 0 && isZero(data, offset, Math.min(offset + RECORD_HEADER_BYTES, data.length))) continue;
    if ('type' in parseRecordAt(data, offset)) return offset;
  }
  return undefined;
}

/**
 * Whether the final bad stretch `[offset, end)` (no valid record after it;
 * zeros after `end`) can be one torn write. See the module comment.
 */
function isPlausiblyTorn(data: Buffer, offset: number, end: number, failure: RecordFailure, header: SegmentHeader): boolean {
  if (endsInCompleteRecord(data, offset, end)) return false;
  // A write that grew the file may have been followed by garbage where its data did not arrive.
  if (data.length > header.preallocatedBytes) return true;
  // A header that failed its checksum: torn only if nothing lies past it (a torn write is a prefix). Nonzero
  // bytes in the preallocated space after a zero header were not written by a torn append: the space is a
  // sparse hole, so they are damage too.
  if (failure.header === undefined) return end <= offset + RECORD_HEADER_BYTES;
  const trailerStart = offset + RECORD_HEADER_BYTES + failure.header.length;
  if (end > trailerStart + RECORD_TRAILER_BYTES) return false;
  if (!failure.payloadVerified) return isZero(data, trailerStart, Math.min(trailerStart + RECORD_TRAILER_BYTES, data.length));
  // Payload complete, trailer partly written: a prefix of the expected trailer, then zeros.
  let arrived = 0;
  while (arrived < RECORD_TRAILER_BYTES && trailerStart + arrived < data.length && data[trailerStart + arrived] === data[offset + 4 + arrived]) arrived++;
  return isZero(data, trailerStart + arrived, Math.min(trailerStart + RECORD_TRAILER_BYTES, data.length));
}

/** True when `[offset, end)` ends with a complete record whose payload and trailer verify (whatever its header says). */
function endsInCompleteRecord(data: Buffer, offset: number, end: number): boolean {
  // The trailer's last bytes may be zero, so it may end up to 7 bytes past the last nonzero byte.
  for (let trailerEnd = end; trailerEnd < end + RECORD_TRAILER_BYTES && trailerEnd <= data.length; trailerEnd++) {
    const trailer = trailerEnd - RECORD_TRAILER_BYTES;
    if (trailer < offset) continue;
    const length = data.readUInt32LE(trailer);
    const payloadStart = trailer - length;
    if (length === 0 || payloadStart < offset) continue;
    if (crc32c(data, payloadStart, trailer) === data.readUInt32LE(trailer + 4)) return true;
  }
  return false;
}

/** True when `data[start, end)` is all zero bytes. */
function isZero(data: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (data[i] !== 0) return false;
  return true;
}

/** Index of the last nonzero byte of `data`, or -1. Compares 64 KiB chunks natively first: segments are mostly preallocated zeros. */
function lastNonzero(data: Buffer): number {
  const chunk = 64 * 1024;
  const zeros = Buffer.alloc(chunk);
  let end = data.length;
  while (end > 0) {
    const start = Math.max(0, end - chunk);
    if (data.compare(zeros, 0, end - start, start, end) !== 0) {
      for (let i = end - 1; i >= start; i--) if (data[i] !== 0) return i;
    }
    end = start;
  }
  return -1;
}
