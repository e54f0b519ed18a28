import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compareBytes, partitionPoint } from './bytes.js';

describe('compareBytes', () => {
  it('agrees with Buffer.compare on whole arrays and on sub-ranges', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), fc.uint8Array({ maxLength: 12 }), fc.nat(12), fc.nat(12), (a, b, cutA, cutB) => {
        assert.equal(Math.sign(compareBytes(a, b)), Buffer.compare(Buffer.from(a), Buffer.from(b)));
        const aEnd = Math.min(cutA, a.length);
        const bEnd = Math.min(cutB, b.length);
        assert.equal(Math.sign(compareBytes(a, b, 0, aEnd, 0, bEnd)), Buffer.compare(Buffer.from(a.subarray(0, aEnd)), Buffer.from(b.subarray(0, bEnd))));
      }),
    );
  });
});

describe('partitionPoint', () => {
  it('finds the first index where the predicate turns true, or high', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 30 }), fc.integer({ min: -1, max: 21 }), (values, key) => {
        const sorted = [...values].sort((x, y) => x - y);
        const expected = sorted.findIndex((value) => value >= key);
        assert.equal(partitionPoint(0, sorted.length, (i) => sorted[i]! >= key), expected === -1 ? sorted.length : expected);
      }),
    );
  });

  it('searches only inside [low, high)', () => {
    const seen: number[] = [];
    assert.equal(partitionPoint(5, 9, (i) => (seen.push(i), i >= 7)), 7);
    assert.ok(seen.every((i) => i >= 5 && i < 9));
    assert.equal(partitionPoint(3, 3, () => true), 3);
  });
});
