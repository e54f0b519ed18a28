/**
 * An in-memory `RaftLogStore` (src/raft/storage.ts) with a crash model, for the
 * simulator and for unit tests of the driver.
 *
 * The read side reflects every `save` as soon as it returns (the contract);
 * durability comes later: each save and compaction becomes a queue of write
 * operations that reaches the durable copy only when its fsync completes, which
 * happens when the injected `sync` scheduler says so (the simulator: after a
 * random delay on its event queue; unit tests: at once, or when they choose).
 * `crash(random)` keeps the durable copy plus a random prefix of the queued
 * operations — possibly part of one entries write, as a torn log tail the real
 * log's checksums would cut back to a prefix — and forgets the rest. So the
 * order the driver writes in (snapshot, entries, hard state) matters here as
 * it does on a disk, and a crash while a save is in flight loses what it had
 * not yet synced.
 */
import { assert } from '../../src/util/assert.js';
import type { Random } from '../../src/util/random.js';
import type { LogUpdate, RaftLogStore } from '../../src/raft/storage.js';
import { entryBytes, type ConfState, type Entry, type HardState, type SnapshotMeta } from '../../src/raft/types.js';

type WriteOp =
  | { readonly kind: 'snapshot'; readonly meta: SnapshotMeta } // the new boundary; discards every entry
  | { readonly kind: 'entries'; readonly entries: readonly Entry[] } // replaces entries at and after entries[0].index
  | { readonly kind: 'hard-state'; readonly hardState: HardState }
  | { readonly kind: 'compact'; readonly meta: SnapshotMeta }; // drops the prefix up to meta.index

interface LogState {
  hardState: HardState;
  snapshot: SnapshotMeta;
  /** Entries after the snapshot, ascending, contiguous. */
  entries: Entry[];
}

/** Runs `complete` once the fsync is done (now or later). */
export type SyncScheduler = (complete: () => void) => void;

export const SYNC_AT_ONCE: SyncScheduler = (complete) => complete();

export class MemLogStore implements RaftLogStore {
  private visible: LogState;
  private durable: LogState;
  private pending: WriteOp[] = [];
  /** Bumped by every crash: completions scheduled before it never run. */
  private generation = 0;
  private nextError: Error | null = null;
  /** Counters: saves, compactions, write operations lost in crashes, crashes with a save in flight. */
  readonly counters = { saves: 0, compactions: 0, lostWrites: 0, crashesWithUnsynced: 0 };
  /** A save or compaction whose fsync has not completed. */
  unsyncedSaves = 0;
  /** TEST HOOK: sees every update as `save` begins (the simulator's log-matching check). */
  onSave: ((update: LogUpdate) => void) | null = null;

  constructor(
    bootstrapConf: ConfState,
    private readonly sync: SyncScheduler = SYNC_AT_ONCE,
  ) {
    this.durable = { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: { index: 0, term: 0, confState: bootstrapConf }, entries: [] };
    this.visible = copy(this.durable);
  }

  // ---------------------------------------------------------------- read side

