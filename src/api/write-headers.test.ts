import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ErrorCode, isImpulseError } from '../errors.js';
import { conditionOf, consistencyOf, etagOf, keyQueryConsistency, sessionOf } from './write-headers.js';

function throwsCode(run: () => unknown, code: ErrorCode): void {
  assert.throws(run, (error: unknown) => isImpulseError(error, code));
}

describe('write headers', () => {
  it('reads If-Match as one revision and If-None-Match: * as create-only', () => {
    assert.equal(etagOf(42), '"42"');
    assert.equal(conditionOf({}, 'PUT'), undefined);
    assert.deepEqual(conditionOf({ 'if-match': '"42"' }, 'PUT'), { ifRevision: 42 });
    assert.deepEqual(conditionOf({ 'if-match': ' "7" ' }, 'DELETE'), { ifRevision: 7 });
    assert.deepEqual(conditionOf({ 'if-none-match': '*' }, 'PUT'), { ifAbsent: true });
  });

  it('refuses every condition it cannot honour exactly', () => {
    for (const ifMatch of ['42', 'W/"42"', '"1", "2"', '*', '"0"', '"abc"', '""', '"99999999999999999"']) {
      throwsCode(() => conditionOf({ 'if-match': ifMatch }, 'PUT'), 'IMPULSE_ERR_CONDITION_INVALID');
    }
    throwsCode(() => conditionOf({ 'if-none-match': '"3"' }, 'PUT'), 'IMPULSE_ERR_CONDITION_INVALID');
    throwsCode(() => conditionOf({ 'if-none-match': '*' }, 'DELETE'), 'IMPULSE_ERR_CONDITION_INVALID');
    throwsCode(() => conditionOf({ 'if-match': '"1"', 'if-none-match': '*' }, 'PUT'), 'IMPULSE_ERR_CONDITION_INVALID');
  });

  it('reads a session from its headers, both or neither of id and seq', () => {
    assert.equal(sessionOf({}), undefined);
    assert.deepEqual(sessionOf({ 'impulse-client-id': 'abc_-1', 'impulse-client-seq': '7' }), { clientId: 'abc_-1', seq: 7 });
    assert.deepEqual(sessionOf({ 'impulse-client-id': 'a', 'impulse-client-seq': '7', 'impulse-client-acked-below': '5' }), { clientId: 'a', seq: 7, ackedBelow: 5 });
    for (const headers of [
      { 'impulse-client-id': 'a' },
      { 'impulse-client-seq': '1' },
      { 'impulse-client-id': 'a b', 'impulse-client-seq': '1' },
      { 'impulse-client-id': 'a, b', 'impulse-client-seq': '1' },
      { 'impulse-client-id': 'a', 'impulse-client-seq': '0' },
      { 'impulse-client-id': 'a', 'impulse-client-seq': '1.5' },
      { 'impulse-client-id': 'a', 'impulse-client-seq': '-1' },
      { 'impulse-client-id': 'a', 'impulse-client-seq': '3', 'impulse-client-acked-below': '4' },
    ]) {
      throwsCode(() => sessionOf(headers), 'IMPULSE_ERR_SESSION_INVALID');
    }
  });

  it('reads consistency, linearizable by default, and refuses anything else on a key request', () => {
    assert.equal(keyQueryConsistency(''), 'linearizable');
    assert.equal(keyQueryConsistency('consistency=serializable'), 'serializable');
    assert.equal(consistencyOf(undefined, 'IMPULSE_ERR_RANGE_INVALID'), 'linearizable');
    throwsCode(() => keyQueryConsistency('consistency=eventual'), 'IMPULSE_ERR_QUERY_INVALID');
    throwsCode(() => keyQueryConsistency('consistncy=serializable'), 'IMPULSE_ERR_QUERY_INVALID');
    throwsCode(() => keyQueryConsistency('consistency=serializable&consistency=linearizable'), 'IMPULSE_ERR_QUERY_INVALID');
    throwsCode(() => consistencyOf('fast', 'IMPULSE_ERR_RANGE_INVALID'), 'IMPULSE_ERR_RANGE_INVALID');
  });
});
