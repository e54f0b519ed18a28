/**
 * `impulse serve`'s configuration (config.ts): the row cache budget flag,
 * parsed and bounded up front.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { DEFAULT_ROW_CACHE_MIB, parseServeConfig } from './config.js';

describe('parseServeConfig', () => {
  it('--row-cache-mib: 16 MiB for the whole node by default, 0 turns it off, anything else not a whole MiB count is refused', () => {
    assert.equal(parseServeConfig({}).rowCacheBytes, DEFAULT_ROW_CACHE_MIB * 1024 * 1024);
    assert.equal(parseServeConfig({ rowCacheMib: '0' }).rowCacheBytes, 0);
    assert.equal(parseServeConfig({ rowCacheMib: '256' }).rowCacheBytes, 256 * 1024 * 1024);
    for (const bad of ['-1', '1.5', 'lots', '']) {
      assert.throws(() => parseServeConfig({ rowCacheMib: bad }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID') && /--row-cache-mib/.test(String(error)), bad);
    }
  });
});
