/**
 * What recovery does with the WAL segments it finds: which records to
 * replay, what to discard, and when to refuse to start. The model is
 * RocksDB's WAL recovery modes:
 *
 *   - 'tolerate-tail' (default): the only loss allowed without asking is what
 *     a crash explains: a torn final record of the newest segment; in a
 *     segment written with sync off, the unsynced tail (everything from its
 *     first bad spot on, which a power loss may leave in any state); and in
 *     the newest segment of an fsync-mode log, a hole that only records
 *     written without sync follow (`isUnsyncedHole`: no surviving record
 *     says the segment was synced past it). Any
 *     other damage (a bad record with data after it, a segment that was cut or
 *     is missing, a header that does not chain) refuses to start with
 *     IMPULSE_ERR_ENGINE_CORRUPTION naming the file and offset.
 *   - 'point-in-time': replay up to the first damage and discard everything
 *     after it (the rest of that segment and every later segment): the store
 *     comes back as it was at some earlier moment, consistent but older.
 *   - 'skip-corrupted': discard only what is damaged and replay every complete
 *     record around it, in later segments too: loses least, but the result
 *     may not be any state the store ever had (a batch is still all or nothing).
 *
 * Whatever is discarded, in any mode, is listed in the plan (file, offset,
 * bytes, complete records and operations in them, why), and segments that
 * lose data are kept on disk for the operator (`keep`) instead of deleted.
 *
 * The checks (format: wal.ts; reading: wal-reader.ts): every segment has a
 * valid header naming its own number and is at least its preallocated size;
 * the first segment is the one the manifest names (its log number); each
 * later segment's header names the segment before it, whose records must end
 * exactly where that header says (what follows there is ignored: a failed
 * append's leftovers or the END record); the newest segment may end with a
 * torn record, and if it has an END record the segment it names must exist.
 */
import { ImpulseError } from '../../errors.js';
import { type BadRegion, type ScannedRecord, type SegmentScan, batchOperationCount, endRecordNext } from './wal-reader.js';
import type { LsmMutations } from './options.js';
import { RECORD_BATCH, RECORD_END } from './wal.js';

export type WalRecoveryMode = 'tolerate-tail' | 'point-in-time' | 'skip-corrupted';
export const WAL_RECOVERY_MODES: readonly WalRecoveryMode[] = ['tolerate-tail', 'point-in-time', 'skip-corrupted'];

/** One stretch of the log recovery did not replay. */
export interface WalDiscard {
  /** Segment file name. */
  readonly file: string;
  readonly offset: number;
  readonly bytes: number;
  /** Complete (verifiable) records in the discarded bytes, and the operations they hold. */
  readonly records: number;
  readonly operations: number;
  /**
   * 'torn-tail': the final record of the newest segment was cut by a crash (never acknowledged).
   * 'unsynced-tail': a segment written with sync off lost its tail, or records written without sync in an fsync-mode
   *   segment were lost to reordered writeback (no surviving record says they were synced): a power loss may; nothing
   *   there was promised durable.
   * 'damaged': data that was written is damaged or missing; only the recovery modes discard it.
   * 'after-damage': intact records after damage, discarded by 'point-in-time' to keep a consistent earlier state.
   */
  readonly kind: 'torn-tail' | 'unsynced-tail' | 'damaged' | 'after-damage';
  readonly detail: string;
}

/** A segment found on disk, scanned. */
export interface FoundSegment {
  readonly number: number;
  readonly name: string;
  readonly scan: SegmentScan;
}

export interface WalRecoveryPlan {
  /** BATCH records to replay, oldest first. */
  readonly replay: ReadonlyArray<{ readonly segment: FoundSegment; readonly record: ScannedRecord }>;
  readonly discarded: readonly WalDiscard[];
  /** Segments that lost data: kept for the operator (renamed `*.log.discarded`) instead of deleted once they are obsolete. */
  readonly keep: ReadonlySet<number>;
  /**
   * The newest segment the log continues from and where its replayed records
   * end: the next segment's predecessor. Segments numbered above it hold
   * nothing to replay and must be set aside before a new segment is created.
   */
  readonly last: { readonly number: number; readonly end: number } | undefined;
  /** Something other than a torn or unsynced tail was discarded: flush the replayed data before serving, so no later open meets the damage again. */
  readonly damaged: boolean;
}

