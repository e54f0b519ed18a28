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
 *
 * **Load as the tie-break** (shards may carry `load`, their smoothed requests
 * a second; docs/sharding.md "Leader balance"). The count bound stays the
 * rule — load decides nothing the counts do not ask for (no transfer for
 * load alone, so noisy loads never move leaders by themselves) — but among
 * the transfers the counts allow it picks, with a node's load the sum of its
 * led shards' loads:
 *   - *which leadership a node hands over*: a node whose load is **hot**
 *     (more than LOAD_TOLERANCE above the mean node load, and by more than
 *     LOAD_NOISE_FLOOR requests a second) offers its shards hottest first, so
 *     the transfer takes load off it; any other node coldest first, so the
 *     transfer moves a count and not load onto a member that has its share;
 *   - *to whom*: among the nodes below the bound that the shortest chains
 *     reach, the least loaded one — instead of the first in id order only
 *     when that one's load is above the least loaded's by more than
 *     LOAD_TOLERANCE and LOAD_NOISE_FLOOR (loads within the tolerance are
 *     equal, so noise does not change the choice).
 * Loads are taken as they stand when the plan starts (a node's load is not
 * recomputed after each transfer of the plan). Shards without a load weigh
 * 0; with no loads at all the plan is the count-only plan, transfer for
 * transfer.
 */
import type { NodeId } from '../raft/types.js';

export interface LedShard {
  readonly id: number;
  /** The shard's voters (node ids). */
  readonly voters: readonly NodeId[];
  /** The node leading it, 0 when unknown. */
  readonly leader: NodeId;
  /** Its smoothed requests a second (the leader's report), when known: the tie-break of the file comment. */
  readonly load?: number;
}

/** Two node loads within this fraction of each other are equal for leader balance; a node above the mean by more is hot. */
export const LOAD_TOLERANCE = 0.25;

/** Requests a second by which loads must differ at least before load decides anything (small loads are noise). */
export const LOAD_NOISE_FLOOR = 50;

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
  const loads = loadsOf(live, shards);
  const transfers: LeaderTransfer[] = [];
  const stuck = new Set<NodeId>();
  for (;;) {
    const donor = live.find((id) => counts.get(id)! > bound && !stuck.has(id));
    if (donor === undefined) return transfers;
    const chain = chainFrom(donor, { ledBy, votersOf, counts, bound, loads });
    if (chain === undefined) {
      stuck.add(donor);
      continue;
    }
    stuck.clear(); // the chain changed leaders: a donor passed over may have a chain now
    for (const transfer of chain) {
      ledBy.get(transfer.from)!.delete(transfer.shard);
      ledBy.get(transfer.to)!.add(transfer.shard);
      loads.changed(transfer.from);
      loads.changed(transfer.to);
    }
    counts.set(donor, counts.get(donor)! - 1);
    const last = chain[chain.length - 1]!.to;
    counts.set(last, counts.get(last)! + 1);
    transfers.push(...chain);
  }
}

/** What `chainFrom` searches: the leaderships as planned so far, the voters, counts and bound, and the load tie-break's figures. */
interface ChainSearch {
  readonly ledBy: ReadonlyMap<NodeId, ReadonlySet<number>>;
  readonly votersOf: ReadonlyMap<number, readonly NodeId[]>;
  readonly counts: ReadonlyMap<NodeId, number>;
  readonly bound: number;
  readonly loads: Loads;
}

/**
 * The shortest chain of transfers from `donor` to a node below the bound (see
 * the file comment), or undefined: a breadth-first search level by level;
 * each node's shards in the load tie-break's order, and of the nodes below
 * the bound one level reaches, the tie-break's choice.
 */
function chainFrom(donor: NodeId, search: ChainSearch): LeaderTransfer[] | undefined {
  const { ledBy, votersOf, counts, bound, loads } = search;
  const cameFrom = new Map<NodeId, LeaderTransfer>();
  let level: NodeId[] = [donor];
  while (level.length > 0) {
    const next: NodeId[] = [];
    const ends: NodeId[] = [];
    for (const from of level) {
      for (const shard of loads.offerOrder(from, ledBy.get(from)!)) {
        for (const to of votersOf.get(shard)!) {
          if (to === donor || !counts.has(to) || cameFrom.has(to)) continue;
          cameFrom.set(to, { shard, from, to });
          (counts.get(to)! < bound ? ends : next).push(to);
          if (ends.length > 0 && !loads.weighed) return pathTo(ends[0]!, donor, cameFrom); // no loads: the first one found (the rest of the level cannot change the choice)
        }
      }
    }
    if (ends.length > 0) return pathTo(loads.recipient(ends), donor, cameFrom);
    level = next;
  }
  return undefined;
}

/** The load tie-break's view (file comment): each node's load and each shard's, as the plan starts. */
interface Loads {
  /** `shards` (a node's, in their fixed order) in the order `node` offers them. */
  offerOrder(node: NodeId, shards: ReadonlySet<number>): Iterable<number>;
  /** Which of `ends` (nodes below the bound, in search order) receives. */
  recipient(ends: readonly NodeId[]): NodeId;
  /** Whether any shard has a load (else the search order alone decides). */
  readonly weighed: boolean;
  /** `node`'s led shards changed (its cached offer order is void). */
  changed(node: NodeId): void;
}

function loadsOf(live: readonly NodeId[], shards: readonly LedShard[]): Loads {
  const shardLoad = new Map(shards.map((shard) => [shard.id, shard.load ?? 0]));
  const nodeLoad = new Map<NodeId, number>(live.map((id) => [id, 0]));
  for (const shard of shards) if (nodeLoad.has(shard.leader)) nodeLoad.set(shard.leader, nodeLoad.get(shard.leader)! + (shard.load ?? 0));
  const mean = live.length === 0 ? 0 : [...nodeLoad.values()].reduce((sum, load) => sum + load, 0) / live.length;
  const above = (a: number, b: number): boolean => a > b * (1 + LOAD_TOLERANCE) && a - b > LOAD_NOISE_FLOOR;
  const anyLoad = [...shardLoad.values()].some((load) => load > 0);
  // A node's offer order is sorted once and kept until a chain changes its leaderships (a search expands a node many times).
  const orders = new Map<NodeId, readonly number[]>();
  return {
    weighed: anyLoad,
    offerOrder(node, owned) {
      if (!anyLoad) return owned;
      let order = orders.get(node);
      if (order === undefined) {
        const hot = above(nodeLoad.get(node) ?? 0, mean);
        // A stable sort: equal loads keep the fixed order.
        order = [...owned].sort((a, b) => (hot ? shardLoad.get(b)! - shardLoad.get(a)! : shardLoad.get(a)! - shardLoad.get(b)!));
        orders.set(node, order);
      }
      return order;
    },
    changed(node) {
      orders.delete(node);
    },
    recipient(ends) {
      const first = ends[0]!;
      const least = ends.reduce((best, id) => (nodeLoad.get(id)! < nodeLoad.get(best)! ? id : best), first);
      return above(nodeLoad.get(first)!, nodeLoad.get(least)!) ? least : first;
    },
  };
}

function pathTo(end: NodeId, donor: NodeId, cameFrom: ReadonlyMap<NodeId, LeaderTransfer>): LeaderTransfer[] {
  const chain: LeaderTransfer[] = [];
  for (let node = end; node !== donor; node = cameFrom.get(node)!.from) chain.unshift(cameFrom.get(node)!);
  return chain;
}
