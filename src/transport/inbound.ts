/**
 * A connection a peer dialled to us: the preamble and HELLO are checked, then
 * it carries the peer's messages and snapshot streams to our handlers, and we
 * answer only with control frames (WELCOME or REFUSE, PONGs, snapshot credit
 * and verdicts).
 *
 * Everything that arrives is checked before anything is applied: a bad
 * preamble or HELLO refuses the connection; an undecodable frame, an unknown
 * or unexpected frame type, a malformed envelope or a snapshot chunk out of
 * sequence closes it with a coded error, and the frame is not delivered.
 * Handlers run inside try/catch: one that throws is logged and counted.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { FramedConnection } from './connection.js';
import { decodeMessage, decodeSnapshotAbort, decodeSnapshotBegin, decodeStreamCount } from './envelopes.js';
import { type Frame, FrameType, PROTOCOL_VERSION, decodeChunk, encodeValueFrame, unpackValue } from './frames.js';
import { type Hello, type RefusalReason, describeIds, parseHello, welcomeToWire } from './handshake.js';
import type { TransportLimits } from './options.js';
import { IncomingSnapshot } from './snapshot-receive.js';
import type { PeerCounters, TransportCounters } from './stats.js';
import type { InboundHandlers, PeerMessage } from './transport.js';

/** What an inbound connection needs from the transport that accepted it. */
export interface InboundHost {
  readonly localId: NodeId;
  readonly incarnation: number;
  readonly clock: Clock;
  readonly limits: TransportLimits;
  readonly logger: Logger;
  readonly handlers: InboundHandlers;
  readonly counters: TransportCounters;
  /** The stateless HELLO checks (cluster, own id, wrong node, unknown peer). */
  checkHello(hello: Hello): RefusalReason | null;
  /** The node ids the socket's peer is certified to be (TLS), or null when any may be claimed (plain TCP). */
  certifiedNodeIds(socket: Socket): readonly NodeId[] | null;
  /** The duplicate-id rule; calls `decide` once (maybe later, after a liveness probe) with null to admit. */
  admit(connection: InboundConnection, hello: Hello, decide: (refusal: RefusalReason | null) => void): void;
  /** The counters of a peer admitted by `admit`. */
  countersOf(peerId: NodeId): PeerCounters;
  /** The connection is gone (refused, failed or closed). */
  onClosed(connection: InboundConnection): void;
}

const REFUSAL_CODES: Partial<Record<RefusalReason, ImpulseError['code']>> = { 'handshake-timeout': 'IMPULSE_ERR_TRANSPORT_HANDSHAKE_TIMEOUT' };

export class InboundConnection {
  /** The dialer's node id and incarnation once its HELLO passed the checks. */
  peerId: NodeId | null = null;
  incarnation = -1;
  private state: 'preamble' | 'hello' | 'admitting' | 'open' | 'closed' = 'preamble';
  private readonly connection: FramedConnection;
  private handshakeTimer: TimerHandle | null;
  private counters: PeerCounters | null = null;
  private incoming: IncomingSnapshot | null = null;
  /** The id of the latest stream begun on this connection; ids must grow. */
  private lastStreamId = 0;
  /** See InboundHost.certifiedNodeIds; read once, when the (already verified) socket arrives. */
  private readonly certified: readonly NodeId[] | null;

  constructor(
    socket: Socket,
    private readonly host: InboundHost,
  ) {
    const { clock, limits } = host;
    this.certified = host.certifiedNodeIds(socket);
    this.connection = new FramedConnection({
      socket,
      clock,
      frameBytesMax: limits.frameBytesMax,
      pingIntervalMs: 0,
      silenceTimeoutMs: limits.silenceTimeoutMs,
      counters: host.counters.unauthenticated,
      onPreamble: (magicOk, version) => this.onPreamble(magicOk, version),
      onFrame: (frame) => this.onFrame(frame),
      onDrain: () => undefined,
      onClose: (error) => this.onClose(error),
    });
    this.handshakeTimer = clock.setTimer(limits.handshakeTimeoutMs, () => this.refuse('handshake-timeout', `no handshake within ${limits.handshakeTimeoutMs} ms`));
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** See FramedConnection.probe. */
  probe(timeoutMs: number, done: (alive: boolean) => void): void {
    this.connection.probe(timeoutMs, done);
  }

  /** Closes the connection (peer removed, superseded, transport closing); a stream in progress fails with `error`. */
  close(error: ImpulseError): void {
    this.incoming?.fail(error, true);
    this.connection.close(null);
  }

  private onPreamble(magicOk: boolean, version: number): void {
    if (!magicOk) return this.refuse('bad-magic', 'the connection does not start with the impulse magic', false);
    if (version !== PROTOCOL_VERSION) return this.refuse('bad-version', `protocol version ${version}, this node speaks ${PROTOCOL_VERSION}`);
    this.state = 'hello';
  }

  private onFrame(frame: Frame): void {
    switch (this.state) {
      case 'hello':
        return this.onHello(frame);
      case 'open':
        return this.onOpenFrame(frame);
      default:
        // 'admitting': the dialer must wait for our answer before it sends anything else.
        throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `frame type ${frame.type} before the handshake completed`);
    }
  }

