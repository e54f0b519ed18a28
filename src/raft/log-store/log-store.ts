/**
 * `SegmentedLogStore`: the durable Raft log of one Raft group on the `Vfs`
 * seam (the `RaftLogStore` of ../storage.ts). Segmented files of checksummed
 * records; one `write` and one fsync per save (with `options.journal`, the
 * node journal's shared fsync instead: journal.ts); reads answered from memory
 * (index, recent entries) or with a synchronous positional read.
 *
 * How to use:
 *   const log = await SegmentedLogStore.open(vfs, `${dataDir}/raft/${group}`, { logger });
 *   log.save({ snapshot: null, entries, hardState }, (error) => { ...send messages... });
 *   log.entries(lo, hi, bytesMax); log.term(index); log.compact(meta, done);
 *   log.stats(); log.recoveryReport; await log.close();
 *
 * Contract, beyond RaftLogStore's:
 *   - One process owns the directory (the caller locks it); calls come from
 *     one thread of control and `save`/`compact` are never concurrent (the
 *     driver waits for `done`). A concurrent call is a bug: assert.
 *   - The read side reflects a save or compaction as soon as the call returns;
 *     entries of a save whose write has not finished are served from memory.
 *   - Fail-stop: after any I/O error or corruption, every later call reports
 *     that first error (`save`/`compact` through `done`, reads by throwing).
 *   - `done` is always called asynchronously, never inside `save`/`compact`.
 *   - A save with nothing in it completes without I/O.
 */
