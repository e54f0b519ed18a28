/**
 * The Raft core's view of its log (etcd-io/raft `raftLog` = `unstable` +
 * `Storage`): the stable part is read on demand from `RaftStorage`; in memory
 * are only the entries not yet handed to the driver to persist (`unstable`), a
 * snapshot received from the leader and not yet persisted, and the index of
 * every configuration entry after the snapshot (a few; for `confAt`).
 *
 * Invariants (asserted): snapshotIndex <= applied <= committed <= lastIndex;
 * unstable entries are contiguous and start at `unstableOffset`, which is at
 * most storage.lastIndex() + 1; committed entries are never replaced.
 *
 * Reads from storage may throw (I/O error, corruption): the driver then stops
 * the node (fail-stop), as the storage contract asks.
 */
import { assert } from '../util/assert.js';
import type { RaftStorage } from './storage.js';
import { entryBytes, type ConfState, type Entry, type SnapshotMeta } from './types.js';

/** Entries read per storage call while scanning the log at start-up for configuration entries. */
const SCAN_BATCH_BYTES = 1 << 20;

interface ConfEntry {
  readonly index: number;
  readonly confState: ConfState;
}

export class RaftLog {
  committed: number;
  /** Highest index handed out for application (or installed by a snapshot). */
  applied: number;
  /** A snapshot received from the leader, waiting to be persisted; it replaces the whole stable log. */
  pendingSnapshot: SnapshotMeta | null = null;
  /** Entries not yet persisted, contiguous from `unstableOffset`. They shadow stable entries at the same indexes. */
  private unstable: Entry[] = [];
  private unstableOffset: number;
  /**
   * Last index handed to the driver to persist (>= unstableOffset - 1). The
   * unstable entries up to it are being written: not handed out again, but
   * not durable either — they stay here (readable) until `stableTo` says
   * their write completed (etcd raft's `offsetInProgress`).
   */
  private inProgress: number;
  /** Configuration entries after the snapshot boundary, ascending by index. */
  private confs: ConfEntry[] = [];

  /**
   * @param storage the log as persisted; read on demand from now on.
   * @param applied the state machine's durable applied index (>= the storage's snapshot index).
   */
  constructor(
    private readonly storage: RaftStorage,
    applied: number,
  ) {
    const snapshotIndex = storage.snapshotMeta().index;
    const last = storage.lastIndex();
    assert(applied >= snapshotIndex && applied <= last, 'applied index outside the stored log', applied, snapshotIndex, last);
    this.committed = Math.max(storage.hardState().commit, applied);
    // A persisted commit index beyond the persisted log means the driver broke the save order.
    assert(this.committed <= last, 'persisted commit beyond the persisted log', this.committed, last);
    this.applied = applied;
    this.unstableOffset = last + 1;
    this.inProgress = last;
    // One pass over the stored log (in bounded batches) finds its configuration entries.
    for (let lo = snapshotIndex + 1; lo <= last; ) {
      const batch = storage.entries(lo, last + 1, SCAN_BATCH_BYTES);
      for (const entry of batch) if (entry.kind === 'conf-change') this.confs.push({ index: entry.index, confState: entry.confState });
      lo += batch.length;
    }
  }

  snapshotMeta(): SnapshotMeta {
    return this.pendingSnapshot ?? this.storage.snapshotMeta();
  }

  get snapshotIndex(): number {
    return this.snapshotMeta().index;
  }

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    if (this.unstable.length > 0) return this.unstableOffset + this.unstable.length - 1;
    if (this.pendingSnapshot !== null) return this.pendingSnapshot.index;
    return this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** Index of the last DURABLE entry: the driver reported its write complete (or it was stored at start). */
  stableIndex(): number {
    return this.unstable.length > 0 ? this.unstableOffset - 1 : this.lastIndex();
  }

  /** Index of the last entry handed to the driver to persist: durable, or its write in flight. */
  handedIndex(): number {
    return Math.max(this.stableIndex(), Math.min(this.inProgress, this.lastIndex()));
  }