  private onHello(frame: Frame): void {
    if (frame.type !== FrameType.hello) return this.refuse('malformed-hello', `frame type ${frame.type} where HELLO was due`);
    const hello = parseHello(unpackValue(frame.payload, 'hello'));
    if (hello === null) return this.refuse('malformed-hello', 'HELLO is missing fields or has wrong types');
    const reason = this.host.checkHello(hello);
    if (reason !== null) return this.refuse(reason, `from node ${hello.from} (cluster ${JSON.stringify(hello.clusterId)}) to node ${hello.to}`, true, hello.from);
    if (this.certified !== null && !this.certified.includes(hello.from)) {
      return this.refuse('certificate-mismatch', `the peer claims node ${hello.from} but its certificate names ${describeIds(this.certified)}`, true, hello.from);
    }
    this.state = 'admitting';
    this.host.admit(this, hello, (refusal) => {
      if (this.state !== 'admitting') return; // closed while the duplicate probe ran
      if (refusal !== null) return this.refuse(refusal, `node ${hello.from} is already connected with another incarnation`, true, hello.from);
      this.open(hello);
    });
  }

  private open(hello: Hello): void {
    this.handshakeTimer?.cancel();
    this.handshakeTimer = null;
    this.peerId = hello.from;
    this.incarnation = hello.incarnation;
    this.counters = this.host.countersOf(hello.from);
    this.connection.counters = this.counters;
    this.state = 'open';
    this.connection.write([encodeValueFrame(FrameType.welcome, welcomeToWire({ node: this.host.localId, incarnation: this.host.incarnation }))]);
    this.host.logger.info({ peer: hello.from, remote: this.connection.remoteAddress }, 'peer connected');
  }

  /** Refuses the connection: counted by reason, logged with its code, REFUSE sent (unless `tell` is false), closed. */
  private refuse(reason: RefusalReason, message: string, tell = true, peer?: NodeId): void {
    if (this.state === 'closed') return;
    const code = REFUSAL_CODES[reason] ?? 'IMPULSE_ERR_TRANSPORT_HANDSHAKE_REFUSED';
    const error = new ImpulseError(code, `refused a connection from ${this.connection.remoteAddress}: ${reason}: ${message}`, { details: { reason } });
    this.host.counters.reject(reason);
    this.host.counters.closedWith(code);
    this.host.logger.warn({ code, reason, peer, remote: this.connection.remoteAddress }, error.message);
    this.state = 'closed';
    if (tell) this.connection.closeAfter(encodeValueFrame(FrameType.refuse, { code, reason, message }), error);
    else this.connection.close(error);
  }

