/**
 * Reading one segment file's bytes back into saves, and telling how it ends:
 * cleanly, with a torn tail (the last save was cut short by a crash), or with
 * damage to data that had been made durable. Pure: bytes in, verdict out.
 *
 * The rule (record.ts explains the fields it relies on):
 *   1. Records are read in order. A save is complete when its END_OF_SAVE
 *      record has been read; only complete saves are returned.
 *   2. A record that is incomplete or fails a checksum at offset X, inside
 *      the save that started at S (S = X when the previous record ended a
 *      save), or the end of the file inside an unfinished save (X = end):
 *        - in a segment that is not the last: damage (a later segment is
 *          only created after this one's last save was fsynced);
 *        - in the last segment: look for valid records anywhere after X. If
 *          one belongs to another save (its saveStart is not S), the save
 *          at S was followed by a later save, so it had been fsynced: damage.
 *          Otherwise [S, end) is a torn tail: the unfinished last save plus
 *          zeros, garbage or pieces of that same save.
 *   3. A record that passes its checksums but breaks the structure (a wrong
 *      saveStart, a segment header anywhere but first) cannot come from a
 *      torn write: damage.
 */
import { readRecordHeader, bodyIntact, findNextValidRecord, recordBytes, RECORD_HEADER_BYTES, RecordType } from './record.js';

/** One record read back: where it lies and where its body is. */
export interface ScannedRecord {
  readonly type: RecordType;
  readonly offset: number;
  /** Total bytes, header included. */
  readonly length: number;
  readonly bodyStart: number;
  readonly bodyEnd: number;
}

/** A damaged spot: the bad bytes at `offset`, inside the save that starts at `saveStart` (where a repair must cut). */
export interface ScanDamage {
  readonly offset: number;
  readonly saveStart: number;
  readonly reason: string;
}

/** The unfinished last save of the last segment: bytes [saveStart, end) are dropped. */
export interface TornTail {
  readonly saveStart: number;
  /** Where the first bad byte (or the end of the file) was found. */
  readonly offset: number;
  /** The complete records of the unfinished save that were read before it broke off. */
  readonly records: readonly ScannedRecord[];
}

export interface SegmentScan {
  /** The complete saves, in order, each a non-empty list of records. */
  readonly saves: ReadonlyArray<readonly ScannedRecord[]>;
  /** Bytes covered by the complete saves (where a torn tail or damage begins). */
  readonly validBytes: number;
  readonly tornTail: TornTail | null;
  readonly damage: ScanDamage | null;
}

/** Scans `bytes` (a whole segment). `isLast`: the segment is the newest, where a torn tail is expected. */
export function scanSegment(bytes: Buffer, isLast: boolean): SegmentScan {
  const end = bytes.length;
  const saves: ScannedRecord[][] = [];
  let pending: ScannedRecord[] = [];
  let saveStart = 0;
  let at = 0;
  const broken = (offset: number, why: string): SegmentScan => {
    const validBytes = saveStart;
    if (!isLast) return { saves, validBytes, tornTail: null, damage: { offset, saveStart, reason: `${why} in a segment that is not the last` } };
    const later = laterSave(bytes, offset, saveStart);
    if (later !== undefined) {
      return { saves, validBytes, tornTail: null, damage: { offset, saveStart, reason: `${why}, and a later save follows at offset ${later}` } };
    }
    return { saves, validBytes, tornTail: { saveStart, offset, records: pending }, damage: null };
  };
  while (at < end) {
    const header = readRecordHeader(bytes, at, end);
    if (header === undefined) return broken(at, end - at < RECORD_HEADER_BYTES ? 'an incomplete record header' : 'a record header that fails its checksum');
    if (!bodyIntact(bytes, at, end, header)) {
      const complete = at + recordBytes(header) <= end;
      return broken(at, complete ? `a ${header.bodyLength}-byte record body that fails its checksum` : 'an incomplete record body');
    }
    const structural = structureProblem(header.type, header.saveStart, at, saveStart);
    if (structural !== undefined) return { saves, validBytes: saveStart, tornTail: null, damage: { offset: at, saveStart, reason: structural } };
    const bodyStart = at + RECORD_HEADER_BYTES;
    pending.push({ type: header.type, offset: at, length: recordBytes(header), bodyStart, bodyEnd: bodyStart + header.bodyLength });
    at += recordBytes(header);
    if (header.endOfSave) {
      saves.push(pending);
      pending = [];
      saveStart = at;
    }
  }
  if (pending.length > 0) return broken(end, 'the file ends inside a save');
  return { saves, validBytes: end, tornTail: null, damage: null };
}

/** Why a checksum-valid record at `at` cannot be where it is, or undefined when it can. */
function structureProblem(type: RecordType, recordSaveStart: number, at: number, saveStart: number): string | undefined {
  if (recordSaveStart !== saveStart) return `a record says its save starts at ${recordSaveStart}, but it starts at ${saveStart}`;
  if ((type === RecordType.segmentHeader) !== (at === 0)) return at === 0 ? 'the segment does not start with a segment header' : 'a segment header in the middle of a segment';
  return undefined;
}

/**
 * Offset of the first valid record after `badOffset` that belongs to another
 * save than the one starting at `saveStart`, if any. Valid records of the same
 * save are skipped whole, so the scan stays linear.
 */
function laterSave(bytes: Buffer, badOffset: number, saveStart: number): number | undefined {
  let from = badOffset + 1;
  for (;;) {
    const found = findNextValidRecord(bytes, from, bytes.length);
    if (found === undefined) return undefined;
    if (found.header.saveStart !== saveStart) return found.offset;
    from = found.offset + recordBytes(found.header);
  }
}
