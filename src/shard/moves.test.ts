/**
 * Replica moves in the shard map (moves.ts): the steps of a move and of an
 * abandoned one, each a new version and a new epoch of the shard only; the
 * encoding round-trips moves and retired nodes (and a map without them
 * encodes as before they existed); maps breaking the move invariants are
 * refused; a node returning to a shard's group takes a Raft id that group
 * never saw, and a split's right part keeps the parent's ids.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { abortMove, finishMove, movesInFlight, replicaRole, startMove, targetPromoted } from './moves.js';
import { planPlacement } from './placement.js';
import { nodeOfRaftId, replicaRaftId } from './replica-id.js';
import { type ShardMap, decodeShardMap, encodeShardMap, initialShardMap, nextShardId, raftIdOf, shardById, shardMapFromJson, shardMapToJson, splitShard } from './shard-map.js';

const base = (): ShardMap => initialShardMap([Buffer.from('g'), Buffer.from('p')], [1, 2, 3]);

describe('replica moves in the shard map', () => {
  it('refuses to split a shard while a move of it is in flight (the right part would take the membership mid-move)', () => {
    const started = startMove(base(), 3, 1, 4);
    assert.throws(() => splitShard(started, 3, Buffer.from('h'), nextShardId(started)), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_CONFIG_INVALID' && /move/.test(error.message));
    assert.equal(shardById(splitShard(started, 4, Buffer.from('q'), nextShardId(started)), 3)!.move?.to, 4, 'another shard splits');
    const finished = finishMove(targetPromoted(started, 3), 3);
    assert.equal(shardById(splitShard(finished, 3, Buffer.from('h'), nextShardId(finished)), 3)!.end?.toString(), 'h');
  });

  it('records each step of a move at a new version and epoch of that shard only', () => {
    const start = base();
    const started = startMove(start, 3, 1, 4);
    assert.deepEqual(shardById(started, 3)!.move, { from: 1, to: 4 });
    assert.equal(replicaRole(shardById(started, 3)!, 4), 'incoming');
    const promoted = targetPromoted(started, 3);
    assert.deepEqual(shardById(promoted, 3)!.replicas, [1, 2, 3, 4]);
    assert.equal(targetPromoted(promoted, 3), promoted, 'promoting twice changes nothing');
    const finished = finishMove(promoted, 3);
    const shard = shardById(finished, 3)!;
    assert.deepEqual([shard.replicas, shard.move, shard.retired], [[2, 3, 4], undefined, [1]]);
    assert.equal(replicaRole(shard, 1), 'none');
    for (const [map, version] of [[started, 2], [promoted, 3], [finished, 4]] as const) {
      assert.equal(map.version, version);
      assert.equal(shardById(map, 3)!.epoch, version);
      assert.deepEqual([shardById(map, 2)!.epoch, shardById(map, 4)!.epoch], [1, 1], 'other shards keep their epoch');
    }
    assert.deepEqual(movesInFlight(finished), []);
    assert.deepEqual(decodeShardMap(encodeShardMap(finished)), finished);
  });

  it('adds a replica without a source, and abandons a move before its target was promoted', () => {
    const short = startMove(base(), 2, null, 5);
    assert.deepEqual(shardById(finishMove(targetPromoted(short, 2), 2), 2)!.replicas, [1, 2, 3, 5]);
    const abandoned = abortMove(startMove(base(), 2, 1, 4), 2, true);
    assert.deepEqual([shardById(abandoned, 2)!.replicas, shardById(abandoned, 2)!.move, shardById(abandoned, 2)!.retired], [[1, 2, 3], undefined, [4]]);
    assert.equal(shardById(abortMove(startMove(base(), 2, 1, 4), 2, false), 2)!.retired, undefined);
  });

  it('refuses impossible steps with a coded error and leaves the map as it was', () => {
    const start = base();
    const refused = (work: () => unknown): void => assert.throws(work, (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
    refused(() => startMove(start, 9, 1, 4)); // no such shard
    refused(() => startMove(start, 2, 1, 2)); // the target replicates it already
    refused(() => startMove(start, 2, 7, 4)); // the source does not
    refused(() => startMove(startMove(start, 2, 1, 4), 2, 2, 5)); // one move per shard
    refused(() => finishMove(startMove(start, 2, 1, 4), 2)); // not promoted yet
    refused(() => abortMove(targetPromoted(startMove(start, 2, 1, 4), 2), 2, true)); // a voter already: only finishing is left
    refused(() => targetPromoted(start, 2)); // no move
    assert.equal(start.version, 1);
  });

  it('on four members, after a fourth was balanced in, a death still brings every shard back to three replicas through the map\'s steps', () => {
    /** Carries `moves` out on `map` step by step, as the mover does (a dead source is simply removed). */
    const carryOut = (map: ShardMap, moves: ReturnType<typeof planPlacement>): ShardMap => {
      for (const move of moves) map = finishMove(targetPromoted(startMove(map, move.shard, move.from, move.to), move.shard), move.shard);
      return map;
    };
    const placed = (map: ShardMap) => map.shards.map((shard) => ({ id: shard.id, replicas: shard.replicas }));
    for (const victim of [1, 2, 3, 4]) {
      const balanced = carryOut(base(), planPlacement({ liveNodes: [1, 2, 3, 4], shards: placed(base()), replicationFactor: 3 }));
      assert.ok(balanced.shards.some((shard) => (shard.retired ?? []).length > 0), 'the balancing moves retired some nodes');
      const live = [1, 2, 3, 4].filter((id) => id !== victim);
      const repaired = carryOut(balanced, planPlacement({ liveNodes: live, shards: placed(balanced), replicationFactor: 3 }));
      for (const shard of repaired.shards) assert.deepEqual(shard.replicas, live, `shard ${shard.id} is on every survivor (victim ${victim})`);
    }
  });

  it('gives a node returning to a shard\'s group a Raft id that group never saw, and a split\'s right part the same ids', () => {
    const start = base();
    const left = finishMove(targetPromoted(startMove(start, 2, 1, 4), 2), 2);
    assert.deepEqual(shardById(left, 2)!.retired, [1]);
    assert.equal(raftIdOf(shardById(left, 2)!, 4), 4, 'a first-time member is its node id');
    const back = startMove(left, 2, 2, 1);
    const returning = shardById(back, 2)!;
    assert.equal(raftIdOf(returning, 1), replicaRaftId(1, 1));
    assert.equal(nodeOfRaftId(raftIdOf(returning, 1)), 1);
    const promoted = shardById(targetPromoted(back, 2), 2)!;
    assert.deepEqual([promoted.replicas, promoted.retired], [[1, 2, 3, 4], undefined], 'a replica again, no longer retired');
    // Node 2 leaves; then node 1 leaves and node 2 returns (generation 2); then node 1 returns again (generation 3).
    const again = finishMove(targetPromoted(startMove(finishMove(targetPromoted(back, 2), 2), 2, 1, 2), 2), 2);
    const shardAgain = shardById(again, 2)!;
    assert.deepEqual([shardAgain.retired, raftIdOf(shardAgain, 2), raftIdOf(shardAgain, 1)], [[1], replicaRaftId(2, 2), 1], 'node 1 left: its entry went with it');
    assert.equal(raftIdOf(shardById(startMove(again, 2, 3, 1), 2)!, 1), replicaRaftId(1, 3));
    // An abandoned return consumes its generation; the next return takes the one after.
    const aborted = abortMove(startMove(again, 2, 3, 1), 2, false);
    assert.deepEqual(shardById(aborted, 2)!.retired, [1]);
    assert.equal(raftIdOf(shardById(startMove(aborted, 2, 3, 1), 2)!, 1), replicaRaftId(1, 4));
    // A split: the right part has the parent's Raft ids and counter.
    const split = splitShard(finishMove(targetPromoted(back, 2), 2), 2, Buffer.from('c'), nextShardId(back));
    const [parent, right] = [shardById(split, 2)!, shardById(split, nextShardId(back))!];
    assert.deepEqual([right.replicaIds, right.nextGeneration, right.replicas], [parent.replicaIds, parent.nextGeneration, parent.replicas]);
    assert.deepEqual(decodeShardMap(encodeShardMap(split)), split, 'Raft ids round-trip through the encoding');
  });

  it('encodes a map without moves exactly as before moves existed, and refuses stored moves that break the invariants', () => {
    const json = shardMapToJson(base());
    assert.ok(json.shards.every((shard) => !('move' in shard) && !('retired' in shard)));
    const withMove = (shard: Record<string, unknown>): unknown => ({ version: 2, shards: json.shards.map((each, index) => (index === 0 ? { ...each, ...shard } : each)) });
    assert.equal(typeof shardMapFromJson(withMove({ move: { from: 1, to: 4 } })), 'object');
    for (const bad of [{ move: { from: 9, to: 4 } }, { move: { from: 1, to: 1 } }, { move: { to: 4 } }, { retired: [2] }, { retired: [5, 4] }, { move: { from: 1, to: 4 }, retired: [4] }, { retired: 'x' }]) {
      assert.equal(typeof shardMapFromJson(withMove(bad)), 'string', JSON.stringify(bad));
    }
  });
});
