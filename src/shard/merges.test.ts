/**
 * Merges in the shard map (merges.ts) against a model: over seeded histories
 * of splits and merges (fast-check), every key maps to exactly the shard a
 * model of ranges says, ids are never reused (a merged-away id is never
 * handed out again, also after the highest id left), epochs rise for the
 * widened shard, and every map round-trips through its encoding. The
 * preconditions refuse, with the map unchanged: no right neighbour,
 * different replicas, a move or another merge in flight; a merging shard
 * neither splits nor moves. A rollback mark only on a merge in flight; the
 * finished rollback leaves the right shard as it was at a new epoch (the next
 * attempt's), and a merge marked to roll back may still finish (the left
 * group's commit came first). `mergeCandidates`: the thresholds, the
 * hysteresis and at most one merge per shard.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import { MERGE_RIGHT_BYTES_MAX, type MergeOptions, abortMerge, checkRightSize, finishMerge, finishRollback, mergeCandidates, startMerge } from './merges.js';
import type { ShardMap } from './shard-map.js';
import { startMove } from './moves.js';
import { changeReplicas, decodeShardMap, encodeShardMap, initialShardMap, nextShardId, shardFor, splitShard } from './shard-map.js';

const refused = (error: unknown): boolean => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID');
const keys = ['', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((k) => Buffer.from(k));

describe('shard merges in the map', () => {
  it('keeps every key in exactly one shard and never reuses an id over histories of splits and merges', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(20)), { maxLength: 40 }), (steps) => {
        let map = initialShardMap([Buffer.from('d')], [1, 2, 3]);
        const handedOut = new Set(map.shards.map((shard) => shard.id));
        // The model: each key's owner, changed by the same steps.
        const owner = new Map(keys.map((k) => [k.toString(), shardFor(map, k).id]));
        for (const [split, pick] of steps) {
          if (split) {
            const key = keys[1 + (pick % (keys.length - 1))]!;
            const shard = shardFor(map, key);
            if (shard.start.equals(key)) continue;
            const id = nextShardId(map);
            assert.ok(!handedOut.has(id), `id ${id} handed out twice`);
            handedOut.add(id);
            map = splitShard(map, shard.id, key, id);
            for (const k of keys) if (owner.get(k.toString()) === shard.id && k.compare(key) >= 0) owner.set(k.toString(), id);
          } else {
            if (map.shards.length < 2) continue;
            const left = map.shards[pick % (map.shards.length - 1)]!;
            const right = map.shards[map.shards.indexOf(left) + 1]!;
            map = startMerge(map, left.id);
            assert.throws(() => splitShard(map, right.id, Buffer.from([0xff]), nextShardId(map)), refused, 'a merging shard does not split');
            assert.throws(() => startMove(map, left.id, 1, 4), refused, 'a merging shard does not move');
            map = finishMerge(map, left.id);
            const widened = map.shards.find((shard) => shard.id === left.id)!;
            assert.equal(widened.epoch, map.version);
            for (const k of keys) if (owner.get(k.toString()) === right.id) owner.set(k.toString(), left.id);
          }
          for (const k of keys) assert.equal(shardFor(map, k).id, owner.get(k.toString()), `key "${k.toString()}"`);
          assert.deepEqual(decodeShardMap(encodeShardMap(map)), map);
        }
      }),
    );
  });

  it('refuses merges that cannot be done, leaving the map as it was', () => {
    const map = initialShardMap([Buffer.from('g'), Buffer.from('p')], [1, 2, 3]); // 2 [,g) 3 [g,p) 4 [p,)
    assert.throws(() => startMerge(map, 4), refused, 'the last shard has no right neighbour');
    assert.throws(() => startMerge(map, 9), refused, 'no such shard');
    assert.throws(() => startMerge(changeReplicas(map, 3, [1, 2]), 2), refused, 'different replicas');
    assert.throws(() => startMerge(startMove(map, 3, 1, 4), 2), refused, 'a move in flight');
    const merging = startMerge(map, 2);
    assert.equal(merging.shards[1]!.mergeInto, 2);
    assert.throws(() => startMerge(merging, 3), refused, 'a shard merging into another merges nothing into itself');
    assert.throws(() => finishMerge(map, 2), refused, 'finish without the intent');
    const decoded = decodeShardMap(encodeShardMap(merging));
    assert.equal(decoded.shards[1]!.mergeInto, 2);
  });

  it('refuses an operator\'s merge of a right shard above 64 MiB, or of unknown size (retryable)', () => {
    const merging = startMerge(initialShardMap([Buffer.from('g')], [1, 2, 3]), 2);
    assert.doesNotThrow(() => checkRightSize(merging, 2, () => MERGE_RIGHT_BYTES_MAX));
    assert.throws(() => checkRightSize(merging, 2, () => MERGE_RIGHT_BYTES_MAX + 1), (error) => refused(error) && (error as { details?: Record<string, unknown> }).details?.['shard'] === 3);
    assert.throws(() => checkRightSize(merging, 2, () => undefined), (error) => isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE'));
  });

  it('marks a merge to roll back and finishes the rollback at a new epoch of the right shard; a marked merge may still finish', () => {
    const map = initialShardMap([Buffer.from('g'), Buffer.from('p')], [1, 2, 3]); // 2 [,g) 3 [g,p) 4 [p,)
    assert.throws(() => abortMerge(map, 2), refused, 'no merge in flight');
    const merging = startMerge(map, 2);
    const marked = abortMerge(merging, 2);
    assert.deepEqual([marked.version, marked.shards[1]!.mergeInto, marked.shards[1]!.mergeAbort, marked.shards[1]!.epoch], [merging.version + 1, 2, true, 1], 'the attempt (the epoch) is unchanged by the mark');
    assert.equal(abortMerge(marked, 2), marked, 'marked already: the same map');
    assert.deepEqual(decodeShardMap(encodeShardMap(marked)), marked);
    assert.throws(() => finishRollback(merging, 2), refused, 'no rollback mark');
    const rolledBack = finishRollback(marked, 2);
    const right = rolledBack.shards[1]!;
    assert.deepEqual([right.id, right.start.toString(), right.end?.toString(), right.epoch, right.mergeInto, right.mergeAbort], [3, 'g', 'p', rolledBack.version, undefined, undefined]);
    assert.deepEqual(decodeShardMap(encodeShardMap(rolledBack)), rolledBack);
    assert.equal(startMerge(rolledBack, 2).shards[1]!.epoch, rolledBack.version, 'the next attempt has another epoch');
    const finished = finishMerge(marked, 2);
    assert.deepEqual(finished.shards.map((shard) => [shard.id, shard.mergeAbort]), [[2, undefined], [4, undefined]], 'the left group took it in first: the merge finishes');
    assert.throws(() => decodeShardMap(Buffer.from(encodeShardMap(map).toString().replace('"epoch":1,', '"epoch":1,"mergeAbort":true,'))), (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), 'a rollback mark without a merge');
  });

  it('never hands out a merged-away id again, even the highest', () => {
    let map = initialShardMap([Buffer.from('g'), Buffer.from('p')], [1, 2, 3]);
    map = finishMerge(startMerge(map, 3), 3); // 4, the highest id, goes
    assert.deepEqual(map.shards.map((shard) => shard.id), [2, 3]);
    assert.equal(nextShardId(map), 5);
    assert.equal(nextShardId(decodeShardMap(encodeShardMap(map))), 5, 'kept through the encoding');
    assert.equal(nextShardId(splitShard(map, 2, Buffer.from('c'), 5)), 6);
  });
});

/** The candidate pairs' left shard ids. */
const planMerges = (map: ShardMap, sizes: ReadonlyMap<number, number>, options: MergeOptions): number[] => mergeCandidates(map, sizes, options).map((pair) => pair.left.id);

