/**
 * The node-to-node seam. One `Transport` per process carries every message
 * between cluster members: Raft messages of every group (tagged with the group
 * id), the leaderless coordinator's requests and answers, and snapshot streams.
 *
 * Contract (every implementation, real or simulated):
 *   - `send` never blocks and never throws for a reachable or unreachable peer:
 *     delivery is best effort. Messages may be lost, delayed or duplicated;
 *     those to one peer arrive in the order sent, or not at all, while one
 *     connection lasts. Raft and the leaderless layer tolerate all of it.
 *   - Every queue is bounded (per peer, in messages and bytes); when a queue is
 *     full the message is dropped and counted, never buffered without bound.
 *   - Inbound bodies come from the network: receivers validate them before
 *     use. A frame that cannot be decoded closes its connection.
 *   - Handlers run on the event loop, one message at a time, in arrival order
 *     per peer.
 *
 * Implementations: the TCP transport (src/transport/tcp-transport.ts) and the
 * simulator's in-process network (testkit/sim/).
 */
import type { NodeId } from '../raft/types.js';

/** A message between two members. `channel` picks the receiver's handler ('raft', 'dynamo', ...). */
export interface PeerMessage {
  readonly channel: string;
  /** The Raft group (shard) the message belongs to; 0 for node-level channels. */
  readonly group: number;
  /** Any msgpack-encodable value; the receiver validates it. */
  readonly body: unknown;
}

/** Where a member listens for peers: "host:port" (IPv6 hosts in brackets). */
export type PeerAddress = string;

export interface InboundHandlers {
  /** One message from `from`. */
  onMessage(from: NodeId, message: PeerMessage): void;
  /**
   * A snapshot stream from `from`: `header` describes it, `chunks` yields its
   * bytes in order (bounded chunks, flow-controlled: the sender waits while the
   * receiver has not consumed them). Resolve to accept the whole stream; reject
   * (or throw while iterating) to refuse it, which the sender sees as a failed
   * transfer.
   */
  onSnapshot(from: NodeId, header: PeerMessage, chunks: AsyncIterable<Uint8Array>): Promise<void>;
}

export interface Transport {
  readonly localId: NodeId;
  /**
   * Replaces the address book (from the membership). The map may include
   * `localId` (ignored). Connections to removed peers close; a peer whose
   * address changed is redialled at the new one. Throws
   * IMPULSE_ERR_CONFIG_INVALID for a malformed address (and changes nothing).
   */
  setPeers(peers: ReadonlyMap<NodeId, PeerAddress>): void;
  /** Queues `message` for `to`; drops it (counted) when the peer is unknown or its queue is full. Never throws. */
  send(to: NodeId, message: PeerMessage): void;
  /**
   * Streams a snapshot to `to`: `header` first, then `chunks` in order with
   * flow control. Resolves when the receiver accepted the whole stream; rejects
   * (an ImpulseError) when the connection failed, the stream stalled or the
   * receiver refused it. At most one stream per peer and direction: a second
   * one while the first is in progress rejects at once with
   * IMPULSE_ERR_TRANSPORT_SNAPSHOT_BUSY. Messages to the same peer keep
   * flowing while it streams.
   */
  sendSnapshot(to: NodeId, header: PeerMessage, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** Figures for /status and /metrics: per-peer connection state, queued bytes, drops, reconnects. */
  stats(): TransportStats;
  /** Stops everything: no more sends or deliveries, pending snapshot sends reject. Idempotent. */
  close(): Promise<void>;
}

/** Why a message was dropped instead of sent (`PeerStats.droppedByReason`). */
export type DropReason =
  /** The peer's queue was at its message or byte bound. */
  | 'queue-full'
  /** The encoded message is larger than the maximum frame (or the whole queue). */
  | 'too-large'
  /** The body could not be msgpack-encoded, or the channel/group is malformed. */
  | 'invalid'
  /** Queued when the connection failed: queued messages are not carried over to the next connection. */
  | 'disconnected'
  /** The transport was closing, or the peer was removed from the address book. */
  | 'closed';

export interface PeerStats {
  /** Our connection to the peer is open (handshake done). */
  readonly connected: boolean;
  /** The peer's connection to us is open (handshake done). */
  readonly inboundConnected: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  readonly sentMessages: number;
  readonly receivedMessages: number;
  readonly droppedMessages: number;
  /** Dropped messages by channel (at most 32 channels, the rest under '(other)'). */
  readonly droppedByChannel: Readonly<Record<string, number>>;
  readonly droppedByReason: Readonly<Partial<Record<DropReason, number>>>;
  /** Successful handshakes after the first. */
  readonly reconnects: number;
  /** Dials or handshakes that failed. */
  readonly connectFailures: number;
  /** Bytes read from and written to this peer's connections, both directions. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Socket write calls (a batch of queued messages is one write). */
  readonly writes: number;
  readonly snapshotsSent: number;
  readonly snapshotsReceived: number;
  /** Streams in either direction that failed, were refused or were aborted. */
  readonly snapshotsFailed: number;
  /** Inbound handlers (onMessage/onSnapshot) that threw; logged, never fatal. */
  readonly handlerErrors: number;
}

export interface TransportStats {
  /** Keyed by node id (as a string); every peer in the address book. */
  readonly peers: Readonly<Record<string, PeerStats>>;
  /** Sums over `peers`. */
  readonly sentMessages: number;
  readonly receivedMessages: number;
  readonly droppedMessages: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Messages to node ids not in the address book (dropped, not in `droppedMessages`). */
  readonly droppedUnknownPeer: number;
  /** Inbound connections refused at the handshake, in total and by reason ('cluster-mismatch', 'duplicate-id', ...). */
  readonly rejectedConnections: number;
  readonly rejectedByReason: Readonly<Record<string, number>>;
  /** Connections closed because of an error, by catalog code (IMPULSE_ERR_TRANSPORT_FRAME_INVALID, ...). */
  readonly closedByError: Readonly<Record<string, number>>;
  readonly snapshotsSent: number;
  readonly snapshotsReceived: number;
  /** Waits of snapshot senders for the node's snapshot send rate (`snapshotSendBytesPerSecondMax`), and their milliseconds in total. */
  readonly snapshotRateWaits: number;
  readonly snapshotRateWaitMs: number;
}
