/**
 * Merges with alignment in the simulator (testkit/sim/merge-alignment.ts),
 * at a scale the suite can afford (the 50 nodes and thousands of
 * shards: `node dist/bench/merge-alignment.js`, docs/benchmarks.md): small
 * neighbours on different members are aligned and merged, the counts end
 * within their band, no shard moves back and forth between balance and
 * alignment, never below three replicas — also when members of aligning
 * pairs die mid-way (their alignments dropped). The same seed gives the same
 * trace, and the checks reject bad end states and a move undone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { changeReplicas, initialShardMap } from '../../src/shard/shard-map.js';
import { startAlignment } from '../../src/shard/alignment.js';
import { MoveHistory, checkSettled, runAlignmentSimulation } from './merge-alignment.js';

const MIB = 1024 * 1024;
const SCALE = { nodes: 20, shards: 600, replicationFactor: 3, smallShare: 0.2, smallRun: 10, mergeBytes: 16 * MIB, movesMax: 8, mergeRoundsPerRound: 4, quietRounds: 3, roundsMax: 1000 };

describe('merges with alignment in the simulator', () => {
  it('20 nodes, 600 shards, a fifth small in runs: the small neighbours merge after alignment, counts balanced, no move undone, and a member of an aligning pair dying drops its alignment', () => {
    const result = runAlignmentSimulation({ seed: 1, ...SCALE, deaths: [4, 9] });
    assert.deepEqual(result.violations, []);
    assert.ok(result.settled);
    assert.ok(result.merges >= 50 && result.alignedMerges >= 0.8 * result.merges, `${result.merges} merges, ${result.alignedMerges} after an alignment`);
    assert.ok(result.alignmentsDropped >= 1, 'the deaths dropped alignments');
    assert.equal(result.shardsAfter, result.shardsBefore - result.merges);
    assert.ok(result.countMaxOverMean <= 1.1 && result.countMinOverMean >= 0.9);
    assert.equal(runAlignmentSimulation({ seed: 1, ...SCALE, deaths: [4, 9] }).traceHash, result.traceHash, 'deterministic');
  });

  it('with one move at a time and no deaths: the same end, every pair aligned before it merged', () => {
    const result = runAlignmentSimulation({ seed: 2, ...SCALE, shards: 300, movesMax: 1 });
    assert.deepEqual(result.violations, []);
    assert.ok(result.merges >= 20 && result.alignmentsDropped === 0, JSON.stringify(result));
  });

  it('the checks reject an unbalanced end, a shard short of replicas or on a dead node, an alignment left, and a move undone', () => {
    const map = initialShardMap([Buffer.from('c'), Buffer.from('e')], [1, 2, 3, 4]);
    assert.deepEqual(checkSettled(map, [1, 2, 3, 4], 3), []);
    assert.match(checkSettled(changeReplicas(changeReplicas(map, 2, [1, 2, 3]), 3, [1, 2, 3]), [1, 2, 3, 4], 3).join(), /replica counts/);
    assert.match(checkSettled(map, [1, 2, 3], 3).join(), /ends on/);
    assert.match(checkSettled(changeReplicas(map, 2, [1, 2]), [1, 2, 3, 4], 3).join(), /ends on/);
    const aligned = startAlignment(changeReplicas(changeReplicas(map, 2, [1, 2, 3]), 3, [2, 3, 4]), 2);
    assert.match(checkSettled(aligned, [1, 2, 3, 4], 3).join(), /alignments left/);
    const history = new MoveHistory();
    assert.equal(history.record({ shard: 2, from: 1, to: 4, reason: 'placement' }), undefined);
    assert.equal(history.record({ shard: 3, from: 4, to: 1 }), undefined, 'another shard');
    assert.equal(history.record({ shard: 2, from: 4, to: 5 }), undefined, 'onwards, not back');
    const back = history.record({ shard: 2, from: 4, to: 1, reason: 'align' });
    assert.match(back?.description ?? '', /moved back from 4 to 1 \(align, undoing its earlier placement move\)/);
    assert.equal(back?.undone, 'placement');
  });
});
