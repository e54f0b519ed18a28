/**
 * The seams the Raft driver (driver.ts) runs on, besides `RaftLogStore`
 * (storage.ts) and `Clock` (util/clock.ts). Real nodes plug in the TCP
 * transport and the engine-backed state machine; the simulator plugs in its
 * in-memory, fault-injecting ones (testkit/sim/). Every method completes
 * through a callback, never a promise, so the simulator can complete them from
 * its single event queue and a run stays a pure function of its seed.
 *
 * Callbacks may run synchronously (inside the call) or later; the driver
 * handles both. They must run exactly once.
 */
import type { Entry, NodeId, SnapshotMeta } from './types.js';

/**
 * A message between two members, tagged with its channel and Raft group.
 * Structurally the same as `PeerMessage` in src/transport/transport.ts (the
 * raft layer may not import the transport layer).
 */
export interface GroupMessage {
  readonly channel: string;
  readonly group: number;
  readonly body: unknown;
}

/** The channel name of Raft traffic. */
export const RAFT_CHANNEL = 'raft';

/**
 * How the driver reaches its peers. `P` is the snapshot payload (see
 * `SnapshotImage`). The cluster runtime adapts the node-level `Transport` (one
 * per process, shared by every group): `send` maps to `Transport.send`,
 * `sendSnapshot` to `Transport.sendSnapshot` with the payload as its async
 * iterable of bytes and the promise turned into `done`.
 */
export interface RaftTransport<P> {
  /** Best effort: may drop, delay, duplicate; never throws. */
  send(to: NodeId, message: GroupMessage): void;
  /**
   * Streams a snapshot: `header` (its body is `{ message }`, a `snapshot`
   * Raft message), then the image `payload`. `done(null)` once the receiver
   * accepted the whole stream (it staged the image), `done(error)` when the
   * transfer failed or was refused. Either way the transport is done with
   * `payload` when `done` runs (it releases what the payload holds).
   */
  sendSnapshot(to: NodeId, header: GroupMessage, payload: P, done: (error: Error | null) => void): void;
}

/**
 * A state-machine image: the point of the log it stands for, and its bytes in
 * whatever form `P` the state machine and the transport agree on. The driver
 * never looks inside `payload`: the simulator passes chunk arrays, real nodes
 * a lazy stream (`AsyncIterable<Uint8Array>`) read from an engine snapshot, so
 * an image never has to fit in memory.
 */
export interface SnapshotImage<P> {
  /** The applied index of the image, the term of that entry, and the configuration in force there. */
  readonly meta: SnapshotMeta;
  readonly payload: P;
}

/**
 * The replicated state machine (the key-value store, or the simulator's).
 * `R` is the result of applying one entry, handed back to its proposer; `P`
 * the payload of its snapshot images.
 *
 * Durability contract: the applied index is persisted ATOMICALLY with the
 * effects of the entries up to it (the same engine batch), though perhaps not
 * synced at once; `durableAppliedIndex()` says how far that is durable. After
 * a crash the state machine reopens at its durable applied index and the
 * driver resumes application right after it: nothing is applied twice or
 * skipped. The driver never compacts the log past `durableAppliedIndex()`.
 */
export interface RaftStateMachine<R, P> {
  /**
   * Applies committed entries in order: normal entries (the empty no-op of a
   * new leader included; it changes nothing) and conf-change entries (the
   * state machine keeps the membership, with the addresses in each change's
   * context, and the removed ids). `done(null, results)` with one result per
   * entry once applied (visible to reads); `done(error)` stops the node.
   */
  apply(entries: readonly Entry[], done: (error: Error | null, results?: readonly R[]) => void): void;
  /** Highest applied index whose effects are durable. Never decreases while the node runs. */
  durableAppliedIndex(): number;
  /**
   * An image of the state at the current applied index, carrying its own meta.
   * The payload may be produced lazily as the transport reads it; the
   * transport releases it when the transfer ends.
   */
  snapshot(done: (error: Error | null, image?: SnapshotImage<P>) => void): void;
  /**
   * Consumes a received image's payload and stores it DURABLY without
   * installing it (it must survive a crash until a newer one is staged or it
   * is installed): the log store may record its meta as the log's new
   * beginning before `installSnapshot` runs. `done(error)` for a payload that
   * is malformed, incomplete or does not match `image.meta`.
   */
  stageSnapshot(image: SnapshotImage<P>, done: (error: Error | null) => void): void;
  /**
   * Replaces the whole state by the staged image whose meta is `meta`, durably;
   * the applied index becomes `meta.index`. `done(error)` (no such image, I/O)
   * stops the node.
   */
  installSnapshot(meta: SnapshotMeta, done: (error: Error | null) => void): void;
}
