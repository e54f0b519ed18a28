/**
 * Per-replica Raft ids of shard groups (TiKV's peer ids, distinct from store
 * ids). A replica's Raft id is `generation × NODE_ID_SPAN + node`: the node
 * is recoverable from the id alone (so the transport, liveness and routing,
 * which speak node ids, translate without a table), and a node that left a
 * shard's group and returns to it comes back under a new generation — an id
 * that group never saw, so nothing addressed to or sent by its old replica
 * counts for the new one.
 *
 * Generation 0 is the node id itself: every replica of the first map, of a
 * map written before per-replica ids existed, and of a node joining a group
 * for the first time. A node returning to a group takes the shard's next
 * generation (`Shard.nextGeneration`, never reused; moves.ts).
 */
import type { NodeId } from '../raft/types.js';

/** Node ids are below this (src/cluster/config.ts takes 1 .. 2^31 - 1). */
export const NODE_ID_SPAN = 2 ** 31;
/** Generations stay below this so that every id is a safe integer. */
export const GENERATION_LIMIT = Math.floor(Number.MAX_SAFE_INTEGER / NODE_ID_SPAN);

/** The Raft id of `node`'s replica in generation `generation` (0: the node id). */
export function replicaRaftId(node: NodeId, generation: number): number {
  return generation * NODE_ID_SPAN + node;
}

/** The node a Raft id belongs to (every group's ids: the meta group's are node ids). */
export function nodeOfRaftId(raftId: number): NodeId {
  return raftId % NODE_ID_SPAN;
}

/** The generation of a Raft id. */
export function generationOf(raftId: number): number {
  return Math.floor(raftId / NODE_ID_SPAN);
}
