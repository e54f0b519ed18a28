/**
 * The TCP transport's options and bounds, with defaults and validation.
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import type { Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';
import { CLUSTER_ID_BYTES_MAX, isNodeId } from './handshake.js';
import type { SocketFactory } from './socket-factory.js';
import type { InboundHandlers, PeerAddress } from './transport.js';

/** Every bound of the transport. Times in ms, sizes in bytes. */
export interface TransportLimits {
  /**
   * Largest frame (one message, or one snapshot chunk plus 9 bytes) sent or
   * accepted. It must carry the largest Raft entry: with the API's 64 MiB
   * batch limit that is 64 MiB plus encoding, hence 72 MiB. A larger message
   * is dropped at `send` (reason 'too-large'); a larger incoming frame closes
   * the connection.
   */
  readonly frameBytesMax: number;
  /** Per-peer queue bounds; a message that does not fit is dropped ('queue-full'). */
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  /** Most bytes of queued messages joined into one socket write. */
  readonly writeBatchBytesMax: number;
  /** A dial that has not connected by then fails. */
  readonly connectTimeoutMs: number;
  /** Both sides: a connection whose handshake is not complete by then closes. */
  readonly handshakeTimeoutMs: number;
  /** The dialer PINGs this often; the acceptor answers. */
  readonly pingIntervalMs: number;
  /** Either side closes a connection on which nothing arrived for this long. */
  readonly silenceTimeoutMs: number;
  /** How long a live connection has to answer before a second one with its node id (another incarnation) replaces it. */
  readonly duplicateProbeTimeoutMs: number;
  /** Reconnect backoff: jittered exponential from initial to max. */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Snapshot chunks are at most this large. */
  readonly snapshotChunkBytesMax: number;
  /** Chunks a receiver buffers (and a sender may have in flight) per stream. */
  readonly snapshotWindowChunks: number;
  /** A stream with no progress for this long is aborted on both sides. */
  readonly snapshotStallTimeoutMs: number;
  /**
   * Most bytes a second this transport sends in snapshot streams, all peers
   * and groups together (byte-rate.ts); the sender waits, it never drops.
   * With `snapshotWindowChunks` and the default stall timeout, at least 64 KiB/s.
   */
  readonly snapshotSendBytesPerSecondMax: number;
  /** Inbound connections still in their handshake; more are closed at once. */
  readonly inboundPendingMax: number;
}

export const DEFAULT_LIMITS: TransportLimits = {
  frameBytesMax: 72 * 1024 * 1024,
  queueMessagesMax: 4096,
  queueBytesMax: 128 * 1024 * 1024,
  writeBatchBytesMax: 256 * 1024,
  connectTimeoutMs: 3000,
  handshakeTimeoutMs: 3000,
  pingIntervalMs: 1000,
  silenceTimeoutMs: 10_000,
  duplicateProbeTimeoutMs: 1500,
  backoffInitialMs: 100,
  backoffMaxMs: 3000,
  snapshotChunkBytesMax: 256 * 1024,
  snapshotWindowChunks: 4,
  snapshotStallTimeoutMs: 30_000,
  snapshotSendBytesPerSecondMax: 64 * 1024 * 1024,
  inboundPendingMax: 64,
};

export interface TcpTransportOptions {
  /** This node's id: a positive safe integer. */
  readonly localId: NodeId;
  /** Every node of a cluster has the same id; a connection from another cluster is refused. At most 128 bytes. */
  readonly clusterId: string;
  /** Where to listen for peers; port 0 picks a free port (see `TcpTransport.address`). */
  readonly listenHost: string;
  readonly listenPort: number;
  /** The initial address book (may include localId); `setPeers` replaces it. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /** Where inbound messages and snapshot streams go. Their exceptions are logged and counted, never fatal. */
  readonly handlers: InboundHandlers;
  readonly logger: Logger;
  /** Timers (handshake, keepalive, backoff, stalls). Default: the system clock. */
  readonly clock?: Clock;
  /** Jitter and the incarnation nonce. Default: seeded from the OS. */
  readonly random?: Random;
  /** Default: plain TCP (`NetSocketFactory`). */
  readonly socketFactory?: SocketFactory;
  /**
   * Accept a dialer whose node id is not in our address book. Default false:
   * such a connection is refused ('unknown-peer') and the dialer retries with
   * backoff, which lets it in as soon as our membership (setPeers) lists it.
   * A joining node's first messages to members that have not applied its
   * addition yet are thus refused and retried, which Raft tolerates. Set true
   * where the address book is known to lag (a seed node that learns members
   * from their first message).
   */
  readonly acceptUnknownPeers?: boolean;
  readonly limits?: Partial<TransportLimits>;
}

function invalid(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `transport: ${message}`);
}

/** The limits with defaults filled in; throws IMPULSE_ERR_CONFIG_INVALID for a value out of range. */
/** The lowest snapshot send rate accepted: below it a stream's pieces would wait on the rate for seconds each. */
export const SNAPSHOT_SEND_BYTES_PER_SECOND_MIN = 64 * 1024;

export function resolveLimits(overrides: Partial<TransportLimits> = {}): TransportLimits {
  const limits: TransportLimits = { ...DEFAULT_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw invalid(`${name} must be a positive integer, got ${String(value)}`);
  }
  if (limits.frameBytesMax < limits.snapshotChunkBytesMax + 9) throw invalid('frameBytesMax must hold a snapshot chunk (snapshotChunkBytesMax + 9)');
  if (limits.frameBytesMax > 0xffff_ffff) throw invalid('frameBytesMax must fit in 32 bits');
  if (limits.silenceTimeoutMs <= 2 * limits.pingIntervalMs) throw invalid('silenceTimeoutMs must exceed twice pingIntervalMs');
  if (limits.backoffMaxMs < limits.backoffInitialMs) throw invalid('backoffMaxMs must be at least backoffInitialMs');
  if (limits.snapshotSendBytesPerSecondMax < SNAPSHOT_SEND_BYTES_PER_SECOND_MIN) throw invalid(`snapshotSendBytesPerSecondMax must be at least ${SNAPSHOT_SEND_BYTES_PER_SECOND_MIN}`);
  return limits;
}

export function checkIdentity(localId: NodeId, clusterId: string): void {
  if (!isNodeId(localId)) throw invalid(`localId must be a positive integer, got ${String(localId)}`);
  if (typeof clusterId !== 'string' || clusterId.length === 0 || Buffer.byteLength(clusterId) > CLUSTER_ID_BYTES_MAX) {
    throw invalid(`clusterId must be a string of 1-${CLUSTER_ID_BYTES_MAX} bytes`);
  }
}
