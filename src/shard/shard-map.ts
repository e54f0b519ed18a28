/**
 * The shard map: the key space cut into contiguous ranges [start, end), each
 * served by one Raft group (its id is the shard's id), with an epoch and the
 * nodes that replicate it. Pure data and functions; where the map is kept
 * (the meta group, group 1) and how requests are routed by it are
 * shard-router.ts and docs/sharding.md.
 *
 * Invariants (`shardMapProblem` checks them; a map that breaks one is never
 * stored or used):
 *   - shards sorted by `start`; the first starts at the empty key, each next
 *     one starts where the previous ends, the last ends at null (no bound):
 *     every key belongs to exactly one shard;
 *   - shard ids distinct, >= 2 (group 1 is the meta group), replicas a
 *     non-empty ascending list of distinct node ids; 1 <= epoch <= version;
 *   - a replica move in flight (`move`, moves.ts) names a target and, unless
 *     it only adds a replica, a source among the replicas; `retired` (nodes
 *     removed from the shard's group) is ascending, distinct and disjoint
 *     from the replicas; a retired node may be a move's target only under a
 *     new Raft id (replica-id.ts);
 *   - `replicaIds` (Raft ids of generation >= 1) are ascending, one per node
 *     at most, each of a replica or the move's target, with a generation
 *     below `nextGeneration`.
 *
 * Version: the map's own number, +1 at every change; a change names the
 * version it replaces, so two concurrent changes cannot both apply.
 *
 * Epoch (TiKV's region epoch, one number here): the version of the map that
 * last changed the shard's range or replicas (so it rises with every such
 * change and never exceeds the map's version). A request routed with an older
 * epoch is told its route is stale; one naming an epoch above the member's
 * map version comes from a newer map than the member's (stale-route.ts).
 *
 * Encoding: canonical JSON (keys in hex), so every replica of the meta group
 * writes the same bytes.
 */
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import { compareBytes, partitionPoint } from '../util/bytes.js';
import { applyMoves, planPlacement } from './placement.js';
import { GENERATION_LIMIT, generationOf, nodeOfRaftId } from './replica-id.js';

/** The group that keeps the shard map (and, in a cluster without shards, all the data). */
export const META_GROUP = 1;
/** The cluster metadata name the shard map is stored under in the meta group. */
export const SHARD_MAP_META_NAME = 'shard-map';
/** Most shards one map may hold (bounds the map's size and the groups a node opens). */
export const SHARDS_MAX = 4096;
/** Replicas of every shard (fewer when the cluster has fewer nodes): three, as in TiKV and CockroachDB. */
export const SHARD_REPLICAS = 3;

export interface Shard {
  /** The Raft group serving the shard (>= 2). */
  readonly id: number;
  /** First key of the range (inclusive); empty: from the first key. */
  readonly start: Buffer;
  /** End of the range (exclusive); null: to the last key. */
  readonly end: Buffer | null;
  readonly epoch: number;
  /** Node ids replicating the shard, ascending. */
  readonly replicas: readonly NodeId[];
  /** A replica move in flight (src/shard/moves.ts); absent when none. */
  readonly move?: ShardMove;
  /** Nodes a move removed from the shard's group, ascending (a node returning takes a new Raft id); absent when none. */
  readonly retired?: readonly NodeId[];
  /** Raft ids of the replicas (and the move's target) whose id is not their node id (generation >= 1, replica-id.ts), ascending; absent when none. */
  readonly replicaIds?: readonly number[];
  /** The generation the next node returning to this group takes (absent: 1; never reused). */
  readonly nextGeneration?: number;
  /** A merge in flight: this shard is being merged into `mergeInto`, its left neighbour (src/shard/merges.ts); absent when none. */
  readonly mergeInto?: number;
  /** The merge into `mergeInto` is being rolled back (merges.ts `abortMerge`): only with `mergeInto`; absent when not. */
  readonly mergeAbort?: true;
  /** Replicas being aligned for a merge: this shard's replicas are moving onto those of `alignTo`, its left neighbour, which it then merges into (src/shard/alignment.ts); absent when none. */
  readonly alignTo?: number;
}