/** Thrown by 'tolerate-tail' on damage. */
function refusal(file: string, offset: number, detail: string): ImpulseError {
  return new ImpulseError(
    'IMPULSE_ERR_ENGINE_CORRUPTION',
    `lsm: WAL ${file} at offset ${offset}: ${detail}. This is damage to logged data, not a torn final write, so the store was not opened. ` +
      `To open it anyway, discarding what cannot be replayed (the segments that lose data are kept as *.log.discarded), ` +
      `restart with WAL recovery 'point-in-time' (keep everything before the damage) or 'skip-corrupted' (skip only the damaged records).`,
    { details: { file, offset, walRecovery: 'tolerate-tail' } },
  );
}

/**
 * Decides recovery for `segments` (every WAL segment numbered at or above the
 * manifest's `logNumber`, ascending). `expectedFirst`: the segment the
 * manifest names (its log number; 0 for a store that never had one). Throws
 * the refusal described above when `mode` is 'tolerate-tail' and the log is
 * damaged.
 */
export function planWalRecovery(found: readonly FoundSegment[], expectedFirst: number, expectedFirstName: string, mode: WalRecoveryMode, mutations: LsmMutations = {}): WalRecoveryPlan {
  const planner = new Planner(mode, mutations);
  const segments = found.filter((segment, i) => !isAbandoned(segment, found[i + 1]));
  if (expectedFirst > 0 && segments[0]?.number !== expectedFirst) {
    planner.damage(undefined, expectedFirstName, 0, `the segment the manifest names as the oldest still needed is missing`);
  }
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (planner.stopped !== undefined) {
      planner.afterStop(segment);
      continue;
    }
    const next = segments[i + 1];
    const successorEnd = next?.scan.header?.previousNumber === segment.number ? next.scan.header.previousEnd : undefined;
    planner.segment(segment, segments[i - 1], successorEnd, next === undefined);
  }
  return { replay: planner.replay, discarded: planner.discarded, keep: planner.keep, last: planner.last, damaged: planner.damaged };
}

/**
 * A segment whose creation failed after its rename (the engine then deletes
 * it, but that may fail too): a clean header, nothing after it, and the next
 * segment names another predecessor. It never held a record; skip it.
 */
function isAbandoned(segment: FoundSegment, next: FoundSegment | undefined): boolean {
  const { scan } = segment;
  return next !== undefined && scan.header !== undefined && scan.records.length === 0 && scan.regions.length === 0 && next.scan.header?.previousNumber !== segment.number;
}

/**
 * Whether the bad stretch `region` of the newest segment of an fsync-mode log
 * is a hole that reordered writeback of UNSYNCED records explains: records
 * follow it (else the torn-tail rules judge it), and each of them is a batch
 * that says the segment was synced only up to `region.offset` or less when it
 * was written (wal.ts: the synced end). A per-write `sync: false` leaves
 * records unsynced in an fsync-mode segment, and a power loss may then keep a
 * later one and lose an earlier one. Any surviving record that claims a sync
 * past the hole proves the hole was synced: damage. (Only the newest
 * segment: rotation syncs a segment before its successor is created.)
 *
 * Blind spot, by construction: a sync that no surviving record mentions (the
 * last `flush()` before the crash, with no write after it) is invisible, so
 * damage to records it made durable, with records after it that were written
 * before it, is taken for such a hole.
 */
function isUnsyncedHole(scan: SegmentScan, region: BadRegion): boolean {
  const after = scan.records.filter((record) => record.offset >= region.end);
  return after.length > 0 && after.every((record) => record.type === RECORD_BATCH && record.syncedEnd !== undefined && record.syncedEnd <= region.offset);
}

