/**
 * The transport's counters: one `PeerCounters` per known peer (shared by the
 * connection we dial and the one it dials to us) and the transport-wide
 * ones. All counts are since the transport was created; `stats()` copies them
 * into the read-only `TransportStats` of transport.ts.
 */
import type { ErrorCode } from '../errors.js';
import type { ConnectionCounters } from './connection.js';
import type { RefusalReason } from './handshake.js';
import type { DropReason, PeerStats } from './transport.js';

/** Most distinct channels counted per peer; drops on further channels count under '(other)'. */
const CHANNELS_COUNTED_MAX = 32;

export class PeerCounters implements ConnectionCounters {
  bytesIn = 0;
  bytesOut = 0;
  writes = 0;
  sentMessages = 0;
  receivedMessages = 0;
  droppedMessages = 0;
  readonly droppedByChannel = new Map<string, number>();
  readonly droppedByReason = new Map<DropReason, number>();
  /** Successful handshakes after the first one. */
  reconnects = 0;
  connects = 0;
  connectFailures = 0;
  snapshotsSent = 0;
  snapshotsReceived = 0;
  snapshotsFailed = 0;
  handlerErrors = 0;

  drop(channel: string, reason: DropReason, count = 1): void {
    this.droppedMessages += count;
    const key = this.droppedByChannel.has(channel) || this.droppedByChannel.size < CHANNELS_COUNTED_MAX ? channel : '(other)';
    this.droppedByChannel.set(key, (this.droppedByChannel.get(key) ?? 0) + count);
    this.droppedByReason.set(reason, (this.droppedByReason.get(reason) ?? 0) + count);
  }

  snapshot(connected: boolean, inboundConnected: boolean, queuedMessages: number, queuedBytes: number): PeerStats {
    return {
      connected,
      inboundConnected,
      queuedMessages,
      queuedBytes,
      sentMessages: this.sentMessages,
      receivedMessages: this.receivedMessages,
      droppedMessages: this.droppedMessages,
      droppedByChannel: Object.fromEntries(this.droppedByChannel),
      droppedByReason: Object.fromEntries(this.droppedByReason),
      reconnects: this.reconnects,
      connectFailures: this.connectFailures,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      writes: this.writes,
      snapshotsSent: this.snapshotsSent,
      snapshotsReceived: this.snapshotsReceived,
      snapshotsFailed: this.snapshotsFailed,
      handlerErrors: this.handlerErrors,
    };
  }
}

/** Transport-wide counters that belong to no known peer. */
export class TransportCounters {
  /** Connections the acceptor refused, by reason. */
  readonly rejectedByReason = new Map<RefusalReason, number>();
  /** Connections (either direction) closed because of an error, by catalog code. */
  readonly closedByError = new Map<ErrorCode, number>();
  /** Messages to peers not in the address book (dropped). */
  droppedUnknownPeer = 0;
  /** Bytes on connections that never completed a handshake. */
  readonly unauthenticated: ConnectionCounters = { bytesIn: 0, bytesOut: 0, writes: 0 };

  reject(reason: RefusalReason): void {
    this.rejectedByReason.set(reason, (this.rejectedByReason.get(reason) ?? 0) + 1);
  }

  closedWith(code: ErrorCode): void {
    this.closedByError.set(code, (this.closedByError.get(code) ?? 0) + 1);
  }
}
