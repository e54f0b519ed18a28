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
  /** Replaces the address book (from the membership). Connections to removed peers close. */
  setPeers(peers: ReadonlyMap<NodeId, PeerAddress>): void;
  /** Queues `message` for `to`; drops it (counted) when the peer is unknown or its queue is full. */
  send(to: NodeId, message: PeerMessage): void;
  /**
   * Streams a snapshot to `to`: `header` first, then `chunks` in order with
   * flow control. Resolves when the receiver accepted the whole stream; rejects
   * when the connection failed or the receiver refused it.
   */
  sendSnapshot(to: NodeId, header: PeerMessage, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** Figures for /status and /metrics: per-peer connection state, queued bytes, drops, reconnects. */
  stats(): TransportStats;
  close(): Promise<void>;
}

export interface PeerStats {
  readonly connected: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  readonly sentMessages: number;
  readonly droppedMessages: number;
  readonly reconnects: number;
}

export interface TransportStats {
  readonly peers: Readonly<Record<string, PeerStats>>;
  readonly receivedMessages: number;
  readonly rejectedConnections: number;
  readonly snapshotsSent: number;
  readonly snapshotsReceived: number;
}
