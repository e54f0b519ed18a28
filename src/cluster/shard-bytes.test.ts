/**
 * Byte balance in a running sharded cluster (four real members in one
 * process, split keys "b".."h": eight shards of three replicas, six a
 * member). Four shards get ~400 KB each, chosen so that their replicas
 * crowd some members (one member holds more of them than another by at
 * least two): counts are balanced, bytes are not. The shards' leaders
 * report their sizes to the meta leader (shard-leads.ts), whose planner
 * (src/shard/placement.ts) swaps replicas until every member holds three of
 * the twelve large replicas — bytes within the 5% band — with six replicas
 * each throughout the end state; every written key reads back.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { KvCommand } from '../kv/command.js';
import type { NodeId } from '../raft/types.js';
import type { ShardMap } from '../shard/shard-map.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';
import { retriedLikeClient } from '../../testkit/cluster/shard-checks.js';

const MEMBERS: readonly NodeId[] = [1, 2, 3, 4];
const SPLIT_KEYS = 'b,c,d,e,f,g,h';
const HEAVY_SHARDS = 4;
const VALUE_BYTES = 20_000;
const VALUES_A_SHARD = 20; // 400 KB a heavy shard

/** How many of `heavy`'s replicas each member holds. */
const heavyCounts = (map: ShardMap, heavy: ReadonlySet<number>): number[] => MEMBERS.map((id) => map.shards.filter((shard) => heavy.has(shard.id) && shard.replicas.includes(id)).length);

/** The HEAVY_SHARDS shards whose replicas are spread the least evenly (largest max − min a member). */
function crowdedChoice(map: ShardMap): Set<number> {
  const ids = map.shards.map((shard) => shard.id);
  let best: { set: Set<number>; spread: number } | undefined;
  const choose = (from: number, chosen: number[]): void => {
    if (chosen.length === HEAVY_SHARDS) {
      const counts = heavyCounts(map, new Set(chosen));
      const spread = Math.max(...counts) - Math.min(...counts);
      if (best === undefined || spread > best.spread) best = { set: new Set(chosen), spread };
      return;
    }
    for (let i = from; i < ids.length; i++) choose(i + 1, [...chosen, ids[i]!]);
  };
  choose(0, []);
  return best!.set;
}

describe('byte balance across members', () => {
  let cluster: InProcessCluster | undefined;
  after(async () => {
    await cluster?.close();
  });

  it('swaps replicas of large shards until every member holds the same bytes, counts staying balanced', async () => {
    cluster = await InProcessCluster.start(4, { flags: { splitKeys: SPLIT_KEYS, shardMovesMax: '2', shardBalanceBytesMin: '100000' } });
    const running = cluster;
    await running.waitForLeader();
    await until('the map is applied everywhere', () => running.running().every((id) => running.member(id).shards.map !== undefined), 30_000);
    const first = running.member(1).shards.map!;
    const heavy = crowdedChoice(first);
    const before = heavyCounts(first, heavy);
    assert.ok(Math.max(...before) - Math.min(...before) >= 2, `the large shards crowd some members: ${before.join(',')}`);
    const written = new Map<string, string>();
    for (const shard of first.shards.filter((each) => heavy.has(each.id))) {
      const prefix = shard.start.length === 0 ? 'a' : shard.start.toString();
      for (let i = 0; i < VALUES_A_SHARD; i++) {
        const key = `${prefix}-big-${String(i).padStart(2, '0')}`;
        const value = `${i}`.padEnd(VALUE_BYTES, 'x');
        const command: KvCommand = { ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] };
        // A put of the same value is safe to repeat when a leadership change (a loaded machine) leaves its outcome unknown.
        await retriedLikeClient(() => running.member(1 + (i % 4)).service.write(command));
        written.set(key, value);
      }
    }
    const balanced = (map: ShardMap): boolean => map.shards.every((shard) => shard.move === undefined) && heavyCounts(map, heavy).every((count) => count === 3);
    await until('every member holds three of the twelve large replicas', () => balanced(running.member(1).shards.map!), 90_000);
    const map = running.member(1).shards.map!;
    const counts = MEMBERS.map((id) => map.shards.filter((shard) => shard.replicas.includes(id)).length);
    assert.deepEqual(counts, [6, 6, 6, 6], 'replica counts stay balanced');
    const figures = await Promise.all(running.running().map(async (id) => (await running.member(id).service.status()).figures ?? {}));
    const started = Math.max(...figures.map((each) => each['shard_moves_started'] ?? 0));
    // Each step of the plan swaps one large replica for a small one: (max − min) / 2 swaps at least per crowded pair, two moves a swap.
    assert.ok(started >= 2 && started <= 2 * (Math.max(...before) - 3) * MEMBERS.length, `${started} moves started`);
    for (const id of running.running()) {
      for (const [key, value] of written) assert.equal((await running.member(id).service.get(Buffer.from(key)))?.value.toString(), value, `${key} on member ${id}`);
    }
  });
});
