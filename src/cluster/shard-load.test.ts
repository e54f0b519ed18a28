/**
 * The smoothed load per shard (shard-load.ts), on a manual clock: a steady
 * rate is reached as an exponential approach with the stated time constant
 * (and survives a quiet window: one idle interval only pulls it part way
 * down), irregular intervals weigh by time not by count, a burst moves it
 * by its share, and it starts afresh after a reopen (counter back), a split
 * or snapshot (generation) and a lost leadership (keepOnly).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../testkit/transport/harness.js';
import { ShardLoad } from './shard-load.js';

const near = (actual: number | null, expected: number, tolerance: number, what: string): void => {
  assert.ok(actual !== null && Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected} ± ${tolerance}`);
};

describe('ShardLoad', () => {
  it('approaches a steady rate with the time constant, and survives a quiet window', () => {
    const clock = new ManualClock();
    const load = new ShardLoad(clock, 10_000);
    let requests = 0;
    assert.equal(load.observe(2, requests, 0), null, 'no interval yet');
    // 100 requests a second for 1 s: the first interval's rate is the average.
    clock.advance(1000);
    requests += 100;
    near(load.observe(2, requests, 0), 100, 0.1, 'first interval');
    // Then 200/s for 10 s, observed every second: 100 + 100 × (1 − e^−1) ≈ 163.2.
    for (let i = 0; i < 10; i++) {
      clock.advance(1000);
      requests += 200;
      load.observe(2, requests, 0);
    }
    near(load.current(2), 100 + 100 * (1 - Math.exp(-1)), 0.2, 'after one time constant');
    // One idle 5 s window (no requests): down by (1 − e^−0.5) of the way to 0, not to 0.
    const before = load.current(2)!;
    clock.advance(5000);
    near(load.observe(2, requests, 0), before * Math.exp(-0.5), 0.2, 'after a quiet window');
  });

  it('weighs intervals by their length, not their number', () => {
    const clockA = new ManualClock();
    const a = new ShardLoad(clockA, 10_000);
    const clockB = new ManualClock();
    const b = new ShardLoad(clockB, 10_000);
    a.observe(3, 0, 0);
    b.observe(3, 0, 0);
    clockA.advance(1000);
    clockB.advance(1000);
    a.observe(3, 50, 0);
    b.observe(3, 50, 0); // both at 50/s
    // A sees 150/s over 4 s in one interval; B sees it in four 1 s intervals: the same average.
    clockA.advance(4000);
    const inOne = a.observe(3, 650, 0);
    let total = 50;
    for (let i = 0; i < 4; i++) {
      clockB.advance(1000);
      total += 150;
      b.observe(3, total, 0);
    }
    near(inOne, b.current(3)!, 0.2, 'one 4 s interval against four 1 s ones');
  });

  it('moves by a short burst only by its share of the time constant', () => {
    const clock = new ManualClock();
    const load = new ShardLoad(clock, 10_000);
    load.observe(4, 0, 0);
    clock.advance(5000);
    load.observe(4, 50, 0); // 10/s
    clock.advance(1000);
    near(load.observe(4, 1050, 0), 10 + (1000 - 10) * (1 - Math.exp(-0.1)), 0.2, 'a 1 s burst of 1000/s');
  });

  it('starts afresh after a reopen, a split or snapshot, and a lost leadership', () => {
    const clock = new ManualClock();
    const load = new ShardLoad(clock);
    load.observe(5, 0, 0);
    clock.advance(1000);
    assert.equal(load.observe(5, 100, 0), 100);
    clock.advance(1000);
    assert.equal(load.observe(5, 10, 0), null, 'the counter went back: a reopened group');
    clock.advance(1000);
    assert.equal(load.observe(5, 60, 0), 50);
    clock.advance(1000);
    assert.equal(load.observe(5, 100, 1), null, 'a split or a snapshot changed the data generation');
    assert.equal(load.current(5), null);
    clock.advance(1000);
    assert.equal(load.observe(5, 120, 1), 20);
    assert.equal(load.observe(5, 130, 1), 20, 'no time passed: the average as it was');
    load.keepOnly(new Set([6]));
    assert.equal(load.current(5), null, 'forgotten: no longer led');
    clock.advance(1000);
    assert.equal(load.observe(5, 200, 1), null);
  });
});
