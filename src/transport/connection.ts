/**
 * One framed connection over a socket, for either direction: it splits what
 * arrives into frames, answers PINGs, detects a silent peer, counts bytes and
 * writes, and closes exactly once, telling its owner why. It knows nothing of
 * handshakes, messages or snapshots: the owner (outbound.ts, inbound.ts) gets
 * every other frame through `onFrame`.
 *
 * Liveness: the dialer PINGs every `pingIntervalMs` whatever else it sends;
 * the acceptor answers each with a PONG. Either side closes the connection
 * when nothing at all has arrived for `silenceTimeoutMs`, so a stopped or
 * partitioned peer is noticed without waiting for TCP's retransmission
 * timeout, and the acceptor can tell a live duplicate from a dead connection
 * (`probe`).
 */
import type { Socket } from 'node:net';
import { ImpulseError, isImpulseError } from '../errors.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { decodeNonce, encodeNonceFrame, type Frame, FrameDecoder, FrameType, type FrameTypeNumber, encodeValueFrame } from './frames.js';

/** Byte and write counts a connection adds to (the owner swaps in the peer's counters after the handshake). */
export interface ConnectionCounters {
  bytesIn: number;
  bytesOut: number;
  /** write() calls handed to the socket: with batching, far fewer than frames. */
  writes: number;
}

export interface FramedConnectionOptions {
  readonly socket: Socket;
  readonly clock: Clock;
  readonly frameBytesMax: number;
  /** PING period in ms on the dialing side; 0 on the accepting side (it only answers). */
  readonly pingIntervalMs: number;
  /** Close when nothing has arrived for this many ms (> pingIntervalMs). */
  readonly silenceTimeoutMs: number;
  readonly counters: ConnectionCounters;
  /** Whether the first 6 bytes are a preamble (the accepting side); `onPreamble` gets them. */
  readonly onPreamble?: (magicOk: boolean, version: number) => void;
  /** Every frame but PING/PONG, in order. May throw an ImpulseError: the connection closes with it. */
  readonly onFrame: (frame: Frame) => void;
  /** The socket drained after a write returned false. */
  readonly onDrain: () => void;
  /** Called once, when the connection is gone: null when closed by us without an error. */
  readonly onClose: (error: ImpulseError | null) => void;
}

/** How long a refused or ended connection may linger to flush its last frame before it is destroyed. */
const LINGER_MS = 1000;

export class FramedConnection {
  counters: ConnectionCounters;
  private readonly decoder: FrameDecoder;
  private closed = false;
  private awaitingPreamble: boolean;
  private lastReceivedAt: number;
  private keepaliveTimer: TimerHandle | null = null;
  private probes: { nonce: number; done: (alive: boolean) => void; timer: TimerHandle }[] = [];
  private nextNonce = 1;

