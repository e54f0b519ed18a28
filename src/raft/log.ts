/**
 * The Raft core's in-memory view of its log: a snapshot boundary
 * (`snapshotIndex`, `snapshotTerm`) followed by the entries after it, plus the
 * bookkeeping of what is committed, applied and persisted.
 *
 * Invariants (asserted): snapshotIndex <= applied <= committed <= lastIndex;
 * entries[i].index === snapshotIndex + 1 + i; terms never decrease along the log.
 */
import { assert } from '../util/assert.js';
import type { ConfState, Entry, Snapshot } from './types.js';

export class RaftLog {
  /** Index and term of the last entry covered by the snapshot (0, 0 before any). */
  snapshotIndex: number;
  snapshotTerm: number;
  /** The latest snapshot (for InstallSnapshot); null until one exists. */
  snapshot: Snapshot | null;
  /** Configuration as of `snapshotIndex`. */
  snapshotConf: ConfState;
  /** Entries after the snapshot, ascending and contiguous. */
  private entries: Entry[];
  committed: number;
  /** Highest index handed out for application (or installed by a snapshot). */
  applied: number;
  /** First index whose entry has not been handed to the driver to persist. */
  unstableFrom: number;
  /** A snapshot received from the leader, waiting to be handed to the driver. */
  pendingSnapshot: Snapshot | null = null;

  constructor(snapshot: Snapshot | null, bootstrapConf: ConfState, entries: readonly Entry[], committed: number) {
    this.snapshot = snapshot;
    this.snapshotIndex = snapshot?.index ?? 0;
    this.snapshotTerm = snapshot?.term ?? 0;
    this.snapshotConf = snapshot?.confState ?? bootstrapConf;
    this.entries = entries.filter((entry) => entry.index > this.snapshotIndex);
    for (let i = 0; i < this.entries.length; i++) {
      assert(this.entries[i]!.index === this.snapshotIndex + 1 + i, 'restored log is not contiguous', this.snapshotIndex, i, this.entries[i]!.index);
    }
    this.committed = Math.max(committed, this.snapshotIndex);
    // A persisted commit index can exceed what survived if the driver wrote
    // them in the documented order it cannot; assert it.
    assert(this.committed <= this.lastIndex(), 'persisted commit beyond the persisted log', this.committed, this.lastIndex());
    this.applied = this.snapshotIndex;
    this.unstableFrom = this.lastIndex() + 1;
  }

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length === 0 ? this.snapshotTerm : this.entries[this.entries.length - 1]!.term;
  }

  /** The term of the entry at `index`; undefined when compacted away (below the snapshot) or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshotIndex - 1]!.term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshotIndex - 1];
  }

  /** Entries in [lo, hi), at most `countMax` of them. `lo` must be above the snapshot. */
  slice(lo: number, hi: number, countMax: number): Entry[] {
    assert(lo > this.snapshotIndex && hi <= this.lastIndex() + 1, 'slice out of range', lo, hi, this.snapshotIndex, this.lastIndex());
    const end = Math.min(hi, lo + countMax);
    if (end <= lo) return [];
    return this.entries.slice(lo - this.snapshotIndex - 1, end - this.snapshotIndex - 1);
  }

  /** True when a log ending at (lastIndex, lastTerm) is at least as up to date as this one (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
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

  /** Appends entries that continue the log directly (leader proposals). */
  appendNew(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, 'appendNew not contiguous', entry.index, this.lastIndex());
    assert(entry.term >= this.lastTerm(), 'appendNew with a lower term', entry.term, this.lastTerm());
    this.entries.push(entry);
  }

  /**
   * Follower append after the consistency check passed: skips entries it
   * already has, truncates at the first conflicting one, appends the rest.
   * Returns true when a conflict truncated the log (the caller must then
   * recompute its configuration).
   */
  merge(entries: readonly Entry[]): boolean {
    let truncated = false;
    for (const entry of entries) {
      const existing = this.term(entry.index);
      if (existing === entry.term) continue;
      if (entry.index <= this.snapshotIndex) continue; // covered by the snapshot already (duplicate, stale)
      if (existing !== undefined) {
        assert(entry.index > this.committed, 'a committed entry would be overwritten', entry.index, this.committed, existing, entry.term);
        this.entries.length = entry.index - this.snapshotIndex - 1;
        this.unstableFrom = Math.min(this.unstableFrom, entry.index);
        truncated = true;
      }
      assert(entry.index === this.lastIndex() + 1, 'merge leaves a gap', entry.index, this.lastIndex());
      this.entries.push(entry);
    }
    return truncated;
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), 'commit beyond the last index', index, this.lastIndex());
    this.committed = index;
    return true;
  }

  /** Replaces the whole log by a snapshot from the leader (the follower's log did not contain it). */
  restore(snapshot: Snapshot): void {
    assert(snapshot.index > this.committed, 'restoring a snapshot not ahead of commit', snapshot.index, this.committed);
    this.entries = [];
    this.snapshot = snapshot;
    this.snapshotIndex = snapshot.index;
    this.snapshotTerm = snapshot.term;
    this.snapshotConf = snapshot.confState;
    this.committed = snapshot.index;
    this.unstableFrom = snapshot.index + 1;
    this.pendingSnapshot = snapshot;
  }

  /** Drops entries up to `snapshot.index`, which the application has applied and saved. */
  compact(snapshot: Snapshot): void {
    assert(snapshot.index <= this.applied, 'compacting beyond applied', snapshot.index, this.applied);
    assert(snapshot.index < this.unstableFrom, 'compacting unpersisted entries', snapshot.index, this.unstableFrom);
    if (snapshot.index <= this.snapshotIndex) return;
    this.entries = this.entries.slice(snapshot.index - this.snapshotIndex);
    this.snapshot = snapshot;
    this.snapshotIndex = snapshot.index;
    this.snapshotTerm = snapshot.term;
    this.snapshotConf = snapshot.confState;
  }

  /** The configuration in force at `index`: the last conf-change entry at or below it, else the snapshot's. */
  confAt(index: number): ConfState {
    for (let at = Math.min(index, this.lastIndex()); at > this.snapshotIndex; at--) {
      const entry = this.entries[at - this.snapshotIndex - 1]!;
      if (entry.kind === 'conf-change') return entry.confState;
    }
    return this.snapshotConf;
  }

  /** Index of the last conf-change entry in the log (0 when none after the snapshot). */
  lastConfIndex(): number {
    for (let at = this.lastIndex(); at > this.snapshotIndex; at--) {
      if (this.entries[at - this.snapshotIndex - 1]!.kind === 'conf-change') return at;
    }
    return 0;
  }
}
