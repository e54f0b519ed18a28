/**
 * Reads from one replica of a shard group, as the member that replicates it
 * serves them (ShardedKvService) and as it serves them to other members
 * (remote-shard.ts): the group's read point first (linearizable: its
 * ReadIndex), then the group's own bounds: a key or range outside them is
 * refused (IMPULSE_ERR_SHARD_STALE, nothing read), because the keys a split
 * took away stay in the parent's engine, frozen, and reading them there would
 * answer with old values once the new shard serves them.
 *
 * A range is clipped to the shard's range in the reader's map first
 * (`clipToShard`): the parent's engine may hold the right-hand keys (before
 * the split applies, and frozen after), which the new shard serves.
 */
import type { StoredValue } from '../kv/record.js';
import type { KvItem } from '../kv/state-machine.js';
import { type ShardBounds, shardContains } from '../shard/shard-map.js';
import { outsideBoundsError } from '../shard/stale-route.js';
import type { RangeOptions } from '../storage/engine.js';
import { compareBytes } from '../util/bytes.js';
import type { HostedGroup } from './hosted-groups.js';

/** `key`'s value in the group `hosted` after its read point (none when `serializable`). */
export async function readShardKey(hosted: HostedGroup, key: Uint8Array, serializable: boolean): Promise<StoredValue | undefined> {
  await readPoint(hosted, serializable);
  const bounds = hosted.group.machine.bounds;
  if (bounds !== undefined && !shardContains(bounds, key)) throw outsideBoundsError(bounds, key, 'read');
  return hosted.group.machine.machine.get(key);
}

/** The items of `query` (clipped to a shard already: `clipToShard`) in the group `hosted` after its read point. */
export async function readShardRange(hosted: HostedGroup, query: RangeOptions, serializable: boolean): Promise<KvItem[]> {
  await readPoint(hosted, serializable);
  const bounds = hosted.group.machine.bounds;
  if (bounds !== undefined) {
    const outside = keyOutside(query, bounds);
    if (outside !== undefined) throw outsideBoundsError(bounds, outside, 'range read');
  }
  return hosted.group.machine.machine.range(query);
}

/** `query` limited to the keys of `shard` (its lower bound at least the start, its upper at most the end). */
export function clipToShard(query: RangeOptions, shard: ShardBounds): RangeOptions {
  const { gte, gt, lt, lte, ...rest } = query;
  const lower = gte ?? gt;
  const upper = lt ?? lte;
  const clipLower = shard.start.length > 0 && (lower === undefined || compareBytes(lower, shard.start) < 0);
  const clipUpper = shard.end !== null && (upper === undefined || compareBytes(upper, shard.end) > 0 || (lte !== undefined && compareBytes(lte, shard.end) === 0));
  return {
    ...rest,
    ...(clipLower ? { gte: shard.start } : gte !== undefined ? { gte } : gt !== undefined ? { gt } : {}),
    ...(clipUpper && shard.end !== null ? { lt: shard.end } : lt !== undefined ? { lt } : lte !== undefined ? { lte } : {}),
  };
}

async function readPoint(hosted: HostedGroup, serializable: boolean): Promise<void> {
  hosted.requests.requireServing();
  if (!serializable) await hosted.requests.readBarrier();
}

/** A key of `query`'s range that lies outside `bounds` (a bound of the query), or undefined when the range lies inside. */
function keyOutside(query: RangeOptions, bounds: ShardBounds): Uint8Array | undefined {
  const lower = query.gte ?? query.gt;
  if (bounds.start.length > 0 && (lower === undefined || compareBytes(lower, bounds.start) < 0)) return lower ?? Buffer.alloc(0);
  if (bounds.end === null) return undefined;
  if (query.lt !== undefined) return compareBytes(query.lt, bounds.end) > 0 ? query.lt : undefined;
  if (query.lte !== undefined) return compareBytes(query.lte, bounds.end) >= 0 ? query.lte : undefined;
  return bounds.end; // no upper bound: the range runs past the end
}
