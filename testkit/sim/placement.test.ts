/**
 * The placement planner at scale in the simulator: 50 nodes (40 at first,
 * then nodes added and dying), 5,000 shards of three replicas; every
 * invariant of testkit/sim/placement.ts holds after every change, the same
 * seed gives the same trace, and the checks reject a plan that breaks them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyMoves, minimumByteMoves, planPlacement } from '../../src/shard/placement.js';
import { type PlacementStep, checkLeaders, checkPlacement, runPlacementSimulation } from './placement.js';

const SCALE = { initialNodes: 40, shards: 5000, replicationFactor: 3, changes: 24, minNodes: 30 };

describe('placement in the simulator', () => {
  for (const seed of [1, 2]) {
    it(`seed ${seed}: 5,000 shards over 30-60 nodes stay fully replicated and balanced within 10%, with no more moves than needed`, () => {
      const result = runPlacementSimulation({ seed, ...SCALE });
      assert.deepEqual(result.violations, []);
      assert.ok(result.steps.every((step) => step.leadersMax <= step.leadersBound), 'no node leads more than ceil(shards / N)');
      assert.ok(result.steps.some((step) => step.leaderTransfers > 0), 'leaders were balanced after some change');
      assert.ok(result.steps.some((step) => step.change.includes('dies')) && result.steps.some((step) => step.change.includes('add')));
      assert.equal(runPlacementSimulation({ seed, ...SCALE }).traceHash, result.traceHash);
    });
  }

  it('seed 3: 5,000 shards of uneven sizes (1-512 MiB, hot ranges growing 4x): bytes within 5% of the mean with counts still balanced and moves at the byte bound; today\'s count-only planner on the same run is far off', () => {
    const options = { seed: 3, ...SCALE, sizes: { weighBytes: true } };
    const weighed = runPlacementSimulation(options);
    assert.deepEqual(weighed.violations, []);
    assert.ok(weighed.steps.some((step) => step.change.includes('grow')) && weighed.steps.some((step) => step.change.includes('dies')) && weighed.steps.some((step) => step.change.includes('add')));
    const total = (steps: readonly PlacementStep[], pick: (step: PlacementStep) => number): number => steps.slice(1).reduce((sum, step) => sum + pick(step), 0);
    // Over the whole run (after the first placement), within 2% of the lower bound.
    assert.ok(total(weighed.steps, (step) => step.moves) <= 1.02 * total(weighed.steps, (step) => step.minimumByteMoves), `${total(weighed.steps, (step) => step.moves)} moves, bound ${total(weighed.steps, (step) => step.minimumByteMoves)}`);
    const countOnly = runPlacementSimulation({ ...options, sizes: { weighBytes: false } });
    assert.deepEqual(countOnly.violations, [], 'the count-only planner still balances counts');
    assert.ok(Math.max(...countOnly.steps.map((step) => step.bytesMaxOverMean)) > 1.2, 'the count-only planner leaves some node 20% over the mean bytes');
  });

  it('weighs sizes only as a tie-break of counts: equal sizes give the count-only plan, and balanced counts with uneven bytes are swapped into the band', () => {
    const shards = Array.from({ length: 40 }, (_, i) => ({ id: i + 2, replicas: [1 + (i % 4), 1 + ((i + 1) % 4), 1 + ((i + 2) % 4)] }));
    const live = [1, 2, 3, 4, 5];
    const plain = planPlacement({ liveNodes: live, shards, replicationFactor: 3 });
    assert.deepEqual(planPlacement({ liveNodes: live, shards: shards.map((shard) => ({ ...shard, sizeBytes: 1000 })), replicationFactor: 3 }), plain);
    // Two nodes, three shards each (counts balanced), 2,200 bytes against 600: one swap of a 1,000 for a 200 evens them.
    const two = [{ id: 2, replicas: [1], sizeBytes: 1000 }, { id: 3, replicas: [2], sizeBytes: 200 }, { id: 4, replicas: [1], sizeBytes: 200 }, { id: 5, replicas: [2], sizeBytes: 200 }, { id: 6, replicas: [1], sizeBytes: 1000 }, { id: 7, replicas: [2], sizeBytes: 200 }];
    const swapped = planPlacement({ liveNodes: [1, 2], shards: two, replicationFactor: 1 });
    assert.deepEqual(swapped, [{ shard: 2, from: 1, to: 2 }, { shard: 3, from: 2, to: 1 }], 'a swap: counts stay 3 and 3, bytes 1,400 each');
    const after = applyMoves(two, swapped);
    assert.deepEqual(planPlacement({ liveNodes: [1, 2], shards: after, replicationFactor: 1 }), [], 'nothing more (no flapping)');
    assert.ok(minimumByteMoves({ liveNodes: [1, 2], shards: two, replicationFactor: 1 }) <= swapped.length);
  });

  it('moves nothing when the placement is balanced, and restores a lost replica elsewhere', () => {
    const shards = [
      { id: 2, replicas: [1, 2, 3] },
      { id: 3, replicas: [2, 3, 4] },
      { id: 4, replicas: [1, 3, 4] },
      { id: 5, replicas: [1, 2, 4] },
    ];
    assert.deepEqual(planPlacement({ liveNodes: [1, 2, 3, 4], shards, replicationFactor: 3 }), []);
    const moves = planPlacement({ liveNodes: [1, 2, 3], shards, replicationFactor: 3 });
    assert.deepEqual(moves, [
      { shard: 3, from: 4, to: 1 },
      { shard: 4, from: 4, to: 2 },
      { shard: 5, from: 4, to: 3 },
    ]);
  });

  it('is checked: the leader invariants reject a node above the bound and a plan left unfinished', () => {
    const shards = [2, 3, 4, 5].map((id) => ({ id, voters: [1, 2], leader: 1 }));
    const problems = checkLeaders([1, 2], shards);
    assert.ok(problems.some((problem) => problem.includes('node 1 leads 4 shards, above 2')), problems.join('; '));
    assert.ok(problems.some((problem) => problem.includes('flapping')), problems.join('; '));
    assert.deepEqual(checkLeaders([1, 2], shards.map((shard, i) => ({ ...shard, leader: 1 + (i % 2) }))), []);
  });

  it('is checked: the invariants reject an under-replicated shard, an overloaded node and needless moves', () => {
    const step = { change: 'test', liveNodes: 3, moves: 5, minimumMoves: 2, restored: 0, restoredPerNodeMax: 0, minReplicas: 1, maxReplicas: 3, meanReplicas: 2, planMs: 0, leaderTransfers: 0, leadersMax: 0, leadersBound: 0, bytesMaxOverMean: 1, bytesMinOverMean: 1, minimumByteMoves: 2 };
    const shards = [
      { id: 2, replicas: [1, 2] },
      { id: 3, replicas: [1, 3] },
      { id: 4, replicas: [1] },
    ];
    const problems = checkPlacement(step, shards, [1, 2, 3], new Map([[1, 3], [2, 1], [3, 1]]), 2);
    assert.ok(problems.some((problem) => problem.includes('shard 4 has replicas 1')), problems.join('; '));
    assert.ok(problems.some((problem) => problem.includes('node 1 holds 3 replicas')), problems.join('; '));
    assert.ok(problems.some((problem) => problem.includes('not within 10%')), problems.join('; '));
    assert.ok(problems.some((problem) => problem.includes('5 moves where 2 suffice')), problems.join('; '));
    const bytes = checkPlacement({ ...step, bytesMaxOverMean: 1.08, bytesMinOverMean: 0.97, minimumByteMoves: 1 }, shards, [1, 2, 3], new Map([[1, 3], [2, 1], [3, 1]]), 2, { grew: true });
    assert.ok(bytes.some((problem) => problem.includes('outside 0.05')), bytes.join('; '));
    assert.ok(bytes.some((problem) => problem.includes('5 moves where the bound is 1')), bytes.join('; '));
  });
});
