/**
 * Replica moves in a sharded cluster in one process (real members, TCP,
 * disks and clock; split keys "g,p": three shards of three replicas), each
 * under concurrent writers on every member:
 *
 *   - three members, and a fourth joins (`member add`): the meta group's
 *     leader moves replicas onto it (learner, snapshot, promote, remove the
 *     source) until every member holds two or three of the nine; the sources
 *     destroy their copies; every acknowledged write is read back on every
 *     member;
 *     then one of the four crashed past --member-dead-after-ms: three replicas
 *     a shard again, a node that left a shard returning to it under a new
 *     Raft id (before per-replica ids such shards stayed short);
 *   - four members, one crashed and left down past --member-dead-after-ms:
 *     its replicas are re-replicated on the survivors (three replicas a shard
 *     again, none on the dead member); nothing acknowledged is lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KvCommand } from '../kv/command.js';
import type { NodeId } from '../raft/types.js';
import { nodeOfRaftId } from '../shard/replica-id.js';
import { SystemClock } from '../util/clock.js';
import { askShardLeader } from './shard-conf.js';
import type { ShardMap } from '../shard/shard-map.js';
import { InProcessCluster, until as untilInProcess } from '../../testkit/cluster/in-process.js';

const put = (key: string, value: string): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] });
const FLAGS = { splitKeys: 'g,p', memberDeadAfterMs: '3000', shardMovesMax: '2' };

/** This file's waits are longer than the default. */
const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> => untilInProcess(what, check, timeoutMs);

const replicaCounts = (map: ShardMap, nodes: readonly NodeId[]): number[] => nodes.map((id) => map.shards.filter((shard) => shard.replicas.includes(id)).length);
const settled = (map: ShardMap): boolean => map.shards.every((shard) => shard.move === undefined && shard.replicas.length === 3);

