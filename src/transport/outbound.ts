/**
 * Our connection to one peer: we dial it, it carries our messages and
 * snapshot streams to the peer, and brings back only control frames (the
 * handshake answer, PONGs, snapshot credit and verdicts).
 *
 * States:
 *   idle ──send──▶ connecting ──WELCOME──▶ open
 *     ▲               │ failure             │ failure
 *     └──timer── backoff ◀──────────────────┘
 *
 * It dials lazily (on the first message or snapshot), and after a failure
 * waits a jittered exponential backoff (reset by a successful handshake)
 * before dialling again, and only if something is waiting to be sent.
 * Messages queued when a connection fails are dropped (counted as
 * 'disconnected'): Raft and the leaderless layer resend what still matters,
 * and a reconnect should not flush a burst of stale traffic.
 *
 * Batching: `send` queues and schedules one flush with setImmediate, so every
 * message queued during the same event-loop turn leaves in one socket write
 * (up to `writeBatchBytesMax`) without waiting for any timer.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { ByteRate } from './byte-rate.js';
import type { Backoff } from './backoff.js';
import { FramedConnection } from './connection.js';
import { decodeSnapshotAbort, decodeSnapshotDone, decodeStreamCount } from './envelopes.js';
import { type Frame, FrameType, encodeValueFrame, preamble, unpackValue } from './frames.js';
import { describeIds, helloToWire, parseRefusal, parseWelcome } from './handshake.js';
import { SendQueue } from './send-queue.js';
import { OutgoingSnapshot } from './snapshot-send.js';
import type { HostPort, SocketFactory } from './socket-factory.js';
import type { PeerCounters, TransportCounters } from './stats.js';
import type { PeerMessage } from './transport.js';
import type { TransportLimits } from './options.js';

export interface OutboundPeerOptions {
  readonly peerId: NodeId;
  readonly localId: NodeId;
  readonly clusterId: string;
  readonly incarnation: number;
  readonly socketFactory: SocketFactory;
  readonly clock: Clock;
  readonly backoff: Backoff;
  readonly limits: TransportLimits;
  /** The transport's snapshot send rate, shared by every peer's streams. */
  readonly snapshotRate: ByteRate;
  readonly counters: PeerCounters;
  readonly transportCounters: TransportCounters;
  readonly logger: Logger;
}

type State = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed';

export class OutboundPeer {
  private state: State = 'idle';
  private address: HostPort;
  private readonly queue: SendQueue;
  private connection: FramedConnection | null = null;
  private connectAbort: AbortController | null = null;
  private timer: TimerHandle | null = null;
  private flushScheduled = false;
  private snapshot: OutgoingSnapshot | null = null;
  private nextStreamId = 1;
  /** Failures since the last open connection; the first of a streak is logged at warn, the rest at debug. */
  private failureStreak = 0;
  /** The node ids the current connection's peer is certified to be (TLS), or null (plain TCP). */
  private certified: readonly NodeId[] | null = null;

  constructor(
    private readonly options: OutboundPeerOptions,
    address: HostPort,
  ) {
    this.address = address;
    this.queue = new SendQueue(options.limits.queueMessagesMax, options.limits.queueBytesMax);
  }

  get connected(): boolean {
    return this.state === 'open';
  }

  get queuedMessages(): number {
    return this.queue.length;
  }

  get queuedBytes(): number {
    return this.queue.bytes;
  }

  /** Queues an encoded MESSAGE frame, or drops it (counted) when the queue is full. */
  send(frame: Buffer, channel: string): void {
    const counters = this.options.counters;
    if (this.state === 'closed') return counters.drop(channel, 'closed');
    if (frame.length > this.queue.bytesMax) return counters.drop(channel, 'too-large');
    if (!this.queue.offer({ frame, channel })) return counters.drop(channel, 'queue-full');
    if (this.state === 'open') this.scheduleFlush();
    else if (this.state === 'idle') this.connect();
  }

  sendSnapshot(header: PeerMessage, source: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new ImpulseError('IMPULSE_ERR_TRANSPORT_CLOSED'));
    if (this.snapshot !== null) {
      return Promise.reject(new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_BUSY', `a snapshot stream to node ${this.options.peerId} is in progress`));
    }
    const { limits, clock, counters } = this.options;
    const stream = new OutgoingSnapshot({
      streamId: this.nextStreamId++,
      header,
      source,
      chunkBytesMax: limits.snapshotChunkBytesMax,
      stallTimeoutMs: limits.snapshotStallTimeoutMs,
      clock,
      rate: this.options.snapshotRate,
      onFinished: (accepted) => {
        if (this.snapshot === stream) this.snapshot = null;
        if (accepted) counters.snapshotsSent++;
        else counters.snapshotsFailed++;
      },
    });
    this.snapshot = stream;
    if (this.state === 'open') stream.start(this.connection!);
    else if (this.state === 'idle') this.connect();
    return stream.promise;
  }

