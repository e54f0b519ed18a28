/**
 * Aligning replicas before a merge (pure). Only neighbours on the same
 * members merge (merges.ts): each replica of the left shard L takes its
 * data from its own replica of the right shard R. When two small neighbours
 * qualify by size but their replicas differ, R's replicas are first moved
 * onto L's members — CockroachDB's merge queue relocates the right-hand
 * range onto the left-hand range's stores the same way — with ordinary
 * replica moves (learner, snapshot, promote, remove: moves.ts), bounded
 * with every other move by `--shard-moves-max`.
 *
 * The intent is durable: R carries `alignTo: L` in the shard map (a map
 * change, compare-and-set like every other). While the mark is set:
 *   - the count and byte balance hold L and R where they are (`pinned` in
 *     placement-layout.ts), so they never undo an alignment; restoring a
 *     lost replica still takes them;
 *   - the mover's only moves of R are the alignment's (`alignmentMoves`,
 *     one at a time: a shard has one move in flight at most);
 *   - neither shard is in another alignment or merge (shardMapProblem), and
 *     a split of either drops the mark (shard-map.ts `splitShard`).
 * The mark ends in one of two ways:
 *   - R's replicas equal L's: the merge starts (`startMerge` replaces the
 *     mark by `mergeInto` in one map change);
 *   - the pair no longer qualifies (`alignmentProblem`): a member of either
 *     shard is not live, either grew past the merge thresholds, their
 *     replica counts differ. The mark is dropped and the balancers are free
 *     again. A move of R in flight then finishes (or is abandoned) as any
 *     move does, so no shard is ever below its replica count: every move
 *     adds its target before it removes its source.
 *
 * Hysteresis: each alignment move raises R's epoch, so a dropped pair is
 * "recently changed" and is not aligned again within `--shard-merge-quiet-ms`;
 * a pair still marked merges as soon as it is aligned (its quiet time was
 * checked when it was marked).
 */
import type { NodeId } from '../raft/types.js';
import { type MergeOptions, mergeCandidates, smallEnough } from './merges.js';
import { replicasAfterMove } from './moves.js';
import { type PlacedShard, type ReplicaMove, planPlacement } from './placement.js';
import { type Shard, type ShardMap, checkedShardMap, highestIdField, mergingShard, sameReplicas, shardById, withoutAlignMark } from './shard-map.js';
import { ImpulseError } from '../errors.js';

/** A pair in alignment: `right` is marked `alignTo: left.id`. */
export interface AlignedPair {
  readonly left: Shard;
  readonly right: Shard;
}

/** The map with shard `leftId`'s right neighbour marked to align onto it (IMPULSE_ERR_CONFIG_INVALID, the map unchanged, when the map's invariants refuse it). */
export function startAlignment(map: ShardMap, leftId: number): ShardMap {
  const at = map.shards.findIndex((shard) => shard.id === leftId);
  const right = map.shards[at + 1];
  if (at < 0 || right === undefined) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `shard ${leftId} has no right neighbour to align`);
  if (right.move !== undefined || mergingShard(map, leftId) || mergingShard(map, right.id)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `shard ${leftId} or its right neighbour ${right.id} has a move or merge in flight`);
  return withShard(map, { ...right, alignTo: leftId });
}

/** The map without shard `rightId`'s alignment mark (unchanged when it has none). */
export function dropAlignment(map: ShardMap, rightId: number): ShardMap {
  const right = shardById(map, rightId);
  if (right?.alignTo === undefined) return map;
  return withShard(map, withoutAlignMark(right));
}

/** Every pair in alignment, in key order. */
export function alignments(map: ShardMap): AlignedPair[] {
  const pairs: AlignedPair[] = [];
  for (let index = 1; index < map.shards.length; index++) {
    const right = map.shards[index]!;
    if (right.alignTo !== undefined) pairs.push({ left: map.shards[index - 1]!, right });
  }
  return pairs;
}

/** The shards the balancers hold in place: both sides of every alignment. */
export function pinnedShards(map: ShardMap): Set<number> {
  return new Set(alignments(map).flatMap(({ left, right }) => [left.id, right.id]));
}

/** Whether the pair is aligned and idle: R's replicas are L's and neither has a move in flight (the merge may start). */
export function alignedAndIdle({ left, right }: AlignedPair): boolean {
  return left.move === undefined && right.move === undefined && sameReplicas(left.replicas, right.replicas);
}

/**
 * Why the pair must stop aligning, or undefined while it may go on: a node
 * of either shard (or of R's move) is not in `live`; either shard's size (in
 * `sizes`; unknown: no verdict) is past the merge thresholds; their replica
 * counts (R's once its move finished) differ.
 */
export function alignmentProblem(pair: AlignedPair, live: ReadonlySet<NodeId>, sizes: ReadonlyMap<number, number>, thresholds: Pick<MergeOptions, 'mergeBytes' | 'splitBytes'>): string | undefined {
  const { left, right } = pair;
  const nodes = [...left.replicas, ...right.replicas, ...(right.move !== undefined ? [right.move.to] : []), ...(left.move !== undefined ? [left.move.to] : [])];
  const gone = nodes.find((id) => !live.has(id));
  if (gone !== undefined) return `node ${gone} of the pair is not live`;
  const leftBytes = sizes.get(left.id);
  const rightBytes = sizes.get(right.id);
  if (leftBytes !== undefined && rightBytes !== undefined && !smallEnough(leftBytes, rightBytes, thresholds)) return `the pair grew past the merge thresholds (${leftBytes} + ${rightBytes} bytes)`;
  if (replicasAfterMove(right).length !== left.replicas.length) return `their replica counts differ (${left.replicas.length} and ${replicasAfterMove(right).length})`;
  return undefined;
}

