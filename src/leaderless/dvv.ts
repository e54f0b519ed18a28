/**
 * Causal versions of leaderless mode: dotted version vectors (Preguiça,
 * Baquero et al.; what Riak KV stores with `dvv_enabled`), one per sibling.
 *
 * A key's state on a replica is a SIBLING SET: values (or tombstones) none of
 * which has seen another. Each sibling carries
 *   - its DOT (node, counter): the one write event that created it, named by
 *     the replica that coordinated that write;
 *   - its CONTEXT: the version vector the client sent with the write, i.e. the
 *     events it had seen (and therefore supersedes).
 * A sibling is OBSOLETE when another sibling's context covers its dot. That is
 * the whole rule, and it is what makes the mode safe:
 *   1. A write supersedes exactly the versions its context saw (the siblings
 *      whose dots the context covers) — never one it did not see.
 *   2. Two writes through the same coordinator with the same (or no) context
 *      get different dots and neither context covers the other's dot, so both
 *      survive as siblings. A plain version vector per key (one entry per
 *      coordinator) would let the second silently replace the first.
 *   3. `merge` (what replicas do when they exchange states) is a union minus
 *      the obsolete siblings: commutative, associative and idempotent, so
 *      replicas that have seen the same writes hold the same set whatever
 *      the order of delivery.
 *
 * Last-writer-wins (`--conflicts lww`) is `resolveLastWriter` on top: of the
 * siblings only the one with the highest hybrid-logical timestamp is kept,
 * and its context is widened to everything the others had seen, so the
 * losers stay superseded when they meet it again.
 *
 * Everything here is pure: sets are immutable, sorted by dot, so equal
 * states have equal encodings (the replica digest relies on it).
 */
import { assert } from '../util/assert.js';
import { compareBytes } from '../util/bytes.js';

/** A node id (as in the cluster's membership: a positive integer). */
export type NodeId = number;

/** One write event: the `counter`-th write to this key coordinated by `node`. */
export interface Dot {
  readonly node: NodeId;
  readonly counter: number;
}

/** A version vector as `[node, counter]` pairs sorted by node, counters ≥ 1, nodes unique. */
export type VersionVector = readonly (readonly [NodeId, number])[];

export interface Sibling {
  readonly dot: Dot;
  /** The client's context at the write: the events it supersedes. */
  readonly context: VersionVector;
  /** The value; null for a tombstone (a delete). */
  readonly value: Buffer | null;
  /** Hybrid-logical timestamp of the write (ms-scale, unique per coordinating node); orders writes for lww only. */
  readonly timestamp: number;
}

/** Siblings sorted by (dot.node, dot.counter), none obsolete. Empty: the key was never written here. */
export type SiblingSet = readonly Sibling[];

export const EMPTY_CONTEXT: VersionVector = [];

/** The counter `vv` holds for `node` (0 when absent). */
export function counterOf(vv: VersionVector, node: NodeId): number {
  for (const [id, counter] of vv) if (id === node) return counter;
  return 0;
}

/** True when `vv` has seen event `dot`. */
export function covers(vv: VersionVector, dot: Dot): boolean {
  return counterOf(vv, dot.node) >= dot.counter;
}

/** The pointwise maximum of version vectors, sorted. */
export function joinVectors(vectors: readonly VersionVector[]): VersionVector {
  const max = new Map<NodeId, number>();
  for (const vv of vectors) for (const [id, counter] of vv) max.set(id, Math.max(max.get(id) ?? 0, counter));
  return [...max.entries()].sort((a, b) => a[0] - b[0]);
}

/** What a sibling has seen, itself included: its context plus its dot. */
function seenBy(sibling: Sibling): VersionVector {
  return joinVectors([sibling.context, [[sibling.dot.node, sibling.dot.counter]]]);
}

/**
 * The causal context of a set: everything its siblings have seen. A client
 * that read the set and writes with this context supersedes all of them.
 */
export function contextOf(set: SiblingSet): VersionVector {
  return joinVectors(set.map(seenBy));
}

/** True when `a` has seen everything `b` has (a ≥ b pointwise). */
export function descends(a: VersionVector, b: VersionVector): boolean {
  return b.every(([id, counter]) => counterOf(a, id) >= counter);
}

function compareDots(a: Dot, b: Dot): number {
  return a.node - b.node || a.counter - b.counter;
}