  private onOpenFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.message:
        return this.deliver(decodeMessage(frame.payload));
      case FrameType.snapshotBegin: {
        const { streamId, header } = decodeSnapshotBegin(frame.payload);
        return this.beginSnapshot(streamId, header);
      }
      case FrameType.snapshotChunk: {
        const chunk = decodeChunk(frame.payload);
        return this.streamFor(chunk.streamId)?.onChunk(chunk.sequence, chunk.bytes);
      }
      case FrameType.snapshotEnd: {
        const end = decodeStreamCount(frame.payload, 'snapshot end');
        return this.streamFor(end.streamId)?.onEnd(end.count);
      }
      case FrameType.snapshotAbort: {
        const abort = decodeSnapshotAbort(frame.payload);
        const error = new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED', `the sender aborted the snapshot (${abort.code}): ${abort.message}`);
        return this.streamFor(abort.streamId)?.fail(error, true);
      }
      default:
        throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `unexpected frame type ${frame.type} from node ${this.peerId}`);
    }
  }

  private deliver(message: PeerMessage): void {
    const counters = this.counters!;
    counters.receivedMessages++;
    try {
      this.host.handlers.onMessage(this.peerId!, message);
    } catch (error) {
      counters.handlerErrors++;
      this.host.logger.error({ err: error, peer: this.peerId, channel: message.channel, group: message.group }, 'message handler threw; message discarded');
    }
  }

  /**
   * The stream a chunk, end or abort belongs to; undefined (frame ignored) for
   * the latest stream when this side already ended it, since up to a window
   * of its frames may still be in flight. Any other id is a sequence error.
   */
  private streamFor(streamId: number): IncomingSnapshot | undefined {
    const active = this.incoming;
    if (active !== null && active.streamId === streamId && !active.failed) return active;
    if (streamId === this.lastStreamId) return undefined;
    throw new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_SEQUENCE', `snapshot frame for unknown stream ${streamId} from node ${this.peerId}`);
  }

  private beginSnapshot(streamId: number, header: PeerMessage): void {
    if (this.incoming !== null && !this.incoming.failed) throw new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_SEQUENCE', `stream ${streamId} begun while stream ${this.incoming.streamId} is in progress`);
    if (streamId <= this.lastStreamId) throw new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_SEQUENCE', `stream id ${streamId} not above ${this.lastStreamId}`);
    this.lastStreamId = streamId;
    const { clock, limits } = this.host;
    const stream = new IncomingSnapshot({
      streamId,
      windowChunks: limits.snapshotWindowChunks,
      stallTimeoutMs: limits.snapshotStallTimeoutMs,
      clock,
      sendCredit: (chunks) => this.connection.writeValue(FrameType.snapshotCredit, [streamId, chunks]),
      sendAbort: (error) => this.connection.writeValue(FrameType.snapshotAbort, [streamId, error.code, error.message]),
    });
    this.incoming = stream;
    stream.open();
    const from = this.peerId!;
    // async wrapper: a handler that throws synchronously refuses like one that rejects.
    const verdict = (async () => this.host.handlers.onSnapshot(from, header, stream))();
    verdict.then(
      () => this.finishSnapshot(stream, stream.complete ? null : 'the receiver finished before reading the whole stream'),
      (error: unknown) => this.finishSnapshot(stream, error instanceof Error ? error.message : String(error)),
    );
  }

  /** The handler settled: send the verdict (unless the stream already failed: then the sender knows, or the connection is gone). */
  private finishSnapshot(stream: IncomingSnapshot, refusal: string | null): void {
    if (this.incoming === stream) this.incoming = null;
    const counters = this.counters!;
    if (refusal === null && !stream.failed) {
      counters.snapshotsReceived++;
      this.connection.writeValue(FrameType.snapshotDone, [stream.streamId, true, '']);
      return;
    }
    counters.snapshotsFailed++;
    this.host.logger.warn({ peer: this.peerId, streamId: stream.streamId, reason: refusal }, 'snapshot stream refused or failed');
    if (stream.verdictOwed && this.state === 'open') this.connection.writeValue(FrameType.snapshotDone, [stream.streamId, false, refusal ?? 'failed']);
    stream.fail(new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED', refusal ?? 'failed'), true);
  }

  private onClose(error: ImpulseError | null): void {
    const wasRefused = this.state === 'closed';
    this.state = 'closed';
    this.handshakeTimer?.cancel();
    this.handshakeTimer = null;
    this.incoming?.fail(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', `the connection from node ${this.peerId} closed${error ? `: ${error.message}` : ''}`, { cause: error }), true);
    this.incoming = null;
    if (error !== null && !wasRefused) {
      this.host.counters.closedWith(error.code);
      const level = error.code === 'IMPULSE_ERR_TRANSPORT_CONNECTION_LOST' ? 'info' : 'warn';
      this.host.logger[level]({ code: error.code, err: error, peer: this.peerId, remote: this.connection.remoteAddress }, 'inbound connection closed');
    }
    this.host.onClosed(this);
  }
}
