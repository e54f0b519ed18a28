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
 * exists, as the donor holds more shards). Without sizes, ties go to the
 * lower node id, and the donor gives its lowest shard id, so one input gives
 * one plan (with sizes, bytes break the ties first: below).
 *
 * A move is carried out as TiKV and CockroachDB do it: the target joins as a
 * learner, catches up from a snapshot, is promoted, leadership moves off the
 * source if it led, and the source is removed (docs/sharding.md).
 *
 * Bytes (when shards carry `sizeBytes`, the sizes their leaders reported):
 * the count stays the first rule (⌊T/N⌋..⌈T/N⌉ as above), bytes decide
 * within it, as a byte target rather than per-move greed:
 *   - a lost replica goes to the least loaded node by count, ties to the
 *     fewest bytes; lost replicas are placed largest shard first;
 *   - a balancing move's donor is the most loaded node by count (ties: the
 *     most bytes above its share), its recipient the least loaded (ties: the
 *     fewest), and the shard the one closest to the byte target: the mean
 *     shard size plus half the difference of the two nodes' *excess*
 *     (bytes − count × mean shard size), so each move brings both towards
 *     the bytes their count should hold;
 *   - then byte-balance.ts moves or swaps replicas within the count band
 *     until every node's bytes are within `byteTolerance` of the mean.
 * Without sizes every shard weighs the same and the plan is the count-only
 * plan above, move for move.
 *
 * Cost: O(N) per move to find the extremes plus O(shards on the donor) to
 * pick a shard; byte steps O(N² · shards on a node · log) at worst per
 * step; 5,000 shards on 50 nodes plan in well under a second.
 */
import type { NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { BYTE_TOLERANCE, balanceBytes, byteMovesBound } from './byte-balance.js';
import { Layout, type SizedShard } from './placement-layout.js';

/** A shard as placement sees it: its replicas and, when reported, its size (placement-layout.ts). */
export type PlacedShard = SizedShard;

export interface PlacementInput {
  /** The nodes that may hold replicas (live, not being drained), distinct. */
  readonly liveNodes: readonly NodeId[];
  readonly shards: readonly PlacedShard[];
  /** Replicas every shard should have (capped at the number of live nodes). */
  readonly replicationFactor: number;
  /** How far (a fraction ≥ 0) a node's bytes may differ from the mean before bytes move; BYTE_TOLERANCE when absent. */
  readonly byteTolerance?: number;
  /** And by at least this many bytes (≥ 0; 0 when absent): no replica moves for a difference too small to be worth a snapshot. */
  readonly byteBandMinBytes?: number;
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
  const layout = new Layout(live, input.shards);
  const moves: ReplicaMove[] = [];
  // 1. Restore the replica count (a lost replica's move names the node it was on), largest shard first.
  const bySize = [...input.shards].sort((a, b) => layout.size.get(b.id)! - layout.size.get(a.id)!);
  for (const shard of bySize) {
    const kept = layout.replicas.get(shard.id)!;
    const lost = shard.replicas.filter((id) => !layout.held.has(id));
    while (kept.size < want) {
      const to = leastLoaded(layout, (id) => layout.allowed(shard.id, id));
      assert(to !== undefined, 'a live node lacks the shard while it has fewer replicas than live nodes', shard.id);
      moves.push({ shard: shard.id, from: lost.shift() ?? null, to });
      layout.add(shard.id, to);
    }
  }
  // 2. Balance counts: most loaded → least loaded until they differ by at most one.
  const meanShardBytes = input.shards.length === 0 ? 0 : layout.shardBytesTotal / input.shards.length;
  for (;;) {
    const donor = mostLoaded(layout, meanShardBytes);
    const next = balancingMove(layout, donor, meanShardBytes);
    if (next === undefined) break;
    moves.push({ shard: next.shard, from: donor, to: next.recipient });
    layout.move(next.shard, donor, next.recipient);
  }
  // 3. Balance bytes within the count band.
  const { low, high } = countBand(input.shards.length * want, live.length);
  balanceBytes(layout, { low, high }, byteBand(input), (shard, from, to) => moves.push({ shard, from, to }));
  return moves;
}

/** The replicas of every shard after `moves` (for callers that apply a plan to a model); sizes are kept. */
export function applyMoves(shards: readonly PlacedShard[], moves: readonly ReplicaMove[]): PlacedShard[] {
  const replicas = new Map(shards.map((shard) => [shard.id, new Set(shard.replicas)]));
  for (const move of moves) {
    const set = replicas.get(move.shard);
    assert(set !== undefined && !set.has(move.to), 'a move adds a replica the shard lacks', move);
    if (move.from !== null) set.delete(move.from);
    set.add(move.to);
  }
  return shards.map((shard) => ({ ...shard, replicas: [...replicas.get(shard.id)!].sort((a, b) => a - b) }));
}

/** A lower bound on the moves of any plan for `input` that balances counts (see point 3 above). */
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
  const { low, high } = countBand(total, live.size);
  let excess = 0;
  let deficit = 0;
  for (const count of counts.values()) {
    excess += Math.max(0, count - high);
    deficit += Math.max(0, low - count);
  }
  return restore + Math.max(excess, deficit - restore);
}