/** The Raft id of `node`'s replica of `shard` (its node id unless the map gives it a later generation). */
export function raftIdOf(shard: Shard, node: NodeId): number {
  return shard.replicaIds?.find((id) => nodeOfRaftId(id) === node) ?? node;
}

/** One replica of a shard moving from `from` (null: a replica is added) to `to`; the steps are in src/shard/moves.ts. */
export interface ShardMove {
  readonly from: NodeId | null;
  readonly to: NodeId;
}

export interface ShardMap {
  /** 1 for the first map, +1 at every change. */
  readonly version: number;
  readonly shards: readonly Shard[];
  /** The highest id a merge dropped from `shards` (absent: none): new ids are above it and above every id in `shards`, so ids are never reused. */
  readonly highestId?: number;
}

/**
 * The map of a new sharded cluster: `splitKeys` (distinct, non-empty) cut the
 * key space into splitKeys.length + 1 shards, groups firstGroupId, +1, ...,
 * epoch 1, each replicated on `replicationFactor` of `nodes` as the placement
 * planner spreads them (the same nodes and keys give the same map).
 */
export function initialShardMap(splitKeys: readonly Uint8Array[], nodes: readonly NodeId[], replicationFactor = SHARD_REPLICAS, firstGroupId = META_GROUP + 1): ShardMap {
  const keys = [...splitKeys].map((key) => Buffer.from(key)).sort(compareBytes);
  const bounds: Buffer[] = [Buffer.alloc(0), ...keys];
  const ids = bounds.map((_, index) => firstGroupId + index);
  const placed = applyMoves(
    ids.map((id) => ({ id, replicas: [] })),
    planPlacement({ liveNodes: nodes, shards: ids.map((id) => ({ id, replicas: [] })), replicationFactor }),
  );
  const map: ShardMap = {
    version: 1,
    shards: bounds.map((start, index) => ({ id: ids[index]!, start, end: keys[index] ?? null, epoch: 1, replicas: placed[index]!.replicas })),
  };
  const problem = shardMapProblem(map);
  if (problem !== undefined) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the initial shard map is invalid: ${problem}`);
  return map;
}

/** What breaks the invariants of `map` (see the file comment), or undefined when it holds them. */
export function shardMapProblem(map: ShardMap): string | undefined {
  const { shards } = map;
  if (!Number.isSafeInteger(map.version) || map.version < 1) return `the map's version is ${map.version}`;
  if (shards.length === 0 || shards.length > SHARDS_MAX) return `a map holds 1 to ${SHARDS_MAX} shards, not ${shards.length}`;
  if (shards[0]!.start.length !== 0) return 'the first shard must start at the empty key';
  if (shards[shards.length - 1]!.end !== null) return 'the last shard must have no end';
  const ids = new Set<number>();
  for (let index = 0; index < shards.length; index++) {
    const shard = shards[index]!;
    if (!Number.isSafeInteger(shard.id) || shard.id <= META_GROUP || ids.has(shard.id)) return `shard id ${shard.id} is not a distinct integer >= ${META_GROUP + 1}`;
    ids.add(shard.id);
    if (!Number.isSafeInteger(shard.epoch) || shard.epoch < 1 || shard.epoch > map.version) return `shard ${shard.id} has epoch ${shard.epoch} (1 to the map's version ${map.version})`;
    const { replicas } = shard;
    if (replicas.length === 0 || !ascendingNodeIds(replicas)) return `shard ${shard.id} needs replicas as ascending distinct node ids`;
    const moveProblem = shardMoveProblem(shard);
    if (moveProblem !== undefined) return `shard ${shard.id} ${moveProblem}`;
    const mergeProblem = shardMergeProblem(shard, shards[index - 1]) ?? shardAlignProblem(shard, shards[index - 1]);
    if (mergeProblem !== undefined) return `shard ${shard.id} ${mergeProblem}`;
    const next = shards[index + 1];
    if (next === undefined) continue;
    if (shard.end === null || compareBytes(shard.end, next.start) !== 0) return `shard ${shard.id} must end where shard ${next.id} starts`;
    if (compareBytes(shard.start, shard.end) >= 0) return `shard ${shard.id} has an empty range`;
  }
  if (map.highestId !== undefined && (!Number.isSafeInteger(map.highestId) || map.highestId <= META_GROUP)) return `the highest merged-away id (${map.highestId}) is not an id`;
  return undefined;
}