class Planner {
  readonly replay: Array<{ segment: FoundSegment; record: ScannedRecord }> = [];
  readonly discarded: WalDiscard[] = [];
  readonly keep = new Set<number>();
  last: { number: number; end: number } | undefined;
  damaged = false;
  /** Why replay stopped early (nothing after is replayed): point-in-time damage, or a sync-off segment's lost tail. */
  stopped: 'damage' | 'unsynced' | undefined;

  constructor(
    private readonly mode: WalRecoveryMode,
    private readonly mutations: LsmMutations,
  ) {}

  /** Plans one segment. `successorEnd`: where the next segment's header says this one's records end (undefined for the newest or a broken chain). */
  segment(segment: FoundSegment, previous: FoundSegment | undefined, successorEnd: number | undefined, newest: boolean): void {
    const { scan } = segment;
    const header = scan.header;
    if (header === undefined) return this.damageRest(segment, 0, scan.regions[0]?.detail ?? 'the segment has no valid header record');
    if (header.number !== segment.number) return this.damageRest(segment, 0, `its header names segment ${header.number}`);
    if (previous !== undefined && header.previousNumber !== previous.number) {
      this.damage(segment, segment.name, 0, `the segment's header names ${header.previousNumber === 0 ? 'no predecessor' : `segment ${header.previousNumber} as its predecessor`}, but the segment before it is ${previous.name}: a segment is missing`);
      if (this.stopped !== undefined) return;
    }
    this.last = { number: segment.number, end: scan.headerEnd };
    const items = [...scan.records, ...scan.regions].sort((a, b) => a.offset - b.offset);
    for (let index = 0; index < items.length && this.stopped === undefined; index++) {
      const item = items[index]!;
      if (successorEnd !== undefined && item.offset >= successorEnd) {
        // Past the end its successor recorded: a failed append's leftovers or END, not part of the log.
        if ('type' in item && item.type === RECORD_BATCH) this.damage(segment, segment.name, item.offset, `a complete record lies after offset ${successorEnd}, where the next segment says this one ends`);
        continue;
      }
      if ('type' in item) this.record(segment, item, successorEnd, newest);
      else this.region(segment, item, index === items.length - 1, successorEnd);
    }
    if (this.stopped !== undefined) return;
    if (successorEnd !== undefined && this.last.end < successorEnd) {
      const detail = `its records end at offset ${this.last.end}, but the next segment says they end at ${successorEnd}: records are missing`;
      if (header.syncMode === 'none') this.unsyncedLoss(segment, this.last.end, detail);
      else this.damage(segment, segment.name, this.last.end, detail);
    }
    if (this.stopped === undefined && scan.data.length < header.preallocatedBytes) {
      this.damage(segment, segment.name, scan.data.length, `the segment is ${scan.data.length} bytes but was created with ${header.preallocatedBytes}: it was cut short`);
    }
  }

  /** A segment after replay stopped: nothing in it is replayed. Acknowledged (synced) records after a sync-off tail loss are damage all the same. */
  afterStop(segment: FoundSegment): void {
    if (this.stopped === 'unsynced' && segment.scan.header?.syncMode === 'fsync' && segment.scan.records.some((record) => record.type === RECORD_BATCH)) {
      this.damage(segment, segment.name, 0, 'synced records follow a segment that lost its unsynced tail; replaying them would skip writes before them');
    }
    this.discardFrom(segment, 0, this.stopped === 'unsynced' ? 'unsynced-tail' : 'after-damage', 'a later segment, after replay stopped');
  }

  private record(segment: FoundSegment, record: ScannedRecord, successorEnd: number | undefined, newest: boolean): void {
    if (successorEnd !== undefined && record.end > successorEnd) {
      this.damage(segment, segment.name, record.offset, `the record crosses offset ${successorEnd}, where the next segment says this one ends`);
    } else if (record.type === RECORD_BATCH) {
      this.replay.push({ segment, record });
      this.last = { number: segment.number, end: record.end };
    } else if (record.type === RECORD_END) {
      if (newest) this.damage(segment, segment.name, record.offset, `the segment ends by naming segment ${endRecordNext(segment.scan, record)} as the next one, which is missing`);
    } else {
      this.damage(segment, segment.name, record.offset, 'a second header record');
    }
  }

