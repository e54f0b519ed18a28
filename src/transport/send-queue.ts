/**
 * A peer's outbound queue of encoded message frames, bounded in messages and
 * in bytes. `offer` refuses (the caller drops and counts) instead of growing.
 * FIFO: frames leave in the order they were offered, which is how the
 * transport keeps per-peer order.
 */
import { assert } from '../util/assert.js';

export interface QueuedFrame {
  readonly frame: Buffer;
  readonly channel: string;
}

export class SendQueue {
  private entries: QueuedFrame[] = [];
  private head = 0;
  private queuedBytes = 0;

  /**
   * @param messagesMax most frames held (≥ 1)
   * @param bytesMax most bytes held, counting whole frames (≥ 1)
   */
  constructor(
    readonly messagesMax: number,
    readonly bytesMax: number,
  ) {
    assert(messagesMax >= 1 && bytesMax >= 1, 'send queue bounds', { messagesMax, bytesMax });
  }

  get length(): number {
    return this.entries.length - this.head;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  /** Appends `entry` when both bounds still hold with it; false (and nothing changes) when not. */
  offer(entry: QueuedFrame): boolean {
    if (this.length >= this.messagesMax || this.queuedBytes + entry.frame.length > this.bytesMax) return false;
    this.entries.push(entry);
    this.queuedBytes += entry.frame.length;
    return true;
  }

  /**
   * Removes frames from the front, in order, while their total stays within
   * `bytesMax`; always at least one frame when the queue is not empty (a
   * single frame may be larger than `bytesMax`).
   */
  takeBatch(bytesMax: number): Buffer[] {
    const batch: Buffer[] = [];
    let batchBytes = 0;
    while (this.head < this.entries.length) {
      const frame = this.entries[this.head]!.frame;
      if (batch.length > 0 && batchBytes + frame.length > bytesMax) break;
      batch.push(frame);
      batchBytes += frame.length;
      this.head++;
    }
    this.queuedBytes -= batchBytes;
    this.compact();
    return batch;
  }

  /** Empties the queue; returns what it held so the caller can count the drops per channel. */
  clear(): QueuedFrame[] {
    const dropped = this.entries.slice(this.head);
    this.entries = [];
    this.head = 0;
    this.queuedBytes = 0;
    return dropped;
  }

  private compact(): void {
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