/** What is wrong with `shard`'s merge into its left neighbour `left`, or undefined (merges.ts). */
function shardMergeProblem(shard: Shard, left: Shard | undefined): string | undefined {
  if (shard.mergeInto === undefined) return shard.mergeAbort === undefined ? undefined : 'is marked rolling back a merge it is not in';
  if (left === undefined || left.id !== shard.mergeInto) return `is marked merging into ${shard.mergeInto}, which is not its left neighbour`;
  if (left.mergeInto !== undefined || shard.move !== undefined || left.move !== undefined) return 'cannot merge while a move or another merge of it or its left neighbour is in flight';
  return sameReplicas(left.replicas, shard.replicas) ? undefined : `cannot merge into shard ${left.id}: their replicas differ`;
}

// ---------------------------------------------------------------- alignment marks (src/shard/alignment.ts)

/**
 * What is wrong with `shard`'s alignment mark, or undefined: it names its
 * left neighbour `left`, and neither shard is in a merge or in another
 * alignment (no chains: a shard is in one pair at most).
 */
function shardAlignProblem(shard: Shard, left: Shard | undefined): string | undefined {
  if (shard.alignTo === undefined) return undefined;
  if (left === undefined || left.id !== shard.alignTo) return `is marked aligning to ${shard.alignTo}, which is not its left neighbour`;
  if (shard.mergeInto !== undefined || left.mergeInto !== undefined || left.alignTo !== undefined) return 'cannot align while it or its left neighbour is in a merge or another alignment';
  return undefined;
}

/** `shard` without its alignment mark (absent, not undefined: the encoding treats it as never set). */
export function withoutAlignMark(shard: Shard): Shard {
  if (shard.alignTo === undefined) return shard;
  const { alignTo: _dropped, ...rest } = shard;
  return rest;
}

// ---------------------------------------------------------------- splits

/**
 * The map after splitting shard `shardId` at `splitKey` (strictly inside its
 * range): the left part keeps the id and `[start, splitKey)`, the right part
 * is shard `rightId` (not in the map) with `[splitKey, end)`, both on the same
 * replicas at epoch version + 1. IMPULSE_ERR_CONFIG_INVALID when the split is
 * not possible (the map is unchanged), and while the shard has a replica move
 * in flight (docs/sharding.md, "A split racing a move").
 */
export function splitShard(map: ShardMap, shardId: number, splitKey: Uint8Array, rightId: number): ShardMap {
  const at = map.shards.findIndex((shard) => shard.id === shardId);
  const shard = map.shards[at];
  const key = Buffer.from(splitKey);
  if (shard === undefined || !shardContains(shard, key) || compareBytes(key, shard.start) === 0) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `shard ${shardId} cannot split at ${key.toString('hex')} (no such shard, or the key is not strictly inside its range)`);
  }
  // The right part would take the group's membership mid-move, which the map's move names for the left part only.
  if (shard.move !== undefined) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `shard ${shardId} cannot split while a replica move of it is in flight`);
  if (mergingShard(map, shardId)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `shard ${shardId} cannot split while a merge of it is in flight`);
  const version = map.version + 1;
  // A split ends an alignment that involves the shard: the right part would sit between the pair (alignment.ts).
  const unmarked = map.shards.map((each) => (each.id === shardId || each.alignTo === shardId ? withoutAlignMark(each) : each));
  const parts: Shard[] = [
    { ...withoutAlignMark(shard), end: key, epoch: version },
    // The right part starts from the parent's membership at the split: the same Raft ids.
    { id: rightId, start: key, end: shard.end, epoch: version, replicas: shard.replicas, ...replicaIdFields(shard) },
  ];
  return checkedShardMap({ ...highestIdField(map), version, shards: [...unmarked.slice(0, at), ...parts, ...unmarked.slice(at + 1)] });
}

