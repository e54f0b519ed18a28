/**
 * A node-wide bound on the bytes a second the transport sends in snapshot
 * streams (`TransportLimits.snapshotSendBytesPerSecondMax`): a token bucket
 * every outgoing stream of one transport draws from, so that a replica move
 * or a lagging follower's catch-up cannot take all of the disk and network
 * from the requests being served (CockroachDB's snapshot rate, TiKV's
 * `snap-io-max-bytes-per-sec`). The sender pulls its source only when it may
 * send, so the bound holds for the snapshot's disk reads too.
 *
 * The bucket holds at most `burstBytes` (a tenth of a second's worth, at least
 * one piece). A piece may go while the bucket is not empty and may overdraw
 * it; then senders wait until it refills past zero. Over any interval the
 * bytes sent are at most rate × interval + burst + one piece per stream.
 */
import { assert } from '../util/assert.js';
import type { Clock } from '../util/clock.js';

export class ByteRate {
  private tokens: number;
  private refilledAtMs: number;
  private readonly burstBytes: number;
  /** Times a sender was told to wait, and the milliseconds it was told (a sender asks again after each wait, so one long wait for a stream is several). */
  waits = 0;
  waitedMs = 0;

  /** `bytesPerSecond` ≥ 1; `pieceBytesMax`: the largest piece a sender takes at once. */
  constructor(
    private readonly bytesPerSecond: number,
    pieceBytesMax: number,
    private readonly clock: Clock,
  ) {
    assert(Number.isSafeInteger(bytesPerSecond) && bytesPerSecond >= 1, 'ByteRate: bytesPerSecond must be a positive integer');
    this.burstBytes = Math.max(pieceBytesMax, Math.ceil(bytesPerSecond / 10));
    this.tokens = this.burstBytes;
    this.refilledAtMs = clock.now();
  }

  /**
   * Takes `bytes` and returns 0 when they may be sent now; otherwise takes
   * nothing and returns the milliseconds until the bucket is no longer empty
   * (ask again then: another stream may have taken it first).
   */
  take(bytes: number): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.refilledAtMs) * this.bytesPerSecond) / 1000);
    this.refilledAtMs = now;
    if (this.tokens <= 0) {
      const waitMs = Math.max(1, Math.ceil((-this.tokens * 1000) / this.bytesPerSecond) + 1);
      this.waits++;
      this.waitedMs += waitMs;
      return waitMs;
    }
    this.tokens -= bytes;
    return 0;
  }
}
