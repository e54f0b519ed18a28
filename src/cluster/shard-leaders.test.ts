/**
 * Leader balance in a running sharded cluster (three real members in one
 * process, split keys "c,f,i,l,o": six shards of three replicas): every
 * leadership is handed to member 1 by hand, and the meta group's leader hands
 * them back out (src/shard/leaders.ts, shard-mover.ts) until no member leads
 * more than ceil(6/3) = 2, counted in the figures (/metrics); a leader round
 * later nothing more is transferred (no flapping). With
 * `--shard-balance-leaders false` nothing is handed over.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { NodeId } from '../raft/types.js';
import { SystemClock } from '../util/clock.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';
import { askShardLeader } from './shard-conf.js';
import { LEADER_ROUND_EVERY } from './shard-mover.js';

const SPLIT_KEYS = 'c,f,i,l,o';
const ROUND_MS = 1000; // open-member.ts's placement round

/** Who leads each shard, by the leaders' own word (undefined while some shard has none). */
function leadersNow(cluster: InProcessCluster): Map<number, NodeId> | undefined {
  const map = cluster.member(cluster.running()[0]!).shards.map;
  if (map === undefined) return undefined;
  const leaders = new Map<number, NodeId>();
  for (const shard of map.shards) {
    const leader = cluster.running().find((id) => cluster.member(id).groups.get(shard.id)?.group.leader === id);
    if (leader === undefined) return undefined;
    leaders.set(shard.id, leader);
  }
  return leaders;
}

const perMember = (leaders: ReadonlyMap<number, NodeId>): number[] => [1, 2, 3].map((id) => [...leaders.values()].filter((leader) => leader === id).length);

/** The highest of the members' figure `name` (only the meta group's leader balances leaders; the others show 0). */
async function figure(cluster: InProcessCluster, name: string): Promise<number> {
  let highest = 0;
  for (const id of cluster.running()) highest = Math.max(highest, (await cluster.member(id).service.status()).figures[name] ?? 0);
  return highest;
}

/** Hands every shard's leadership to member 1 (each through its leader's shard-conf `transfer`). */
async function allToMemberOne(cluster: InProcessCluster): Promise<void> {
  const member = cluster.member(1);
  const route = { rpc: member.host.rpc, nodeId: 1, local: (id: number) => member.groups.get(id), alive: () => true, retryPauseMs: 50, timing: { clock: new SystemClock(), stepTimeoutMs: 5000, pollMs: 20 } };
  for (const shard of member.shards.map!.shards) await askShardLeader(route, shard, { op: 'transfer', id: 1 }, 10_000);
}

async function started(balance: boolean): Promise<InProcessCluster> {
  const cluster = await InProcessCluster.start(3, { flags: { splitKeys: SPLIT_KEYS, shardBalanceLeaders: String(balance) } });
  await cluster.waitForLeader();
  await until('every shard has a leader', () => leadersNow(cluster) !== undefined, 30_000);
  return cluster;
}

describe('leader balance across members', () => {
  const clusters: InProcessCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('hands leaderships off a member that leads every shard until none leads more than two, then stays', async () => {
    const cluster = await started(true);
    clusters.push(cluster);
    await allToMemberOne(cluster);
    await until('no member leads more than ceil(6/3) = 2 shards', () => {
      const leaders = leadersNow(cluster);
      return leaders !== undefined && perMember(leaders).every((count) => count <= 2);
    }, 60_000);
    const handed = await figure(cluster, 'shard_leader_transfers');
    assert.ok(handed >= 1, `the mover handed leaderships over (${handed})`);
    await until('the figures show the bound met', async () => (await figure(cluster, 'shard_leaders_bound')) === 2 && (await figure(cluster, 'shard_leaders_max')) === 2, 30_000);
    const transfers = await figure(cluster, 'shard_leader_transfers');
    await new Promise((resolve) => setTimeout(resolve, (LEADER_ROUND_EVERY + 1) * ROUND_MS));
    assert.equal(await figure(cluster, 'shard_leader_transfers'), transfers, 'a balanced cluster plans no transfer (no flapping)');
  });

  it('hands nothing over with --shard-balance-leaders false', async () => {
    const cluster = await started(false);
    clusters.push(cluster);
    await allToMemberOne(cluster);
    await new Promise((resolve) => setTimeout(resolve, (LEADER_ROUND_EVERY + 1) * ROUND_MS));
    assert.deepEqual(perMember(leadersNow(cluster) ?? new Map()), [6, 0, 0]);
    assert.equal(await figure(cluster, 'shard_leader_transfers'), 0);
  });
});
