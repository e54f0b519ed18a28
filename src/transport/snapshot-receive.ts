/**
 * The receiving half of one snapshot stream (see snapshot-send.ts for the
 * protocol). It hands the chunks to the receiver's `onSnapshot` as an async
 * iterable and grants the sender one more chunk of credit each time the
 * consumer takes one, so at most `windowChunks` chunks are ever buffered here.
 *
 * A chunk out of order, repeated, or beyond the credit, and an end marker
 * whose count is wrong, throw IMPULSE_ERR_TRANSPORT_SNAPSHOT_SEQUENCE: the
 * caller closes the connection, which fails the iterator too.
 *
 * Verdict: the stream is accepted only when `onSnapshot` resolves after its
 * consumer reached the end of the iterator; resolving earlier, rejecting, or
 * throwing refuses it.
 */
import { ImpulseError } from '../errors.js';
import { assert } from '../util/assert.js';
import type { Clock, TimerHandle } from '../util/clock.js';

export interface IncomingSnapshotOptions {
  readonly streamId: number;
  readonly windowChunks: number;
  readonly stallTimeoutMs: number;
  readonly clock: Clock;
  /** Grant the sender `chunks` more chunks. */
  readonly sendCredit: (chunks: number) => void;
  /** Tell the sender the stream is over from this side (our consumer stalled). */
  readonly sendAbort: (error: ImpulseError) => void;
}

interface Waiter {
  resolve: (result: IteratorResult<Uint8Array>) => void;
  reject: (error: ImpulseError) => void;
}

export class IncomingSnapshot implements AsyncIterable<Uint8Array> {
  private buffered: Uint8Array[] = [];
  private nextSequence = 0;
  private endReceived = false;
  private endConsumed = false;
  private failure: ImpulseError | null = null;
  /** Whether the sender knows the stream is over (it aborted, we sent ABORT, or the connection is gone). */
  private senderInformed = false;
  private waiter: Waiter | null = null;
  private stallTimer: TimerHandle | null = null;
  private iterated = false;

  constructor(private readonly options: IncomingSnapshotOptions) {}

  get streamId(): number {
    return this.options.streamId;
  }

  /** Whether the consumer read the whole stream (the condition for accepting it). */
  get complete(): boolean {
    return this.endConsumed;
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  /** A verdict (DONE) must still be sent: the stream is not over for the sender yet. */
  get verdictOwed(): boolean {
    return !this.senderInformed;
  }

  /** Grants the initial window; call once, right after BEGIN. */
  open(): void {
    this.options.sendCredit(this.options.windowChunks);
  }

  onChunk(sequence: number, bytes: Uint8Array): void {
    if (this.failure !== null) return; // aborted here: in-flight chunks (at most the window) are dropped
    if (this.endReceived || sequence !== this.nextSequence) {
      throw this.sequenceError(`chunk ${sequence} where ${this.endReceived ? 'the stream had ended' : `chunk ${this.nextSequence} was due`}`);
    }
    if (this.buffered.length >= this.options.windowChunks) throw this.sequenceError(`chunk ${sequence} beyond the credit of ${this.options.windowChunks}`);
    this.nextSequence++;
    this.buffered.push(bytes);
    this.wake();
  }

  onEnd(chunkCount: number): void {
    if (this.failure !== null) return;
    if (this.endReceived || chunkCount !== this.nextSequence) throw this.sequenceError(`end marker after ${chunkCount} chunks, ${this.nextSequence} received`);
    this.endReceived = true;
    this.wake();
  }

  /**
   * Ends the stream with `error`: the consumer's next read throws it.
   * `senderInformed`: the sender knows already (it aborted, we sent it ABORT,
   * or the connection is gone); otherwise the caller still owes it a verdict.
   */
  fail(error: ImpulseError, senderInformed: boolean): void {
    if (senderInformed) this.senderInformed = true;
    if (this.failure !== null || this.endConsumed) return;
    this.failure = error;
    this.buffered = [];
    this.cancelStallTimer();
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(error);
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    assert(!this.iterated, 'a snapshot stream can be iterated once');
    this.iterated = true;
    return {
      next: () => this.read(),
      return: async () => {
        // The consumer stopped early: nothing more will be read; the verdict refuses the stream.
        this.fail(new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED', 'the receiver stopped reading'), false);
        return { value: undefined, done: true };
      },
    };
  }

  private read(): Promise<IteratorResult<Uint8Array>> {
    if (this.failure !== null) return Promise.reject(this.failure);
    assert(this.waiter === null, 'one read at a time on a snapshot stream');
    const ready = this.take();
    if (ready !== null) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.armStallTimer();
    });
  }

  /** The next result if one is available now. */
  private take(): IteratorResult<Uint8Array> | null {
    const chunk = this.buffered.shift();
    if (chunk !== undefined) {
      this.options.sendCredit(1);
      return { value: chunk, done: false };
    }
    if (this.endReceived) {
      this.endConsumed = true;
      return { value: undefined, done: true };
    }
    return null;
  }

  private wake(): void {
    if (this.waiter === null) return;
    const result = this.take();
    if (result === null) return;
    const waiter = this.waiter;
    this.waiter = null;
    this.cancelStallTimer();
    waiter.resolve(result);
  }

  private armStallTimer(): void {
    this.cancelStallTimer();
    this.stallTimer = this.options.clock.setTimer(this.options.stallTimeoutMs, () => {
      const error = new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_STALLED', `no chunk for ${this.options.stallTimeoutMs} ms`);
      this.options.sendAbort(error);
      this.fail(error, true);
    });
  }

  private cancelStallTimer(): void {
    this.stallTimer?.cancel();
    this.stallTimer = null;
  }

  private sequenceError(detail: string): ImpulseError {
    return new ImpulseError('IMPULSE_ERR_TRANSPORT_SNAPSHOT_SEQUENCE', `snapshot stream ${this.options.streamId}: ${detail}`);
  }
}
