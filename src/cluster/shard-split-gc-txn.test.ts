/**
 * The split GC's steps over a parent holding frozen transaction state
 * (shard-split-gc.ts `splitGcEntry`, on one state machine): the locks on keys
 * of the frozen range and the records whose primary key lies in it go first,
 * within each step's budget of keys, then the data keys; locks and records
 * inside the parent's bounds stay; the marker is gone once all are.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEngine } from '../storage/registry.js';
import { TEST_LIMITS } from '../../testkit/kv/state-machine-suite.js';
import { MemoryEngineHome } from '../kv/engine-home.js';
import { KvStateMachine, engineLimitsFor } from '../kv/state-machine.js';
import type { TxnCommand } from '../kv/txn.js';
import { EMPTY_MEMBERSHIP } from './membership.js';
import { applyWithGcSteps, frozenRightIds } from './shard-split-gc.js';
import { encodeSplitRecord, splitMetaName } from './shard-split.js';

const b = (text: string): Buffer => Buffer.from(text);

describe('split GC of frozen transaction state', () => {
  it('deletes the frozen locks and records first, a budget of keys a step, then the data; the parent\'s own stay', async () => {
    const machine = await KvStateMachine.open({ home: new MemoryEngineHome(() => createEngine('memory', { limits: engineLimitsFor(TEST_LIMITS) })), limits: TEST_LIMITS });
    const apply = async (command: TxnCommand): Promise<void> => {
      const [result] = await machine.applyBatch([{ index: machine.appliedIndex + 1, term: 1, type: 'txn', command }]);
      assert.ok(result!.ok, JSON.stringify(result));
    };
    // Before the split at p: locks on q, r, s (three transactions; one with its primary on the left, a), records of two with primaries q and s, and the parent's own lock on b.
    await apply({ kind: 'prepare', txnId: 't1', primaryKey: b('q'), createdAtMs: 0, ops: [{ type: 'put', key: b('q'), value: b('1') }, { type: 'put', key: b('r'), value: b('1') }] });
    await apply({ kind: 'prepare', txnId: 't2', primaryKey: b('a'), createdAtMs: 0, ops: [{ type: 'put', key: b('s'), value: b('2') }, { type: 'put', key: b('b'), value: b('2') }] });
    await apply({ kind: 'abort', txnId: 't3', primaryKey: b('s') });
    await apply({ kind: 'abort', txnId: 't4', primaryKey: b('q') });
    await apply({ kind: 'abort', txnId: 't5', primaryKey: b('c') });
    await machine.applyBatch([{ index: machine.appliedIndex + 1, term: 1, type: 'command', command: { ops: ['p1', 'p2', 'p3'].map((key) => ({ type: 'put' as const, key: b(key), value: b('v') })) } }]);
    const record = { rightId: 7, bounds: { start: b('p'), end: null }, index: machine.appliedIndex + 1, term: 1, membership: EMPTY_MEMBERSHIP };
    await machine.applyBatch([{ index: record.index, term: 1, type: 'meta', name: splitMetaName(7), value: encodeSplitRecord(record) }]);
    const bounds = { start: Buffer.alloc(0), end: b('p') }; // the parent's after the split
    const steps: number[] = [];
    for (let step = 0; frozenRightIds(machine).includes(7); step++) {
      assert.ok(step < 10, 'the GC ends');
      const index = machine.appliedIndex + 1;
      const before = machine.lockCount + machine.txnRecordIds().length + (await machine.range({ gte: b('p'), limit: 100 })).length;
      await applyWithGcSteps(machine, [{ index, term: 1, type: 'noop' }], [{ position: 0, rightId: 7, keysMax: 2, bounds }], true, (work) => work());
      const after = machine.lockCount + machine.txnRecordIds().length + (await machine.range({ gte: b('p'), limit: 100 })).length;
      steps.push(before - after);
      if (step === 0) assert.deepEqual(machine.locks().map(({ key }) => key.toString()).sort(), ['b', 's'], 'the first step: the locks in key order first (q, r)');
    }
    assert.deepEqual(steps, [2, 2, 2, 2], 'at most 2 keys a step: locks q r, lock s + record t3, record t4 + data p1, data p2 p3');
    assert.deepEqual(machine.locks().map(({ key }) => key.toString()), ['b'], 'the parent\'s own lock stays');
    assert.deepEqual(machine.txnRecordIds(), ['t5'], 'the parent\'s own record stays');
    assert.deepEqual(await machine.range({ gte: b('p'), limit: 100 }), []);
    await machine.close();
  });
});
