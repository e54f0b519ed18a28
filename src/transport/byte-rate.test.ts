import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteRate } from './byte-rate.js';
import { ManualClock } from '../../testkit/transport/harness.js';

/** Drives `senders` pieces through `rate` on a manual clock, each sender retrying after the wait it is told; returns each piece's send time. */
function sendAll(rate: ByteRate, clock: ManualClock, pieceSizes: readonly number[]): number[] {
  const sentAt: number[] = [];
  let next = 0;
  while (next < pieceSizes.length) {
    const wait = rate.take(pieceSizes[next]!);
    if (wait === 0) {
      sentAt.push(clock.now());
      next++;
    } else {
      assert.ok(wait >= 1);
      clock.advance(wait);
    }
  }
  return sentAt;
}

describe('ByteRate: the snapshot send rate', () => {
  it('lets a burst go at once, then holds the long-run rate', () => {
    const clock = new ManualClock();
    const rate = new ByteRate(1024 * 1024, 64 * 1024, clock); // 1 MiB/s; burst: a tenth of that (~102 KiB)
    const sentAt = sendAll(rate, clock, Array.from({ length: 64 }, () => 64 * 1024)); // 4 MiB
    assert.equal(sentAt[0], 0, 'the first piece goes at once');
    assert.equal(sentAt[1], 0, 'the burst covers a second piece');
    const seconds = sentAt.at(-1)! / 1000;
    assert.ok(seconds >= 3.8 && seconds <= 4.1, `4 MiB at 1 MiB/s took ${seconds} s`);
    assert.ok(rate.waits >= 60, `every piece past the burst waited at least once (${rate.waits} waits)`);
    assert.ok(Math.abs(rate.waitedMs - sentAt.at(-1)!) <= rate.waits, `the waits told add up to the time the pieces took (${rate.waitedMs} ms told, ${sentAt.at(-1)} ms taken)`);
  });

  it('never sends more than rate × time + burst + one piece, whatever the piece sizes (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 64 * 1024, max: 64 * 1024 * 1024 }), fc.array(fc.integer({ min: 1, max: 256 * 1024 }), { minLength: 1, maxLength: 200 }), (bytesPerSecond, sizes) => {
        const clock = new ManualClock();
        const rate = new ByteRate(bytesPerSecond, 256 * 1024, clock);
        const sentAt = sendAll(rate, clock, sizes);
        const burst = Math.max(256 * 1024, Math.ceil(bytesPerSecond / 10));
        let total = 0;
        sentAt.forEach((at, i) => {
          total += sizes[i]!;
          // Everything sent up to and including this piece, at time `at`.
          assert.ok(total <= (at * bytesPerSecond) / 1000 + burst + 256 * 1024, `${total} bytes by ${at} ms at ${bytesPerSecond} B/s`);
        });
      }),
      { numRuns: 200 },
    );
  });

  it('refills while idle only up to the burst', () => {
    const clock = new ManualClock();
    const rate = new ByteRate(1024 * 1024, 64 * 1024, clock);
    clock.advance(60_000); // a minute idle
    const sentAt = sendAll(rate, clock, Array.from({ length: 32 }, () => 64 * 1024)); // 2 MiB
    assert.ok(sentAt.at(-1)! - 60_000 >= 1800, 'an idle minute does not buy a minute of bytes');
  });
});
