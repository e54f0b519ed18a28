/**
 * Stale routes against a model: a history of maps is made by seeded splits
 * and replica changes (splitShard, changeReplicas); a client holding map i
 * routes a key to the shard map i places it in, and a member holding map j
 * judges that route. The model: the route is current exactly when both maps
 * place the key in the same shard at the same epoch; otherwise it is stale
 * when the member's map is the newer one and "behind" when the client's is.
 * Also: the stale error carries the shard that holds the key in the member's
 * map, and the map changes keep every invariant.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import { type ShardMap, changeReplicas, initialShardMap, nextShardId, shardFor, shardMapProblem, splitShard } from './shard-map.js';
import { judgeRoute, staleRouteError } from './stale-route.js';

const key = fc.uint8Array({ minLength: 0, maxLength: 3, max: 7 }).map((bytes) => Buffer.from(bytes));

type Change = { readonly kind: 'split'; readonly at: Buffer } | { readonly kind: 'replicas'; readonly at: Buffer; readonly replicas: number[] };
const change: fc.Arbitrary<Change> = fc.oneof(
  key.map((at): Change => ({ kind: 'split', at })),
  fc.tuple(key, fc.uniqueArray(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 })).map(([at, replicas]): Change => ({ kind: 'replicas', at, replicas: replicas.sort((a, b) => a - b) })),
);

/** Map versions 1, 2, ...: each change applied to the previous map (a split at a shard's own start is skipped). */
function history(changes: readonly Change[]): ShardMap[] {
  const maps = [initialShardMap([Buffer.from([3])], [1, 2, 3])];
  for (const next of changes) {
    const map = maps[maps.length - 1]!;
    const shard = shardFor(map, next.at);
    if (next.kind === 'split' && shard.start.equals(next.at)) continue;
    maps.push(next.kind === 'split' ? splitShard(map, shard.id, next.at, nextShardId(map)) : changeReplicas(map, shard.id, next.replicas));
  }
  return maps;
}

describe('stale routes', () => {
  it('judges a route current, stale or behind exactly as the model says', () => {
    fc.assert(
      fc.property(fc.array(change, { maxLength: 12 }), fc.nat(), fc.nat(), fc.array(key, { minLength: 1, maxLength: 10 }), (changes, i, j, keys) => {
        const maps = history(changes);
        const client = maps[i % maps.length]!;
        const member = maps[j % maps.length]!;
        for (const map of maps) assert.equal(shardMapProblem(map), undefined);
        for (const k of keys) {
          const routed = shardFor(client, k);
          const held = shardFor(member, k);
          const route = { shard: routed.id, epoch: routed.epoch };
          const same = routed.id === held.id && routed.epoch === held.epoch;
          const expected = same ? 'current' : member.version > client.version ? 'stale' : 'behind';
          assert.equal(judgeRoute(member, held, route), expected, `client v${client.version} routes ${k.toString('hex')} to ${route.shard}@${route.epoch}; member v${member.version} holds it in ${held.id}@${held.epoch}`);
        }
      }),
    );
  });

  it('answers a stale route with the shard that holds the key now', () => {
    const before = initialShardMap([Buffer.from('m')], [1, 2, 3]);
    const after = splitShard(before, 3, Buffer.from('t'), nextShardId(before));
    const routed = shardFor(before, Buffer.from('x'));
    const held = shardFor(after, Buffer.from('x'));
    assert.equal(judgeRoute(after, held, { shard: routed.id, epoch: routed.epoch }), 'stale');
    const error = staleRouteError(after, held, { shard: routed.id, epoch: routed.epoch });
    assert.ok(isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE'));
    assert.deepEqual(error.details, { shard: 4, epoch: 2, start: Buffer.from('t').toString('hex'), end: null, replicas: '1,2,3', mapVersion: 2 });
    // The member that has not applied the split yet is behind a client that has.
    assert.equal(judgeRoute(before, shardFor(before, Buffer.from('x')), { shard: held.id, epoch: held.epoch }), 'behind');
  });

  it('refuses splits outside a shard or at its start, and epochs above the version', () => {
    const map = initialShardMap([Buffer.from('m')], [1]);
    for (const [id, at] of [[2, 'm'], [2, 'z'], [3, 'm'], [9, 'a']] as const) {
      assert.throws(() => splitShard(map, id, Buffer.from(at), 4), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'), `${id} at ${at}`);
    }
    assert.match(shardMapProblem({ version: 1, shards: [{ ...map.shards[0]!, end: null, epoch: 2 }] }) ?? '', /epoch 2/);
  });
});
