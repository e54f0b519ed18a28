/**
 * Opening a Raft log directory: find the segments, replay them, decide what
 * a crash left behind and what is damage, repair what may be repaired, and
 * say exactly what was discarded.
 *
 * Steps:
 *   1. List `<sequence>-<first index>.log` files, sorted by sequence.
 *   2. Replay the last run of consecutive sequence numbers (segment-scan.ts
 *      reads each into complete saves, replay.ts applies them). Segments
 *      before a gap in the sequence are leftovers of a compaction whose
 *      deletions were not all durable; replay.ts checks that nothing in them
 *      (or in the missing ones) is still needed.
 *   3. A torn tail of the last segment (its unfinished last save) is cut off:
 *      expected after a crash, reported in `RecoveryReport.tornTail`.
 *   4. Anything else that is wrong is damage to data that had been made
 *      durable. Mode 'strict' (the default) refuses to open with
 *      IMPULSE_ERR_ENGINE_CORRUPTION naming the file and offset. Mode
 *      'truncate-corrupt-tail' cuts the log at the start of the damaged save
 *      and drops everything after it (the rest of that segment and every
 *      later segment), then replays again; see the README for why that is
 *      dangerous for Raft.
 *   5. On disk: remove dropped and leftover segments (newest first), sync the
 *      directory, then truncate the last segment to its valid length and sync
 *      it. Each step is idempotent, so a crash during recovery leaves a
 *      directory that recovers to the same state.
 */
import type { Vfs } from '../../vfs/vfs.js';
import { corruption } from '../../util/corruption.js';
import type { HardState } from '../types.js';
import type { SnapshotMeta } from '../storage.js';
import { COMPONENT, entryIndexAndTerm } from './codec.js';
import type { LogIndex } from './log-index.js';
import { findNextValidRecord, recordBytes, RECORD_HEADER_BYTES, RecordType } from './record.js';
import { LogDamage, Replay } from './replay.js';
import { scanSegment, type TornTail } from './segment-scan.js';
import { parseSegmentFileName, type SegmentName } from './segment-name.js';

/**
 * What to do about damage beyond a torn tail. 'strict': refuse to open.
 * 'truncate-corrupt-tail': discard the damaged save and everything after it.
 */
export type RecoveryMode = 'strict' | 'truncate-corrupt-tail';

/** A discarded part of the log: from `offset` in `file` to the end of the log. */
export interface DiscardedPart {
  readonly file: string;
  readonly offset: number;
  readonly bytes: number;
  /** Checksum-valid records found in the discarded bytes (a damaged record is not counted). */
  readonly records: number;
  /** Lowest and highest entry index among those records; null when there were none. */
  readonly firstIndex: number | null;
  readonly lastIndex: number | null;
  /** Segment files removed whole. */
  readonly segmentsRemoved: readonly string[];
}

export interface RecoveryReport {
  /** The unfinished last save a crash left behind, cut off. */
  readonly tornTail: DiscardedPart | null;
  /** Only with 'truncate-corrupt-tail': the damaged save and everything after it, discarded, and why. */
  readonly corruptionDiscarded: (DiscardedPart & { readonly reason: string }) | null;
  /** Old segments an interrupted compaction left behind (nothing in them was needed), removed. */
  readonly leftoverSegmentsRemoved: readonly string[];
}

/** A surviving segment and its length after recovery. */
export interface RecoveredSegment extends SegmentName {
  readonly bytes: number;
  /** Length of its header records (segment header, boundary, hard state). */
  readonly headerBytes: number;
}

export interface RecoveredLog {
  /** The log's state; null when there is no log (no segment, or nothing survived). */
  readonly state: { readonly hardState: HardState; readonly boundary: SnapshotMeta; readonly index: LogIndex } | null;
  /** The surviving segments in sequence order (at least one when `state` is not null); the last is appended to. */
  readonly segments: readonly RecoveredSegment[];
  readonly report: RecoveryReport;
}

/** A damaged spot found by a replay attempt. */
interface Damage {
  readonly segment: SegmentName;
  readonly offset: number;
  readonly saveStart: number;
  readonly reason: string;
}

interface ScannedSegment extends SegmentName {
  readonly validBytes: number;
  readonly fileBytes: number;
  readonly headerBytes: number;
}

/** What one replay attempt found: damage, or the state (null when not even one complete segment header survived). */
type Attempt =
  | { readonly damage: Damage }
  | {
      readonly state: { hardState: HardState; boundary: SnapshotMeta; index: LogIndex } | null;
      readonly segments: readonly ScannedSegment[];
      readonly torn: { readonly segment: ScannedSegment; readonly tail: TornTail } | null;
    };

type Replayed = Exclude<Attempt, { damage: Damage }>;

/** A cut made under 'truncate-corrupt-tail': the log is read up to `limit` bytes of the damaged segment. */
interface Cut {
  readonly damage: Damage;
  readonly limit: number;
}