/** A lower bound on the moves of any plan for `input` that balances counts and brings every node's bytes within the tolerance (byte-balance.ts). */
export function minimumByteMoves(input: PlacementInput): number {
  const live = [...new Set(input.liveNodes)].sort((a, b) => a - b);
  const layout = new Layout(live, input.shards);
  const want = Math.min(input.replicationFactor, live.length);
  const { low, high } = countBand(input.shards.length * want, live.length);
  return Math.max(minimumMoves(input), byteMovesBound(layout, layout.shardBytesTotal * want, byteBand(input), low, high));
}

function byteBand(input: PlacementInput): { tolerance: number; minBytes: number } {
  return { tolerance: input.byteTolerance ?? BYTE_TOLERANCE, minBytes: input.byteBandMinBytes ?? 0 };
}

/** Replicas a node may hold: ⌊T/N⌋..⌈T/N⌉. */
function countBand(total: number, nodes: number): { low: number; high: number } {
  return { low: Math.floor(total / nodes), high: Math.ceil(total / nodes) };
}

/** Bytes `node` holds above what its count should hold (count × the mean shard size); negative below. */
function excessBytes(layout: Layout, node: NodeId, meanShardBytes: number): number {
  return layout.bytes.get(node)! - layout.count(node) * meanShardBytes;
}

/**
 * The next balancing move off `donor`: to the least loaded node at least two
 * replicas below it (ties: the least excess bytes), of the donor's shard
 * closest to the byte target (see the file comment; ties: the lowest id)
 * that node may take (the least loaded node always has one: the donor holds
 * more shards than it).
 */
function balancingMove(layout: Layout, donor: NodeId, meanShardBytes: number): { shard: number; recipient: NodeId } | undefined {
  const donorLoad = layout.count(donor);
  const excess = (id: NodeId): number => excessBytes(layout, id, meanShardBytes);
  const candidates = layout.nodes.filter((id) => layout.count(id) <= donorLoad - 2).sort((a, b) => layout.count(a) - layout.count(b) || excess(a) - excess(b) || a - b);
  for (const recipient of candidates) {
    const shard = layout.closestShard(donor, recipient, meanShardBytes + (excess(donor) - excess(recipient)) / 2);
    if (shard !== undefined) return { shard, recipient };
  }
  return undefined;
}

/** The node with the fewest replicas that `eligible` allows (ties: the fewest bytes, then the lowest id). */
function leastLoaded(layout: Layout, eligible: (id: NodeId) => boolean): NodeId | undefined {
  let best: NodeId | undefined;
  for (const id of layout.nodes) {
    if (!eligible(id)) continue;
    if (best === undefined || layout.count(id) < layout.count(best) || (layout.count(id) === layout.count(best) && layout.bytes.get(id)! < layout.bytes.get(best)!)) best = id;
  }
  return best;
}

/** The node with the most replicas (ties: the most excess bytes, then the lowest id). */
function mostLoaded(layout: Layout, meanShardBytes: number): NodeId {
  let best: NodeId | undefined;
  for (const id of layout.nodes) {
    if (best === undefined || layout.count(id) > layout.count(best) || (layout.count(id) === layout.count(best) && excessBytes(layout, id, meanShardBytes) > excessBytes(layout, best, meanShardBytes))) best = id;
  }
  return best!;
}
