/**
 * Placement: which nodes replicate which shard. A pure planner (no I/O, no
 * time, no randomness): given the live nodes and every shard's replicas, it
 * returns the replica moves that
 *
 *   1. restore the replica count: a replica on a node that is not live (dead
 *      past the operator's bound, or removed) is replaced on a live node;
 *   2. balance replica counts: afterwards every live node holds floor(T/N)
 *      or ceil(T/N) replicas (T replicas over N live nodes) — within one
 *      replica of the mean, so within 10% of it from 10 replicas a node on;
 *   3. with no more moves than needed (`minimumMoves`): one per lost
 *      replica, plus the larger of the replicas above ceil(T/N) and those
 *      missing below floor(T/N) — a lower bound for any plan, since a move
 *      takes one replica off one node and puts it on one other. Balancing
 *      meets it exactly: while a node is above ceil, each of its moves
 *      removes excess (and deficit, when the recipient is below floor);
 *      after, each removes deficit. Re-replication may cost a little more (a
 *      lost replica cannot land on a node holding its shard already, so it
 *      may land above ceil and move again): within 3% of the bound in the
 *      simulator (testkit/sim/placement.ts).
 *
 * How (greedy, deterministic): lost replicas go to the least loaded live node
 * not replicating the shard yet; then, while the most and the least loaded
 * nodes differ by more than one, a replica moves from the most loaded to the
 * least loaded node (a shard the donor has and the recipient has not: one
 * exists, as the donor holds more shards). Ties go to the lower node id, and
 * the donor gives its lowest shard id, so one input gives one plan.
 *
 * A move is carried out as TiKV and CockroachDB do it: the target joins as a
 * learner, catches up from a snapshot, is promoted, leadership moves off the
 * source if it led, and the source is removed (docs/sharding.md).
 *
 * Cost: O(N) per move to find the extremes plus O(shards on the donor) to
 * pick a shard; 5,000 shards on 50 nodes plan in milliseconds.
 */
