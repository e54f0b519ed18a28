/**
 * Replica moves between real `impulse serve` processes (split keys g and p:
 * three shards of three replicas on three members), under four writers
 * spread over the members: a fourth member joins (`member add`) and the
 * meta group's leader moves replicas onto it until `/shards` is balanced
 * (two or three replicas a member); then a member is killed with kill -9 and
 * left down past --member-dead-after-ms, and the dead member's replicas are
 * re-replicated on the three survivors — every shard on all three, so a
 * member that left a shard in the first moves returns to it (under a new
 * Raft id: docs/sharding.md, "Per-replica Raft ids"). Every acknowledged
 * write is read back afterwards.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImpulseClient } from '../client/client.js';
import { isImpulseError } from '../errors.js';
import type { ShardsView } from '../protocol/shard-view.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { eventually } from '../../testkit/process/eventually.js';

const counts = (view: ShardsView, members: readonly number[]): number[] => members.map((id) => view.shards.filter((shard) => shard.replicas.includes(id)).length);
const settled = (view: ShardsView): boolean => view.shards.length === 3 && view.shards.every((shard) => shard.move === undefined && shard.replicas.length === 3);

describe('shard replica moves between processes', () => {
  it('moves replicas onto a member that joins, re-replicates those of a member killed for good onto the others, and loses no acknowledged write', async (t) => {
    const cluster = await ProcessCluster.start(3, { serveArgs: ['--member-dead-after-ms', '3000'], memberArgs: (id) => (id <= 3 ? ['--split-keys', 'g,p'] : []) });
    const acknowledged = new Map<string, string>();
    const errors = new Map<string, number>();
    let stopped = false;
    let down = 0;
    let writers: Promise<void>[] = [];
    try {
      const leader = await cluster.waitForLeader();
      await eventually('every member serves every shard', async () => {
        for (const id of [1, 2, 3]) if ((await cluster.client(id).shards()).shards.some((shard) => shard.leader === null)) return false;
        return true;
      }, 60_000);
      writers = Array.from({ length: 4 }, async (_, w) => {
        const clients = [1, 2, 3].map((id) => new ImpulseClient({ endpoint: cluster.url(id), timeoutMs: 10_000 }));
        try {
          for (let n = 0; !stopped; n++) {
            const member = ((w + n) % 3) + 1;
            if (member === down) continue;
            const key = `${'bhq'[n % 3]}/${w}/${n}`;
            try {
              await clients[member - 1]!.put(key, `v${n}`);
              acknowledged.set(key, `v${n}`);
            } catch (error) {
              const code = isImpulseError(error) ? error.code : String(error);
              errors.set(code, (errors.get(code) ?? 0) + 1);
            }
          }
        } finally {
          for (const client of clients) client.close();
        }
      });
      await eventually('some writes acknowledged', async () => acknowledged.size >= 50, 60_000);

      const { clusterId } = await cluster.client(leader).cluster();
      const { peerUrl, clientUrl } = await cluster.addJoiner(4, clusterId);
      await cluster.client(leader).addMember({ id: 4, peerUrl, clientUrl });
      await cluster.start(4);
      let view: ShardsView | undefined;
      await eventually('/shards balanced over four members, no move in flight', async () => {
        view = await cluster.client(leader).shards();
        return settled(view) && [...counts(view, [1, 2, 3, 4])].sort().join() === '2,2,2,3';
      }, 60_000);
      const afterJoin = acknowledged.size;
      await eventually('writes go on after the moves', async () => acknowledged.size >= afterJoin + 50, 60_000);

      // kill -9 a member other than the meta group's leader, and leave it down.
      const metaLeader = (await cluster.client(4).cluster()).leader!;
      const victim = [1, 2, 3].find((id) => id !== metaLeader)!;
      down = victim;
      await cluster.kill(victim);
      const survivors = [1, 2, 3, 4].filter((id) => id !== victim);
      await eventually('three replicas a shard on the survivors', async () => {
        view = await cluster.client(metaLeader).shards();
        return settled(view) && view.shards.every((shard) => !shard.replicas.includes(victim));
      }, 90_000);
      const restored = view!;

      stopped = true;
      await Promise.all(writers);
      const reader = cluster.client(survivors[0]!);
      const held = new Map<string, string>();
      let cursor: string | undefined;
      do {
        const page = await reader.scan({ limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
        for (const item of page.items) held.set(item.key.toString(), item.value.toString());
        cursor = page.next ?? undefined;
      } while (cursor !== undefined);
      const lost = [...acknowledged].filter(([key, value]) => held.get(key) !== value).map(([key]) => key);
      assert.deepEqual(lost, [], 'acknowledged writes missing');
      t.diagnostic(`${acknowledged.size} writes acknowledged; refused: ${JSON.stringify(Object.fromEntries(errors))}; killed ${victim}; replicas a survivor: ${counts(restored, survivors).join(',')}`);
    } finally {
      stopped = true;
      await Promise.all(writers);
      await cluster.close();
    }
  });
});