/**
 * Union of two sets minus the obsolete siblings (a dot covered by another
 * sibling's context). Commutative, associative, idempotent. Two siblings with
 * the same dot are the same event: their contexts are joined (lww widens a
 * winner's context, see resolveLastWriter; under siblings mode an event's
 * context never changes, so the join is a no-op). Should their values differ
 * anyway (a dot reused after data loss), the larger (timestamp, bytes) is
 * kept, so replicas still agree.
 */
export function merge(a: SiblingSet, b: SiblingSet): SiblingSet {
  const byDot = new Map<string, Sibling>();
  for (const sibling of [...a, ...b]) {
    const id = `${sibling.dot.node}:${sibling.dot.counter}`;
    const held = byDot.get(id);
    byDot.set(id, held === undefined ? sibling : sameEvent(held, sibling));
  }
  const all = [...byDot.values()];
  const live = all.filter((sibling) => !all.some((other) => other !== sibling && covers(other.context, sibling.dot)));
  return live.sort((x, y) => compareDots(x.dot, y.dot));
}

function sameEvent(a: Sibling, b: Sibling): Sibling {
  const kept = compareContent(a, b) >= 0 ? a : b;
  const context = joinVectors([a.context, b.context]);
  return context.length === kept.context.length && descends(kept.context, context) ? kept : { ...kept, context };
}

function compareContent(a: Sibling, b: Sibling): number {
  if (a.timestamp !== b.timestamp) return a.timestamp - b.timestamp;
  if (a.value === null || b.value === null) return (a.value === null ? 0 : 1) - (b.value === null ? 0 : 1);
  return compareBytes(a.value, b.value);
}

/**
 * A new write coordinated by replica `node` on its current set `local`, with
 * the client's `context`: the new sibling gets dot (node, c) with c above the
 * highest `node` event this replica or the context has seen, and at least
 * `timestamp`; the siblings the context covers are dropped. Only a replica
 * that stores the key may coordinate a write to it.
 *
 * Why the timestamp floor: the local set keeps dots unique only while the
 * key's history is kept. Once a tombstone is collected (tombstones.ts) on this
 * replica, a copy of it (or of an older set) may survive elsewhere with a
 * context covering `node`'s old counters; a new dot numbered from the empty
 * local set would be covered by it and the new write silently dropped. The
 * hybrid clock (`timestamp`, strictly increasing per node, wall-clock
 * microseconds) is beyond every counter this node issued before, as long as
 * the node's wall clock does not step back across a restart.
 */
export function update(local: SiblingSet, context: VersionVector, node: NodeId, value: Buffer | null, timestamp: number): SiblingSet {
  assert(Number.isSafeInteger(node) && node > 0, 'dvv update: node id', node);
  const counter = Math.max(counterOf(context, node) + 1, counterOf(contextOf(local), node) + 1, timestamp);
  const written: Sibling = { dot: { node, counter }, context, value, timestamp };
  return merge(
    local.filter((sibling) => !covers(context, sibling.dot)),
    [written],
  );
}

/**
 * Last-writer-wins: keeps the sibling with the highest (timestamp, node,
 * counter), its context widened to everything the set has seen except its own
 * dot, so the losers are obsolete wherever they meet it. Concurrent writes with
 * a lower timestamp are LOST here even if they were acknowledged: that is the
 * documented price of lww (docs/leaderless.md).
 */
export function resolveLastWriter(set: SiblingSet): SiblingSet {
  if (set.length <= 1) return set;
  const winner = set.reduce((best, sibling) =>
    sibling.timestamp > best.timestamp || (sibling.timestamp === best.timestamp && compareDots(sibling.dot, best.dot) > 0) ? sibling : best,
  );
  const others = set.filter((sibling) => sibling !== winner);
  const context = joinVectors([winner.context, ...others.map(seenBy)]).map(
    ([id, counter]): readonly [NodeId, number] => (id === winner.dot.node ? [id, Math.min(counter, winner.dot.counter - 1)] : [id, counter]),
  ).filter(([, counter]) => counter > 0);
  return [{ ...winner, context }];
}

/** True when `a` and `b` hold the same siblings (same dots). Sets are sorted, so this is a walk. */
export function sameDots(a: SiblingSet, b: SiblingSet): boolean {
  return a.length === b.length && a.every((sibling, index) => compareDots(sibling.dot, b[index]!.dot) === 0);
}

/** True when `set` has siblings and every one is a tombstone (a deleted key). */
export function onlyTombstones(set: SiblingSet): boolean {
  return set.length > 0 && set.every((sibling) => sibling.value === null);
}

/** The live values (tombstones left out), in dot order. */
export function liveValues(set: SiblingSet): Buffer[] {
  return set.flatMap((sibling) => (sibling.value === null ? [] : [sibling.value]));
}
