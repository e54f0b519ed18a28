import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from './crc32c.js';

describe('crc32c', () => {
  it('matches the standard check value, on any alignment, and detects every single flipped bit', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.from('xx123456789yy'), 2, 11), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    const data = Buffer.from('the quick brown fox jumps over the lazy dog, twice over');
    const sum = crc32c(data);
    for (let bit = 0; bit < data.length * 8; bit++) {
      data[bit >>> 3]! ^= 1 << (bit & 7);
      assert.notEqual(crc32c(data), sum, `flip of bit ${bit} undetected`);
      data[bit >>> 3]! ^= 1 << (bit & 7);
    }
  });
});