/** True when `a` and `b` name the same nodes (replica lists are ascending: shardMapProblem). */
export function sameReplicas(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** True when shard `shardId` is in a merge in flight (the right one, marked, or the left one it merges into). */
export function mergingShard(map: ShardMap, shardId: number): boolean {
  return map.shards.some((shard) => shard.mergeInto !== undefined && (shard.id === shardId || shard.mergeInto === shardId));
}

/** `map`'s `highestId` field, for a map made from it. */
export function highestIdField(map: ShardMap): Pick<ShardMap, 'highestId'> {
  return map.highestId !== undefined ? { highestId: map.highestId } : {};
}

/** Most bytes of a split key (of `--split-keys` and of a split at runtime). */
export const SPLIT_KEY_BYTES_MAX = 512;

/** The map after shard `shardId`'s replicas became `replicas` (ascending), at epoch version + 1. */
export function changeReplicas(map: ShardMap, shardId: number, replicas: readonly NodeId[]): ShardMap {
  const version = map.version + 1;
  if (shardById(map, shardId) === undefined) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the map has no shard ${shardId}`);
  return checkedShardMap({ ...highestIdField(map), version, shards: map.shards.map((shard) => (shard.id === shardId ? { ...shard, replicas: [...replicas], epoch: version } : shard)) });
}

/**
 * The id for a new shard: one above every id ever handed out (the ids in the
 * map and `highestId`, which a merge keeps when it drops an id), so ids are
 * never reused.
 */
export function nextShardId(map: ShardMap): number {
  return map.shards.reduce((highest, shard) => Math.max(highest, shard.id), map.highestId ?? META_GROUP) + 1;
}

function ascendingNodeIds(ids: readonly NodeId[]): boolean {
  return ids.every((id, i) => Number.isSafeInteger(id) && id >= 1 && (i === 0 || id > ids[i - 1]!));
}

/** `shard`'s Raft id fields, for a shard made from it (a split's right part). */
function replicaIdFields(shard: Shard): Pick<Shard, 'retired' | 'replicaIds' | 'nextGeneration'> {
  return {
    ...(shard.retired !== undefined ? { retired: shard.retired } : {}),
    ...(shard.replicaIds !== undefined ? { replicaIds: shard.replicaIds } : {}),
    ...(shard.nextGeneration !== undefined ? { nextGeneration: shard.nextGeneration } : {}),
  };
}

/** What is wrong with `shard`'s Raft ids, or undefined. */
function replicaIdProblem(shard: Shard): string | undefined {
  const next = shard.nextGeneration ?? 1;
  if (!Number.isSafeInteger(next) || next < 1 || next > GENERATION_LIMIT) return `has next generation ${next}`;
  const ids = shard.replicaIds ?? [];
  const members = [...shard.replicas, ...(shard.move !== undefined ? [shard.move.to] : [])];
  const nodes = ids.map(nodeOfRaftId);
  const ok = ids.every((id, i) => Number.isSafeInteger(id) && generationOf(id) >= 1 && generationOf(id) < next && members.includes(nodes[i]!) && (i === 0 || id > ids[i - 1]!));
  return ok && new Set(nodes).size === nodes.length ? undefined : 'needs replica ids as ascending ids of generation 1 to next - 1, one per replica or move target';
}

/** What is wrong with `shard`'s move, retired nodes and Raft ids, or undefined. */
function shardMoveProblem(shard: Shard): string | undefined {
  const retired = shard.retired ?? [];
  if (!ascendingNodeIds(retired) || retired.some((id) => shard.replicas.includes(id))) return 'needs retired nodes as ascending distinct node ids that are not replicas';
  const idProblem = replicaIdProblem(shard);
  if (idProblem !== undefined) return idProblem;
  const { move } = shard;
  if (move === undefined) return undefined;
  // The target is among the replicas once it was promoted to a voter (moves.ts), until the move finishes.
  if (!ascendingNodeIds([move.to]) || (retired.includes(move.to) && raftIdOf(shard, move.to) === move.to)) return `cannot move a replica to node ${move.to} (retired, and no new Raft id)`;
  if (move.from !== null && (move.from === move.to || !shard.replicas.includes(move.from))) return `cannot move a replica from node ${move.from} (not a replica)`;
  return undefined;
}

/** `map` when it holds the invariants; else IMPULSE_ERR_CONFIG_INVALID. */
export function checkedShardMap(map: ShardMap): ShardMap {
  const problem = shardMapProblem(map);
  if (problem !== undefined) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the changed shard map is invalid: ${problem}`);
  return map;
}

