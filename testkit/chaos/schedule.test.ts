import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEMESIS_FAMILIES, makeSchedule, partitionCuts, resolveTarget } from './schedule.js';

describe('chaos schedule', () => {
  it('is a pure function of the seed: the same seed gives the same schedule, another seed another', () => {
    const options = { seed: 42, durationS: 120, nodes: 5, families: NEMESIS_FAMILIES };
    assert.equal(JSON.stringify(makeSchedule(options)), JSON.stringify(makeSchedule(options)));
    assert.notEqual(JSON.stringify(makeSchedule(options)), JSON.stringify(makeSchedule({ ...options, seed: 43 })));
  });

  it('keeps every window inside the run, in order, with quiet gaps, and uses every family it is given', () => {
    const schedule = makeSchedule({ seed: 7, durationS: 600, nodes: 3, families: NEMESIS_FAMILIES });
    assert.ok(schedule.length > 50);
    let end = 0;
    for (const fault of schedule) {
      assert.ok(fault.atS >= end + 1 - 1e-9 || fault.id === 1, `gap before #${fault.id}`);
      assert.ok(fault.durationS >= 2 && fault.durationS <= 5);
      end = fault.atS + fault.durationS;
      assert.ok(end <= 599);
    }
    assert.deepEqual(new Set(schedule.map((fault) => fault.fault.kind)), new Set(NEMESIS_FAMILIES));
    const clocks = schedule.flatMap((fault) => (fault.fault.kind === 'clock' ? [fault.fault] : []));
    assert.deepEqual(new Set(clocks.map((clock) => clock.effect)), new Set(['jump', 'strobe', 'fast', 'slow', 'slow-isolated']));
    for (const clock of clocks.filter((clock) => clock.effect === 'slow-isolated')) assert.ok(clock.target.select === 'leader' && clock.rate >= 0.1 && clock.rate <= 0.2, 'a slow-isolated clock fault slows the leader');
    assert.deepEqual(makeSchedule({ seed: 7, durationS: 600, nodes: 3, families: [] }), []);
  });

  it('resolves targets to the documented sizes, the leader first where asked', () => {
    const order = [3, 0, 4, 1, 2];
    assert.deepEqual(resolveTarget({ select: 'leader', order }, 4), [4]);
    assert.deepEqual(resolveTarget({ select: 'leader', order }, undefined), [3]);
    assert.deepEqual(resolveTarget({ select: 'follower', order }, 3), [0]);
    assert.deepEqual(resolveTarget({ select: 'minority', order }, 3), [3, 0]);
    assert.deepEqual(resolveTarget({ select: 'majority', order }, 3), [3, 0, 4]);
    assert.equal(resolveTarget({ select: 'all', order }, 3).length, 5);
    assert.deepEqual(resolveTarget({ select: 'minority', order: [2, 0, 1] }, 0), [2]);
  });

  it('cuts partitions into the documented shapes', () => {
    const sees = (cuts: Array<[number, number]>, a: number, b: number): boolean => !cuts.some(([x, y]) => x === a && y === b);
    const isolated = partitionCuts('isolate-leader', [0, 1, 2], 1);
    assert.deepEqual(isolated, [[0, 1], [1, 0], [1, 2], [2, 1]]);
    const halves = partitionCuts('halves', [4, 2, 0, 1, 3], undefined);
    assert.equal(halves.length, 2 * 2 * 3, 'a minority of 2 cut from a majority of 3, both ways');
    const ring = partitionCuts('ring', [0, 1, 2, 3, 4], undefined);
    for (let node = 0; node < 5; node++) {
      const visible = [0, 1, 2, 3, 4].filter((other) => other !== node && sees(ring, node, other));
      assert.equal(visible.length, 2, `node ${node} sees its two neighbours (a majority with itself)`);
    }
    const bridge = partitionCuts('bridge', [0, 1, 2], undefined);
    assert.ok(sees(bridge, 0, 1) && sees(bridge, 1, 2) && !sees(bridge, 0, 2), 'the middle member bridges the two sides');
    assert.deepEqual(partitionCuts('ring', [0, 1, 2], undefined), bridge, 'a ring of 3 would cut nothing: a bridge instead');
  });
});
