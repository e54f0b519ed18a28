/**
 * The snapshot path of a split's new shard (ShardSplits.originOf
 * 'snapshot'; docs/sharding.md "Splits"), on four real members in one
 * process (split keys d, g and p: four shards of three replicas, three a
 * member, so neither the split below (4, 4, 4, 3) nor the move (the same
 * counts) gives the count balance a move of its own to make): a member M
 * is down while its shard P splits (the new shard R names M among its
 * replicas, as P did) and while P's replica moves from M to the fourth
 * member (the map's move steps, driven by the meta leader's mover). Back, M
 * holds no replica of P that applied the split — its old one left P's group
 * and is deleted — so it opens R empty and takes it by snapshot from R's
 * leader; it then serves R's keys, written before and after the split.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentDigest } from '../kv/digest.js';
import type { NodeId } from '../raft/types.js';
import { startMove } from '../shard/moves.js';
import { encodeClusterCommand } from './log-entries.js';
import { InProcessCluster, until as untilInProcess } from '../../testkit/cluster/in-process.js';
import { retriedLikeClient as retried } from '../../testkit/cluster/shard-checks.js';

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> => untilInProcess(what, check, timeoutMs);

describe('a split\'s new shard reached by snapshot (its member lost the parent while down)', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await InProcessCluster.start(4, { flags: { splitKeys: 'd,g,p', shardMovesMax: '1' }, logLevel: process.env['SPLIT_LOG'] ?? 'silent' });
    await cluster.waitForLeader();
    await until('every member hosts its shards of the first map, each with a leader', () =>
      cluster.running().every((id) => {
        const map = cluster.member(id).shards.map;
        return map !== undefined && map.shards.every((shard) => !shard.replicas.includes(id) || (cluster.member(id).groups.get(shard.id)?.group.leader ?? 0) !== 0);
      }),
    );
  });
  after(async () => {
    await cluster?.close();
  });

  it('the member opens the new shard empty, takes its snapshot and serves its keys', async () => {
    const metaLeader = await cluster.waitForLeader();
    const map = cluster.member(metaLeader).shards.map!;
    const parent = map.shards.find((shard) => shard.start.toString() === 'g')!; // [g, p)
    const member = parent.replicas.find((id) => id !== metaLeader)!;
    const target = ([1, 2, 3, 4] as NodeId[]).find((id) => !parent.replicas.includes(id))!;
    // Writes go through a live replica of the parent (and so of the new shard): a member without one
    // would forward to the shard's replicas in turn, the member down among them.
    const live = parent.replicas.find((id) => id !== member)!;
    const put = async (key: string): Promise<void> => void (await retried(() => cluster.member(live).service.write({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(`v-${key}`) }] }), 20));
    for (const key of ['h1', 'h2', 'm1', 'm2']) await put(key);
    await until(`member ${member} applied the writes to shard ${parent.id}`, async () => (await cluster.member(member).groups.get(parent.id)!.group.machine.machine.get(Buffer.from('m2'))) !== undefined);

    await cluster.crash(member);
    const split = await cluster.member(live).shards.split(Buffer.from('k'));
    const right = split.shards.find((shard) => shard.start.toString() === 'k')!;
    assert.ok(right.replicas.includes(member), 'the new shard names the member down, as its parent did');
    await put('m3');
    // P's replica moves from the member down to the fourth member: the meta leader's mover drives the map's move.
    await retried(async () => {
      const current = cluster.member(live).shards.map!;
      await cluster.member(live).groups.get(1)!.requests.write(encodeClusterCommand({ type: 'shard-map', map: startMove(current, parent.id, member, target) }), true);
    });
    await until(`shard ${parent.id} moved off member ${member}`, () => {
      const shard = cluster.member(live).shards.map!.shards.find((each) => each.id === parent.id)!;
      return shard.move === undefined && !shard.replicas.includes(member);
    });
    assert.ok(cluster.member(live).shards.map!.shards.find((each) => each.id === right.id)!.replicas.includes(member), 'the new shard still names the member');

    const back = await cluster.restart(member);
    await until(`member ${member} hosts the new shard and no longer its parent`, () => back.groups.get(right.id)?.group.machine.bounds !== undefined && back.groups.get(parent.id) === undefined);
    const replica = back.groups.get(right.id)!.group;
    assert.ok(replica.driver.metrics().snapshotsReceived >= 1, 'its replica of the new shard came from a snapshot');
    const holders = cluster.running().filter((id) => cluster.member(id).groups.get(right.id) !== undefined);
    await until('every replica of the new shard applied the same index', () => new Set(holders.map((id) => cluster.member(id).groups.get(right.id)!.group.machine.appliedIndex)).size === 1);
    const digests = await Promise.all(holders.map(async (id) => (await contentDigest(cluster.member(id).groups.get(right.id)!.group.machine.machine)).digest));
    assert.equal(new Set(digests).size, 1, `the new shard's replicas agree (${holders.join(', ')})`);
    for (const key of ['m1', 'm2', 'm3']) assert.equal((await replica.machine.machine.get(Buffer.from(key)))?.value.toString(), `v-${key}`, key);
    assert.equal(await replica.machine.machine.get(Buffer.from('h1')), undefined, 'the parent\'s keys are not in the new shard');
  });
});