  hardState(): HardState {
    return this.visible.hardState;
  }
  snapshotMeta(): SnapshotMeta {
    return this.visible.snapshot;
  }
  firstIndex(): number {
    return this.visible.snapshot.index + 1;
  }
  lastIndex(): number {
    return this.visible.snapshot.index + this.visible.entries.length;
  }
  term(index: number): number | undefined {
    const snapshot = this.visible.snapshot;
    if (index === snapshot.index) return snapshot.term;
    if (index < snapshot.index || index > this.lastIndex()) return undefined;
    return this.visible.entries[index - snapshot.index - 1]!.term;
  }
  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    assert(this.firstIndex() <= lo && lo <= hi && hi <= this.lastIndex() + 1, 'entries out of range', lo, hi, this.firstIndex(), this.lastIndex());
    const offset = this.visible.snapshot.index + 1;
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hi; index++) {
      const entry = this.visible.entries[index - offset]!;
      bytes += entryBytes(entry);
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  // ---------------------------------------------------------------- write side

  save(update: LogUpdate, done: (error: Error | null) => void): void {
    const ops: WriteOp[] = [];
    if (update.snapshot !== null) ops.push({ kind: 'snapshot', meta: update.snapshot });
    if (update.entries.length > 0) ops.push({ kind: 'entries', entries: update.entries });
    if (update.hardState !== null) ops.push({ kind: 'hard-state', hardState: update.hardState });
    this.counters.saves++;
    this.onSave?.(update);
    this.write(ops, done);
  }

  compact(meta: SnapshotMeta, done: (error: Error | null) => void): void {
    assert(this.visible.snapshot.index <= meta.index && meta.index <= this.lastIndex(), 'compact out of range', meta.index, this.visible.snapshot.index, this.lastIndex());
    this.counters.compactions++;
    this.write([{ kind: 'compact', meta }], done);
  }

  stats(): Readonly<Record<string, number>> {
    return { ...this.counters, entries: this.visible.entries.length, unsyncedSaves: this.unsyncedSaves };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** TEST HOOK: the next save or compaction fails with `error` (nothing of it becomes durable). */
  failNext(error: Error): void {
    this.nextError = error;
  }

  private write(ops: readonly WriteOp[], done: (error: Error | null) => void): void {
    const error = this.nextError;
    this.nextError = null;
    if (error !== null) {
      done(error);
      return;
    }
    for (const op of ops) applyOp(this.visible, op);
    this.pending.push(...ops);
    this.unsyncedSaves++;
    const generation = this.generation;
    this.sync(() => {
      if (generation !== this.generation) return; // the process died before its fsync completed
      // Saves complete in order, one at a time: this fsync covers everything queued so far.
      for (const op of this.pending) applyOp(this.durable, op);
      this.pending = [];
      this.unsyncedSaves = 0;
      done(null);
    });
  }

  // ---------------------------------------------------------------- crashes

  /**
   * Power loss: the durable copy plus a random prefix of the unsynced writes
   * (possibly a torn entries write) survives; completions in flight never run.
   */
  crash(random: Random): void {
    if (this.pending.length > 0) this.counters.crashesWithUnsynced++;
    const keep = random.int(this.pending.length + 1);
    for (let i = 0; i < keep; i++) applyOp(this.durable, this.pending[i]!);
    const torn = this.pending[keep];
    if (torn !== undefined && torn.kind === 'entries' && torn.entries.length > 1) {
      const prefix = random.int(torn.entries.length);
      if (prefix > 0) applyOp(this.durable, { kind: 'entries', entries: torn.entries.slice(0, prefix) });
    }
    this.counters.lostWrites += this.pending.length - keep;
    this.pending = [];
    this.unsyncedSaves = 0;
    this.generation++;
    this.visible = copy(this.durable);
  }

  /**
   * TEST HOOK: the queued writes reach the disk now, but no completion runs
   * (with a crash right after: "the fsync finished, the process died before
   * it could send anything").
   */
  durableNow(): void {
    for (const op of this.pending) applyOp(this.durable, op);
    this.pending = [];
    this.unsyncedSaves = 0;
  }

  /** The durable state (for tests). */
  durableState(): Readonly<LogState> {
    return copy(this.durable);
  }
}

function copy(state: LogState): LogState {
  return { hardState: state.hardState, snapshot: state.snapshot, entries: [...state.entries] };
}

function applyOp(state: LogState, op: WriteOp): void {
  const snapshotIndex = state.snapshot.index;
  switch (op.kind) {
    case 'hard-state':
      state.hardState = op.hardState;
      return;
    case 'snapshot':
      state.snapshot = op.meta;
      state.entries = [];
      return;
    case 'compact':
      if (op.meta.index <= snapshotIndex) return;
      state.entries = state.entries.slice(op.meta.index - snapshotIndex);
      state.snapshot = op.meta;
      return;
    case 'entries': {
      const rest = op.entries.filter((entry) => entry.index > snapshotIndex);
      if (rest.length === 0) return;
      const keep = rest[0]!.index - snapshotIndex - 1;
      assert(keep <= state.entries.length, 'log store append leaves a gap', rest[0]!.index, snapshotIndex, state.entries.length);
      state.entries.length = keep;
      state.entries.push(...rest);
      return;
    }
  }
}
