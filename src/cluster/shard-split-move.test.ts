/**
 * A split racing a replica move (docs/sharding.md, "A split racing a move"),
 * three real members in one process (split keys "g,p"):
 *
 *   - while a shard has a move in flight, a split of it is refused as
 *     unavailable (503, retryable) and the map is unchanged; a split of
 *     another shard goes through; once the move ends, the split does too;
 *   - the first group step of a move (adding the learner) is refused by the
 *     shard's leader while its bounds differ from the range in the asker's
 *     map (a split the map made and the group has not applied), and the
 *     group's configuration is unchanged.
 *
 * The move is recorded by hand to node 99, which never exists: the mover
 * cannot add it (no peer address), so the move stays in flight until the
 * test abandons it (the dead-member bound is the default five minutes).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { abortMove, startMove } from '../shard/moves.js';
import { type ShardMap, boundsHex, shardFor } from '../shard/shard-map.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';
import { encodeClusterCommand } from './log-entries.js';
import { SHARD_CONF_CHANNEL } from './shard-conf.js';

const GHOST = 99;

describe('a split racing a replica move', () => {
  let cluster: InProcessCluster;
  before(async () => {
    // Leader balance off: the second test asks the shard's leader, which a balancing transfer could move mid-test.
    cluster = await InProcessCluster.start(3, { flags: { splitKeys: 'g,p', shardBalanceLeaders: 'false' } });
    await cluster.waitForLeader();
    await until('every member applied the first map', () => cluster.running().every((id) => cluster.member(id).shards.map !== undefined));
  });
  after(async () => {
    await cluster?.close();
  });

  /** Writes the map `change` makes of member 1's current one through the meta group, until the applied map shows `done` (concurrent changes by the mover retry it). */
  const changeMap = async (change: (map: ShardMap) => ShardMap, done: (map: ShardMap) => boolean): Promise<ShardMap> => {
    const member = cluster.member(1);
    const meta = member.groups.get(1)!;
    await until('the map change applied', async () => {
      await meta.requests.readBarrier();
      if (done(member.shards.map!)) return true;
      await meta.requests.write(encodeClusterCommand({ type: 'shard-map', map: change(member.shards.map!) }), true).catch(() => undefined);
      return done(member.shards.map!);
    });
    return member.shards.map!;
  };

  it('refuses to split a shard while its move is in flight, and splits it after', async () => {
    const first = shardFor(cluster.member(1).shards.map!, Buffer.from('b')).id;
    const moving = await changeMap((map) => startMove(map, first, null, GHOST), (map) => shardFor(map, Buffer.from('b')).move?.to === GHOST);
    await assert.rejects(cluster.member(2).shards.split(Buffer.from('c')), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_UNAVAILABLE' && error.details['shard'] === first && error.details['moveTo'] === GHOST);
    await cluster.member(2).groups.get(1)!.requests.readBarrier();
    const unchanged = cluster.member(2).shards.map!;
    assert.equal(shardFor(unchanged, Buffer.from('c')).id, first, 'the moving shard was not split');
    assert.ok(unchanged.version >= moving.version);
    // Another shard splits as usual.
    const other = await cluster.member(3).shards.split(Buffer.from('h'));
    assert.equal(shardFor(other, Buffer.from('h')).start.toString(), 'h');
    // The move ends (abandoned: its target never existed); then the shard splits.
    await changeMap((map) => abortMove(map, first, false), (map) => shardFor(map, Buffer.from('b')).move === undefined);
    const split = await cluster.member(2).shards.split(Buffer.from('c'));
    assert.equal(shardFor(split, Buffer.from('c')).start.toString(), 'c');
    assert.equal(shardFor(split, Buffer.from('b')).id, first);
  });

  it('does not add a move\'s learner while the shard\'s group has not applied a split its map has', async () => {
    const shard = shardFor(cluster.member(1).shards.map!, Buffer.from('q'));
    const leads = (id: number): boolean => cluster.member(id).groups.get(shard.id)?.group.leader === id;
    await until('a leader for the shard', () => cluster.running().some(leads));
    // The asker's map cut the shard at "t": the group's bounds [p, +inf) are wider.
    const narrower = boundsHex({ start: shard.start, end: Buffer.from('t') });
    const step = { op: 'add-learner' as const, id: GHOST, peerUrl: '127.0.0.1:1', bounds: narrower };
    // Asked of the leader directly over the peer transport, so the answer is the leader's own (again if leadership moved meanwhile).
    let answer: unknown;
    await until('the shard\'s leader answered the step', async () => {
      const leader = cluster.running().find(leads);
      if (leader === undefined) return false;
      const asker = cluster.member(cluster.running().find((id) => id !== leader)!);
      try {
        answer = await asker.host.rpc.callAsync(leader, SHARD_CONF_CHANNEL, { g: shard.id, ...step }, 10_000);
      } catch (error) {
        if (isImpulseError(error) && error.code === 'IMPULSE_ERR_RAFT_NOT_LEADER') return false;
        answer = error;
      }
      return true;
    });
    assert.ok(isImpulseError(answer) && answer.code === 'IMPULSE_ERR_UNAVAILABLE' && /split in flight/.test(answer.message), `refused as a split in flight: ${String(answer)}`);
    for (const id of cluster.running()) {
      const conf = cluster.member(id).groups.get(shard.id)!.group.membership.confState;
      assert.ok(!conf.learners.includes(GHOST) && !conf.voters.includes(GHOST), `member ${id}: the learner was not added`);
    }
  });
});
