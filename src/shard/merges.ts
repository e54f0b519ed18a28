/**
 * Merges of adjacent shards in the shard map (pure; the groups' side is
 * src/cluster/shard-merge.ts and shard-merges.ts, the whole protocol in
 * docs/sharding.md "Merges"). A merge of right shard R into its left
 * neighbour L takes two map changes:
 *
 *   startMerge(map, L)    R.mergeInto = L: the intent. R keeps its range and
 *                         group; nothing is dropped yet (a member destroys a
 *                         merged-away group only once its own replica of L
 *                         took R's data in, never because the map lost R).
 *   finishMerge(map, L)   L's range widens to R's end at a new epoch, R leaves
 *                         the map; the map's `highestId` keeps the highest id
 *                         ever handed out, so `nextShardId` never reuses R's.
 *
 * or, rolled back (docs/sharding.md "Rolling a merge back"):
 *
 *   abortMerge(map, L)    R.mergeAbort: the decision to roll back (R keeps
 *                         `mergeInto`; L's log still decides: a commit of
 *                         L's that came first wins, and the merge finishes).
 *   finishRollback(map, L) R loses both marks and its epoch rises to the new
 *                         version (R's range is unchanged; the next attempt
 *                         has another epoch, and the quiet time starts again).
 *
 * The merge's ATTEMPT is R's epoch at the intent: it does not change while
 * the merge is in flight (neither shard splits or moves), and it rises at a
 * rollback, so two attempts never share one. The groups' logs carry it.
 *
 * Preconditions (IMPULSE_ERR_CONFIG_INVALID, the map unchanged, otherwise): L
 * has a right neighbour, both have the same replicas, neither has a move or
 * another merge in flight, and neither is in an alignment other than R's
 * onto L (alignment.ts; that mark is replaced by the merge's). While a merge
 * is in flight neither shard splits or moves (shard-map.ts `mergingShard`).
 *
 * `mergeCandidates` is the automatic trigger's choice of pairs
 * (`--shard-merge-bytes`); pairs on different replicas are aligned first
 * (alignment.ts `planMergeRound`).
 */
import { ImpulseError } from '../errors.js';
import { type Shard, type ShardMap, checkedShardMap, mergingShard, sameReplicas, withoutAlignMark } from './shard-map.js';

/**
 * Most bytes (keys and values, as the shard leaders report them) a right
 * shard may hold to be merged: a merge's commit takes the right shard's keys
 * into one engine batch in memory. `--shard-merge-bytes` is at most this, and
 * `POST /shards/merge` refuses larger (or not yet reported) right shards.
 */
export const MERGE_RIGHT_BYTES_MAX = 64 * 1024 * 1024;

/** The map with shard `leftId`'s right neighbour marked merging into it. */
export function startMerge(map: ShardMap, leftId: number): ShardMap {
  const { left, right } = neighbours(map, leftId);
  if (mergingShard(map, left.id) || mergingShard(map, right.id)) throw refused(`shard ${left.id} or its right neighbour ${right.id} has a merge in flight already`);
  if (left.move !== undefined || right.move !== undefined) throw refused(`shard ${left.id} or its right neighbour ${right.id} has a replica move in flight; merge after it`);
  if (!sameReplicas(left.replicas, right.replicas)) {
    throw refused(`shard ${left.id} (replicas ${left.replicas.join(',')}) and its right neighbour ${right.id} (replicas ${right.replicas.join(',')}) have different replicas; only shards on the same members merge`);
  }
  if (left.alignTo !== undefined || aligningTo(map, right.id) !== undefined || (right.alignTo !== undefined && right.alignTo !== left.id)) {
    throw refused(`shard ${left.id} or its right neighbour ${right.id} is being aligned for another merge; merge after it`);
  }
  return checkedShardMap({ ...map, version: map.version + 1, shards: map.shards.map((shard) => (shard.id === right.id ? { ...withoutAlignMark(shard), mergeInto: left.id } : shard)) });
}

/**
 * Refuses a merge whose right shard (in `next`, the map `startMerge` made,
 * marked merging into `leftId`) is not known to hold at most
 * MERGE_RIGHT_BYTES_MAX by `sizeOf` (its leader's reported size):
 * IMPULSE_ERR_UNAVAILABLE while unknown (retry once reported),
 * IMPULSE_ERR_CONFIG_INVALID above the bound.
 */
export function checkRightSize(next: ShardMap, leftId: number, sizeOf: (shard: number) => number | undefined): void {
  const right = mergeInto(next, leftId);
  if (right === undefined) throw refused(`no shard is marked merging into shard ${leftId}`);
  const bytes = sizeOf(right.id);
  if (bytes === undefined) throw new ImpulseError('IMPULSE_ERR_UNAVAILABLE', `shard ${right.id}'s size is not reported to the meta leader yet (its leader reports every 5 s); retry`, { details: { shard: right.id, retryAfterSeconds: 5 } });
  if (bytes > MERGE_RIGHT_BYTES_MAX) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `shard ${right.id} holds about ${bytes} bytes; a merge takes at most ${MERGE_RIGHT_BYTES_MAX} (its keys are copied in one batch)`, { details: { shard: right.id, sizeBytes: bytes, limitBytes: MERGE_RIGHT_BYTES_MAX } });
  }
}