/**
 * The next alignment move of every pair whose right shard has no move in
 * flight and is not aligned yet: the lowest of R's replicas L lacks goes to
 * the lowest of L's replicas R lacks (one move a shard at a time; a pair
 * with a node not in `live` gets none: it is about to be dropped).
 */
export function alignmentMoves(map: ShardMap, live: ReadonlySet<NodeId>): ReplicaMove[] {
  const moves: ReplicaMove[] = [];
  for (const { left, right } of alignments(map)) {
    if (right.move !== undefined) continue;
    const from = right.replicas.find((id) => !left.replicas.includes(id));
    const to = left.replicas.find((id) => !right.replicas.includes(id));
    if (from === undefined || to === undefined || !live.has(from) || !live.has(to)) continue;
    moves.push({ shard: right.id, from, to });
  }
  return moves;
}

/** One round's merge decisions (see `planMergeRound`). */
export interface MergeRoundPlan {
  /** Alignments to drop (right shard ids), with why. */
  readonly drop: ReadonlyArray<{ readonly right: number; readonly why: string }>;
  /** The merge to start (its left shard id), if any: an aligned pair first, else a candidate already on the same replicas. */
  readonly merge: number | undefined;
  /** Alignments to start (left shard ids), in key order. */
  readonly align: readonly number[];
}

export interface MergeRoundInput extends MergeOptions {
  readonly map: ShardMap;
  /** The shards' reported sizes (only fresh ones). */
  readonly sizes: ReadonlyMap<number, number>;
  /** The live members; undefined while a member holding replicas is suspect (nothing is aligned or dropped then). */
  readonly live: ReadonlySet<NodeId> | undefined;
  /** Most alignments in flight at once (each pins two shards; its moves share `--shard-moves-max`). */
  readonly alignmentsMax: number;
}

/**
 * The merge trigger's decisions for one round (pure): drop the alignments
 * that no longer qualify; start one merge when none is in flight (an
 * aligned pair first, else the first candidate on the same replicas); start
 * alignments of candidates on different replicas, up to `alignmentsMax`
 * in flight, whose members are all live and whose replica counts agree.
 */
export function planMergeRound(input: MergeRoundInput): MergeRoundPlan {
  const { map, sizes, live } = input;
  const pairs = alignments(map);
  const drop = live === undefined ? [] : pairs.flatMap((pair) => {
    const why = alignmentProblem(pair, live, sizes, input);
    return why === undefined ? [] : [{ right: pair.right.id, why }];
  });
  const dropped = new Set(drop.map((each) => each.right));
  const candidates = mergeCandidates(map, sizes, input);
  const mergeBusy = map.shards.some((shard) => shard.mergeInto !== undefined);
  const ready = pairs.find((pair) => !dropped.has(pair.right.id) && alignedAndIdle(pair));
  const merge = mergeBusy ? undefined : (ready?.left.id ?? candidates.find((pair) => sameReplicas(pair.left.replicas, pair.right.replicas))?.left.id);
  const slots = input.alignmentsMax - (pairs.length - dropped.size);
  const align = live === undefined || slots <= 0 ? [] : candidates
    .filter(({ left, right }) => !sameReplicas(left.replicas, right.replicas) && left.replicas.length === right.replicas.length && [...left.replicas, ...right.replicas].every((id) => live.has(id)))
    .slice(0, slots)
    .map(({ left }) => left.id);
  return { drop, merge, align };
}

/** A planned replica move and why: an alignment's, or the placement planner's (restore, balance counts and bytes). */
export type PlannedMove = ReplicaMove & { readonly reason: 'align' | 'placement' };

export interface ReplicaPlanOptions {
  readonly replicationFactor: number;
  readonly byteBandMinBytes?: number;
}

/**
 * The replica moves to make over `live`, in the order to start them: the
 * placement plan's (placement.ts) restoring moves (a replica lost or
 * missing) first, then every alignment's next move, then the rest of the
 * placement plan (balance), planned with the aligning shards pinned and
 * each shard's replicas as they will be once its move in flight finished.
 * `sizeOf`: a shard's reported size (undefined: unknown).
 */
export function planReplicaMoves(map: ShardMap, live: readonly NodeId[], sizeOf: (shard: number) => number | undefined, options: ReplicaPlanOptions): PlannedMove[] {
  const pinned = pinnedShards(map);
  const shards: PlacedShard[] = map.shards.map((shard) => {
    const sizeBytes = sizeOf(shard.id);
    return { id: shard.id, replicas: replicasAfterMove(shard), ...(sizeBytes !== undefined ? { sizeBytes } : {}), ...(pinned.has(shard.id) ? { pinned: true } : {}) };
  });
  const placement = planPlacement({ liveNodes: live, shards, replicationFactor: options.replicationFactor, ...(options.byteBandMinBytes !== undefined ? { byteBandMinBytes: options.byteBandMinBytes } : {}) });
  const liveSet = new Set(live);
  const restores = (move: ReplicaMove): boolean => move.from === null || !liveSet.has(move.from);
  return [
    ...placement.filter(restores).map((move) => ({ ...move, reason: 'placement' as const })),
    ...alignmentMoves(map, liveSet).map((move) => ({ ...move, reason: 'align' as const })),
    ...placement.filter((move) => !restores(move)).map((move) => ({ ...move, reason: 'placement' as const })),
  ];
}

function withShard(map: ShardMap, changed: Shard): ShardMap {
  // The mark is not a change of the shard's range or replicas: its epoch stays (routes stay valid).
  return checkedShardMap({ ...highestIdField(map), version: map.version + 1, shards: map.shards.map((shard) => (shard.id === changed.id ? changed : shard)) });
}
