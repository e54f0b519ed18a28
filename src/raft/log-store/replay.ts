/**
 * Replaying complete saves (segment-scan.ts) into the log's state: hard
 * state, snapshot boundary and the index of live entries, with the same
 * semantics `save` and `compact` have (an entry at or below the last index
 * truncates first; 'install' discards every entry; 'compact' drops those at
 * or below its index). The last hard state and the last boundary win.
 *
 * Replay may start at a segment whose predecessors are gone (compaction
 * deletes whole old segments). Entries before its first index are then
 * UNKNOWN; that is fine only if the final boundary covers them, which
 * `finish` checks: otherwise a segment that was still needed is missing.
 *
 * Anything that cannot happen in a log written by `save`/`compact` (an entry
 * leaving a gap, a segment whose name and header disagree, a boundary that
 * moves back) is damage: `LogDamage`, with the offset of the record.
 */
import { isImpulseError } from '../../errors.js';
import type { HardState } from '../types.js';
import type { SnapshotMeta } from '../storage.js';
import { LogIndex } from './log-index.js';
import { decodeHardState, decodeSegmentHeader, decodeSnapshot, entryIndexAndTerm, entryPayloadBytes } from './codec.js';
import { RecordType } from './record.js';
import type { ScannedRecord } from './segment-scan.js';
import type { SegmentName } from './segment-name.js';

/** Something in the log that a correct writer never produces; recovery reports it as corruption. */
export class LogDamage extends Error {
  override name = 'LogDamage';

  constructor(
    /** Offset of the offending record in its segment. */
    readonly offset: number,
    /** Start of the save holding it (where a repair must cut). */
    readonly saveStart: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export class Replay {
  hardState: HardState | null = null;
  boundary: SnapshotMeta | null = null;
  /** Created by the first segment header replayed. */
  index: LogIndex | null = null;
  /** Entries in (boundary, unknownTop] were in segments that replay did not see. */
  private unknownTop = 0;

  /** Applies one complete save read from `segment` (`bytes` is the segment's contents). */
  applySave(records: readonly ScannedRecord[], bytes: Buffer, segment: SegmentName): void {
    const saveStart = records[0]!.offset;
    if (saveStart === 0) checkFirstSave(records);
    for (const record of records) {
      const damage = (reason: string): LogDamage => new LogDamage(record.offset, saveStart, reason);
      try {
        this.applyRecord(record, bytes, segment, damage);
      } catch (error) {
        // A body that passed its checksum yet does not decode was written wrong or damaged in memory before the write.
        if (isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION')) throw damage(error.message);
        throw error;
      }
    }
  }

  private applyRecord(record: ScannedRecord, bytes: Buffer, segment: SegmentName, damage: (reason: string) => LogDamage): void {
    switch (record.type) {
      case RecordType.segmentHeader:
        this.applySegmentHeader(bytes, record, segment, damage);
        break;
      case RecordType.hardState:
        this.hardState = decodeHardState(bytes, record.bodyStart, record.bodyEnd, segment.path);
        break;
      case RecordType.snapshot:
        this.applySnapshot(bytes, record, segment, damage);
        break;
      case RecordType.entry:
        this.applyEntry(bytes, record, segment, damage);
        break;
    }
  }

  /**
   * Ends the replay: checks that no needed entry was in a missing segment and
   * trims the index to the boundary. `firstSegment` is where replay began.
   */
  finish(firstSegment: SegmentName): { hardState: HardState; boundary: SnapshotMeta; index: LogIndex } {
    const { hardState, boundary, index } = this;
    if (hardState === null || boundary === null || index === null) throw new LogDamage(0, 0, 'no complete segment header');
    if (this.unknownTop > boundary.index) {
      throw new LogDamage(0, 0, `entries ${boundary.index + 1}..${this.unknownTop} are needed (the snapshot boundary is ${boundary.index}) but the segment holding them, before sequence ${firstSegment.sequence}, is missing`);
    }
    index.dropThrough(boundary.index);
    return { hardState, boundary, index };
  }

  private applySegmentHeader(bytes: Buffer, record: ScannedRecord, segment: SegmentName, damage: (reason: string) => LogDamage): void {
    const header = decodeSegmentHeader(bytes, record.bodyStart, record.bodyEnd, segment.path);
    if (header.sequence !== segment.sequence || header.firstIndex !== segment.firstIndex) {
      throw damage(`the segment header says sequence ${header.sequence}, first index ${header.firstIndex}, unlike the file name`);
    }
    if (this.index === null) {
      this.index = new LogIndex(header.firstIndex - 1);
      this.unknownTop = header.firstIndex - 1;
    } else if (header.firstIndex !== this.index.last + 1) {
      throw damage(`the segment starts at index ${header.firstIndex} but the previous one ends at ${this.index.last}`);
    }
  }

  private applySnapshot(bytes: Buffer, record: ScannedRecord, segment: SegmentName, damage: (reason: string) => LogDamage): void {
    const { meta, effect } = decodeSnapshot(bytes, record.bodyStart, record.bodyEnd, segment.path);
    const index = this.index!;
    if (this.boundary !== null && meta.index < this.boundary.index) throw damage(`the snapshot boundary moves back from ${this.boundary.index} to ${meta.index}`);
    if (effect === 'install') {
      index.reset(meta.index);
      this.unknownTop = Math.min(this.unknownTop, meta.index);
    } else {
      if (meta.index > index.last) throw damage(`a compaction to ${meta.index} passes the last entry ${index.last}`);
      if (meta.index > index.base && index.term(meta.index) !== meta.term) {
        throw damage(`a compaction to ${meta.index} at term ${meta.term} disagrees with the entry's term ${index.term(meta.index)}`);
      }
      index.dropThrough(meta.index);
    }
    this.boundary = meta;
  }

  private applyEntry(bytes: Buffer, record: ScannedRecord, segment: SegmentName, damage: (reason: string) => LogDamage): void {
    const { index: entryIndex, term } = entryIndexAndTerm(bytes, record.bodyStart, record.bodyEnd, segment.path);
    const index = this.index!;
    const boundary = this.boundary!;
    if (entryIndex <= boundary.index) throw damage(`entry ${entryIndex} is at or below the snapshot boundary ${boundary.index}`);
    if (entryIndex > index.last + 1) throw damage(`entry ${entryIndex} leaves a gap after the last entry ${index.last}`);
    if (entryIndex <= index.base) {
      // A truncation reaching below where replay started: what it replaces is no longer needed.
      index.reset(entryIndex - 1);
      this.unknownTop = Math.min(this.unknownTop, entryIndex - 1);
    }
    index.put(entryIndex, segment.sequence, record.offset, record.length, term, entryPayloadBytes(bytes, record.bodyStart, record.bodyEnd, segment.path));
  }
}

/** A segment's first save: its header, then the boundary and hard state current when it was created. */
function checkFirstSave(records: readonly ScannedRecord[]): void {
  const [header, snapshot, hardState] = records;
  if (header?.type !== RecordType.segmentHeader || snapshot?.type !== RecordType.snapshot || hardState?.type !== RecordType.hardState) {
    throw new LogDamage(0, 0, 'the first save of the segment is not header, snapshot boundary, hard state');
  }
}