  /** Points the peer at a new address: the current connection (if any) closes, the next send dials the new one. */
  setAddress(address: HostPort): void {
    if (address.host === this.address.host && address.port === this.address.port) return;
    this.address = address;
    this.options.backoff.reset();
    this.failureStreak = 0;
    if (this.state === 'open' || this.state === 'connecting') this.disconnect(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', 'the peer moved to another address'));
    if (this.state === 'backoff') this.toIdle();
  }

  /** Closes for good: queued messages are dropped, a snapshot in progress rejects with IMPULSE_ERR_TRANSPORT_CLOSED. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.timer?.cancel();
    this.connectAbort?.abort();
    this.connection?.close(null);
    this.connection = null;
    this.snapshot?.fail(new ImpulseError('IMPULSE_ERR_TRANSPORT_CLOSED', `the connection to node ${this.options.peerId} was closed by this node`));
    this.dropQueued('closed');
  }

  private connect(): void {
    this.state = 'connecting';
    const abort = new AbortController();
    this.connectAbort = abort;
    const { clock, limits, socketFactory } = this.options;
    const timeout = clock.setTimer(limits.connectTimeoutMs, () => abort.abort());
    const address = this.address;
    socketFactory.connect(address, abort.signal).then(
      (socket) => {
        timeout.cancel();
        if (this.connectAbort !== abort || this.state !== 'connecting') return void socket.destroy();
        this.connectAbort = null;
        this.handshake(socket);
      },
      (error: unknown) => {
        timeout.cancel();
        if (this.connectAbort !== abort || this.state !== 'connecting') return;
        this.connectAbort = null;
        const reason = abort.signal.aborted ? `no connection within ${limits.connectTimeoutMs} ms` : String((error as Error).message ?? error);
        this.onFailure(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', `cannot connect to ${address.host}:${address.port}: ${reason}`, { cause: error }));
      },
    );
  }

  private handshake(socket: Socket): void {
    const { clock, limits, counters } = this.options;
    this.certified = this.options.socketFactory.certifiedNodeIds?.(socket) ?? null;
    const connection: FramedConnection = new FramedConnection({
      socket,
      clock,
      frameBytesMax: limits.frameBytesMax,
      pingIntervalMs: limits.pingIntervalMs,
      silenceTimeoutMs: limits.silenceTimeoutMs,
      counters,
      onFrame: (frame) => this.onFrame(frame),
      onDrain: () => this.flush(),
      onClose: (error) => this.onConnectionClosed(connection, error),
    });
    this.connection = connection;
    const { localId, peerId, clusterId, incarnation } = this.options;
    connection.write([preamble(), encodeValueFrame(FrameType.hello, helloToWire({ clusterId, from: localId, to: peerId, incarnation }))]);
    this.timer = clock.setTimer(limits.handshakeTimeoutMs, () =>
      connection.close(new ImpulseError('IMPULSE_ERR_TRANSPORT_HANDSHAKE_TIMEOUT', `node ${peerId} did not answer the handshake within ${limits.handshakeTimeoutMs} ms`)),
    );
  }

  private onFrame(frame: Frame): void {
    if (this.state === 'connecting') return this.onHandshakeFrame(frame);
    const stream = this.snapshot;
    switch (frame.type) {
      case FrameType.snapshotCredit: {
        const { streamId, count } = decodeStreamCount(frame.payload, 'snapshot credit');
        if (stream?.streamId === streamId) stream.onCredit(count);
        return; // credit for a stream already over: in flight when it ended
      }
      case FrameType.snapshotDone: {
        const verdict = decodeSnapshotDone(frame.payload);
        if (stream?.streamId === verdict.streamId) stream.onVerdict(verdict.accepted, verdict.message);
        return;
      }
      case FrameType.snapshotAbort: {
        const abort = decodeSnapshotAbort(frame.payload);
        if (stream?.streamId === abort.streamId) stream.onAbort(abort.code, abort.message);
        return;
      }
      default:
        throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `unexpected frame type ${frame.type} from node ${this.options.peerId} on our connection`);
    }
  }

  private onHandshakeFrame(frame: Frame): void {
    const { peerId } = this.options;
    if (frame.type === FrameType.refuse) {
      const refusal = parseRefusal(unpackValue(frame.payload, 'refusal'));
      throw new ImpulseError('IMPULSE_ERR_TRANSPORT_HANDSHAKE_REFUSED', `node ${peerId} refused the connection: ${refusal?.reason ?? 'malformed refusal'} (${refusal?.message ?? ''})`, {
        details: { reason: refusal?.reason ?? 'malformed-refusal', peer: peerId },
      });
    }
    if (frame.type !== FrameType.welcome) throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `frame type ${frame.type} before the handshake answer`);
    const welcome = parseWelcome(unpackValue(frame.payload, 'welcome'));
    if (welcome === null) throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', 'malformed welcome');
    if (welcome.node !== peerId) {
      throw new ImpulseError('IMPULSE_ERR_TRANSPORT_HANDSHAKE_REFUSED', `${this.address.host}:${this.address.port} is node ${welcome.node}, not node ${peerId}`, {
        details: { reason: 'wrong-node', peer: peerId },
      });
    }
    if (this.certified !== null && !this.certified.includes(peerId)) {
      throw new ImpulseError('IMPULSE_ERR_TRANSPORT_HANDSHAKE_REFUSED', `${this.address.host}:${this.address.port} answers as node ${peerId} but its certificate names ${describeIds(this.certified)}`, {
        details: { reason: 'certificate-mismatch', peer: peerId },
      });
    }
    this.timer?.cancel();
    this.timer = null;
    this.state = 'open';
    this.options.backoff.reset();
    const counters = this.options.counters;
    if (counters.connects++ > 0) counters.reconnects++;
    this.options.logger.info({ peer: peerId, address: this.address, peerIncarnation: welcome.incarnation, afterFailures: this.failureStreak }, 'connected to peer');
    this.failureStreak = 0;
    this.snapshot?.start(this.connection!);
    this.flush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes queued messages while the socket takes them, then lets a snapshot stream use what is left. */
  private flush(): void {
    const connection = this.connection;
    if (this.state !== 'open' || connection === null) return;
    const counters = this.options.counters;
    while (this.queue.length > 0 && !connection.backpressured) {
      const batch = this.queue.takeBatch(this.options.limits.writeBatchBytesMax);
      counters.sentMessages += batch.length;
      connection.write(batch);
    }
    this.snapshot?.onDrain();
  }

  private disconnect(error: ImpulseError): void {
    if (this.state === 'connecting' && this.connectAbort !== null) {
      this.connectAbort.abort();
      this.connectAbort = null;
      this.onFailure(error);
    } else {
      this.connection?.close(error);
    }
  }

  private onConnectionClosed(connection: FramedConnection, error: ImpulseError | null): void {
    if (connection !== this.connection) return;
    this.connection = null;
    this.timer?.cancel();
    this.timer = null;
    if (this.state === 'closed') return;
    this.onFailure(error ?? new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', 'connection closed'));
  }

  /** A dial, a handshake or an open connection failed: count, log, drop the queue, fail a stream, back off. */
  private onFailure(error: ImpulseError): void {
    const { counters, transportCounters, peerId, logger } = this.options;
    const wasOpen = this.state === 'open';
    if (!wasOpen) counters.connectFailures++;
    transportCounters.closedWith(error.code);
    const level = wasOpen || this.failureStreak === 0 ? 'warn' : 'debug';
    logger[level]({ peer: peerId, code: error.code, err: error, address: this.address, failures: this.failureStreak + 1 }, wasOpen ? 'connection to peer lost' : 'cannot connect to peer');
    this.failureStreak++;
    this.snapshot?.fail(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', `connection to node ${peerId} failed: ${error.message}`, { cause: error }));
    this.dropQueued('disconnected');
    this.state = 'backoff';
    this.timer = this.options.clock.setTimer(this.options.backoff.nextDelayMs(), () => this.toIdle());
  }

  /** Back to idle; dial again at once if something is waiting. */
  private toIdle(): void {
    this.timer?.cancel();
    this.timer = null;
    this.state = 'idle';
    if (this.queue.length > 0 || this.snapshot !== null) this.connect();
  }

  private dropQueued(reason: 'disconnected' | 'closed'): void {
    for (const entry of this.queue.clear()) this.options.counters.drop(entry.channel, reason);
  }
}