  private region(segment: FoundSegment, region: BadRegion, final: boolean, successorEnd: number | undefined): void {
    if (segment.scan.header!.syncMode === 'none') {
      this.unsyncedLoss(segment, region.offset, `${region.detail} (the segment was written with sync off)`, region);
    } else if (successorEnd === undefined && ((final && region.tornPlausible) || this.mutations.walDamageAsTornTail === true)) {
      if (this.mutations.walDamageAsTornTail === true) this.stopped = 'damage'; // the planted bug: stop here, as if the log ended
      this.discarded.push({ file: segment.name, offset: region.offset, bytes: region.end - region.offset, records: 0, operations: 0, kind: 'torn-tail', detail: region.detail });
    } else if (successorEnd === undefined && isUnsyncedHole(segment.scan, region)) {
      const detail = `${region.detail}; every record after it was written before the segment was synced past offset ${region.offset} (records written without sync, lost to reordered writeback)`;
      this.unsyncedLoss(segment, region.offset, detail, region);
    } else {
      this.damage(segment, segment.name, region.offset, region.detail, region);
    }
  }

  /** Damage at `offset` of `segment` (undefined: the file `file` is missing), handled per mode. */
  damage(segment: FoundSegment | undefined, file: string, offset: number, detail: string, region?: BadRegion): void {
    if (this.mode === 'tolerate-tail') throw refusal(file, offset, detail);
    this.damaged = true;
    const end = region?.end ?? offset;
    this.discarded.push({ file, offset, bytes: end - offset, records: 0, operations: 0, kind: 'damaged', detail });
    if (segment !== undefined) this.keep.add(segment.number);
    if (this.mode === 'point-in-time') {
      this.stopped = 'damage';
      if (segment !== undefined) this.discardFrom(segment, end, 'after-damage', 'after the damage');
    }
  }

  /** The whole segment is unusable (no header, or another segment's): damage; skip-corrupted still replays its complete records. */
  private damageRest(segment: FoundSegment, offset: number, detail: string): void {
    this.damage(segment, segment.name, offset, detail);
    if (this.stopped !== undefined) return;
    for (const record of segment.scan.records) if (record.type === RECORD_BATCH) this.replay.push({ segment, record });
  }

  /** A sync-off segment lost its tail, as a power loss may leave it. Replay stops there (a consistent prefix), except in skip-corrupted. */
  private unsyncedLoss(segment: FoundSegment, offset: number, detail: string, region?: BadRegion): void {
    if (this.mode === 'skip-corrupted') {
      const end = region?.end ?? offset;
      this.discarded.push({ file: segment.name, offset, bytes: end - offset, records: 0, operations: 0, kind: 'unsynced-tail', detail });
      this.keep.add(segment.number);
      return;
    }
    this.stopped = 'unsynced';
    this.discardFrom(segment, offset, 'unsynced-tail', detail);
  }

  /** Discards everything of `segment` from `offset` on, counting the complete records; keeps the segment for the operator when that held any. */
  private discardFrom(segment: FoundSegment, offset: number, kind: WalDiscard['kind'], detail: string): void {
    const { scan } = segment;
    let records = 0;
    let operations = 0;
    let end = offset;
    for (const record of scan.records) {
      if (record.offset < offset) continue;
      end = Math.max(end, record.end);
      if (record.type !== RECORD_BATCH) continue;
      records++;
      operations += batchOperationCount(scan, record);
    }
    for (const region of scan.regions) if (region.offset >= offset) end = Math.max(end, region.end);
    if (end === offset) return;
    if (records > 0) this.keep.add(segment.number);
    this.discarded.push({ file: segment.name, offset, bytes: end - offset, records, operations, kind, detail });
  }
}
