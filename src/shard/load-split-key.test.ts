/**
 * The load split's key sampler and chooser (load-split-key.ts): the chooser
 * against a brute-force model over random samples (fast-check: the key it
 * picks is a sampled key inside the bounds leaving ≥ 2 distinct keys a side,
 * and no qualifying key is more even), its refusals (one hot key, too few
 * keys or samples, a hot key too heavy to balance), a skewed (Zipf-like)
 * distribution split near its median; the reservoir's bound and uniformity.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compareBytes } from '../util/bytes.js';
import { SeededRandom } from '../util/random.js';
import { KeySampler, LOAD_SAMPLE_MIN, LOAD_SPLIT_SHARE_MAX, chooseLoadSplitKey } from './load-split-key.js';
import type { ShardBounds } from './shard-map.js';

const ALL: ShardBounds = { start: Buffer.alloc(0), end: null };
const key = (n: number): Buffer => Buffer.from(`k${String(n).padStart(4, '0')}`);
const repeat = (n: number, times: number): Buffer[] => Array.from({ length: times }, () => key(n));

/** Every split key that qualifies, with its imbalance, by brute force. */
function qualifying(samples: readonly Buffer[], bounds: ShardBounds): { key: Buffer; imbalance: number }[] {
  const inside = samples.filter((k) => compareBytes(k, bounds.start) >= 0 && (bounds.end === null || compareBytes(k, bounds.end) < 0));
  const distinct = [...new Set(inside.map((k) => k.toString('hex')))].map((hex) => Buffer.from(hex, 'hex')).sort(compareBytes);
  return distinct
    .filter((candidate) => distinct.filter((k) => compareBytes(k, candidate) < 0).length >= 2 && distinct.filter((k) => compareBytes(k, candidate) >= 0).length >= 2)
    .map((candidate) => {
      const below = inside.filter((k) => compareBytes(k, candidate) < 0).length;
      return { key: candidate, imbalance: Math.abs(below - (inside.length - below)) };
    });
}

