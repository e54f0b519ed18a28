/**
 * The placement planner at scale in the simulator: 50 nodes (40 at first,
 * then nodes added and dying), 5,000 shards of three replicas; every
 * invariant of testkit/sim/placement.ts holds after every change, the same
 * seed gives the same trace, and the checks reject a plan that breaks them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planPlacement } from '../../src/shard/placement.js';
import { checkLeaders, checkPlacement, runPlacementSimulation } from './placement.js';

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
    const step = { change: 'test', liveNodes: 3, moves: 5, minimumMoves: 2, restored: 0, restoredPerNodeMax: 0, minReplicas: 1, maxReplicas: 3, meanReplicas: 2, planMs: 0, leaderTransfers: 0, leadersMax: 0, leadersBound: 0 };
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
  });
});