/** The map after the merge of `leftId`'s right neighbour (marked by `startMerge`) into it: the left shard covers both ranges, the right one is gone. */
export function finishMerge(map: ShardMap, leftId: number): ShardMap {
  const { left, right } = neighbours(map, leftId);
  if (right.mergeInto !== left.id) throw refused(`shard ${right.id} is not marked merging into shard ${left.id}`);
  const version = map.version + 1;
  const highestId = Math.max(map.highestId ?? 0, ...map.shards.map((shard) => shard.id));
  const shards = map.shards.filter((shard) => shard.id !== right.id).map((shard): Shard => (shard.id === left.id ? { ...shard, end: right.end, epoch: version } : shard));
  return checkedShardMap({ version, shards, highestId });
}

/**
 * The map with the merge into `leftId` marked to roll back (`mergeAbort`).
 * IMPULSE_ERR_CONFIG_INVALID when no merge into `leftId` is in flight; a
 * merge marked already is returned unchanged (the caller need not write it).
 */
export function abortMerge(map: ShardMap, leftId: number): ShardMap {
  const right = mergeInto(map, leftId);
  if (right === undefined) throw refused(`no merge into shard ${leftId} is in flight (it finished, was rolled back, or never started)`);
  if (right.mergeAbort === true) return map;
  return checkedShardMap({ ...map, version: map.version + 1, shards: map.shards.map((shard) => (shard.id === right.id ? { ...shard, mergeAbort: true } : shard)) });
}

/** The map after the merge into `leftId` (marked by `abortMerge`) was rolled back in the right group: it serves its range again, at a new epoch. */
export function finishRollback(map: ShardMap, leftId: number): ShardMap {
  const right = mergeInto(map, leftId);
  if (right === undefined || right.mergeAbort !== true) throw refused(`no merge into shard ${leftId} is being rolled back`);
  const version = map.version + 1;
  const { mergeInto: _into, mergeAbort: _abort, ...rest } = right;
  return checkedShardMap({ ...map, version, shards: map.shards.map((shard) => (shard.id === right.id ? { ...rest, epoch: version } : shard)) });
}

/** The merge in flight into `leftId` (its right neighbour, marked), if any. */
export function mergeInto(map: ShardMap, leftId: number): Shard | undefined {
  return map.shards.find((shard) => shard.mergeInto === leftId);
}

/** Thresholds of the automatic merge (`--shard-merge-bytes`, docs/sharding.md "Merges"). */
export interface MergeOptions {
  /** Both neighbours must be below this many bytes; 0: never merge. */
  readonly mergeBytes: number;
  /** `--shard-split-bytes` (0: off): the merged shard must stay below half of it, so it is not split again at once. */
  readonly splitBytes: number;
  /** Shards that split (or were made by a split) too recently to merge: hysteresis against flapping. */
  readonly recentlySplit: ReadonlySet<number>;
}

/**
 * The pairs of adjacent shards small enough to merge, in key order, at most
 * one per shard (a shard in one pair is in no other): both sizes known and
 * below `mergeBytes`, their sum below half of `splitBytes` (when splits by
 * size are on), neither split (or otherwise changed) recently, no move,
 * merge or alignment of either in flight. Their replicas may differ (then
 * they are aligned first: alignment.ts).
 */
export function mergeCandidates(map: ShardMap, sizes: ReadonlyMap<number, number>, options: MergeOptions): Array<{ left: Shard; right: Shard }> {
  const { recentlySplit } = options;
  if (options.mergeBytes <= 0) return [];
  // Shards in a merge or an alignment (both sides of each), in one pass: the map may hold thousands.
  const paired = new Set(map.shards.flatMap((shard) => [shard.mergeInto, shard.alignTo].flatMap((other) => (other === undefined ? [] : [shard.id, other]))));
  const planned: Array<{ left: Shard; right: Shard }> = [];
  let lastUsed: number | undefined;
  for (let index = 0; index + 1 < map.shards.length; index++) {
    const left = map.shards[index]!;
    const right = map.shards[index + 1]!;
    if (lastUsed === left.id || !smallEnough(sizes.get(left.id), sizes.get(right.id), options)) continue;
    if (recentlySplit.has(left.id) || recentlySplit.has(right.id)) continue;
    if (left.move !== undefined || right.move !== undefined || paired.has(left.id) || paired.has(right.id)) continue;
    planned.push({ left, right });
    lastUsed = right.id;
  }
  return planned;
}

/** Whether two neighbours of these sizes (undefined: not known) may merge by `options`' thresholds. */
export function smallEnough(leftBytes: number | undefined, rightBytes: number | undefined, options: Pick<MergeOptions, 'mergeBytes' | 'splitBytes'>): boolean {
  const { mergeBytes, splitBytes } = options;
  if (leftBytes === undefined || rightBytes === undefined || leftBytes >= mergeBytes || rightBytes >= mergeBytes) return false;
  return splitBytes <= 0 || leftBytes + rightBytes < splitBytes / 2;
}

/** The shard being aligned onto `leftId` (its right neighbour, marked: alignment.ts), if any. */
function aligningTo(map: ShardMap, leftId: number): Shard | undefined {
  return map.shards.find((shard) => shard.alignTo === leftId);
}

function neighbours(map: ShardMap, leftId: number): { left: Shard; right: Shard } {
  const at = map.shards.findIndex((shard) => shard.id === leftId);
  const left = map.shards[at];
  const right = map.shards[at + 1];
  if (left === undefined) throw refused(`the map has no shard ${leftId}`);
  if (right === undefined) throw refused(`shard ${leftId} is the last shard: it has no right neighbour to merge`);
  return { left, right };
}

function refused(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', message);
}
