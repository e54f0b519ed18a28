/**
 * Replica moves in the shard map: how a move's state is recorded, one map
 * change per step, each at a new version and a new epoch of the shard (so a
 * route cached before the step goes stale). A move of shard S from node A to
 * node B runs as TiKV's PD operators and CockroachDB's replicate queue run
 * it (the steps on the group are src/cluster/shard-mover.ts):
 *
 *   map  startMove      S.move = {from A, to B}; B opens S empty and waits
 *   group               add B as a learner; B catches up (by snapshot); promote B
 *   map  targetPromoted B joins S.replicas (the move stays: A is still a voter)
 *   group               leadership leaves A if it leads; remove A
 *   map  finishMove     A leaves S.replicas for S.retired; the move is cleared;
 *                       A destroys its copy
 *
 * Raft ids (replica-id.ts): B joins under its node id the first time it
 * replicates S; a node that was in S's group before (retired) returns under
 * S's next generation, recorded in `replicaIds` by startMove, so a retired
 * node may hold S again — on four members a death after some moves still
 * finds three members for every shard.
 *
 * `from` null only adds B (a shard below its replica count). A move whose
 * target died before it was promoted is abandoned (`abortMove`): the target
 * is removed from the group first when it had been added, and then retired.
 *
 * The map holds the whole intent, so whoever leads the meta group after a
 * crash resumes every move from the map and the group's configuration (each
 * group step is skipped when the configuration shows it done). At most one
 * move per shard; how many at once overall is the caller's bound.
 */
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import { nodeOfRaftId, replicaRaftId } from './replica-id.js';
import { type Shard, type ShardMap, checkedShardMap, highestIdField, mergingShard, shardById } from './shard-map.js';

/** The map with a move of `shardId`'s replica on `from` (null: a new replica) to `to`. */
export function startMove(map: ShardMap, shardId: number, from: NodeId | null, to: NodeId): ShardMap {
  const shard = shardOf(map, shardId);
  if (shard.move !== undefined) throw refused(`shard ${shardId} has a move in flight already`);
  if (mergingShard(map, shardId)) throw refused(`shard ${shardId} has a merge in flight (it moves after the merge)`);
  if (shard.replicas.includes(to)) throw refused(`node ${to} replicates shard ${shardId} already`);
  if (!(shard.retired ?? []).includes(to)) return changed(map, shardId, () => ({ move: { from, to } }));
  // A node returning to the group: a Raft id the group never saw.
  const generation = shard.nextGeneration ?? 1;
  return changed(map, shardId, () => ({ move: { from, to }, replicaIds: withId(shard, replicaRaftId(to, generation)), nextGeneration: generation + 1 }));
}

/** The map once the move's target is a voter of the shard's group: it joins the replicas. */
export function targetPromoted(map: ShardMap, shardId: number): ShardMap {
  const { move, replicas, retired } = moving(map, shardId);
  if (replicas.includes(move.to)) return map;
  // A returning node is a replica again (under its new Raft id), no longer retired.
  return changed(map, shardId, () => ({ replicas: sorted([...replicas, move.to]), retired: retired?.filter((id) => id !== move.to) }));
}

/** The map once the move's source left the shard's group: it is retired, the move is over. */
export function finishMove(map: ShardMap, shardId: number): ShardMap {
  const shard = moving(map, shardId);
  const { from, to } = shard.move;
  if (!shard.replicas.includes(to)) throw refused(`shard ${shardId}'s move target ${to} was not promoted yet`);
  const replicas = shard.replicas.filter((id) => id !== from);
  return changed(map, shardId, () => ({ replicas, move: undefined, retired: from === null ? shard.retired : sorted([...(shard.retired ?? []), from]), replicaIds: withoutNode(shard, from) }));
}

/** The map with the move abandoned before its target was promoted; `targetAdded`: the target joined the group as a learner (and was removed again), so it is retired. */
export function abortMove(map: ShardMap, shardId: number, targetAdded: boolean): ShardMap {
  const shard = moving(map, shardId);
  const { to } = shard.move;
  if (shard.replicas.includes(to)) throw refused(`shard ${shardId}'s move target ${to} is a voter already; the move can only finish`);
  const retired = targetAdded && !(shard.retired ?? []).includes(to) ? sorted([...(shard.retired ?? []), to]) : shard.retired;
  return changed(map, shardId, () => ({ move: undefined, retired, replicaIds: withoutNode(shard, to) }));
}

/** Shards with a move in flight. */
export function movesInFlight(map: ShardMap): Array<Shard & { readonly move: NonNullable<Shard['move']> }> {
  return map.shards.filter((shard): shard is Shard & { readonly move: NonNullable<Shard['move']> } => shard.move !== undefined);
}

/** A shard's replicas once its move (if any) finished: the planners plan from there. */
export function replicasAfterMove(shard: Shard): readonly NodeId[] {
  if (shard.move === undefined) return shard.replicas;
  const { from, to } = shard.move;
  return sorted([...new Set([...shard.replicas.filter((id) => id !== from), to])]);
}

/** How node `id` takes part in `shard`: a replica, the target of its move (not promoted yet), or not at all. */
export function replicaRole(shard: Shard, id: NodeId): 'replica' | 'incoming' | 'none' {
  if (shard.replicas.includes(id)) return 'replica';
  return shard.move?.to === id ? 'incoming' : 'none';
}

function changed(map: ShardMap, shardId: number, change: () => Partial<Pick<Shard, 'replicas' | 'move' | 'retired' | 'replicaIds' | 'nextGeneration'>>): ShardMap {
  const version = map.version + 1;
  const shards = map.shards.map((shard): Shard => {
    if (shard.id !== shardId) return shard;
    const next: Shard & { move?: Shard['move']; retired?: Shard['retired']; replicaIds?: Shard['replicaIds'] } = { ...shard, ...change(), epoch: version };
    // Absent, not undefined: the encoding and deep equality treat a cleared field as never set.
    if (next.move === undefined) delete next.move;
    if (next.retired === undefined || next.retired.length === 0) delete next.retired;
    if (next.replicaIds === undefined || next.replicaIds.length === 0) delete next.replicaIds;
    return next;
  });
  return checkedShardMap({ ...highestIdField(map), version, shards });
}

function shardOf(map: ShardMap, shardId: number): Shard {
  const shard = shardById(map, shardId);
  if (shard === undefined) throw refused(`the map has no shard ${shardId}`);
  return shard;
}

function moving(map: ShardMap, shardId: number): Shard & { readonly move: NonNullable<Shard['move']> } {
  const shard = shardOf(map, shardId);
  if (shard.move === undefined) throw refused(`shard ${shardId} has no move in flight`);
  return shard as Shard & { readonly move: NonNullable<Shard['move']> };
}

/** `shard`'s replica ids with `raftId` (its node must have none yet). */
function withId(shard: Shard, raftId: number): number[] {
  return sorted([...(shard.replicaIds ?? []), raftId]);
}

/** `shard`'s replica ids without `node`'s (null: unchanged). */
function withoutNode(shard: Shard, node: NodeId | null): number[] | undefined {
  return shard.replicaIds?.filter((id) => nodeOfRaftId(id) !== node);
}

function sorted(ids: readonly NodeId[]): NodeId[] {
  return [...ids].sort((a, b) => a - b);
}

function refused(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', message);
}
