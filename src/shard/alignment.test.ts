/**
 * Aligning replicas before a merge (alignment.ts): the mark in the map and
 * the checks that keep it honest (left neighbour only, no chains, a split
 * drops it, a merge replaces it), the alignment's moves run through the
 * map's move steps until R's replicas are L's (never below the replica
 * count), the balancers holding both shards of a pair (a property test over
 * random layouts), and one round's decisions: drop on a dead member, on
 * growth, merge an aligned pair first, at most `alignmentsMax` alignments.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import { alignmentMoves, alignments, dropAlignment, planMergeRound, planReplicaMoves, startAlignment } from './alignment.js';
import { finishMerge, startMerge } from './merges.js';
import { finishMove, startMove, targetPromoted } from './moves.js';
import { planPlacement } from './placement.js';
import { type ShardMap, changeReplicas, decodeShardMap, encodeShardMap, initialShardMap, shardById, shardMapProblem, splitShard } from './shard-map.js';

const refused = (error: unknown): boolean => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID');
const keys = (...names: string[]): Buffer[] => names.map((name) => Buffer.from(name));

/** Shards 2 [,c) on 1,2,3 and 3 [c,) on 2,3,4 (replicas differ by one node), plus 4 [e,) on 1,2,4. */
function pairOnDifferentMembers(): ShardMap {
  let map = initialShardMap(keys('c', 'e'), [1, 2, 3, 4]);
  map = changeReplicas(map, 2, [1, 2, 3]);
  map = changeReplicas(map, 3, [2, 3, 4]);
  return changeReplicas(map, 4, [1, 2, 4]);
}

/** Runs R's alignment moves through the map's move steps until none is left; checks the replica count at every step. */
function alignFully(start: ShardMap, live: ReadonlySet<number>): { map: ShardMap; moves: number } {
  let map = start;
  let moves = 0;
  for (let guard = 0; guard < 10; guard++) {
    const next = alignmentMoves(map, live);
    if (next.length === 0) return { map, moves };
    for (const move of next) {
      map = startMove(map, move.shard, move.from, move.to);
      map = targetPromoted(map, move.shard);
      assert.ok(shardById(map, move.shard)!.replicas.length >= 3, 'never below the replica count');
      map = finishMove(map, move.shard);
      assert.equal(shardById(map, move.shard)!.replicas.length, 3);
      moves++;
    }
  }
  assert.fail('the alignment did not end');
}