/**
 * Recovers the log in `dir`. Rejects with IMPULSE_ERR_ENGINE_CORRUPTION
 * (damage, in 'strict' mode) or IMPULSE_ERR_ENGINE_IO.
 */
export async function recoverLog(vfs: Vfs, dir: string, mode: RecoveryMode): Promise<RecoveredLog> {
  const listed = await listSegments(vfs, dir);
  const { replayed, cut } = await replayCutting(vfs, listed, mode);
  const kept = replayed.segments.filter((segment) => segment.validBytes > 0);
  const keptSequences = new Set(kept.map((segment) => segment.sequence));
  const lastKept = kept.at(-1)?.sequence ?? 0;
  const report: RecoveryReport = {
    tornTail: replayed.torn === null ? null : await describeTorn(vfs, replayed.torn.segment, replayed.torn.tail),
    corruptionDiscarded: cut === null ? null : { ...(await describeDiscard(vfs, listed, cut.damage.segment, cut.limit)), reason: `${cut.damage.reason} (offset ${cut.damage.offset})` },
    leftoverSegmentsRemoved: listed.filter((segment) => !keptSequences.has(segment.sequence) && segment.sequence < lastKept).map((segment) => segment.path),
  };
  await repair(vfs, dir, listed.filter((segment) => !keptSequences.has(segment.sequence)), kept.at(-1));
  if (replayed.state === null || kept.length === 0) return { state: null, segments: [], report };
  return {
    state: replayed.state,
    segments: kept.map(({ sequence, firstIndex, path, validBytes, headerBytes }) => ({ sequence, firstIndex, path, bytes: validBytes, headerBytes })),
    report,
  };
}

/**
 * Replays the last run of segments. On damage: refuses ('strict'), or cuts the
 * log at the damaged save and replays what is left, until a replay succeeds.
 */
async function replayCutting(vfs: Vfs, listed: readonly SegmentName[], mode: RecoveryMode): Promise<{ replayed: Replayed; cut: Cut | null }> {
  let present = listed;
  let cut: Cut | null = null;
  for (;;) {
    const run = lastRun(present);
    let attempt: Attempt = run.length === 0 ? { state: null, segments: [], torn: null } : await replayRun(vfs, run, cut);
    if ('state' in attempt && attempt.state === null && run.length > 0 && run[0]!.sequence > 1) {
      // All that is left is the unfinished first save of a new segment. It was being created after
      // the one before it, which is never deleted while it is the newest: that one is missing.
      attempt = { damage: { segment: run[0]!, offset: 0, saveStart: 0, reason: `segment ${run[0]!.sequence - 1} is missing` } };
    }
    if (!('damage' in attempt)) return { replayed: attempt, cut };
    const damage: Damage = attempt.damage;
    if (mode === 'strict') {
      throw corruption(COMPONENT, damage.segment.path, `${damage.reason} (offset ${damage.offset}); refusing to open. Recovery option 'truncate-corrupt-tail' discards from offset ${damage.saveStart} of this file onward: read the Raft log README first`);
    }
    // Every later attempt replays a prefix of this one, so each cut lies before the previous one.
    cut = { damage, limit: damage.saveStart };
    present = present.filter((segment) => segment.sequence < damage.segment.sequence || (segment.sequence === damage.segment.sequence && damage.saveStart > 0));
  }
}

/**
 * Makes the disk match the recovered log: removes `removed` (dropped and
 * leftover segments), newest first so an interrupted removal leaves the same
 * log to recover, syncs the directory, then cuts `last` to its valid length.
 */
async function repair(vfs: Vfs, dir: string, removed: readonly SegmentName[], last: ScannedSegment | undefined): Promise<void> {
  for (const segment of [...removed].reverse()) await vfs.unlink(segment.path);
  if (removed.length > 0) await vfs.syncDir(dir);
  if (last === undefined || last.validBytes === last.fileBytes) return;
  const file = await vfs.open(last.path);
  try {
    await file.truncate(last.validBytes);
    await file.sync();
  } finally {
    await file.close();
  }
}

async function listSegments(vfs: Vfs, dir: string): Promise<SegmentName[]> {
  const segments: SegmentName[] = [];
  for (const name of await vfs.list(dir)) {
    const segment = parseSegmentFileName(dir, name);
    if (segment !== undefined) segments.push(segment);
  }
  segments.sort((a, b) => a.sequence - b.sequence);
  for (let i = 1; i < segments.length; i++) {
    if (segments[i]!.sequence === segments[i - 1]!.sequence) throw corruption(COMPONENT, segments[i]!.path, `two segment files have sequence number ${segments[i]!.sequence}`);
  }
  return segments;
}

/** The longest suffix of `segments` with consecutive sequence numbers. */
function lastRun(segments: readonly SegmentName[]): SegmentName[] {
  let start = segments.length - 1;
  while (start > 0 && segments[start - 1]!.sequence === segments[start]!.sequence - 1) start--;
  return segments.slice(Math.max(0, start));
}

