/**
 * Replica moves in a sharded cluster in one process (real members, TCP,
 * disks and clock; split keys "g,p": three shards of three replicas on three
 * members), under concurrent writers:
 *
 *   - a fourth member joins (`member add`): the meta group's leader moves
 *     replicas onto it (learner, snapshot, promote, remove the source) until
 *     every member holds two or three of the nine; the sources destroy their
 *     copies; every acknowledged write is still read back, on every member;
 *   - a member is crashed and stays down past --member-dead-after-ms: its
 *     replicas are re-replicated on the others (three replicas a shard again,
 *     the dead member in none), and nothing acknowledged is lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type KvCommand } from '../kv/command.js';
import type { NodeId } from '../raft/types.js';
import type { ShardMap } from '../shard/shard-map.js';
import { InProcessCluster } from '../../testkit/cluster/in-process.js';

const put = (key: string, value: string): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] });

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const replicaCounts = (map: ShardMap, nodes: readonly NodeId[]): number[] => nodes.map((id) => map.shards.filter((shard) => shard.replicas.includes(id)).length);

describe('shard replica moves', () => {
  let cluster: InProcessCluster;
  /** Acknowledged writes: key → value. */
  const acknowledged = new Map<string, string>();
  let writing = true;
  let writers: Promise<void>[] = [];

  before(async () => {
    cluster = await InProcessCluster.start(3, { flags: { splitKeys: 'g,p', memberDeadAfterMs: '3000', shardMovesMax: '2' } });
    await cluster.waitForLeader();
    await until('every member applied the first map', () => cluster.running().every((id) => cluster.member(id).shards.map !== undefined));
    // Writers on every initial member, keys over all three shards; a refused write is simply not acknowledged.
    writers = [1, 2, 3].map(async (id) => {
      for (let seq = 0; writing; seq++) {
        const key = `${'bhq'[seq % 3]}-${id}-${seq}`;
        try {
          if (!cluster.running().includes(id)) return;
          await cluster.member(id).service.write(put(key, `v${seq}`));
          acknowledged.set(key, `v${seq}`);
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    });
  });
  after(async () => {
    writing = false;
    await Promise.all(writers);
    await cluster?.close();
  });

  async function assertAllAcknowledgedPresent(members: readonly NodeId[]): Promise<void> {
    const written = [...acknowledged]; // the writers keep adding
    for (const id of members) {
      const service = cluster.member(id).service;
      for (const [key, value] of written) assert.equal((await service.get(Buffer.from(key)))?.value.toString(), value, `member ${id}: key ${key}`);
    }
  }

  it('moves replicas onto a member added later until every member holds within one of the mean', async () => {
    await until('some writes acknowledged', () => acknowledged.size >= 30);
    const joiner = await cluster.prepareJoiner(4);
    await cluster.member(1).admin.addMember({ id: 4, ...joiner });
    await cluster.restart(4);
    await until('the map balanced on four members with no move in flight', () => {
      const map = cluster.member(1).shards.map!;
      const counts = replicaCounts(map, [1, 2, 3, 4]);
      return map.shards.every((shard) => shard.move === undefined && shard.replicas.length === 3) && Math.max(...counts) - Math.min(...counts) <= 1;
    });
    const map = cluster.member(1).shards.map!;
    assert.deepEqual(replicaCounts(map, [1, 2, 3, 4]).sort(), [2, 2, 2, 3]);
    // Every member hosts exactly the shards the map gives it: the sources destroyed their copies.
    await until('every member hosts exactly its shards', () =>
      [1, 2, 3, 4].every((id) => map.shards.every((shard) => (cluster.member(id).groups.get(shard.id) !== undefined) === shard.replicas.includes(id))),
    );
    const moved = map.shards.filter((shard) => shard.replicas.includes(4));
    for (const shard of moved) assert.ok((shard.retired ?? []).length === 1, `shard ${shard.id} retired its source`);
    assert.ok(cluster.member(1).shards.map!.version > 1);
    await until('more writes acknowledged after the moves', () => acknowledged.size >= 60);
    await assertAllAcknowledgedPresent([1, 2, 3, 4]);
  });

  it('re-replicates the replicas of a member dead past --member-dead-after-ms', async () => {
    // Crash a member other than the meta leader (the test is about the shard replicas, not the meta group).
    const metaLeader = await cluster.waitForLeader(10_000, [1, 2, 3]);
    const victim = ([1, 2, 3] as NodeId[]).find((id) => id !== metaLeader)!;
    const survivors = ([1, 2, 3, 4] as NodeId[]).filter((id) => id !== victim);
    await cluster.crash(victim);
    await until('three replicas a shard on the survivors, none on the dead member', () => {
      const map = cluster.member(metaLeader).shards.map!;
      return map.shards.every((shard) => shard.move === undefined && shard.replicas.length === 3 && !shard.replicas.includes(victim));
    });
    const map = cluster.member(metaLeader).shards.map!;
    assert.deepEqual(replicaCounts(map, survivors), [3, 3, 3]);
    // Counted by whichever survivor led the meta group when the moves started.
    let rereplications = 0;
    for (const id of survivors) rereplications += (await cluster.member(id).service.status()).figures?.['shard_moves_rereplications'] ?? 0;
    assert.ok(rereplications >= 1, `re-replications counted: ${rereplications}`);
    writing = false;
    await Promise.all(writers);
    await assertAllAcknowledgedPresent(survivors);
  });
});