  constructor(private readonly options: FramedConnectionOptions) {
    this.counters = options.counters;
    this.decoder = new FrameDecoder(options.frameBytesMax);
    this.awaitingPreamble = options.onPreamble !== undefined;
    this.lastReceivedAt = options.clock.now();
    const socket = options.socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      if (!this.closed) options.onDrain();
    });
    socket.on('error', (error) => this.close(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', `socket error: ${error.message}`, { cause: error })));
    socket.on('end', () => this.close(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', 'the peer closed the connection')));
    socket.on('close', () => this.close(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', 'the connection closed')));
    this.armKeepalive();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** True while the socket holds more than its high-water mark: stop writing until `onDrain`. */
  get backpressured(): boolean {
    return this.options.socket.writableNeedDrain;
  }

  /** Bytes accepted by write() and not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.options.socket.writableLength;
  }

  get remoteAddress(): string {
    return `${this.options.socket.remoteAddress ?? '?'}:${this.options.socket.remotePort ?? '?'}`;
  }

  /** Writes `frames` with one socket write (concatenated when several). Returns false under backpressure. */
  write(frames: readonly Buffer[]): boolean {
    if (this.closed || frames.length === 0) return !this.closed;
    const bytes = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    this.counters.bytesOut += bytes.length;
    this.counters.writes++;
    return this.options.socket.write(bytes);
  }

  /** Writes a header and a body that must go out back to back, without copying the body. */
  writeWithBody(header: Buffer, body: Uint8Array): boolean {
    if (this.closed) return false;
    const socket = this.options.socket;
    this.counters.bytesOut += header.length + body.length;
    this.counters.writes++;
    socket.cork();
    socket.write(header);
    const ok = socket.write(body);
    socket.uncork();
    return ok;
  }

  writeValue(type: FrameTypeNumber, value: unknown): boolean {
    return this.write([encodeValueFrame(type, value)]);
  }

  /**
   * Asks whether the peer is alive: PINGs it and calls `done(true)` as soon as
   * anything arrives from it, `done(false)` after `timeoutMs` of silence or
   * when the connection closes first.
   */
  probe(timeoutMs: number, done: (alive: boolean) => void): void {
    if (this.closed) return done(false);
    const nonce = this.nextNonce++;
    const timer = this.options.clock.setTimer(timeoutMs, () => this.settleProbes((probe) => probe.nonce === nonce, false));
    this.probes.push({ nonce, done, timer });
    this.write([encodeNonceFrame(FrameType.ping, nonce)]);
  }

  /**
   * Sends `frame` (a refusal, say), then half-closes and destroys the socket
   * once flushed or after LINGER_MS. The owner hears `onClose(error)` now.
   */
  closeAfter(frame: Buffer, error: ImpulseError): void {
    if (this.closed) return;
    const socket = this.options.socket;
    this.write([frame]);
    this.shutDown(error);
    socket.end();
    const linger = this.options.clock.setTimer(LINGER_MS, () => socket.destroy());
    socket.once('close', () => linger.cancel());
  }

  /** Closes now (idempotent). `error` null: an orderly close by us. */
  close(error: ImpulseError | null = null): void {
    if (this.closed) return;
    this.shutDown(error);
    this.options.socket.destroy();
  }

  private shutDown(error: ImpulseError | null): void {
    this.closed = true;
    this.keepaliveTimer?.cancel();
    this.keepaliveTimer = null;
    this.settleProbes(() => true, false);
    this.options.onClose(error);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.counters.bytesIn += chunk.length;
    this.lastReceivedAt = this.options.clock.now();
    this.settleProbes(() => true, true);
    this.decoder.push(chunk);
    try {
      if (this.awaitingPreamble) {
        const preamble = this.decoder.nextPreamble();
        if (preamble === null) return;
        this.awaitingPreamble = false;
        this.options.onPreamble!(preamble.magicOk, preamble.version);
      }
      for (let frame = this.decoder.next(); frame !== null && !this.closed; frame = this.closed ? null : this.decoder.next()) {
        if (frame.type === FrameType.ping) this.write([encodeNonceFrame(FrameType.pong, decodeNonce(frame.payload))]);
        else if (frame.type === FrameType.pong) decodeNonce(frame.payload);
        else this.options.onFrame(frame);
      }
    } catch (error) {
      // The owner's handlers catch application errors; what reaches here is a
      // protocol violation (an ImpulseError) or a bug, and either way this
      // connection cannot continue. Nothing escapes to the socket's emitter.
      this.close(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', `frame handling failed: ${String(error)}`, { cause: error }));
    }
  }

  private settleProbes(match: (probe: (typeof this.probes)[number]) => boolean, alive: boolean): void {
    if (this.probes.length === 0) return;
    const settled = this.probes.filter(match);
    this.probes = this.probes.filter((probe) => !match(probe));
    for (const probe of settled) {
      probe.timer.cancel();
      probe.done(alive);
    }
  }

  private armKeepalive(): void {
    const { pingIntervalMs, silenceTimeoutMs, clock } = this.options;
    const periodMs = pingIntervalMs > 0 ? pingIntervalMs : Math.max(1, Math.floor(silenceTimeoutMs / 4));
    this.keepaliveTimer = clock.setTimer(periodMs, () => {
      if (this.closed) return;
      const silentMs = clock.now() - this.lastReceivedAt;
      if (silentMs >= silenceTimeoutMs) {
        this.close(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', `nothing received for ${Math.round(silentMs)} ms`));
        return;
      }
      if (pingIntervalMs > 0) this.write([encodeNonceFrame(FrameType.ping, this.nextNonce++)]);
      this.armKeepalive();
    });
  }
}