/** Replays `run`, reading at most `cut.limit` bytes of the cut segment. */
async function replayRun(vfs: Vfs, run: readonly SegmentName[], cut: Cut | null): Promise<Attempt> {
  const replay = new Replay();
  const segments: ScannedSegment[] = [];
  let torn: { segment: ScannedSegment; tail: TornTail } | null = null;
  for (let i = 0; i < run.length; i++) {
    const segment = run[i]!;
    const isLast = i === run.length - 1;
    const contents = await vfs.readFile(segment.path);
    const bytes = cut?.damage.segment.sequence === segment.sequence ? contents.subarray(0, cut.limit) : contents;
    const scan = scanSegment(bytes, isLast);
    try {
      for (const save of scan.saves) replay.applySave(save, bytes, segment);
    } catch (error) {
      if (error instanceof LogDamage) return { damage: { segment, offset: error.offset, saveStart: error.saveStart, reason: error.reason } };
      throw error;
    }
    if (scan.damage !== null) return { damage: { segment, ...scan.damage } };
    if (!isLast && scan.saves.length === 0) return { damage: { segment, offset: 0, saveStart: 0, reason: 'an empty segment that is not the last' } };
    const headerSave = scan.saves[0];
    const headerBytes = headerSave === undefined ? 0 : headerSave[2]!.offset + headerSave[2]!.length;
    const scanned = { ...segment, validBytes: scan.validBytes, fileBytes: contents.length, headerBytes };
    segments.push(scanned);
    if (scan.tornTail !== null || (isLast && scan.validBytes === 0)) torn = { segment: scanned, tail: scan.tornTail ?? { saveStart: 0, offset: 0, records: [] } };
  }
  if (replay.index === null) return { state: null, segments, torn };
  try {
    return { state: replay.finish(run[0]!), segments, torn };
  } catch (error) {
    if (error instanceof LogDamage) return { damage: { segment: run[0]!, offset: error.offset, saveStart: error.saveStart, reason: error.reason } };
    throw error;
  }
}

async function describeTorn(vfs: Vfs, segment: ScannedSegment, tail: TornTail): Promise<DiscardedPart> {
  const bytes = await vfs.readFile(segment.path);
  const found = summarizeRecords(bytes, tail.saveStart);
  return { file: segment.path, offset: tail.saveStart, bytes: segment.fileBytes - tail.saveStart, ...found, segmentsRemoved: tail.saveStart === 0 ? [segment.path] : [] };
}

/** What cutting at `offset` of `from` drops: the rest of that file and every later segment. */
async function describeDiscard(vfs: Vfs, listed: readonly SegmentName[], from: SegmentName, offset: number): Promise<DiscardedPart> {
  let bytes = 0;
  let records = 0;
  let firstIndex: number | null = null;
  let lastIndex: number | null = null;
  const segmentsRemoved: string[] = [];
  for (const segment of listed) {
    if (segment.sequence < from.sequence) continue;
    const start = segment.sequence === from.sequence ? offset : 0;
    const contents = await vfs.readFile(segment.path);
    const found = summarizeRecords(contents, start);
    bytes += Math.max(0, contents.length - start);
    records += found.records;
    if (found.firstIndex !== null) firstIndex = Math.min(firstIndex ?? Infinity, found.firstIndex);
    if (found.lastIndex !== null) lastIndex = Math.max(lastIndex ?? 0, found.lastIndex);
    if (start === 0) segmentsRemoved.push(segment.path);
  }
  return { file: from.path, offset, bytes, records, firstIndex, lastIndex, segmentsRemoved };
}

/** Counts the checksum-valid records in `bytes` from `from` on, and the range of entry indexes among them. */
function summarizeRecords(bytes: Buffer, from: number): { records: number; firstIndex: number | null; lastIndex: number | null } {
  let records = 0;
  let firstIndex: number | null = null;
  let lastIndex: number | null = null;
  for (let at = from; ; ) {
    const found = findNextValidRecord(bytes, at, bytes.length);
    if (found === undefined) break;
    records++;
    const bodyStart = found.offset + RECORD_HEADER_BYTES;
    if (found.header.type === RecordType.entry) {
      const index = entryIndexOrUndefined(bytes, bodyStart, bodyStart + found.header.bodyLength);
      if (index !== undefined) {
        firstIndex = Math.min(firstIndex ?? Infinity, index);
        lastIndex = Math.max(lastIndex ?? 0, index);
      }
    }
    at = found.offset + recordBytes(found.header);
  }
  return { records, firstIndex, lastIndex };
}

/** The index of a checksum-valid entry body, or undefined when even that does not decode (the report then counts the record only). */
function entryIndexOrUndefined(bytes: Buffer, start: number, end: number): number | undefined {
  try {
    return entryIndexAndTerm(bytes, start, end, '').index;
  } catch {
    return undefined;
  }
}
