/**
 * The flush's radix sort (key-sort.ts) against `Buffer.compare` order, on
 * keys shaped to reach every branch: shared prefixes longer than a bucket's
 * insertion-sort threshold, keys that are prefixes of others, 0x00 and 0xff
 * bytes, empty-ish and long keys, and enough keys that buckets split.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { radixSortKeys } from './key-sort.js';

/** The keys laid out in one buffer, in the given order, with a gap byte between them (so offsets matter). */
function layOut(keys: readonly Uint8Array[]): { bytes: Buffer; starts: Int32Array; lengths: Int32Array } {
  const starts = new Int32Array(keys.length);
  const lengths = new Int32Array(keys.length);
  const parts: Buffer[] = [];
  let at = 0;
  keys.forEach((key, index) => {
    parts.push(Buffer.from([0xaa]), Buffer.from(key));
    starts[index] = at + 1;
    lengths[index] = key.length;
    at += key.length + 1;
  });
  return { bytes: Buffer.concat(parts), starts, lengths };
}

function sortedByRadix(keys: readonly Uint8Array[]): Buffer[] {
  const { bytes, starts, lengths } = layOut(keys);
  return [...radixSortKeys(bytes, starts, lengths)].map((index) => Buffer.from(keys[index]!));
}

function distinct(keys: readonly Uint8Array[]): Buffer[] {
  const seen = new Map<string, Buffer>();
  for (const key of keys) seen.set(Buffer.from(key).toString('latin1'), Buffer.from(key));
  return [...seen.values()];
}

const byte = fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x61, 0x62);
/** Keys from a few shared prefixes (longer than the insertion-sort threshold) and a small alphabet: many ties on long prefixes. */
const keyArbitrary = fc
  .tuple(fc.constantFrom('', 'p', 'prefix-shared-by-many-keys-0000000000', '\u0000\u0000'), fc.array(byte, { maxLength: 6 }))
  .map(([prefix, tail]) => Buffer.concat([Buffer.from(prefix, 'latin1'), Buffer.from(tail)]));

describe('lsm key sort (radix)', () => {
  it('orders distinct keys exactly as Buffer.compare does (model-based)', () => {
    fc.assert(
      fc.property(fc.array(keyArbitrary, { maxLength: 400, size: 'max' }), (generated) => {
        const keys = distinct(generated);
        const expected = keys.slice().sort(Buffer.compare);
        assert.deepEqual(sortedByRadix(keys), expected);
      }),
      { numRuns: 300 },
    );
  });

  it('sorts 50,000 random 16-byte keys and keys that are prefixes of each other', () => {
    const keys: Buffer[] = [];
    for (let i = 0; i < 50_000; i++) keys.push(Buffer.from(String((i * 7919) % 100_003).padStart(16, '0'), 'latin1'));
    for (let length = 0; length <= 40; length++) keys.push(Buffer.alloc(length, 0x30));
    const unique = distinct(keys);
    assert.deepEqual(sortedByRadix(unique), unique.slice().sort(Buffer.compare));
  });

  it('puts a key before the keys it is a prefix of, also when they continue with 0x00 (the buckets are split, not insertion-sorted)', () => {
    const keys = [Buffer.from([0])];
    for (let i = 0; i < 60; i++) keys.push(Buffer.from([0, i % 3 === 0 ? 0 : 255 - i, i]));
    const unique = distinct(keys);
    assert.deepEqual(sortedByRadix(unique), unique.slice().sort(Buffer.compare));
  });

  it('returns an empty order for no keys and the one index for one key', () => {
    assert.deepEqual([...radixSortKeys(Buffer.alloc(0), new Int32Array(0), new Int32Array(0))], []);
    assert.deepEqual([...radixSortKeys(Buffer.from('abc'), Int32Array.of(1), Int32Array.of(2))], [0]);
  });
});
