import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bulkReply } from './encoder.js';

/** The model: RESP's bulk string written out as text. */
function modelBulk(bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`$${bytes.length}\r\n`, 'latin1'), bytes, Buffer.from('\r\n', 'latin1')]);
}

describe('bulkReply', () => {
  it('encodes any bytes as the textual model does (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        assert.deepEqual(bulkReply(bytes), modelBulk(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('writes every digit of the length, at each power of ten', () => {
    for (const length of [0, 1, 9, 10, 11, 99, 100, 101, 999, 1_000, 65_535, 65_536, 1_048_576, 10_000_000]) {
      const bytes = Buffer.alloc(length, 0x61);
      assert.deepEqual(bulkReply(bytes), modelBulk(bytes), `length ${length}`);
    }
  });

  it('sends a string as UTF-8, its length in bytes', () => {
    assert.equal(bulkReply('héllo').toString('utf8'), '$6\r\nhéllo\r\n');
  });
});
