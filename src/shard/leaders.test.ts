/**
 * Leader balance (leaders.ts) against its contract, over random clusters
 * (fast-check): transfers go from a shard's leader to another live voter of
 * it, each removes exactly one leadership above the bound (so the plan is as
 * short as any), a node ends above the bound only when none of its shards
 * has a live voter below it, and planning again on the result gives nothing
 * (no flapping).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type LedShard, leaderBound, leaderCounts, planLeaderTransfers } from './leaders.js';

const excess = (counts: ReadonlyMap<number, number>, bound: number): number => [...counts.values()].reduce((sum, count) => sum + Math.max(0, count - bound), 0);

/** The shards after `transfers`, checking each against the shard's leader and voters as they stand. */
function applyTransfers(live: readonly number[], shards: readonly LedShard[], transfers: ReturnType<typeof planLeaderTransfers>): LedShard[] {
  const byId = new Map(shards.map((shard) => [shard.id, shard]));
  for (const transfer of transfers) {
    const shard = byId.get(transfer.shard)!;
    assert.equal(transfer.from, shard.leader, 'a transfer starts at the shard\'s leader');
    assert.ok(transfer.to !== transfer.from && shard.voters.includes(transfer.to) && live.includes(transfer.to), 'a transfer goes to another live voter');
    byId.set(shard.id, { ...shard, leader: transfer.to });
  }
  return shards.map((shard) => byId.get(shard.id)!);
}

const cluster = fc.integer({ min: 1, max: 12 }).chain((nodes) =>
  fc.record({
    nodes: fc.constant(nodes),
    dead: fc.subarray(Array.from({ length: nodes }, (_, i) => i + 1), { maxLength: Math.max(0, nodes - 1) }),
    shards: fc.array(
      fc.record({ voters: fc.shuffledSubarray(Array.from({ length: nodes }, (_, i) => i + 1), { minLength: 1, maxLength: Math.min(3, nodes) }), leaderAt: fc.integer({ min: -1, max: 2 }) }),
      { maxLength: 80 },
    ),
  }),
);

describe('leader balance', () => {
  it('hands six leaderships of one node over until each of three leads two', () => {
    const shards = [2, 3, 4, 5, 6, 7].map((id) => ({ id, voters: [1, 2, 3], leader: 1 }));
    const transfers = planLeaderTransfers([1, 2, 3], shards);
    assert.equal(transfers.length, 4);
    assert.deepEqual([...leaderCounts([1, 2, 3], applyTransfers([1, 2, 3], shards, transfers)).values()], [2, 2, 2]);
  });

  it('meets the bound where the voters allow, with no more transfers than the excess, and plans nothing on its own result', () => {
    fc.assert(
      fc.property(cluster, ({ nodes, dead, shards: drawn }) => {
        const live = Array.from({ length: nodes }, (_, i) => i + 1).filter((id) => !dead.includes(id));
        const shards: LedShard[] = drawn.map((shard, index) => ({ id: index + 2, voters: shard.voters, leader: shard.leaderAt < 0 ? 0 : shard.voters[shard.leaderAt % shard.voters.length]! }));
        const counts = leaderCounts(live, shards);
        const bound = leaderBound([...counts.values()].reduce((a, b) => a + b, 0), live.length);
        const transfers = planLeaderTransfers(live, shards);
        const after = applyTransfers(live, shards, transfers);
        const countsAfter = leaderCounts(live, after);
        assert.equal(transfers.length, excess(counts, bound) - excess(countsAfter, bound), 'each transfer removes one leadership above the bound');
        assert.equal(new Set(transfers.map((t) => t.shard)).size, transfers.length, 'no shard moves twice');
        for (const [node, count] of countsAfter) {
          if (count <= bound) continue;
          for (const shard of after.filter((s) => s.leader === node)) {
            assert.ok(shard.voters.every((voter) => voter === node || !live.includes(voter) || countsAfter.get(voter)! >= bound), `node ${node} stays above the bound only when no voter of its shard ${shard.id} could take it`);
          }
        }
        assert.deepEqual(planLeaderTransfers(live, after), [], 'nothing left to plan: no flapping');
      }),
      { numRuns: 300 },
    );
  });
});