/**
 * A shard group's own key range, kept in the group's state (cluster metadata
 * `shard-bounds`, written at its bootstrap identically on every replica): the
 * group refuses at apply any command for a key outside it, whatever routed
 * it there. Only the group's own log changes it (a split narrows it, a merge
 * empties the merged-away group's and widens the survivor's).
 */
export interface ShardBounds {
  readonly start: Buffer;
  readonly end: Buffer | null;
}

export const SHARD_BOUNDS_META_NAME = 'shard-bounds';

/** A range as messages and records carry it: start and end in hex (end null: no end). */
export interface BoundsHex {
  readonly start: string;
  readonly end: string | null;
}

export function boundsHex(bounds: ShardBounds): BoundsHex {
  return { start: bounds.start.toString('hex'), end: bounds.end === null ? null : bounds.end.toString('hex') };
}

/** Whether `text` is bytes in lowercase hex. */
export function isHexBytes(text: unknown): text is string {
  return typeof text === 'string' && /^(?:[0-9a-f]{2})*$/.test(text);
}

/** The range `start` and `end` name in hex (`BoundsHex`; end null: no end), or undefined when either is not hex. Their order is the caller's to check. */
export function boundsFromHex(start: unknown, end: unknown): ShardBounds | undefined {
  if (!isHexBytes(start) || !(end === null || isHexBytes(end))) return undefined;
  return { start: Buffer.from(start, 'hex'), end: end === null ? null : Buffer.from(end, 'hex') };
}

export function encodeShardBounds(bounds: ShardBounds): Buffer {
  return Buffer.from(JSON.stringify(boundsHex(bounds)), 'utf8');
}

/** The bounds in `bytes`; IMPULSE_ERR_ENGINE_CORRUPTION when they are not valid bounds (stored state that must be). */
export function decodeShardBounds(bytes: Uint8Array): ShardBounds {
  try {
    const { start, end } = JSON.parse(Buffer.from(bytes).toString('utf8')) as { start?: unknown; end?: unknown };
    const bounds = boundsFromHex(start, end);
    // start === end: an empty range, a group frozen by a shard merge (no key is inside it).
    if (bounds !== undefined && (bounds.end === null || Buffer.compare(bounds.start, bounds.end) <= 0)) return bounds;
  } catch {
    // reported below
  }
  throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', 'the stored shard bounds are invalid');
}

/** The shard holding `key` (there is exactly one). */
export function shardFor(map: ShardMap, key: Uint8Array): Shard {
  const { shards } = map;
  // The last shard whose start is <= key: the first shard starts at the empty key, so there is one.
  const after = partitionPoint(0, shards.length, (index) => compareBytes(shards[index]!.start, key) > 0);
  return shards[after - 1]!;
}

/** The shard with id `id`, if the map has it. */
export function shardById(map: ShardMap, id: number): Shard | undefined {
  return map.shards.find((shard) => shard.id === id);
}

