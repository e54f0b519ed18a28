/**
 * The Raft log's storage seam (etcd-io/raft `Storage`, hashicorp/raft
 * `LogStore` + `StableStore`): what the core reads on demand, and what the
 * driver writes after each `Ready`.
 *
 * Two implementations: the durable, segmented log on the `Vfs` seam
 * (src/raft/log-store/) that real nodes use, and an in-memory one with a crash
 * model that the simulator uses (testkit/sim/). Both keep one Raft group's log;
 * a process hosting many groups opens one store per group.
 *
 * Who calls what:
 *   - the core (src/raft/raft.ts, log.ts) calls only the read methods
 *     (`RaftStorage`), synchronously, from the driver's single thread of
 *     control. They see every entry the driver has handed to `save`, durable or
 *     not yet (the core itself never asks for entries it has not persisted).
 *   - the driver calls `save` once per Ready and `compact` after the state
 *     machine made a snapshot durable. Calls are never concurrent: the driver
 *     waits for `done` before the next `save` or `compact`.
 *
 * Errors: a read that fails (I/O error, checksum mismatch) throws an
 * `ImpulseError` (IMPULSE_ERR_ENGINE_IO / IMPULSE_ERR_ENGINE_CORRUPTION naming
 * the file); a failed `save` or `compact` reports it to `done`. Either way the
 * node must stop (fail-stop): Raft's promises rest on this log.
 */
import type { Entry, HardState, SnapshotMeta } from './types.js';

/**
 * Where the log begins: the last index and term a snapshot covers and the
 * configuration at that index. Index 0 / term 0 with the bootstrap
 * configuration before any snapshot. (Defined with the core's types; exported
 * here too for the log stores.)
 */
export type { SnapshotMeta };

/** The read side, used by the Raft core. */
export interface RaftStorage {
  /** The hard state as last saved (term 0, vote 0, commit 0 for a new log). */
  hardState(): HardState;
  /** The newest snapshot boundary saved or compacted to (index 0 for a new log). */
  snapshotMeta(): SnapshotMeta;
  /** `snapshotMeta().index + 1`: the first index that may hold an entry. */
  firstIndex(): number;
  /** Index of the last entry, or `snapshotMeta().index` when there is none after it. */
  lastIndex(): number;
  /**
   * The term of the entry at `index`, for `snapshotMeta().index <= index <=
   * lastIndex()` (at the snapshot index: the snapshot's term); undefined
   * outside that range. Cheap: answered from memory.
   */
  term(index: number): number | undefined;
  /**
   * Entries with indexes in [lo, hi), ascending and contiguous, stopping
   * before the total payload would pass `bytesMax` (but always at least one
   * entry when lo < hi). Requires firstIndex() <= lo <= hi <= lastIndex() + 1.
   * May read from disk (synchronously).
   */
  entries(lo: number, hi: number, bytesMax: number): Entry[];
}

/** One Ready's worth of writes, applied in this order. */
export interface LogUpdate {
  /**
   * A snapshot installed from the leader: the new log boundary. Every entry is
   * discarded (the state machine was replaced by the snapshot's image).
   */
  readonly snapshot: SnapshotMeta | null;
  /**
   * Entries to append, contiguous and ascending. They replace every stored
   * entry at index >= entries[0].index (a conflicting suffix is truncated);
   * entries[0].index <= lastIndex() + 1. Committed entries are never replaced
   * (the core asserts it).
   */
  readonly entries: readonly Entry[];
  /** The new hard state, or null when unchanged. */
  readonly hardState: HardState | null;
}

/** The write side, used by the driver. */
export interface RaftLogStore extends RaftStorage {
  /**
   * Writes `update` and makes it DURABLE (one fsync for the whole update,
   * plus a directory fsync when a new segment file was created), then calls
   * `done(null)`. The read side reflects the update as soon as `save` returns.
   * On failure `done(error)`: what is durable is unknown, and the node must
   * stop.
   */
  save(update: LogUpdate, done: (error: Error | null) => void): void;
  /**
   * Drops the entries up to and including `meta.index` (the state machine has
   * made its state at that index durable) and records `meta` as the new
   * boundary. Requires snapshotMeta().index <= meta.index <= lastIndex().
   * Space is reclaimed in whole segments; `done` once the new boundary is
   * durable.
   */
  compact(meta: SnapshotMeta, done: (error: Error | null) => void): void;
  /** Figures for /status and /metrics (segments, bytes, fsync latency, ...). */
  stats(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}
