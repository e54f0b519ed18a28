/**
 * Simulated stable storage for one Raft node: the hard state, the latest
 * snapshot and the log, with a crash model.
 *
 * Writes go to a volatile queue and reach the durable copy only on `sync()`
 * (the fsync). `crash()` throws the queue away, except that a random prefix
 * of it may already have reached the disk (a log append is a prefix of a
 * file; a torn tail inside one entry is detected by the real log's checksums
 * and dropped, so it looks like a shorter prefix here). The order the driver
 * writes in (snapshot, entries, hard state) therefore matters, as it does on
 * a real disk.
 *
 * This is the "equivalent simulated log storage" of issue 5: synchronous, so
 * the simulator stays a single deterministic event loop.
 */
import { assert } from '../../src/util/assert.js';
import type { Random } from '../../src/util/random.js';
import type { Entry, HardState, Snapshot } from '../../src/raft/types.js';

type WriteOp =
  | { readonly kind: 'snapshot'; readonly snapshot: Snapshot } // installs it and discards the whole log
  | { readonly kind: 'entries'; readonly entries: readonly Entry[] } // replaces entries at and after entries[0].index
  | { readonly kind: 'hard-state'; readonly hardState: HardState }
  | { readonly kind: 'compact'; readonly snapshot: Snapshot }; // saves a local snapshot, drops the log prefix it covers

export interface DurableState {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Entries after the snapshot, ascending, contiguous. */
  entries: Entry[];
}

export class SimStorage {
  private durable: DurableState = { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: null, entries: [] };
  private pending: WriteOp[] = [];
  /** Writes lost in crashes (for the run's statistics). */
  lostWrites = 0;

  writeSnapshot(snapshot: Snapshot): void {
    this.pending.push({ kind: 'snapshot', snapshot });
  }
  writeEntries(entries: readonly Entry[]): void {
    if (entries.length > 0) this.pending.push({ kind: 'entries', entries });
  }
  writeHardState(hardState: HardState): void {
    this.pending.push({ kind: 'hard-state', hardState });
  }
  writeCompaction(snapshot: Snapshot): void {
    this.pending.push({ kind: 'compact', snapshot });
  }

  /** fsync: every queued write becomes durable, in order. */
  sync(): void {
    for (const op of this.pending) this.applyDurably(op);
    this.pending = [];
  }

  /** Power loss: a random prefix of the queued writes survives (possibly part of an entries write), the rest is lost. */
  crash(random: Random): void {
    const keep = random.int(this.pending.length + 1);
    for (let i = 0; i < keep; i++) this.applyDurably(this.pending[i]!);
    const torn = this.pending[keep];
    if (torn !== undefined && torn.kind === 'entries' && torn.entries.length > 1) {
      const prefix = random.int(torn.entries.length);
      if (prefix > 0) this.applyDurably({ kind: 'entries', entries: torn.entries.slice(0, prefix) });
    }
    this.lostWrites += this.pending.length - keep;
    this.pending = [];
  }

  /** What a restarting node reads back. Copies, so the node cannot alias storage. */
  load(): DurableState {
    return { hardState: this.durable.hardState, snapshot: this.durable.snapshot, entries: [...this.durable.entries] };
  }

  private applyDurably(op: WriteOp): void {
    const state = this.durable;
    const snapshotIndex = state.snapshot?.index ?? 0;
    switch (op.kind) {
      case 'hard-state':
        state.hardState = op.hardState;
        return;
      case 'snapshot':
        state.snapshot = op.snapshot;
        state.entries = [];
        return;
      case 'compact': {
        if (op.snapshot.index <= snapshotIndex) return;
        state.entries = state.entries.filter((entry) => entry.index > op.snapshot.index);
        state.snapshot = op.snapshot;
        return;
      }
      case 'entries': {
        const first = op.entries[0]!.index;
        if (first <= snapshotIndex) {
          // Can only be a stale append overlapping a newer snapshot; keep the part after it.
          const rest = op.entries.filter((entry) => entry.index > snapshotIndex);
          if (rest.length > 0) this.applyDurably({ kind: 'entries', entries: rest });
          return;
        }
        const keep = first - snapshotIndex - 1;
        assert(keep <= state.entries.length, 'storage append leaves a gap', first, snapshotIndex, state.entries.length);
        state.entries.length = keep;
        state.entries.push(...op.entries);
        return;
      }
    }
  }
}