/**
 * The shards overlapping the key range from `lower` (inclusive; undefined: no
 * bound) to `upper` (exclusive; undefined: no bound), in key order.
 */
export function shardsOverlapping(map: ShardMap, lower: Uint8Array | undefined, upper: Uint8Array | undefined): Shard[] {
  const { shards } = map;
  const first = lower === undefined ? 0 : shards.indexOf(shardFor(map, lower));
  const result: Shard[] = [];
  for (let index = first; index < shards.length; index++) {
    const shard = shards[index]!;
    if (upper !== undefined && compareBytes(shard.start, upper) >= 0) break;
    result.push(shard);
  }
  return result;
}

/** True when `a` and `b` are the same range. */
export function sameShardBounds(a: ShardBounds, b: ShardBounds): boolean {
  return a.start.equals(b.start) && (a.end === null ? b.end === null : b.end !== null && a.end.equals(b.end));
}

/** True when `key` lies in `shard`'s range. */
export function shardContains(shard: ShardBounds, key: Uint8Array): boolean {
  return compareBytes(shard.start, key) <= 0 && (shard.end === null || compareBytes(key, shard.end) < 0);
}

interface ShardJson {
  readonly id: number;
  readonly start: string;
  readonly end: string | null;
  readonly epoch: number;
  readonly replicas: readonly number[];
  readonly move?: { readonly from: number | null; readonly to: number };
  readonly retired?: readonly number[];
  readonly replicaIds?: readonly number[];
  readonly nextGeneration?: number;
  readonly mergeInto?: number;
  readonly mergeAbort?: true;
  readonly alignTo?: number;
}

/** The map as a JSON value (keys in hex); `shardMapFromJson` reads it back. */
export function shardMapToJson(map: ShardMap): { version: number; shards: ShardJson[]; highestId?: number } {
  // `move` and `retired` only when present: a map without them encodes as before they existed.
  const shards: ShardJson[] = map.shards.map((shard) => ({
    id: shard.id,
    ...boundsHex(shard),
    epoch: shard.epoch,
    replicas: [...shard.replicas],
    ...(shard.move !== undefined ? { move: { from: shard.move.from, to: shard.move.to } } : {}),
    ...(shard.retired !== undefined && shard.retired.length > 0 ? { retired: [...shard.retired] } : {}),
    ...(shard.replicaIds !== undefined && shard.replicaIds.length > 0 ? { replicaIds: [...shard.replicaIds] } : {}),
    ...(shard.nextGeneration !== undefined ? { nextGeneration: shard.nextGeneration } : {}),
    ...(shard.mergeInto !== undefined ? { mergeInto: shard.mergeInto } : {}),
    ...(shard.mergeAbort === true ? { mergeAbort: true as const } : {}),
    ...(shard.alignTo !== undefined ? { alignTo: shard.alignTo } : {}),
  }));
  return { version: map.version, shards, ...highestIdField(map) };
}

/** Canonical bytes of `map` (it must hold the invariants). */
export function encodeShardMap(map: ShardMap): Buffer {
  return Buffer.from(JSON.stringify(shardMapToJson(map)), 'utf8');
}

/** The map in `bytes`; IMPULSE_ERR_ENGINE_CORRUPTION when they are not a valid map (stored state that must be one). */
export function decodeShardMap(bytes: Uint8Array): ShardMap {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', 'the stored shard map is invalid: not JSON');
  }
  const map = shardMapFromJson(parsed);
  if (typeof map === 'string') throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `the stored shard map is invalid: ${map}`);
  return map;
}

