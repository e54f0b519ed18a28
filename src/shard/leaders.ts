/**
 * Leader balance: which shard leaderships to hand over so that no live node
 * leads more than its share. A pure planner (no I/O, time or randomness),
 * the counterpart for leaders of placement.ts for replicas — TiKV's PD
 * balance-leader scheduler and CockroachDB's lease rebalancing, on our map.
 *
 * The bound: every live node leads at most ceil(L/N) shards (L shards with a
 * known, live leader over N live nodes), whenever the replicas allow it (a
 * leader can only move to another voter of the same shard). With replicas
 * balanced by placement.ts this is met in practice (the simulator,
 * testkit/sim/placement.ts, checks it at 50 nodes and 5,000 shards).
 *
 * How (greedy, deterministic): while some node leads more than ceil(L/N),
 * one of its shards is handed to the live voter of that shard that leads the
 * fewest, if that is below the bound (ties to the lower id); the donor gives
 * its lowest shard id that has such a voter. So every transfer removes one
 * leadership above the bound and adds none: the plan has exactly as many
 * transfers as it removes excess (no plan can do with fewer), a node at or
 * under the bound never gives a leadership up, and the nodes below the bound
 * only fill up — a donor none of whose shards can go anywhere stays so, and
 * planning again on a plan's result gives nothing (no flapping while leaders
 * stay where the plan put them).
 *
 * Shards without a known leader, or led by a node that is not live, are left
 * to their elections; they count neither in L nor in any node's load.
 */
import type { NodeId } from '../raft/types.js';

export interface LedShard {
  readonly id: number;
  /** The shard's voters (node ids). */
  readonly voters: readonly NodeId[];
  /** The node leading it, 0 when unknown. */
  readonly leader: NodeId;
}

/** One leadership handed over: shard `shard` from its leader `from` to its voter `to`. */
export interface LeaderTransfer {
  readonly shard: number;
  readonly from: NodeId;
  readonly to: NodeId;
}

/** The most shards any live node should lead: ceil(L / N) for `led` shards over `nodes` live nodes (0 without nodes). */
export function leaderBound(led: number, nodes: number): number {
  return nodes === 0 ? 0 : Math.ceil(led / nodes);
}

/** Leaders per live node (every live node present, 0 when it leads none). */
export function leaderCounts(liveNodes: readonly NodeId[], shards: readonly LedShard[]): Map<NodeId, number> {
  const counts = new Map<NodeId, number>(liveNodes.map((id) => [id, 0]));
  for (const shard of shards) if (counts.has(shard.leader)) counts.set(shard.leader, counts.get(shard.leader)! + 1);
  return counts;
}

/** The transfers that bring every live node to at most `leaderBound` leaderships where the voters allow it (see the file comment). */
export function planLeaderTransfers(liveNodes: readonly NodeId[], shards: readonly LedShard[]): LeaderTransfer[] {
  const live = new Set(liveNodes);
  const counts = leaderCounts(liveNodes, shards);
  const ledBy = new Map<NodeId, LedShard[]>([...live].map((id) => [id, []]));
  for (const shard of shards) ledBy.get(shard.leader)?.push(shard);
  for (const list of ledBy.values()) list.sort((a, b) => a.id - b.id);
  const bound = leaderBound([...counts.values()].reduce((sum, count) => sum + count, 0), live.size);
  const transfers: LeaderTransfer[] = [];
  const stuck = new Set<NodeId>(); // donors above the bound none of whose shards can go anywhere
  for (;;) {
    const donor = [...counts].filter(([id, count]) => count > bound && !stuck.has(id)).sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0];
    if (donor === undefined) return transfers;
    const next = transferFrom(donor, ledBy.get(donor)!, counts, live, bound);
    if (next === undefined) {
      stuck.add(donor);
      continue;
    }
    transfers.push({ shard: next.shard.id, from: donor, to: next.to });
    counts.set(donor, counts.get(donor)! - 1);
    counts.set(next.to, counts.get(next.to)! + 1);
    ledBy.set(donor, ledBy.get(donor)!.filter((shard) => shard !== next.shard));
    ledBy.get(next.to)!.push({ ...next.shard, leader: next.to });
    ledBy.get(next.to)!.sort((a, b) => a.id - b.id);
  }
}

/** The donor's lowest shard with a live voter leading fewer than `bound`, and the least loaded such voter. */
function transferFrom(donor: NodeId, led: readonly LedShard[], counts: ReadonlyMap<NodeId, number>, live: ReadonlySet<NodeId>, bound: number): { shard: LedShard; to: NodeId } | undefined {
  for (const shard of led) {
    let best: NodeId | undefined;
    for (const voter of shard.voters) {
      if (voter === donor || !live.has(voter) || counts.get(voter)! >= bound) continue;
      if (best === undefined || counts.get(voter)! < counts.get(best)! || (counts.get(voter) === counts.get(best) && voter < best)) best = voter;
    }
    if (best !== undefined) return { shard, to: best };
  }
  return undefined;
}
