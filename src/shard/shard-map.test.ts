/**
 * The shard map against a model: for any set of split keys, every key maps to
 * exactly the shard a linear scan finds, the shards overlapping a range are
 * exactly those a linear scan finds, and the encoding round-trips. Maps that
 * break an invariant (gaps, overlaps, bad ids, replicas, epochs, versions)
 * are refused, in code and in stored bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import { compareBytes } from '../util/bytes.js';
import { type Shard, type ShardMap, decodeShardMap, encodeShardMap, initialShardMap, shardContains, shardFor, shardMapProblem, shardsOverlapping } from './shard-map.js';

const key = fc.uint8Array({ minLength: 0, maxLength: 4, max: 3 }).map((bytes) => Buffer.from(bytes));
const splitKeys = fc.uniqueArray(key.filter((k) => k.length > 0), { maxLength: 12, comparator: (a, b) => a.equals(b) });

/** The model: the one shard whose [start, end) holds `k`, found by a linear scan. */
function modelShard(map: ShardMap, k: Uint8Array): Shard {
  const found = map.shards.filter((shard) => shardContains(shard, k));
  assert.equal(found.length, 1, 'exactly one shard holds every key');
  return found[0]!;
}

describe('shard map', () => {
  it('maps every key to the one shard holding it, as a linear scan does', () => {
    fc.assert(
      fc.property(splitKeys, fc.array(key, { maxLength: 30 }), (splits, keys) => {
        const map = initialShardMap(splits, [3, 1, 2]);
        assert.equal(shardMapProblem(map), undefined);
        assert.equal(map.shards.length, splits.length + 1);
        for (const k of [...keys, ...splits]) assert.equal(shardFor(map, k).id, modelShard(map, k).id);
      }),
    );
  });

  it('finds the shards overlapping a range, in key order, as a linear scan does', () => {
    fc.assert(
      fc.property(splitKeys, fc.option(key, { nil: undefined }), fc.option(key, { nil: undefined }), (splits, lower, upper) => {
        const map = initialShardMap(splits, [1]);
        const expected = map.shards.filter((shard) => (upper === undefined || compareBytes(shard.start, upper) < 0) && (lower === undefined || shard.end === null || compareBytes(lower, shard.end) < 0));
        assert.deepEqual(
          shardsOverlapping(map, lower, upper).map((shard) => shard.id),
          expected.map((shard) => shard.id),
        );
      }),
    );
  });

  it('encodes canonically and decodes what it encoded', () => {
    fc.assert(
      fc.property(splitKeys, (splits) => {
        const map = initialShardMap(splits, [2, 5, 9]);
        const bytes = encodeShardMap(map);
        assert.deepEqual(decodeShardMap(bytes), map);
        assert.ok(encodeShardMap(decodeShardMap(bytes)).equals(bytes));
      }),
    );
  });

  it('refuses maps that break an invariant', () => {
    const good = initialShardMap([Buffer.from('m')], [1, 2, 3]);
    const [first, second] = good.shards as [Shard, Shard];
    const broken: [string, ShardMap][] = [
      ['no shards', { version: 1, shards: [] }],
      ['version 0', { ...good, version: 0 }],
      ['first start not empty', { version: 1, shards: [{ ...first, start: Buffer.from('a') }, second] }],
      ['last has an end', { version: 1, shards: [first, { ...second, end: Buffer.from('z') }] }],
      ['a gap', { version: 1, shards: [{ ...first, end: Buffer.from('k') }, second] }],
      ['an empty range', { version: 1, shards: [{ ...first, end: Buffer.alloc(0) }, { ...second, start: Buffer.alloc(0) }] }],
      ['a duplicate id', { version: 1, shards: [first, { ...second, id: first.id }] }],
      ['the meta group as a shard', { version: 1, shards: [{ ...first, id: 1 }, second] }],
      ['no replicas', { version: 1, shards: [first, { ...second, replicas: [] }] }],
      ['unsorted replicas', { version: 1, shards: [first, { ...second, replicas: [3, 1] }] }],
      ['epoch 0', { version: 1, shards: [first, { ...second, epoch: 0 }] }],
    ];
    for (const [what, map] of broken) {
      assert.notEqual(shardMapProblem(map), undefined, what);
      assert.throws(() => decodeShardMap(Buffer.from(JSON.stringify({ version: map.version, shards: map.shards.map((s) => ({ ...s, start: s.start.toString('hex'), end: s.end?.toString('hex') ?? null })) }))), (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), what);
    }
    for (const bytes of ['', 'null', '{"version":1}', '{"version":1,"shards":[{"id":2,"start":"zz","end":null,"epoch":1,"replicas":[1]}]}']) {
      assert.throws(() => decodeShardMap(Buffer.from(bytes)), (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), bytes);
    }
    assert.throws(() => initialShardMap([Buffer.from('a'), Buffer.from('a')], [1]), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
  });
});