import { ImpulseError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { dirName, type Vfs, type VfsFile } from '../../vfs/vfs.js';
import { entryBytes, type Entry, type HardState } from '../types.js';
import type { LogUpdate, RaftLogStore, SnapshotMeta } from '../storage.js';
import { entryBody, hardStateBody, segmentHeaderBody, snapshotBody } from './codec.js';
import { EntryCache } from './entry-cache.js';
import { LogIndex } from './log-index.js';
import { resolveOptions, type LogStoreOptions, type ResolvedOptions } from './options.js';
import { encodeSave, RECORD_HEADER_BYTES, saveBytes, type RecordBody } from './record.js';
import { recoverLog, type RecoveredLog, type RecoveryReport } from './recovery.js';
import { readEntrySpan } from './segment-read.js';
import { segmentName, type SegmentName } from './segment-name.js';
import { LogStoreStats } from './stats.js';

/** An open segment. `file` is null only while the save that creates it is opening it. */
interface OpenSegment extends SegmentName {
  file: VfsFile | null;
  /** Bytes written (or being written) so far: where the next save goes. */
  bytes: number;
  /** Length of its header records: a segment holding only those takes any save, however large. */
  readonly headerBytes: number;
}

/** What one save or compaction writes, decided synchronously by `plan`. */
interface WritePlan {
  readonly segment: OpenSegment;
  readonly position: number;
  readonly bytes: Buffer;
  /** The save creates `segment` (a new file; the directory must be synced). */
  readonly createsSegment: boolean;
  /** Where each of the caller's records lies in `segment` (after any segment header records). */
  readonly recordOffsets: readonly number[];
}

/** Reads of entries older than the cache merge neighbours into one read when at most this many bytes lie between them. */
const READ_GAP_BYTES_MAX = 64 * 1024;

export class SegmentedLogStore implements RaftLogStore {
  private currentHardState: HardState;
  private boundary: SnapshotMeta;
  private readonly segments: OpenSegment[];
  private readonly index: LogIndex;
  private readonly cache: EntryCache;
  private readonly counters: LogStoreStats;
  private busy = false;
  private inflight: Promise<void> | null = null;
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    private readonly vfs: Vfs,
    private readonly dir: string,
    private readonly options: ResolvedOptions,
    recovered: NonNullable<RecoveredLog['state']>,
    segments: OpenSegment[],
    /** What recovery discarded when this store was opened. */
    readonly recoveryReport: RecoveryReport,
  ) {
    this.index = recovered.index;
    this.currentHardState = recovered.hardState;
    this.boundary = recovered.boundary;
    this.segments = segments;
    this.cache = new EntryCache(options.cacheBytesMax, this.index.last + 1);
    this.counters = new LogStoreStats(recoveryReport);
  }

  /**
   * Opens (recovering) or creates the log in `dir`. Rejects with
   * IMPULSE_ERR_ENGINE_CORRUPTION when synced data is damaged (unless
   * `options.recovery` says to discard it), IMPULSE_ERR_ENGINE_IO on I/O
   * errors, IMPULSE_ERR_CONFIG_INVALID for bad options or a Vfs without
   * `readSync`.
   */
  static async open(vfs: Vfs, dir: string, options: LogStoreOptions = {}): Promise<SegmentedLogStore> {
    const resolved = resolveOptions(options);
    await vfs.mkdir(dir);
    let recovered = await recoverLog(vfs, dir, resolved.recovery);
    if (recovered.state === null) recovered = await createLog(vfs, dir, resolved, recovered.report);
    const segments: OpenSegment[] = [];
    try {
      for (const segment of recovered.segments) {
        const file = await vfs.open(segment.path);
        segments.push({ ...segment, file });
        if (typeof file.readSync !== 'function') {
          throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `raft log: the Vfs ${vfs.name} has no synchronous read (VfsFile.readSync), which the Raft log needs to serve old entries`);
        }
      }
    } catch (error) {
      await Promise.allSettled(segments.map((segment) => segment.file?.close()));
      throw error;
    }
    const store = new SegmentedLogStore(vfs, dir, resolved, recovered.state!, segments, recovered.report);
    store.logRecovery();
    return store;
  }

  // ---- read side (RaftStorage) ----

  hardState(): HardState {
    this.throwIfUnavailable();
    return this.currentHardState;
  }

  snapshotMeta(): SnapshotMeta {
    this.throwIfUnavailable();
    return this.boundary;
  }

  firstIndex(): number {
    this.throwIfUnavailable();
    return this.boundary.index + 1;
  }

  lastIndex(): number {
    this.throwIfUnavailable();
    return this.index.last;
  }

  term(index: number): number | undefined {
    this.throwIfUnavailable();
    if (index === this.boundary.index) return this.boundary.term;
    if (index < this.boundary.index || index > this.index.last) return undefined;
    return this.index.term(index);
  }

  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    this.throwIfUnavailable();
    assert(Number.isSafeInteger(lo) && Number.isSafeInteger(hi), 'raft log: entries() needs integer bounds', lo, hi);
    assert(this.boundary.index < lo && lo <= hi && hi <= this.index.last + 1, 'raft log: entries() out of range', lo, hi, this.boundary.index + 1, this.index.last);
    const result: Entry[] = [];
    if (lo === hi) return result;
    // Decide how many first (sizes are in the index), so a disk read never fetches more than it returns.
    let end = lo + 1;
    let total = this.index.payload(lo);
    while (end < hi && total + this.index.payload(end) <= bytesMax) total += this.index.payload(end++);
    const fromDiskEnd = Math.min(end, this.cache.first);
    try {
      if (lo < fromDiskEnd) this.readFromDisk(lo, fromDiskEnd, result);
    } catch (error) {
      this.fail(error);
      throw error;
    }
    for (let index = Math.max(lo, this.cache.first); index < end; index++) result.push(this.cache.get(index));
    return result;
  }

  // ---- write side ----

  save(update: LogUpdate, done: (error: Error | null) => void): void {
    const unavailable = this.unavailable();
    if (unavailable !== null) return finishLater(done, unavailable);
    assert(!this.busy, 'raft log: save() while a save or compaction is in flight');
    if (update.snapshot === null && update.entries.length === 0 && update.hardState === null) return finishLater(done, null);
    this.checkUpdate(update);
    const started = this.options.clock.now();
    const bodies: RecordBody[] = [];
    if (update.snapshot !== null) bodies.push(snapshotBody(update.snapshot, 'install'));
    for (const entry of update.entries) bodies.push(entryBody(entry));
    if (update.hardState !== null) bodies.push(hardStateBody(update.hardState));
    const plan = this.plan(bodies);

    // The read side reflects the save now; its entries stay pinned in the cache until written.
    if (update.snapshot !== null) {
      this.boundary = update.snapshot;
      this.index.reset(update.snapshot.index);
      this.cache.clear(update.snapshot.index + 1);
    }
    const firstBody = update.snapshot === null ? 0 : 1;
    update.entries.forEach((entry, i) => {
      const length = RECORD_HEADER_BYTES + bodies[firstBody + i]!.length;
      this.index.put(entry.index, plan.segment.sequence, plan.recordOffsets[firstBody + i]!, length, entry.term, entryBytes(entry));
      this.cache.append(entry, bodies[firstBody + i]!.length);
    });
    if (update.hardState !== null) this.currentHardState = update.hardState;
    this.run(plan, done, () => this.counters.saved(update.entries.length, plan.bytes.length, this.options.clock.now() - started));
  }

  compact(meta: SnapshotMeta, done: (error: Error | null) => void): void {
    const unavailable = this.unavailable();
    if (unavailable !== null) return finishLater(done, unavailable);
    assert(!this.busy, 'raft log: compact() while a save or compaction is in flight');
    assert(this.boundary.index <= meta.index && meta.index <= this.index.last, 'raft log: compact() outside [snapshot index, last index]', meta.index, this.boundary.index, this.index.last);
    assert(this.term(meta.index) === meta.term, 'raft log: compact() with a term that is not the entry\'s', meta.index, meta.term, this.term(meta.index));
    const plan = this.plan([snapshotBody(meta, 'compact')]);
    this.boundary = meta;
    this.index.dropThrough(meta.index);
    this.cache.dropThrough(meta.index);
    this.run(plan, done, async () => {
      await this.deleteDeadSegments();
      this.counters.compactions++;
    });
  }

  stats(): Readonly<Record<string, number>> {
    let bytes = 0;
    for (const segment of this.segments) bytes += segment.bytes;
    return this.counters.figures({
      segments: this.segments.length,
      bytes,
      firstIndex: this.boundary.index + 1,
      lastIndex: this.index.last,
      cacheEntries: this.cache.size,
      cacheBytes: this.cache.bytes,
    });
  }

  /** Waits for an in-flight save or compaction, then closes every file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.inflight?.catch(() => undefined);
    const results = await Promise.allSettled(this.segments.map((segment) => segment.file?.close()));
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  // ---- internals ----

  /** Lays out one save's records: in the current segment, or in a new one when it would pass segmentBytesMax. */
  private plan(bodies: readonly RecordBody[]): WritePlan {
    const current = this.segments.at(-1)!;
    // A segment holding nothing but its header takes any save, so a save larger than a segment still fits.
    const full = current.bytes + saveBytes(bodies) > this.options.segmentBytesMax && current.bytes > current.headerBytes;
    const header = full ? this.segmentHeaderBodies(current.sequence + 1) : [];
    let segment = current;
    if (full) {
      segment = { ...segmentName(this.dir, current.sequence + 1, this.index.last + 1), file: null, bytes: 0, headerBytes: saveBytes(header) };
      this.segments.push(segment);
    }
    const position = segment.bytes;
    const { bytes, offsets } = encodeSave([...header, ...bodies], position);
    segment.bytes += bytes.length;
    return { segment, position, bytes, createsSegment: full, recordOffsets: offsets.slice(header.length) };
  }

  /** The records a new segment starts with: its header, then the boundary and hard state as they are now. */
  private segmentHeaderBodies(sequence: number): RecordBody[] {
    return [segmentHeaderBody({ sequence, firstIndex: this.index.last + 1 }), snapshotBody(this.boundary, 'compact'), hardStateBody(this.currentHardState)];
  }

  /** Persists `plan` (write, fsync, directory fsync for a new segment), runs `after`, then calls `done`. */
  private run(plan: WritePlan, done: (error: Error | null) => void, after: () => Promise<void> | void): void {
    this.busy = true;
    this.inflight = this.persist(plan)
      .then(after)
      .then(
        () => {
          this.busy = false;
          done(null);
        },
        (error: unknown) => {
          this.busy = false;
          const reported = this.fail(error);
          done(reported);
        },
      );
  }

  private async persist(plan: WritePlan): Promise<void> {
    const { mutations } = this.options;
    const segment = plan.segment;
    if (plan.createsSegment) segment.file = await this.vfs.open(segment.path, { create: true, exclusive: true });
    const file = segment.file!;
    await file.write(plan.position, plan.bytes);
    this.cache.unpin();
    const journal = this.options.journal;
    if (journal !== undefined && !plan.createsSegment) {
      // The node's one fsync makes it durable (journal.ts). The write above has finished: a checkpoint's fsync of this segment covers it.
      await journal.commit(segment.path, plan.position, plan.bytes);
      this.counters.journaled++;
      return;
    }
    if (mutations.acknowledgeBeforeSync) {
      // TEST-ONLY bug: the caller hears "durable" while the fsync is still to come.
      void file.sync().catch(() => undefined);
    } else {
      await file.sync();
      this.counters.fsyncs++;
    }
    if (plan.createsSegment && !mutations.skipSegmentDirSync) {
      await this.vfs.syncDir(this.dir);
      this.counters.dirSyncs++;
    }
  }

  /** After a compaction: removes, oldest first, the segments whose entries all lie at or below the boundary. */
  private async deleteDeadSegments(): Promise<void> {
    const firstLive = this.index.last > this.boundary.index ? this.index.segment(this.boundary.index + 1) : this.segments.at(-1)!.sequence;
    let deleted = 0;
    while (this.segments.length > 1 && this.segments[0]!.sequence < firstLive) {
      const segment = this.segments.shift()!;
      await segment.file?.close();
      await this.vfs.unlink(segment.path);
      deleted++;
    }
    if (deleted === 0) return;
    this.counters.segmentsDeleted += deleted;
    await this.vfs.syncDir(this.dir);
    this.counters.dirSyncs++;
  }

  /** Reads entries [lo, end) (all older than the cache) from their segments, merging neighbours into one read. */
  private readFromDisk(lo: number, end: number, out: Entry[]): void {
    let spanStart = lo;
    for (let index = lo + 1; index <= end; index++) {
      const breaks =
        index === end ||
        this.index.segment(index) !== this.index.segment(spanStart) ||
        this.index.offset(index) - (this.index.offset(index - 1) + this.index.length(index - 1)) > READ_GAP_BYTES_MAX;
      if (!breaks) continue;
      const segment = this.segmentOf(this.index.segment(spanStart));
      readEntrySpan(segment.file!, segment.path, this.index, spanStart, index, out);
      this.counters.diskReads++;
      this.counters.diskReadEntries += index - spanStart;
      spanStart = index;
    }
  }

  private segmentOf(sequence: number): OpenSegment {
    // Few segments, and reads usually hit the newest ones: search from the end.
    for (let i = this.segments.length - 1; i >= 0; i--) if (this.segments[i]!.sequence === sequence) return this.segments[i]!;
    assert(false, 'raft log: an entry lives in a segment that is not open', sequence);
  }

  /** The core's promises, checked before anything changes (a violation is a bug in the caller: assert). */
  private checkUpdate(update: LogUpdate): void {
    const { snapshot, entries, hardState } = update;
    if (snapshot !== null) assert(snapshot.index >= this.boundary.index, 'raft log: an installed snapshot is older than the boundary', snapshot.index, this.boundary.index);
    const base = snapshot ?? this.boundary;
    const last = snapshot === null ? this.index.last : snapshot.index;
    const first = entries[0];
    if (first !== undefined) {
      assert(first.index > base.index && first.index <= last + 1, 'raft log: entries must start after the boundary and leave no gap', first.index, base.index, last);
      if (first.index <= last) assert(first.index > this.currentHardState.commit, 'raft log: a truncation would remove a committed entry', first.index, this.currentHardState.commit);
      const previousTerm = first.index - 1 === base.index ? base.term : this.index.term(first.index - 1);
      assert(first.term >= previousTerm, 'raft log: entry terms must not decrease', first.index, first.term, previousTerm);
      for (let i = 1; i < entries.length; i++) {
        const entry = entries[i]!;
        const previous = entries[i - 1]!;
        assert(entry.index === previous.index + 1 && entry.term >= previous.term, 'raft log: entries must be contiguous with non-decreasing terms', previous.index, previous.term, entry.index, entry.term);
      }
    }
    if (hardState !== null) {
      const old = this.currentHardState;
      assert(hardState.term >= old.term && hardState.commit >= old.commit, 'raft log: the hard state\'s term and commit never decrease', old, hardState);
      assert(hardState.term > old.term || old.vote === 0 || hardState.vote === old.vote, 'raft log: a second vote in one term', old, hardState);
      const newLast = entries.length > 0 ? entries.at(-1)!.index : last;
      assert(hardState.commit <= newLast, 'raft log: commit index beyond the last entry', hardState.commit, newLast);
    }
  }

  /** Records the first failure (fail-stop) and returns the error to report for this call. */
  private fail(error: unknown): Error {
    const reported = error instanceof Error ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', String(error));
    this.failure ??= reported;
    return reported;
  }

  private unavailable(): Error | null {
    if (this.closed) return new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', 'raft log: closed');
    return this.failure;
  }

  private throwIfUnavailable(): void {
    const unavailable = this.unavailable();
    if (unavailable !== null) throw unavailable;
  }

  private logRecovery(): void {
    const { tornTail, corruptionDiscarded, leftoverSegmentsRemoved } = this.recoveryReport;
    const logger = this.options.logger;
    if (logger === undefined) return;
    if (tornTail !== null) logger.warn({ dir: this.dir, ...tornTail }, 'raft log: discarded the torn tail a crash left (an unfinished save)');
    if (corruptionDiscarded !== null) {
      logger.warn({ dir: this.dir, ...corruptionDiscarded }, "raft log: DISCARDED DAMAGED DATA and everything after it (recovery: 'truncate-corrupt-tail'); this node may have lost votes and acknowledged entries and must rejoin as a new member or from a snapshot");
    }
    if (leftoverSegmentsRemoved.length > 0) logger.warn({ dir: this.dir, segments: leftoverSegmentsRemoved }, 'raft log: removed segments left over from an interrupted compaction');
  }
}

