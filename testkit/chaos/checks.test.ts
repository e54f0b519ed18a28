import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImpulseError } from '../../src/errors.js';
import { checkBank, checkConvergence, checkLinearizable, checkRecovery, checkRegisterLostWrites, checkSet } from './checks.js';
import { type HistoryOp, classifyError, parseHistory } from './history.js';

let index = 0;
function op(fields: Partial<HistoryOp> & Pick<HistoryOp, 'op' | 'key' | 'call'>): HistoryOp {
  return { index: index++, process: 1, value: null, out: null, ret: fields.call + 0.01, status: 'ok', node: 1, ...fields };
}

describe('chaos checks', () => {
  it('linearizability: accepts a sequential history, rejects a stale read and names the key and operations', () => {
    const good = [op({ op: 'put', key: 'r/1', value: 'a', call: 0 }), op({ op: 'get', key: 'r/1', out: 'a', call: 1 }), op({ op: 'put', key: 'r/1', value: 'b', call: 2 }), op({ op: 'get', key: 'r/1', out: 'b', call: 3 })];
    assert.ok(checkLinearizable(good).ok);
    const stale = [...good, op({ op: 'get', key: 'r/1', out: 'a', call: 4, node: 3 })];
    const verdict = checkLinearizable(stale);
    assert.equal(verdict.ok, false);
    assert.match(verdict.summary, /r\/1/);
    assert.ok(verdict.details.some((line) => line.includes('get r/1') && line.includes('"a"') && line.includes('n3')));
  });

  it('linearizability: a failed cas says the value differed; an unknown put may or may not have happened; a failed put never did', () => {
    const history = [
      op({ op: 'put', key: 'k', value: 'a', call: 0 }),
      op({ op: 'cas', key: 'k', value: 'c', expected: 'b', call: 1, status: 'fail', error: 'IMPULSE_ERR_PRECONDITION_FAILED', out: false }),
      op({ op: 'put', key: 'k', value: 'x', call: 2, status: 'unknown', ret: null, error: 'IMPULSE_ERR_CLIENT_TIMEOUT' }),
      op({ op: 'get', key: 'k', out: 'x', call: 3 }),
    ];
    assert.ok(checkLinearizable(history).ok);
    const neverHappened = history.map((entry) => (entry.value === 'x' ? { ...entry, status: 'fail' as const, ret: 2.5, error: 'IMPULSE_ERR_UNAVAILABLE' } : entry));
    assert.equal(checkLinearizable(neverHappened).ok, false, 'a read of a value whose write certainly failed');
    const casLied = [op({ op: 'put', key: 'k', value: 'a', call: 0 }), op({ op: 'cas', key: 'k', value: 'c', expected: 'a', call: 1, status: 'fail', error: 'IMPULSE_ERR_PRECONDITION_FAILED', out: false })];
    assert.equal(checkLinearizable(casLied).ok, false, 'a cas that failed although its expected value was current');
  });

  it('lost writes: flags an acknowledged write overwritten by an earlier one, an absent key and a phantom value', () => {
    const base = [op({ op: 'put', key: 'k', value: 'a', call: 0 }), op({ op: 'put', key: 'k', value: 'b', call: 1 })];
    assert.ok(checkRegisterLostWrites([...base, op({ op: 'get', key: 'k', out: 'b', call: 10 })], 10).ok);
    const lost = checkRegisterLostWrites([...base, op({ op: 'get', key: 'k', out: 'a', call: 10 })], 10);
    assert.equal(lost.ok, false);
    assert.ok(lost.details.some((line) => line.includes('LOST') && line.includes('"b"')));
    assert.equal(checkRegisterLostWrites([...base, op({ op: 'get', key: 'k', out: null, call: 10 })], 10).ok, false);
    assert.equal(checkRegisterLostWrites([...base, op({ op: 'get', key: 'k', out: 'zzz', call: 10 })], 10).ok, false);
    const concurrent = [op({ op: 'put', key: 'k', value: 'a', call: 0, ret: 2 }), op({ op: 'put', key: 'k', value: 'b', call: 1 }), op({ op: 'get', key: 'k', out: 'a', call: 10 })];
    assert.ok(checkRegisterLostWrites(concurrent, 10).ok, 'concurrent writes may land in either order');
  });

  it('set: every acknowledged add present, nothing never added', () => {
    const adds = [op({ op: 'add', key: 's/a', value: 'a', call: 0 }), op({ op: 'add', key: 's/b', value: 'b', call: 1, status: 'unknown', ret: null })];
    assert.ok(checkSet([...adds, op({ op: 'read', key: 's/', out: ['a'], call: 5 })], 5).ok);
    assert.ok(checkSet([...adds, op({ op: 'read', key: 's/', out: ['a', 'b'], call: 5 })], 5).ok);
    assert.equal(checkSet([...adds, op({ op: 'read', key: 's/', out: ['b'], call: 5 })], 5).ok, false);
    assert.equal(checkSet([...adds, op({ op: 'read', key: 's/', out: ['a', 'q'], call: 5 })], 5).ok, false);
  });

  it('bank: the total is conserved in every read', () => {
    const read = (balances: number[], call: number): HistoryOp => op({ op: 'read', key: 'b/', out: Object.fromEntries(balances.map((balance, i) => [`b/${i}`, balance])), call });
    assert.ok(checkBank([read([100, 100, 100, 100, 100], 1), read([95, 105, 100, 100, 100], 2)]).ok);
    const broken = checkBank([read([100, 100, 100, 100, 100], 1), read([95, 100, 100, 100, 100], 2)]);
    assert.equal(broken.ok, false);
    assert.match(broken.details[0]!, /total 495 instead of 500/);
    assert.equal(checkBank([read([-5, 105, 100, 100, 100], 1)]).ok, false);
  });

  it('convergence and recovery', () => {
    assert.ok(checkConvergence(new Map([[1, { appliedIndex: 5, digest: 'x' }], [2, { appliedIndex: 5, digest: 'x' }]])).ok);
    assert.equal(checkConvergence(new Map([[1, { appliedIndex: 5, digest: 'x' }], [2, { appliedIndex: 5, digest: 'y' }]])).ok, false);
    assert.equal(checkConvergence(new Map<number, { appliedIndex: number; digest: string } | string>([[1, { appliedIndex: 5, digest: 'x' }], [2, 'no digest: down']])).ok, false);
    assert.ok(checkRecovery(900, 1000).ok);
    assert.equal(checkRecovery(1100, 1000).ok, false);
    assert.equal(checkRecovery(undefined, 1000).ok, false);
  });

  it('history: classification of errors and the JSON-lines round trip', () => {
    assert.equal(classifyError(new ImpulseError('IMPULSE_ERR_CLIENT_TIMEOUT', 'slow'), true).status, 'unknown');
    assert.equal(classifyError(new ImpulseError('IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN', 'x'), true).status, 'unknown');
    assert.equal(classifyError(new ImpulseError('IMPULSE_ERR_UNAVAILABLE', 'x'), true).status, 'fail');
    assert.equal(classifyError(new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE', 'cannot connect (ECONNREFUSED)'), true).status, 'fail');
    assert.equal(classifyError(new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE', 'socket hang up'), true).status, 'unknown');
    assert.equal(classifyError(new ImpulseError('IMPULSE_ERR_CLIENT_TIMEOUT', 'slow'), false).status, 'fail', 'a read changes nothing');
    const ops = [op({ op: 'put', key: 'k', value: 'v', call: 0 })];
    assert.deepEqual(parseHistory(ops.map((entry) => JSON.stringify(entry)).join('\n')), ops);
    assert.throws(() => parseHistory('{"nope":1}'), /line 1/);
  });
});