/** The map in a JSON value (as `shardMapToJson` makes it), or what is wrong with it. */
export function shardMapFromJson(parsed: unknown): ShardMap | string {
  const version = (parsed as { version?: unknown } | null)?.version;
  const list = (parsed as { shards?: unknown } | null)?.shards;
  const highestId = (parsed as { highestId?: unknown } | null)?.highestId;
  if (typeof version !== 'number' || !Array.isArray(list)) return 'no version or no shard list';
  if (highestId !== undefined && typeof highestId !== 'number') return 'the highest id is not a number';
  const corrupt = (why: string): Error => new Error(why);
  const hex = (value: unknown): Buffer => {
    if (!isHexBytes(value)) throw corrupt('a key is not hex');
    return Buffer.from(value, 'hex');
  };
  let shards: Shard[];
  try {
    shards = list.map((item: unknown): Shard => {
      const shard = item as Partial<Record<keyof ShardJson, unknown>> | null;
      if (typeof shard?.id !== 'number' || typeof shard.epoch !== 'number' || !Array.isArray(shard.replicas) || !shard.replicas.every((id) => typeof id === 'number')) throw corrupt('a shard lacks its id, epoch or replicas');
      return { id: shard.id, start: hex(shard.start), end: shard.end === null ? null : hex(shard.end), epoch: shard.epoch, replicas: shard.replicas as number[], ...moveFromJson(shard.move, shard.retired), ...replicaIdsFromJson(shard.replicaIds, shard.nextGeneration), ...mergeFromJson(shard.mergeInto, shard.mergeAbort), ...alignFromJson(shard.alignTo) };
    });
  } catch (error) {
    return (error as Error).message;
  }
  const map = { version, shards, ...(highestId !== undefined ? { highestId } : {}) };
  return shardMapProblem(map) ?? map;
}

/** The optional `mergeInto` and `mergeAbort` of a shard in JSON (shardMapProblem checks their meaning). */
function mergeFromJson(mergeInto: unknown, mergeAbort: unknown): Pick<Shard, 'mergeInto' | 'mergeAbort'> {
  if (mergeAbort !== undefined && mergeAbort !== true) throw new Error('a shard\'s merge rollback mark is not true');
  const abort = mergeAbort === true ? { mergeAbort: true as const } : {};
  if (mergeInto === undefined) return abort;
  if (typeof mergeInto !== 'number') throw new Error('a shard\'s merge target is not an id');
  return { mergeInto, ...abort };
}

/** The optional `alignTo` of a shard in JSON (shardMapProblem checks its meaning). */
function alignFromJson(alignTo: unknown): Pick<Shard, 'alignTo'> {
  if (alignTo === undefined) return {};
  if (typeof alignTo !== 'number') throw new Error('a shard\'s alignment target is not an id');
  return { alignTo };
}

/** The optional `replicaIds` and `nextGeneration` of a shard in JSON (shardMapProblem checks their meaning). */
function replicaIdsFromJson(replicaIds: unknown, nextGeneration: unknown): Pick<Shard, 'replicaIds' | 'nextGeneration'> {
  const result: { replicaIds?: number[]; nextGeneration?: number } = {};
  if (replicaIds !== undefined) {
    if (!Array.isArray(replicaIds) || !replicaIds.every((id) => typeof id === 'number')) throw new Error('a shard\'s replica ids are not a list of ids');
    result.replicaIds = replicaIds;
  }
  if (nextGeneration !== undefined) {
    if (typeof nextGeneration !== 'number') throw new Error('a shard\'s next generation is not a number');
    result.nextGeneration = nextGeneration;
  }
  return result;
}

/** The optional `move` and `retired` of a shard in JSON (shardMapProblem checks their meaning). */
function moveFromJson(move: unknown, retired: unknown): Pick<Shard, 'move' | 'retired'> {
  const nodeId = (value: unknown): value is number => typeof value === 'number';
  const result: { move?: ShardMove; retired?: NodeId[] } = {};
  if (move !== undefined) {
    const { from, to } = (move ?? {}) as { from?: unknown; to?: unknown };
    if (!nodeId(to) || !(from === null || nodeId(from))) throw new Error('a shard\'s move lacks its source or target');
    result.move = { from, to };
  }
  if (retired !== undefined) {
    if (!Array.isArray(retired) || !retired.every(nodeId)) throw new Error('a shard\'s retired nodes are not a list of ids');
    result.retired = retired;
  }
  return result;
}