/** A brand-new log: segment 1 holding the bootstrap boundary and an empty hard state, durable with its directory entry. */
async function createLog(vfs: Vfs, dir: string, options: ResolvedOptions, report: RecoveryReport): Promise<RecoveredLog> {
  const boundary: SnapshotMeta = { index: 0, term: 0, confState: options.bootstrapConfState };
  const hardState: HardState = { term: 0, vote: 0, commit: 0 };
  const segment = segmentName(dir, 1, 1);
  // A log of this group that was destroyed here may still have records in the node's journal under these very paths.
  await options.journal?.clear();
  const { bytes } = encodeSave([segmentHeaderBody({ sequence: 1, firstIndex: 1 }), snapshotBody(boundary, 'compact'), hardStateBody(hardState)], 0);
  const file = await vfs.open(segment.path, { create: true, truncate: true });
  try {
    await file.write(0, bytes);
    await file.sync();
  } finally {
    await file.close();
  }
  await vfs.syncDir(dir);
  // The directory itself may be new: make its name durable in the parent too.
  await vfs.syncDir(dirName(dir));
  return { state: { hardState, boundary, index: new LogIndex(0) }, segments: [{ ...segment, bytes: bytes.length, headerBytes: bytes.length }], report };
}

function finishLater(done: (error: Error | null) => void, error: Error | null): void {
  queueMicrotask(() => done(error));
}