describe('aligning replicas for a merge', () => {
  it('marks the right neighbour durably, checks the mark, and moves its replicas onto the left\'s one move at a time', () => {
    const map = pairOnDifferentMembers();
    const marked = startAlignment(map, 2);
    assert.equal(shardById(marked, 3)!.alignTo, 2);
    assert.equal(shardById(marked, 3)!.epoch, shardById(map, 3)!.epoch, 'the mark alone keeps routes valid');
    assert.deepEqual(decodeShardMap(encodeShardMap(marked)), marked, 'the mark round-trips through the encoding');
    assert.throws(() => startAlignment(marked, 3), refused, 'no chains: shard 3 is in a pair already');
    assert.throws(() => startAlignment(map, 4), refused, 'the last shard has no right neighbour');
    assert.match(shardMapProblem({ ...marked, shards: marked.shards.map((shard) => (shard.id === 4 ? { ...shard, alignTo: 2 } : shard)) }) ?? '', /not its left neighbour/);
    assert.deepEqual(alignmentMoves(marked, new Set([1, 2, 3, 4])), [{ shard: 3, from: 4, to: 1 }]);
    assert.deepEqual(alignmentMoves(marked, new Set([2, 3, 4])), [], 'no move onto a node that is not live');
    const { map: aligned, moves } = alignFully(marked, new Set([1, 2, 3, 4]));
    assert.equal(moves, 1);
    assert.deepEqual(shardById(aligned, 3)!.replicas, [1, 2, 3]);
    const merging = startMerge(aligned, 2);
    assert.equal(shardById(merging, 3)!.alignTo, undefined, 'the merge replaces the mark');
    assert.equal(shardById(merging, 3)!.mergeInto, 2);
    assert.deepEqual(finishMerge(merging, 2).shards.map((shard) => shard.id), [2, 4]);
    assert.deepEqual(dropAlignment(marked, 3).shards, map.shards, 'dropping the mark gives the shards back as they were');
  });

  it('aligns a right shard on entirely different members (three moves), never below three replicas', () => {
    let map = initialShardMap(keys('c'), [1, 2, 3, 4, 5, 6]);
    map = changeReplicas(changeReplicas(map, 2, [1, 2, 3]), 3, [4, 5, 6]);
    const { map: aligned, moves } = alignFully(startAlignment(map, 2), new Set([1, 2, 3, 4, 5, 6]));
    assert.equal(moves, 3);
    assert.deepEqual(shardById(aligned, 3)!.replicas, [1, 2, 3]);
    assert.deepEqual(shardById(aligned, 3)!.retired, [4, 5, 6]);
  });

  it('a split of either shard drops the mark; another pair\'s mark refuses a merge that would break it', () => {
    const marked = startAlignment(pairOnDifferentMembers(), 2);
    assert.equal(alignments(splitShard(marked, 2, Buffer.from('a'), 5)).length, 0, 'a split of the left shard');
    assert.equal(alignments(splitShard(marked, 3, Buffer.from('d'), 5)).length, 0, 'a split of the right shard');
    let four = initialShardMap(keys('c', 'e', 'g'), [1, 2, 3]); // 2 3 4 5, all on 1,2,3
    four = startAlignment(changeReplicas(four, 4, [1, 2, 3]), 3); // 4 aligns onto 3 (already equal: fine)
    assert.throws(() => startMerge(four, 2), refused, 'shard 3 is the left of an alignment');
    assert.throws(() => startMerge(four, 4), refused, 'shard 4 is the right of an alignment onto 3');
    assert.doesNotThrow(() => startMerge(four, 3));
  });

  it('the balancers never move a shard of a pair, over random layouts (only a lost replica is restored)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 4, max: 8 }), fc.array(fc.tuple(fc.nat(7), fc.nat(7), fc.nat(7)), { minLength: 6, maxLength: 30 }), fc.array(fc.nat(40), { maxLength: 8 }), fc.nat(7), (nodes, triples, pinnedPicks, dead) => {
        const live = Array.from({ length: nodes }, (_, i) => i + 1);
        const shards = triples.map(([a, b, c], i) => ({ id: i + 2, replicas: [...new Set([1 + (a % nodes), 1 + (b % nodes), 1 + (c % nodes)])].sort((x, y) => x - y), sizeBytes: 1 + ((a * 7 + i) % 5) * 1000 }));
        const pinned = new Set(pinnedPicks.map((pick) => shards[pick % shards.length]!.id));
        const liveNow = live.filter((id) => id !== 1 + dead);
        const plan = planPlacement({ liveNodes: liveNow, shards: shards.map((shard) => ({ ...shard, pinned: pinned.has(shard.id) })), replicationFactor: 3 });
        for (const move of plan) {
          if (!pinned.has(move.shard)) continue;
          assert.ok(move.from === null || !liveNow.includes(move.from), `a pinned shard ${move.shard} moved by balance from ${move.from}`);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('plans alignment moves after restoring lost replicas and before balance, and keeps the pair out of the count balance', () => {
    // Five nodes; shard 3 aligns onto 2. Node 5 holds nothing: the count balance fills it, never with shard 2 or 3.
    let map = initialShardMap(keys('b', 'c', 'd', 'e', 'f'), [1, 2, 3, 4]);
    map = changeReplicas(changeReplicas(map, 2, [1, 2, 3]), 3, [2, 3, 4]);
    map = startAlignment(map, 2);
    const moves = planReplicaMoves(map, [1, 2, 3, 4, 5], () => undefined, { replicationFactor: 3 });
    assert.deepEqual(moves[0], { shard: 3, from: 4, to: 1, reason: 'align' });
    assert.ok(moves.slice(1).length > 0 && moves.slice(1).every((move) => move.reason === 'placement' && move.shard !== 2 && move.shard !== 3), JSON.stringify(moves));
    // Node 5 held a replica of shard 4 and is gone: restoring it comes before the alignment.
    const withLoss = planReplicaMoves(changeReplicas(map, 4, [1, 2, 5]), [1, 2, 3, 4], () => undefined, { replicationFactor: 3 });
    const align = withLoss.findIndex((move) => move.reason === 'align');
    const restore = withLoss.findIndex((move) => move.shard === 4 && move.from === 5);
    assert.ok(restore >= 0 && align > restore, JSON.stringify(withLoss));
  });
});

describe('one merge round (planMergeRound)', () => {
  const options = { mergeBytes: 100, splitBytes: 1000, recentlySplit: new Set<number>(), alignmentsMax: 2 };
  const live = new Set([1, 2, 3, 4]);

  it('aligns a small pair on different members, merges a pair on the same ones, and bounds the alignments', () => {
    const map = pairOnDifferentMembers(); // 2 on 1,2,3; 3 on 2,3,4; 4 on 1,2,4
    const small = new Map([[2, 10], [3, 10], [4, 10]]);
    assert.deepEqual(planMergeRound({ ...options, map, sizes: small, live }), { drop: [], merge: undefined, align: [2] });
    assert.deepEqual(planMergeRound({ ...options, map, sizes: small, live, alignmentsMax: 0 }).align, [], 'no slot');
    assert.deepEqual(planMergeRound({ ...options, map, sizes: small, live: undefined }).align, [], 'a suspect member: nothing new');
    assert.deepEqual(planMergeRound({ ...options, map, sizes: small, live, recentlySplit: new Set([2]) }).align, [3], 'shard 2 changed recently: 3 and 4 are the next pair');
    const same = changeReplicas(map, 3, [1, 2, 3]);
    assert.deepEqual(planMergeRound({ ...options, map: same, sizes: small, live }), { drop: [], merge: 2, align: [] });
  });

  it('merges an aligned pair first, and drops a pair whose member died or that grew', () => {
    const marked = startAlignment(pairOnDifferentMembers(), 2);
    const small = new Map([[2, 10], [3, 10], [4, 10]]);
    assert.deepEqual(planMergeRound({ ...options, map: marked, sizes: small, live }), { drop: [], merge: undefined, align: [] }, 'still aligning; 3 and 4 are taken by the pair');
    const aligned = alignFully(marked, live).map;
    assert.equal(planMergeRound({ ...options, map: aligned, sizes: small, live }).merge, 2);
    assert.equal(planMergeRound({ ...options, map: startMove(aligned, 2, 1, 4), sizes: small, live }).merge, undefined, 'not while a move of the pair runs');
    assert.deepEqual(planMergeRound({ ...options, map: marked, sizes: small, live: new Set([1, 2, 3]) }).drop, [{ right: 3, why: 'node 4 of the pair is not live' }]);
    assert.match(planMergeRound({ ...options, map: marked, sizes: new Map([[2, 10], [3, 500]]), live }).drop[0]?.why ?? '', /grew past/);
    assert.deepEqual(planMergeRound({ ...options, map: marked, sizes: new Map(), live }).drop, [], 'unknown sizes: no verdict');
  });
});