/** Writers on the given members (keys over all three shards) until stopped; a refused write is simply not acknowledged. */
class Writers {
  readonly acknowledged = new Map<string, string>();
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(cluster: InProcessCluster, members: readonly NodeId[]) {
    this.loops = members.map(async (id) => {
      for (let seq = 0; this.running && cluster.running().includes(id); seq++) {
        const key = `${'bhq'[seq % 3]}-${id}-${seq}`;
        try {
          await cluster.member(id).service.write(put(key, `v${seq}`));
          this.acknowledged.set(key, `v${seq}`);
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Every acknowledged write is read back on each of `members` (linearizable scans walking the shards, paged). */
  async assertPresent(cluster: InProcessCluster, members: readonly NodeId[]): Promise<void> {
    for (const id of members) {
      const held = new Map<string, string>();
      for (let cursor: Buffer | undefined; ; ) {
        const page = await cluster.member(id).service.range({ limit: 1000, ...(cursor !== undefined ? { gt: cursor } : {}) });
        if (page.length === 0) break;
        for (const item of page) held.set(item.key.toString(), item.value.toString());
        cursor = page[page.length - 1]!.key;
      }
      for (const [key, value] of this.acknowledged) assert.equal(held.get(key), value, `member ${id}: key ${key}`);
    }
  }
}

/**
 * Messages of a returned node's EARLIER replica (Raft id = its node id, generation 0) are not taken
 * for its new one: the shard's leader keeps no progress for the old id and the new replica's match
 * does not move for it; a message addressed to the old id is refused by the new replica.
 */
async function assertOldIdIgnored(cluster: InProcessCluster, shardId: number, newRaftId: number): Promise<void> {
  const node = nodeOfRaftId(newRaftId);
  const oldRaftId = node; // its first replica of the shard: generation 0
  assert.ok(newRaftId !== oldRaftId);
  let leaderNode: NodeId | undefined;
  await until('the shard has a leader', () => (leaderNode = cluster.running().find((id) => cluster.member(id).groups.get(shardId)?.group.leads)) !== undefined);
  const leader = cluster.member(leaderNode!).groups.get(shardId)!.group;
  const status = leader.driver.status();
  const matchBefore = status.progress[String(newRaftId)]!.match;
  const term = leader.driver.node.currentTerm;
  leader.receive(node, { type: 'append-response', from: oldRaftId, to: leader.driver.id, term, success: true, index: leader.driver.node.lastIndex + 1000, hintIndex: 0, hintTerm: 0 });
  const after = leader.driver.status();
  assert.equal(after.progress[String(oldRaftId)], undefined, 'no progress for the old id');
  assert.ok(after.progress[String(newRaftId)]!.match <= Math.max(matchBefore, leader.driver.node.lastIndex), 'the new replica\'s match did not take the old id\'s claim');
  assert.ok(after.commit <= leader.driver.node.lastIndex, 'nothing committed past the leader\'s log');
  const replica = cluster.member(node).groups.get(shardId)!.group;
  const invalidBefore = replica.driver.metrics().messagesInvalid;
  replica.receive(leaderNode!, { type: 'append-response', from: leader.driver.id, to: oldRaftId, term, success: true, index: 1, hintIndex: 0, hintTerm: 0 });
  assert.equal(replica.driver.metrics().messagesInvalid, invalidBefore + 1, 'a message to the old id is refused by the new replica');
}

/** Leadership of the shard goes to the node that returned to it (under its new Raft id); writes through it and through another member are served and read back. */
async function assertReturnedLeaderServes(cluster: InProcessCluster, map: ShardMap, shardId: number, node: NodeId): Promise<void> {
  const shard = map.shards.find((each) => each.id === shardId)!;
  const member = cluster.member(node);
  const route = { rpc: member.host.rpc, nodeId: node, local: (id: number) => member.groups.get(id), alive: () => true, retryPauseMs: 50, timing: { clock: new SystemClock(), stepTimeoutMs: 5000, pollMs: 20 } };
  await until(`node ${node} leads shard ${shardId}`, async () => {
    await askShardLeader(route, shard, { op: 'transfer', id: node }, 10_000).catch(() => undefined);
    return member.groups.get(shardId)?.group.leads === true;
  });
  const key = shard.start.length === 0 ? 'a-returned' : `${shard.start.toString()}a-returned`;
  const other = cluster.running().find((id) => id !== node)!;
  await member.service.write(put(`${key}-1`, 'through the returned leader'));
  await cluster.member(other).service.write(put(`${key}-2`, 'forwarded to it'));
  for (const id of [node, other]) {
    const page = await cluster.member(id).service.range({ gte: Buffer.from(`${key}-1`), lt: Buffer.from(`${key}-3`), limit: 10 });
    assert.deepEqual(page.map((item) => item.value.toString()), ['through the returned leader', 'forwarded to it'], `read back through member ${id}`);
  }
}

describe('shard replica moves onto a member that joins', () => {
  let cluster: InProcessCluster;
  let writers: Writers | undefined;
  before(async () => {
    cluster = await InProcessCluster.start(3, { flags: FLAGS });
    await cluster.waitForLeader();
    await until('every member applied the first map', () => cluster.running().every((id) => cluster.member(id).shards.map !== undefined));
  });
  after(async () => {
    await writers?.stop();
    await cluster?.close();
  });

  it('moves replicas onto the new member until every member holds within one of the mean, losing no write', async () => {
    writers = new Writers(cluster, [1, 2, 3]);
    await until('some writes acknowledged', () => writers!.acknowledged.size >= 30);
    const joiner = await cluster.prepareJoiner(4);
    await cluster.member(1).admin.addMember({ id: 4, ...joiner });
    await cluster.restart(4);
    await until('the map balanced on four members, no move in flight', () => {
      const map = cluster.member(1).shards.map!;
      const counts = replicaCounts(map, [1, 2, 3, 4]);
      return settled(map) && Math.max(...counts) - Math.min(...counts) <= 1;
    });
    const map = cluster.member(1).shards.map!;
    assert.deepEqual(replicaCounts(map, [1, 2, 3, 4]).sort(), [2, 2, 2, 3]);
    for (const shard of map.shards.filter((each) => each.replicas.includes(4))) assert.equal(shard.retired?.length, 1, `shard ${shard.id} retired its source`);
    await until('every member hosts exactly its shards (the sources destroyed their copies)', () =>
      [1, 2, 3, 4].every((id) => map.shards.every((shard) => (cluster.member(id).groups.get(shard.id) !== undefined) === shard.replicas.includes(id))),
    );
    const before = writers.acknowledged.size;
    await until('writes still acknowledged after the moves', () => writers!.acknowledged.size >= before + 30);
    await writers.stop();
    await writers.assertPresent(cluster, [1, 2, 3, 4]);
  });

  it('after those moves, a death still restores three replicas a shard: a node that left a shard returns to it under a new Raft id', async () => {
    const metaLeader = await cluster.waitForLeader();
    const map = cluster.member(metaLeader).shards.map!;
    // A victim that leaves some shard's retired node alive: that shard can only get three replicas back through it.
    const retired = new Set(map.shards.flatMap((shard) => shard.retired ?? []));
    const victim = ([1, 2, 3, 4] as NodeId[]).find((id) => id !== metaLeader && [...retired].some((node) => node !== id))!;
    const survivors = ([1, 2, 3, 4] as NodeId[]).filter((id) => id !== victim);
    writers = new Writers(cluster, survivors);
    await until('some writes acknowledged', () => writers!.acknowledged.size >= 30);
    await cluster.crash(victim);
    await until('three replicas a shard on the survivors, none on the dead member', () => {
      const current = cluster.member(metaLeader).shards.map!;
      return settled(current) && current.shards.every((shard) => !shard.replicas.includes(victim));
    });
    const current = cluster.member(metaLeader).shards.map!;
    assert.deepEqual(replicaCounts(current, survivors), [3, 3, 3]);
    const returned = current.shards.filter((shard) => (shard.replicaIds ?? []).length > 0);
    assert.ok(returned.length >= 1, 'some shard took a node back under a new Raft id');
    for (const shard of returned) {
      for (const raftId of shard.replicaIds!) {
        const node = nodeOfRaftId(raftId);
        await until(`node ${node} serves shard ${shard.id} as Raft id ${raftId}`, () => cluster.member(node).groups.get(shard.id)?.group.driver.id === raftId);
      }
    }
    await assertOldIdIgnored(cluster, returned[0]!.id, returned[0]!.replicaIds![0]!);
    await assertReturnedLeaderServes(cluster, current, returned[0]!.id, nodeOfRaftId(returned[0]!.replicaIds![0]!));
    const before = writers.acknowledged.size;
    await until('writes still acknowledged after the repair', () => writers!.acknowledged.size >= before + 30);
    await writers.stop();
    await writers.assertPresent(cluster, survivors);
  });
});

describe('re-replication after a member dies', () => {
  let cluster: InProcessCluster;
  let writers: Writers | undefined;
  before(async () => {
    cluster = await InProcessCluster.start(4, { flags: FLAGS });
    await cluster.waitForLeader();
    await until('every member applied the first map', () => cluster.running().every((id) => cluster.member(id).shards.map !== undefined));
  });
  after(async () => {
    await writers?.stop();
    await cluster?.close();
  });

  it('restores three replicas a shard on the survivors once the dead member is past --member-dead-after-ms', async () => {
    writers = new Writers(cluster, [1, 2, 3, 4]);
    await until('some writes acknowledged', () => writers!.acknowledged.size >= 30);
    // A member other than the meta group's leader: the test is about shard replicas, not the meta group.
    const metaLeader = await cluster.waitForLeader();
    const map = cluster.member(metaLeader).shards.map!;
    const victim = ([1, 2, 3, 4] as NodeId[]).find((id) => id !== metaLeader && map.shards.some((shard) => shard.replicas.includes(id)))!;
    const survivors = ([1, 2, 3, 4] as NodeId[]).filter((id) => id !== victim);
    await cluster.crash(victim);
    await until('three replicas a shard on the survivors, none on the dead member', () => {
      const current = cluster.member(metaLeader).shards.map!;
      return settled(current) && current.shards.every((shard) => !shard.replicas.includes(victim));
    });
    assert.deepEqual(replicaCounts(cluster.member(metaLeader).shards.map!, survivors), [3, 3, 3]);
    // Counted by whichever survivor led the meta group when the moves started.
    let rereplications = 0;
    for (const id of survivors) rereplications += (await cluster.member(id).service.status()).figures?.['shard_moves_rereplications'] ?? 0;
    assert.ok(rereplications >= 1, `re-replications counted: ${rereplications}`);
    await writers.stop();
    await writers.assertPresent(cluster, survivors);
  });
});