import type { NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';

export interface PlacedShard {
  readonly id: number;
  /** Current replicas (distinct node ids; some may not be live any more). */
  readonly replicas: readonly NodeId[];
}

export interface PlacementInput {
  /** The nodes that may hold replicas (live, not being drained), distinct. */
  readonly liveNodes: readonly NodeId[];
  readonly shards: readonly PlacedShard[];
  /** Replicas every shard should have (capped at the number of live nodes). */
  readonly replicationFactor: number;
}

/** One replica moves from `from` to `to`; `from` null: a replica is added (the shard had too few). */
export interface ReplicaMove {
  readonly shard: number;
  readonly from: NodeId | null;
  readonly to: NodeId;
}

export function planPlacement(input: PlacementInput): ReplicaMove[] {
  const live = [...new Set(input.liveNodes)].sort((a, b) => a - b);
  assert(live.length > 0 && input.replicationFactor >= 1, 'placement needs a live node and a replication factor', live.length, input.replicationFactor);
  const want = Math.min(input.replicationFactor, live.length);
  const load = new Map<NodeId, Set<number>>(live.map((id) => [id, new Set<number>()]));
  const replicas = new Map<number, Set<NodeId>>();
  const allowed = (shard: number, node: NodeId): boolean => !replicas.get(shard)!.has(node);
  const moves: ReplicaMove[] = [];
  for (const shard of input.shards) {
    const kept = new Set(shard.replicas.filter((id) => load.has(id)));
    replicas.set(shard.id, kept);
    for (const id of kept) load.get(id)!.add(shard.id);
  }
  // 1. Restore the replica count (a lost replica's move names the node it was on).
  for (const shard of input.shards) {
    const kept = replicas.get(shard.id)!;
    const lost = shard.replicas.filter((id) => !load.has(id));
    while (kept.size < want) {
      const to = leastLoaded(load, (id) => allowed(shard.id, id));
      assert(to !== undefined, 'a live node lacks the shard while it has fewer replicas than live nodes', shard.id);
      moves.push({ shard: shard.id, from: lost.shift() ?? null, to });
      kept.add(to);
      load.get(to)!.add(shard.id);
    }
  }
  // 2. Balance: most loaded → least loaded until they differ by at most one.
  for (;;) {
    const donor = mostLoaded(load);
    const next = balancingMove(load, donor, allowed);
    if (next === undefined) break;
    const { shard, recipient } = next;
    moves.push({ shard, from: donor, to: recipient });
    load.get(donor)!.delete(shard);
    load.get(recipient)!.add(shard);
    replicas.get(shard)!.delete(donor);
    replicas.get(shard)!.add(recipient);
  }
  return moves;
}

/** The replicas of every shard after `moves` (for callers that apply a plan to a model). */
export function applyMoves(shards: readonly PlacedShard[], moves: readonly ReplicaMove[]): PlacedShard[] {
  const replicas = new Map(shards.map((shard) => [shard.id, new Set(shard.replicas)]));
  for (const move of moves) {
    const set = replicas.get(move.shard);
    assert(set !== undefined && !set.has(move.to), 'a move adds a replica the shard lacks', move);
    if (move.from !== null) set.delete(move.from);
    set.add(move.to);
  }
  return shards.map((shard) => ({ id: shard.id, replicas: [...replicas.get(shard.id)!].sort((a, b) => a - b) }));
}

/** A lower bound on the moves of any plan for `input` (see point 3 above). */
export function minimumMoves(input: PlacementInput): number {
  const live = new Set(input.liveNodes);
  const want = Math.min(input.replicationFactor, live.size);
  const counts = new Map<NodeId, number>([...live].map((id) => [id, 0]));
  let restore = 0;
  let total = 0;
  for (const shard of input.shards) {
    const kept = shard.replicas.filter((id) => live.has(id));
    for (const id of kept) counts.set(id, counts.get(id)! + 1);
    restore += Math.max(0, want - kept.length);
    total += Math.max(want, kept.length);
  }
  // Each balancing move takes one replica off one node and gives it to one other: every
  // replica above ceil(T/N) must leave, and every one missing below floor(T/N) must arrive,
  // except where a restored replica lands (at best all of them do).
  const high = Math.ceil(total / live.size);
  const low = Math.floor(total / live.size);
  let excess = 0;
  let deficit = 0;
  for (const count of counts.values()) {
    excess += Math.max(0, count - high);
    deficit += Math.max(0, low - count);
  }
  return restore + Math.max(excess, deficit - restore);
}

/**
 * The next balancing move off `donor`: to the least loaded node at least two
 * replicas below it, of the donor's lowest shard that node may take (the
 * least loaded node always has one: the donor holds more shards than it).
 */
function balancingMove(load: ReadonlyMap<NodeId, ReadonlySet<number>>, donor: NodeId, allowed: (shard: number, node: NodeId) => boolean): { shard: number; recipient: NodeId } | undefined {
  const donorLoad = load.get(donor)!.size;
  const candidates = [...load.keys()].filter((id) => load.get(id)!.size <= donorLoad - 2).sort((a, b) => load.get(a)!.size - load.get(b)!.size || a - b);
  for (const recipient of candidates) {
    const shard = lowest([...load.get(donor)!].filter((id) => allowed(id, recipient)));
    if (shard !== undefined) return { shard, recipient };
  }
  return undefined;
}

function leastLoaded(load: ReadonlyMap<NodeId, ReadonlySet<number>>, eligible: (id: NodeId) => boolean): NodeId | undefined {
  let best: NodeId | undefined;
  for (const [id, shards] of load) if (eligible(id) && (best === undefined || shards.size < load.get(best)!.size)) best = id;
  return best;
}

function mostLoaded(load: ReadonlyMap<NodeId, ReadonlySet<number>>): NodeId {
  let best: NodeId | undefined;
  for (const [id, shards] of load) if (best === undefined || shards.size > load.get(best)!.size) best = id;
  return best!;
}

function lowest(ids: readonly number[]): number | undefined {
  return ids.length === 0 ? undefined : Math.min(...ids);
}
