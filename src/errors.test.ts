import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_CATALOG, ImpulseError, type ErrorCode } from './errors.js';
import { HTTP_STATUS } from './api/http-status.js';
import { RaftError } from './raft/types.js';

describe('ImpulseError', () => {
  it('carries its code, the catalog summary as default message, and its cause', () => {
    const cause = new Error('disk on fire');
    const error = new ImpulseError('IMPULSE_ERR_ENGINE_IO', undefined, { cause });
    assert.equal(error.code, 'IMPULSE_ERR_ENGINE_IO');
    assert.equal(error.message, ERROR_CATALOG.IMPULSE_ERR_ENGINE_IO.summary);
    assert.equal(error.cause, cause);
    assert.deepEqual(error.toJSON(), { error: { code: 'IMPULSE_ERR_ENGINE_IO', message: error.message } });
  });

  it('puts its details in the JSON body, and details cannot override code or message', () => {
    const error = new ImpulseError('IMPULSE_ERR_OVERLOADED', 'busy', { details: { retryAfterSeconds: 1, code: 'spoofed' } });
    assert.deepEqual(error.toJSON(), { error: { retryAfterSeconds: 1, code: 'IMPULSE_ERR_OVERLOADED', message: 'busy' } });
  });

  it('a Raft error names the leader to retry at, and omits it when no leader is known', () => {
    assert.deepEqual(new RaftError('IMPULSE_ERR_RAFT_NOT_LEADER', 'not the leader', 3).toJSON(), {
      error: { leader: 3, code: 'IMPULSE_ERR_RAFT_NOT_LEADER', message: 'not the leader' },
    });
    assert.deepEqual(new RaftError('IMPULSE_ERR_RAFT_NOT_LEADER', 'no leader').toJSON(), { error: { code: 'IMPULSE_ERR_RAFT_NOT_LEADER', message: 'no leader' } });
  });

  it('every catalog code has an HTTP status in the API layer, and no status names an unknown code', () => {
    assert.deepEqual(Object.keys(HTTP_STATUS).sort(), Object.keys(ERROR_CATALOG).sort());
    for (const code of Object.keys(HTTP_STATUS) as ErrorCode[]) assert.ok(HTTP_STATUS[code] >= 400 && HTTP_STATUS[code] <= 599, code);
  });
});
