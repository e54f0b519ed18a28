/**
 * A shard merge's commit on the state machine (apply.ts `MergeAbsorb`): the
 * merged-in keys keep their records and revisions, the survivor's stale keys
 * in the range are deleted, later revisions start above the other machine's
 * revision top (the base is stored: a machine reopened on the same engine
 * keeps it), and the sessions are the union — a retry of a write either
 * machine applied is answered with its first result, a seq below either
 * floor stays expired. Transaction locks and records come along and replace
 * the survivor's stale frozen copies in the range.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEngine } from '../storage/registry.js';
import { TEST_LIMITS } from '../../testkit/kv/state-machine-suite.js';
import type { ApplyResult } from './apply.js';
import type { KvCommand } from './command.js';
import { isImpulseError } from '../errors.js';
import type { TxnCommand } from './txn.js';
import { mergeAbsorbOf, staleKeysOf } from '../cluster/shard-merge.js';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import { MemVfs } from '../../testkit/vfs/mem-vfs.js';
import { DirectoryEngineHome, MemoryEngineHome } from './engine-home.js';
import { dataKey } from './keyspace.js';
import { KvStateMachine, engineLimitsFor } from './state-machine.js';

const put = (key: string, value: string, clientId?: string, seq?: number, ackedBelow?: number): KvCommand => ({
  ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }],
  ...(clientId !== undefined && seq !== undefined ? { session: { clientId, seq, ...(ackedBelow !== undefined ? { ackedBelow } : {}) } } : {}),
});

describe('a merge commit on the state machine', () => {
  it('takes the other machine\'s keys and sessions in, deletes stale keys, and keeps revisions above the other\'s', async () => {
    const vfs = new MemVfs();
    const home = (): DirectoryEngineHome => new DirectoryEngineHome(vfs, 'left', (dir) => new LsmEngine({ dataDir: dir, vfs, limits: engineLimitsFor(TEST_LIMITS) }));
    const left = await KvStateMachine.open({ home: home(), limits: TEST_LIMITS });
    const right = await KvStateMachine.open({ home: new MemoryEngineHome(() => createEngine('memory', { limits: engineLimitsFor(TEST_LIMITS) })), limits: TEST_LIMITS });
    const apply = async (machine: KvStateMachine, command: KvCommand): Promise<ApplyResult> => (await machine.applyBatch([{ index: machine.appliedIndex + 1, term: 1, type: 'command', command }]))[0]!;
    await apply(left, put('a', 'left', 'c', 1));
    await apply(left, put('q', 'frozen copy, deleted on the right since'));
    await apply(left, put('b', 'left', 'c', 2, 2)); // the left forgot seq 1 (floor 2)
    for (let i = 0; i < 20; i++) await apply(right, put('r', `right-${i}`, 'c', 3 + i));
    await apply(right, put('s', 'right', 'd', 1));
    const top = right.appliedIndex; // the right machine's revisions are <= its index (base 0)
    const data: Array<{ key: Buffer; value: Buffer }> = [];
    for await (const page of right.exportData(Buffer.from('p'), null)) data.push(...page);
    const index = left.appliedIndex + 1;
    assert.ok(top > index, 'the right log is longer: without a base the next left revision would be below the copied ones');
    const [result] = await left.applyBatch([{ index, term: 1, type: 'meta', name: 'shard-bounds-test', value: Buffer.from('x'), absorb: { deletes: [dataKey(Buffer.from('q'))], data, txn: [], sessions: await right.encodedSessions(), revisionTop: top } }]);
    assert.deepEqual(result, { ok: true, revision: index }, 'the commit entry itself is answered under the base before it (0)');
    assert.equal(left.revisionBase, top - index);
    assert.equal(await left.get(Buffer.from('q')), undefined, 'a stale frozen key is deleted');
    assert.deepEqual(await left.get(Buffer.from('r')), await right.get(Buffer.from('r')), 'a merged-in key keeps its record and revision');
    const next = await apply(left, put('r', 'after'));
    assert.ok(next.ok && next.revision > top, `the next revision ${JSON.stringify(next)} is above the right's top ${top}`);
    // Sessions: the union of both machines' results; the higher floor.
    const retryRight = await apply(left, put('r', 'again', 'c', 22));
    assert.deepEqual(retryRight, { ok: true, revision: (await right.get(Buffer.from('r')))!.revision }, 'a retry of a write the right applied');
    const retryLeft = await apply(left, put('b', 'again', 'c', 2));
    assert.ok(retryLeft.ok && retryLeft.revision === 3, 'a retry of a write the left applied');
    const expired = await apply(left, put('a', 'again', 'c', 1));
    assert.ok(!expired.ok && 'error' in expired && expired.error.code === 'IMPULSE_ERR_SESSION_EXPIRED', 'a seq the left forgot stays expired');
    const other = await apply(left, put('s', 'again', 'd', 1));
    assert.ok(other.ok && other.revision === (await right.get(Buffer.from('s')))!.revision, 'a client only the right knew');
    // The base is stored with the batch: a machine opened again on the same engine keeps it.
    const base = left.revisionBase;
    await left.close();
    const reopened = await KvStateMachine.open({ home: home(), limits: TEST_LIMITS });
    assert.equal(reopened.revisionBase, base);
    await reopened.close();
  });

  it('carries the other machine\'s locks and records over stale frozen copies, visible to later entries of the batch and after a reopen', async () => {
    const vfs = new MemVfs();
    const home = (): DirectoryEngineHome => new DirectoryEngineHome(vfs, 'left', (dir) => new LsmEngine({ dataDir: dir, vfs, limits: engineLimitsFor(TEST_LIMITS) }));
    const left = await KvStateMachine.open({ home: home(), limits: TEST_LIMITS });
    const right = await KvStateMachine.open({ home: new MemoryEngineHome(() => createEngine('memory', { limits: engineLimitsFor(TEST_LIMITS) })), limits: TEST_LIMITS });
    const txn = async (machine: KvStateMachine, command: TxnCommand): Promise<ApplyResult> => (await machine.applyBatch([{ index: machine.appliedIndex + 1, term: 1, type: 'txn', command }]))[0]!;
    const prepare = (txnId: string, primary: string, key: string): TxnCommand => ({ kind: 'prepare', txnId, primaryKey: Buffer.from(primary), createdAtMs: 1, ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(txnId) }] });
    // The left machine holds frozen copies in [p, ..): a lock on q of a transaction since resolved there, a record since forgotten.
    await txn(left, prepare('old', 'q', 'q'));
    await txn(left, { kind: 'abort', txnId: 'gone', primaryKey: Buffer.from('r') });
    await txn(left, prepare('mine', 'a', 'a')); // the left's own, outside the range: untouched
    // The right machine: q locked by another transaction, whose record it holds (committed; the primary q's lock applied); s locked by one whose primary lives elsewhere.
    await txn(right, prepare('live', 'q', 'q'));
    await txn(right, prepare('live', 'q', 't'));
    await txn(right, { kind: 'commit', txnId: 'live', primaryKey: Buffer.from('q'), keys: [Buffer.from('q')], otherKeys: [Buffer.from('c')] });
    await txn(right, prepare('other', 'c', 's'));
    const bounds = { start: Buffer.from('p'), end: null };
    const absorbed = await mergeAbsorbOf(right, { leftId: 2, index: right.appliedIndex, bounds, revisionTop: right.appliedIndex, epoch: 1 });
    const deletes = await staleKeysOf(left, bounds, absorbed);
    const index = left.appliedIndex + 1;
    const results = await left.applyBatch([
      { index, term: 1, type: 'meta', name: 'shard-bounds-test', value: Buffer.from('x'), absorb: { ...absorbed, deletes } },
      { index: index + 1, term: 1, type: 'command', command: put('s', 'blocked') },
      { index: index + 2, term: 1, type: 'txn', command: { kind: 'resolve', txnId: 'live', commit: true, keys: [Buffer.from('t')] } },
    ]);
    assert.ok(!results[1]!.ok && 'error' in results[1]! && isImpulseError(results[1].error, 'IMPULSE_ERR_TXN_LOCKED'), 'a carried lock refuses a write later in the same batch');
    assert.ok(results[2]!.ok);
    const view = async (machine: KvStateMachine): Promise<unknown> => ({
      locks: machine.locks().map(({ key, lock }) => `${key.toString()}:${lock.txnId}`).sort(),
      records: (await Promise.all(machine.txnRecordIds().sort().map(async (id) => `${id}:${(await machine.txnRecord(id))?.status}`))),
      t: (await machine.get(Buffer.from('t')))?.value.toString(),
    });
    const expected = { locks: ['a:mine', 's:other'], records: ['live:committed'], t: 'live' };
    assert.deepEqual(await view(left), expected, 'the stale lock and record are gone, the carried ones are here, the resolve after the commit applied');
    await left.close();
    const reopened = await KvStateMachine.open({ home: home(), limits: TEST_LIMITS });
    assert.deepEqual(await view(reopened), expected, 'the same from the engine');
    await reopened.close();
    await right.close();
  });
});
