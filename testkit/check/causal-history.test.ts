import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type WriteRecord, checkNoAcknowledgedWriteLost, checkReadsSeeAcknowledgedWrites } from './causal-history.js';

const write = (id: number, ackMs: number | null, past: number[] = [], key = 'k'): WriteRecord => ({ id, key, past: new Set(past), startMs: 0, ackMs });

describe('leaderless history checks', () => {
  it('accept reads that show the acknowledged write, or a write that supersedes it, or siblings containing it', () => {
    const writes = [write(1, 10), write(2, 20, [1]), write(3, 30)];
    const reads = [
      { key: 'k', startMs: 15, endMs: 16, values: [1] },
      { key: 'k', startMs: 25, endMs: 26, values: [2] },
      { key: 'k', startMs: 35, endMs: 36, values: [2, 3] },
      { key: 'k', startMs: 5, endMs: 6, values: [] },
    ];
    assert.deepEqual(checkReadsSeeAcknowledgedWrites(writes, reads), []);
  });

  it('reject a read that misses an acknowledged write (a stale read), and a value no one wrote', () => {
    const writes = [write(1, 10), write(2, 20)];
    const stale = checkReadsSeeAcknowledgedWrites(writes, [{ key: 'k', startMs: 25, endMs: 26, values: [1] }]);
    assert.deepEqual(stale.map((v) => v.kind), ['stale-read']);
    const invented = checkReadsSeeAcknowledgedWrites(writes, [{ key: 'k', startMs: 1, endMs: 2, values: [9] }]);
    assert.deepEqual(invented.map((v) => v.kind), ['unknown-value']);
  });

  it('ignore writes that were not acknowledged, or acknowledged after the read started', () => {
    const writes = [write(1, null), write(2, 30)];
    assert.deepEqual(checkReadsSeeAcknowledgedWrites(writes, [{ key: 'k', startMs: 25, endMs: 40, values: [] }]), []);
  });

  it('reject final contents that lost an acknowledged write; accept ones where it was superseded', () => {
    const writes = [write(1, 10), write(2, 20, [1]), write(3, 30, [], 'other')];
    assert.deepEqual(checkNoAcknowledgedWriteLost(writes, new Map([['k', [2]], ['other', [3]]])), []);
    const lost = checkNoAcknowledgedWriteLost(writes, new Map([['k', [2]]]));
    assert.deepEqual(lost.map((v) => v.kind), ['lost-write']);
  });
});
