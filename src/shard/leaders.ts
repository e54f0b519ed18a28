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
 * How (deterministic): while some node D leads more than ceil(L/N), find
 * by breadth-first search the shortest chain D -s1-> v1 -s2-> v2 ... -> vk
 * where each s_i is a shard led by the node before it with the node after it
 * among its live voters, and vk leads fewer than the bound; hand each s_i
 * over. D loses one leadership, vk gains one, the nodes in between none:
 * every chain removes exactly one leadership above the bound and never
 * pushes a node over it (a direct transfer, D -> v1, is a chain of one; a
 * chain is needed when all of D's co-voters are at the bound). Donors go in
 * id order, voters in id order, and a node's shards in a fixed order (id
 * order, then as leaderships arrive), so one input gives one plan.
 * A donor with no chain is passed over until another chain changes the
 * leaders; the plan ends when no donor has one (each chain removes one
 * leadership above the bound, so it ends), so planning again on a plan's
 * result gives nothing (no flapping while leaders stay where the plan put
 * them). This is an augmenting path of a flow (leaders to nodes, capacity
 * the bound), so no plan meets the bound where this one does not.
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
  const live = [...new Set(liveNodes)].sort((a, b) => a - b);
  const counts = leaderCounts(live, shards);
  const ledBy = new Map<NodeId, Set<number>>(live.map((id) => [id, new Set<number>()]));
  for (const shard of [...shards].sort((a, b) => a.id - b.id)) ledBy.get(shard.leader)?.add(shard.id);
  const votersOf = new Map(shards.map((shard) => [shard.id, [...shard.voters].sort((a, b) => a - b)]));
  const bound = leaderBound([...counts.values()].reduce((sum, count) => sum + count, 0), live.length);
  const transfers: LeaderTransfer[] = [];
  const stuck = new Set<NodeId>();
  for (;;) {
    const donor = live.find((id) => counts.get(id)! > bound && !stuck.has(id));
    if (donor === undefined) return transfers;
    const chain = chainFrom(donor, ledBy, votersOf, counts, bound);
    if (chain === undefined) {
      stuck.add(donor);
      continue;
    }
    stuck.clear(); // the chain changed leaders: a donor passed over may have a chain now
    for (const transfer of chain) {
      ledBy.get(transfer.from)!.delete(transfer.shard);
      ledBy.get(transfer.to)!.add(transfer.shard);
    }
    counts.set(donor, counts.get(donor)! - 1);
    const last = chain[chain.length - 1]!.to;
    counts.set(last, counts.get(last)! + 1);
    transfers.push(...chain);
  }
}

/** The shortest chain of transfers from `donor` to a node below `bound` (see the file comment), or undefined. */
function chainFrom(donor: NodeId, ledBy: ReadonlyMap<NodeId, ReadonlySet<number>>, votersOf: ReadonlyMap<number, readonly NodeId[]>, counts: ReadonlyMap<NodeId, number>, bound: number): LeaderTransfer[] | undefined {
  const cameFrom = new Map<NodeId, LeaderTransfer>();
  const queue: NodeId[] = [donor];
  for (let head = 0; head < queue.length; head++) {
    const from = queue[head]!;
    for (const shard of ledBy.get(from)!) {
      for (const to of votersOf.get(shard)!) {
        if (to === donor || !counts.has(to) || cameFrom.has(to)) continue;
        cameFrom.set(to, { shard, from, to });
        if (counts.get(to)! < bound) return pathTo(to, donor, cameFrom);
        queue.push(to);
      }
    }
  }
  return undefined;
}

function pathTo(end: NodeId, donor: NodeId, cameFrom: ReadonlyMap<NodeId, LeaderTransfer>): LeaderTransfer[] {
  const chain: LeaderTransfer[] = [];
  for (let node = end; node !== donor; node = cameFrom.get(node)!.from) chain.unshift(cameFrom.get(node)!);
  return chain;
}
