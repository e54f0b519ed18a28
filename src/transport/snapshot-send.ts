/**
 * The sending half of one snapshot stream (the protocol is in README.md,
 * "Snapshot streams"):
 *
 *   1. BEGIN [id, header] goes out once the connection to the peer is open;
 *   2. the receiver grants credit (CREDIT [id, n]): n more chunks may be sent.
 *      It grants its window up front, then one per chunk its consumer takes;
 *   3. while credit remains and the socket is not backpressured, the next
 *      piece of the source (at most `chunkBytesMax` bytes) goes out as
 *      CHUNK [id, seq] with seq = 0, 1, 2, ...;
 *   4. when the source is exhausted, END [id, chunkCount];
 *   5. the receiver's verdict (DONE [id, accepted, message]) settles the
 *      promise. ABORT from the receiver, a lost connection or no progress
 *      (no credit and no chunk written) for `stallTimeoutMs` before END
 *      rejects it; after END the sender waits for the verdict as long as the
 *      connection lives (the receiver may be installing the snapshot).
 *
 * Bound: the source is pulled only when a chunk may be sent, so the sender
 * holds at most one source chunk, and at most `window` chunks are ever in
 * flight (written, not yet consumed by the receiver). Each piece also waits
 * for the transport's snapshot send rate (`rate`, byte-rate.ts), shared by
 * every stream of the transport.
 */
import { ImpulseError } from '../errors.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { ByteRate } from './byte-rate.js';
import type { FramedConnection } from './connection.js';
import { encodeSnapshotBegin } from './envelopes.js';
import { FrameType, encodeChunkHeader } from './frames.js';
import type { PeerMessage } from './transport.js';

export interface OutgoingSnapshotOptions {
  readonly streamId: number;
  readonly header: PeerMessage;
  readonly source: AsyncIterable<Uint8Array>;
  readonly chunkBytesMax: number;
  readonly stallTimeoutMs: number;
  readonly clock: Clock;
  /** The transport's snapshot send rate, shared by its streams. */
  readonly rate: ByteRate;
  /** Called once when the stream is over, after the promise settled. */
  readonly onFinished: (accepted: boolean) => void;
}

export class OutgoingSnapshot {
  readonly promise: Promise<void>;
  private resolve!: () => void;
  private reject!: (error: ImpulseError) => void;
  private connection: FramedConnection | null = null;
  private readonly iterator: AsyncIterator<Uint8Array>;
  private credit = 0;
  private sequence = 0;
  private pending: Uint8Array | null = null;
  private pendingOffset = 0;
  private pumping = false;
  private endSent = false;
  private finished = false;
  private stallTimer: TimerHandle | null = null;
  /** Set while the next piece waits for the send rate. */
  private rateTimer: TimerHandle | null = null;

  constructor(private readonly options: OutgoingSnapshotOptions) {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.iterator = options.source[Symbol.asyncIterator]();
    this.armStallTimer();
  }

  get streamId(): number {
    return this.options.streamId;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** Sends BEGIN on `connection` (open, handshake done). Call once. */
  start(connection: FramedConnection): void {
    if (this.finished) return;
    this.connection = connection;
    connection.write([encodeSnapshotBegin(this.options.streamId, this.options.header)]);
  }

  onCredit(chunks: number): void {
    if (this.finished) return;
    this.credit += chunks;
    this.armStallTimer();
    this.pump();
  }

  /** The socket drained: carry on if credit remains. */
  onDrain(): void {
    this.pump();
  }

  onVerdict(accepted: boolean, message: string): void {
    if (accepted) this.finish(null);
    else this.finish(new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED', `the receiver refused the snapshot: ${message}`));
  }

  /** The receiver aborted the stream (its consumer failed or stalled). */
  onAbort(code: string, message: string): void {
    const local = code === 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_STALLED' ? code : 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED';
    this.finish(new ImpulseError(local, `the receiver aborted the snapshot (${code}): ${message}`));
  }

  /** Ends the stream with `error` without telling the receiver (the connection is gone, or the transport closes). */
  fail(error: ImpulseError): void {
    this.finish(error);
  }

  private pump(): void {
    if (this.pumping || this.rateTimer !== null || this.finished || this.endSent || this.connection === null) return;
    this.pumping = true;
    this.pumpLoop()
      .catch((error: unknown) => this.abortBoth(new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED', `the snapshot source failed: ${String(error)}`, { cause: error })))
      .finally(() => {
        this.pumping = false;
      });
  }

  private async pumpLoop(): Promise<void> {
    const connection = this.connection!;
    while (!this.finished && this.credit > 0 && !connection.backpressured) {
      if (this.pending === null) {
        const next = await this.iterator.next();
        if (this.finished) return;
        if (next.done === true) {
          this.endSent = true;
          this.cancelStallTimer();
          connection.writeValue(FrameType.snapshotEnd, [this.options.streamId, this.sequence]);
          return;
        }
        if (next.value.length === 0) continue;
        this.pending = next.value;
        this.pendingOffset = 0;
      }
      const piece = this.pending.subarray(this.pendingOffset, this.pendingOffset + this.options.chunkBytesMax);
      const waitMs = this.options.rate.take(piece.length);
      if (waitMs > 0) {
        this.rateTimer = this.options.clock.setTimer(waitMs, () => {
          this.rateTimer = null;
          this.pump();
        });
        return;
      }
      this.pendingOffset += piece.length;
      if (this.pendingOffset >= this.pending.length) this.pending = null;
      connection.writeWithBody(encodeChunkHeader(this.options.streamId, this.sequence++, piece.length), piece);
      this.credit--;
      this.armStallTimer();
    }
  }

  /** Tells the receiver the stream is over, then fails it here. */
  private abortBoth(error: ImpulseError): void {
    if (this.finished) return;
    this.connection?.writeValue(FrameType.snapshotAbort, [this.options.streamId, error.code, error.message]);
    this.finish(error);
  }

  private armStallTimer(): void {
    this.cancelStallTimer();
    if (this.finished || this.endSent) return;
    this.stallTimer = this.options.clock.setTimer(this.options.stallTimeoutMs, () =>
      this.abortBoth(new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_STALLED', `no progress for ${this.options.stallTimeoutMs} ms`)),
    );
  }

  private cancelStallTimer(): void {
    this.stallTimer?.cancel();
    this.stallTimer = null;
  }

  private finish(error: ImpulseError | null): void {
    if (this.finished) return;
    this.finished = true;
    this.cancelStallTimer();
    this.rateTimer?.cancel();
    this.rateTimer = null;
    this.pending = null;
    if (error === null) this.resolve();
    else this.reject(error);
    // Let the source release what it holds (files, iterators); its failure is not ours to report.
    if (!this.endSent || error !== null) void Promise.resolve(this.iterator.return?.()).catch(() => undefined);
    this.options.onFinished(error === null);
  }
}