  /** The term of the entry at `index`; undefined when compacted away (below the snapshot) or beyond the end. */
  term(index: number): number | undefined {
    const snapshot = this.snapshotMeta();
    if (index === snapshot.index) return snapshot.term;
    if (index < snapshot.index || index > this.lastIndex()) return undefined;
    if (this.unstable.length > 0 && index >= this.unstableOffset) return this.unstable[index - this.unstableOffset]!.term;
    return this.storage.term(index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /**
   * Entries in [lo, hi), at most `countMax` of them, stopping before their
   * payload would pass `bytesMax` (but at least one when lo < hi). `lo` must
   * be above the snapshot.
   */
  slice(lo: number, hi: number, countMax: number, bytesMax: number): Entry[] {
    assert(lo > this.snapshotIndex && hi <= this.lastIndex() + 1, 'slice out of range', lo, hi, this.snapshotIndex, this.lastIndex());
    const end = Math.min(hi, lo + countMax);
    if (end <= lo) return [];
    const stableEnd = this.unstable.length > 0 ? Math.min(end, this.unstableOffset) : end;
    let result: Entry[] = [];
    let bytes = 0;
    if (lo < stableEnd) {
      result = this.storage.entries(lo, stableEnd, bytesMax);
      if (result.length < stableEnd - lo) return result; // the byte bound stopped it
      for (const entry of result) bytes += entryBytes(entry);
    }
    for (let index = Math.max(lo, this.unstableOffset); index < end && this.unstable.length > 0; index++) {
      const entry = this.unstable[index - this.unstableOffset]!;
      bytes += entryBytes(entry);
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  /** True when a log ending at (lastIndex, lastTerm) is at least as up to date as this one (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number, ignoreTerm = false): boolean {
    if (ignoreTerm) return lastIndex >= this.lastIndex(); // MUTANT voteIgnoresLogTerm
    return lastTerm > this.lastTerm() || (lastTerm === this.lastTerm() && lastIndex >= this.lastIndex());
  }

  /**
   * The largest index <= `index` whose term is <= `term` (at least the
   * snapshot index). Used for fast back-off: every entry above the answer is
   * known not to match a log whose entry at `index` has term `term`.
   */
  findConflictByTerm(index: number, term: number): number {
    let at = Math.min(index, this.lastIndex());
    while (at > this.snapshotIndex) {
      if (this.term(at)! <= term) return at;
      at--;
    }
    return this.snapshotIndex;
  }

  /** Appends an entry that continues the log directly (leader proposals). */
  appendNew(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, 'appendNew not contiguous', entry.index, this.lastIndex());
    assert(entry.term >= this.lastTerm(), 'appendNew with a lower term', entry.term, this.lastTerm());
    this.appendUnstable([entry]);
  }

  /**
   * Follower append after the consistency check passed: skips entries it
   * already has, truncates at the first conflicting one, appends the rest.
   * Returns true when the configuration may have changed.
   */
  merge(entries: readonly Entry[]): boolean {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.index <= this.snapshotIndex) continue; // covered by the snapshot already (duplicate, stale)
      const existing = this.term(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) assert(entry.index > this.committed, 'a committed entry would be overwritten', entry.index, this.committed, existing, entry.term);
      const rest = entries.slice(i);
      this.appendUnstable(rest);
      return existing !== undefined || rest.some((e) => e.kind === 'conf-change');
    }
    return false;
  }

  /** Puts `entries` at entries[0].index, replacing whatever was there and after it. */
  private appendUnstable(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    assert(first <= this.lastIndex() + 1 && first > this.snapshotIndex, 'append leaves a gap', first, this.lastIndex(), this.snapshotIndex);
    // Entries being written that are replaced here must be handed out again (the old write's
    // completion will not match their terms, see stableTo).
    if (first <= this.inProgress) this.inProgress = first - 1;
    if (this.unstable.length === 0 || first < this.unstableOffset) {
      // The new entries start at or before the unstable part: they also shadow stored entries from `first` on.
      this.unstable = [...entries];
      this.unstableOffset = first;
    } else {
      this.unstable.length = first - this.unstableOffset;
      this.unstable.push(...entries);
    }
    while (this.confs.length > 0 && this.confs[this.confs.length - 1]!.index >= first) this.confs.pop();
    for (const entry of entries) if (entry.kind === 'conf-change') this.confs.push({ index: entry.index, confState: entry.confState });
  }

  /** The unstable entries not yet handed to the driver, for one Ready: a prefix bounded in count and bytes (at least one). */
  unstableEntries(bytesMax: number): Entry[] {
    if (!this.hasUnstableEntries()) return [];
    return this.slice(Math.max(this.unstableOffset, this.inProgress + 1), this.lastIndex() + 1, Number.MAX_SAFE_INTEGER, bytesMax);
  }

  /** True when some unstable entry has not been handed to the driver yet. */
  hasUnstableEntries(): boolean {
    return this.unstable.length > 0 && this.lastIndex() > this.inProgress;
  }

  /** The driver took the unstable entries up to `index` to persist; their write may still be in flight. */
  persisting(index: number): void {
    this.inProgress = Math.max(this.inProgress, index);
  }

  /**
   * The driver's write of the entries up to `index` completed; `term` is the
   * term of the entry at `index` it wrote. When the log was rewritten there
   * since (a new leader's entries replaced it), the report is stale and
   * ignored: the rewrite's own write will report. Writes complete in order, so
   * everything below `index` is durable too.
   */
  stableTo(index: number, term: number): void {
    if (this.unstable.length === 0 || index < this.unstableOffset || index > this.lastIndex()) return;
    if (this.unstable[index - this.unstableOffset]!.term !== term) return;
    const persisted = index - this.unstableOffset + 1;
    this.unstable = this.unstable.slice(persisted);
    this.unstableOffset = index + 1;
    this.inProgress = Math.max(this.inProgress, index);
  }

  /** The driver persisted the pending snapshot: storage now begins at it. */
  snapshotStable(): void {
    this.pendingSnapshot = null;
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), 'commit beyond the last index', index, this.lastIndex());
    this.committed = index;
    return true;
  }

  /** Replaces the whole log by a snapshot from the leader (the follower's log did not contain it). */
  restore(snapshot: SnapshotMeta, allowStale = false): void {
    assert(allowStale || snapshot.index > this.committed, 'restoring a snapshot not ahead of commit', snapshot.index, this.committed);
    this.unstable = [];
    this.unstableOffset = snapshot.index + 1;
    this.inProgress = snapshot.index;
    this.pendingSnapshot = snapshot;
    this.committed = snapshot.index;
    this.confs = [];
  }

  /** The snapshot meta for a compaction at `index` (<= applied and persisted). The driver then compacts the store. */
  compactionMeta(index: number): SnapshotMeta {
    assert(index > this.snapshotIndex && index <= this.applied && index <= this.stableIndex(), 'compact index out of range', index, this.snapshotIndex, this.applied);
    // Configuration entries at or below the store's current boundary are summed up by its meta.
    const boundary = this.snapshotIndex;
    const keep = this.confs.findIndex((conf) => conf.index > boundary);
    this.confs = keep < 0 ? [] : this.confs.slice(keep);
    return { index, term: this.term(index)!, confState: this.confAt(index) };
  }

  /** The configuration in force at `index`: the last configuration entry at or below it, else the snapshot's. */
  confAt(index: number): ConfState {
    for (let i = this.confs.length - 1; i >= 0; i--) if (this.confs[i]!.index <= index) return this.confs[i]!.confState;
    return this.snapshotMeta().confState;
  }

  /** Index of the last configuration entry after the snapshot (0 when none). */
  lastConfIndex(): number {
    const last = this.confs[this.confs.length - 1];
    return last !== undefined && last.index > this.snapshotIndex ? last.index : 0;
  }
}