describe('mergeCandidates (--shard-merge-bytes)', () => {
  const map = initialShardMap(['b', 'c', 'd', 'e'].map((k) => Buffer.from(k)), [1, 2, 3]); // shards 2..6
  const options = { mergeBytes: 100, splitBytes: 1000, recentlySplit: new Set<number>() };

  it('merges adjacent shards both under the threshold, each shard in at most one merge, in key order', () => {
    const sizes = new Map([[2, 10], [3, 10], [4, 10], [5, 500], [6, 10]]);
    assert.deepEqual(planMerges(map, sizes, options), [2]);
    assert.deepEqual(planMerges(map, new Map([[2, 10], [3, 10], [4, 10], [5, 10], [6, 10]]), options), [2, 4]);
  });

  it('keeps the merged shard under half the split threshold, skips unknown sizes, recent splits and off', () => {
    assert.deepEqual(planMerges(map, new Map([[2, 99], [3, 99]]), { ...options, splitBytes: 300 }), [], 'sum 198 >= 300 / 2');
    assert.deepEqual(planMerges(map, new Map([[2, 99], [3, 99]]), { ...options, splitBytes: 0 }), [2], 'splits by size off: no sum bound');
    assert.deepEqual(planMerges(map, new Map([[2, 10]]), options), [], 'no size for 3');
    assert.deepEqual(planMerges(map, new Map([[2, 10], [3, 10]]), { ...options, recentlySplit: new Set([3]) }), []);
    assert.deepEqual(planMerges(map, new Map([[2, 10], [3, 10]]), { ...options, mergeBytes: 0 }), []);
    assert.deepEqual(planMerges(map, new Map([[2, 100], [3, 10]]), options), [], 'at the threshold is not under it');
  });

  it('takes pairs on different replicas (to be aligned first), skips pairs with a move or merge in flight', () => {
    const sizes = new Map([[2, 1], [3, 1], [4, 1], [5, 1], [6, 1]]);
    assert.deepEqual(planMerges(changeReplicas(map, 3, [1, 2]), sizes, options), [2, 4]);
    assert.deepEqual(planMerges(startMove(map, 2, 1, 4), sizes, options), [3, 5]);
    assert.deepEqual(planMerges(startMerge(map, 3), sizes, options), [5], 'shards 3 and 4 are merging');
  });
});

