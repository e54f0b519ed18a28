import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImpulseError } from '../errors.js';
import { dirName, errnoError, errorCodeOf, isNotFound, joinPath, vfsError } from './vfs.js';

describe('vfs helpers', () => {
  it('isNotFound looks through the cause chain for ENOENT only', () => {
    const missing = vfsError('open', 'db/wal', errnoError('ENOENT', 'no such file'));
    assert.equal(missing.code, 'IMPULSE_ERR_ENGINE_IO');
    assert.match(missing.message, /open "db\/wal" failed: ENOENT/);
    assert.equal(isNotFound(missing), true);
    assert.equal(isNotFound(new ImpulseError('IMPULSE_ERR_INTERNAL', 'wrapped', { cause: missing })), true);
    assert.equal(isNotFound(vfsError('read', 'db/wal', errnoError('EIO', 'disk'))), false);
    assert.equal(isNotFound(new Error('plain')), false);
    assert.equal(isNotFound(undefined), false);
    assert.equal(errorCodeOf(vfsError('sync', 'x', errnoError('EIO', 'disk'))), 'EIO');
  });

  it('joinPath and dirName', () => {
    assert.equal(joinPath('db', '', 'wal'), 'db/wal');
    assert.equal(joinPath('/tmp/', '/x'), '/tmp/x');
    assert.equal(dirName('db/wal'), 'db');
    assert.equal(dirName('wal'), '.');
    assert.equal(dirName('/wal'), '/');
  });
});