describe('chooseLoadSplitKey', () => {
  it('picks the most even split among keys leaving two distinct keys a side (against brute force)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 0, maxLength: 120 }), fc.integer({ min: 0, max: 4 }), (numbers, startAt) => {
        const samples = numbers.map(key);
        const bounds: ShardBounds = { start: startAt === 0 ? Buffer.alloc(0) : key(startAt), end: key(11) };
        const choice = chooseLoadSplitKey(samples, bounds);
        const candidates = qualifying(samples, bounds);
        const insideCount = samples.filter((k) => compareBytes(k, bounds.start) >= 0 && compareBytes(k, bounds.end!) < 0).length;
        if (choice.kind === 'refused') {
          const best = Math.min(...candidates.map((c) => c.imbalance));
          const share = (insideCount + best) / 2 / insideCount;
          assert.ok(insideCount < LOAD_SAMPLE_MIN || candidates.length === 0 || share > LOAD_SPLIT_SHARE_MAX, choice.reason);
          return;
        }
        assert.ok(insideCount >= LOAD_SAMPLE_MIN);
        assert.ok(compareBytes(choice.key, bounds.start) > 0, 'the split key is past the shard start (the left half is not empty)');
        // The key cuts the sample where some qualifying sampled key does: the smallest sampled key at or above it, with nothing sampled between.
        const cut = candidates.map((c) => c.key).filter((k) => compareBytes(k, choice.key) >= 0).sort(compareBytes)[0];
        const mine = candidates.find((c) => cut !== undefined && c.key.equals(cut));
        assert.ok(mine !== undefined, 'cuts at a qualifying sampled key');
        assert.ok(samples.every((k) => compareBytes(k, choice.key) >= 0 === compareBytes(k, mine.key) >= 0), 'the same halves as that sampled key');
        assert.ok(mine.key.subarray(0, choice.key.length).equals(choice.key), 'a prefix of that key');
        assert.equal(mine.imbalance, Math.min(...candidates.map((c) => c.imbalance)), 'no qualifying key is more even');
        assert.ok(Math.max(choice.leftShare, 1 - choice.leftShare) <= LOAD_SPLIT_SHARE_MAX);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a single hot key, and a load on too few keys', () => {
    const hot = chooseLoadSplitKey(repeat(7, 200), ALL);
    assert.equal(hot.kind, 'refused');
    assert.match((hot as { reason: string }).reason, /one key/);
    const three = chooseLoadSplitKey([...repeat(1, 50), ...repeat(2, 50), ...repeat(3, 50)], ALL);
    assert.equal(three.kind, 'refused', 'three keys: any split leaves one key alone on a side');
    assert.match((three as { reason: string }).reason, /fewer than two/);
    const four = chooseLoadSplitKey([...repeat(1, 50), ...repeat(2, 50), ...repeat(3, 50), ...repeat(4, 50)], ALL);
    assert.deepEqual(four, { kind: 'split', key: key(3), leftShare: 0.5 }, 'k0003: no shorter prefix sorts above k0002');
    assert.equal(chooseLoadSplitKey([key(1), key(2), key(3), key(4)], ALL).kind, 'refused', 'too few samples');
  });

  it('refuses a hot key too heavy to balance with the keys around it', () => {
    // 90% on key 5, 10% spread over 1..4 and 6..9: every split leaves ≥ 90% + on one side.
    const samples = [...repeat(5, 180), ...[1, 2, 3, 4, 6, 7, 8, 9].flatMap((n) => repeat(n, 2)), key(1), key(9), key(2), key(8)];
    const choice = chooseLoadSplitKey(samples, ALL);
    assert.equal(choice.kind, 'refused');
    assert.match((choice as { reason: string }).reason, /on one side/);
  });

  it('splits a skewed (Zipf-like) load near its median, not its middle key', () => {
    // Key n (1..100) takes about 1000 / n requests: half the load is on the first few keys.
    const samples = Array.from({ length: 100 }, (_, i) => repeat(i + 1, Math.max(1, Math.round(1000 / (i + 1))))).flat();
    const choice = chooseLoadSplitKey(samples, ALL);
    assert.equal(choice.kind, 'split');
    const { key: at, leftShare } = choice as { key: Buffer; leftShare: number };
    assert.ok(Math.abs(leftShare - 0.5) < 0.1, `left share ${leftShare}`);
    assert.ok(compareBytes(at, key(20)) < 0, `split at ${at.toString()}: well below the middle key k0050`);
  });

  it('cuts at the shortest prefix between two sampled keys, and refuses a cut longer than a split key may be', () => {
    const long = (tail: string): Buffer => Buffer.from(`${'x'.repeat(600)}${tail}`);
    const samples = ['a1', 'a2', 'b1', 'b2'].flatMap((tail) => Array.from({ length: 20 }, () => long(tail)));
    const choice = chooseLoadSplitKey(samples, ALL);
    assert.equal(choice.kind, 'refused', '601 bytes needed to cut between xx..a2 and xx..b1');
    assert.match((choice as { reason: string }).reason, /601 bytes/);
    const short = ['apple', 'apricot', 'banana', 'blueberry'].flatMap((key) => Array.from({ length: 20 }, () => Buffer.from(key)));
    assert.deepEqual(chooseLoadSplitKey(short, ALL), { kind: 'split', key: Buffer.from('b'), leftShare: 0.5 });
    const close = ['k0500', 'k0501', 'k0510', 'k0511'].flatMap((key) => Array.from({ length: 20 }, () => Buffer.from(key)));
    assert.deepEqual(chooseLoadSplitKey(close, ALL), { kind: 'split', key: Buffer.from('k051'), leftShare: 0.5 });
  });

  it('ignores samples outside the bounds (taken before a split)', () => {
    const samples = [...[1, 2, 3, 4].flatMap((n) => repeat(n, 20)), ...repeat(9, 500)];
    const choice = chooseLoadSplitKey(samples, { start: Buffer.alloc(0), end: key(9) });
    assert.deepEqual(choice, { kind: 'split', key: key(3), leftShare: 0.5 });
  });
});

describe('KeySampler', () => {
  it('holds at most its capacity, copies keys, and samples uniformly', () => {
    const sampler = new KeySampler(new SeededRandom(7), 100);
    const buffer = Buffer.from('aa');
    sampler.offer(buffer);
    buffer.write('zz');
    assert.equal(sampler.keys()[0]!.toString(), 'aa', 'a copy, not the request buffer');
    sampler.clear();
    // 10,000 keys: 0..4999 "low", 5000..9999 "high"; a uniform sample of 100 holds about 50 of each.
    let lows = 0;
    for (let round = 0; round < 20; round++) {
      sampler.clear();
      for (let i = 0; i < 10_000; i++) sampler.offer(key(i));
      assert.equal(sampler.keys().length, 100);
      assert.equal(sampler.offered, 10_000);
      lows += sampler.keys().filter((k) => compareBytes(k, key(5000)) < 0).length;
    }
    assert.ok(Math.abs(lows / 2000 - 0.5) < 0.05, `share of low keys ${lows / 2000}`);
    sampler.clear();
    assert.equal(sampler.keys().length, 0);
    assert.equal(sampler.offered, 0);
  });
});
