/**
 * Stale routes: a client routes a key request by its cached copy of the shard
 * map and says which shard and epoch it routed by (the `Impulse-Shard`
 * header); the member that receives it judges that route against its own
 * map (TiKV's EpochNotMatch / KeyNotInRegion, CockroachDB's
 * RangeKeyMismatchError). Pure.
 *
 *   current  the key's shard in the member's map is the route's shard at the
 *            route's epoch: serve it;
 *   stale    the member's map is newer: the key lies in another shard now, or
 *            the route's shard has a higher epoch (it split, merged or changed
 *            replicas), or it is gone (merged away) — answer
 *            IMPULSE_ERR_SHARD_STALE with the shard that holds the key now;
 *   behind   the client's map is newer than the member's: the route names a
 *            higher epoch than the member knows for that shard, or a shard the
 *            member's map lacks at an epoch above the map's version (a shard's
 *            epoch is the version of the map that last changed it, so such a
 *            shard was made by a change this member has not applied yet) — the
 *            member must catch up before it can judge.
 *
 * A shard the member's map lacks at an epoch up to the map's version existed
 * at that version or before and is gone (merged away): stale.
 */
import { ImpulseError } from '../errors.js';
import { type Shard, type ShardBounds, type ShardMap, shardById } from './shard-map.js';

/** A route as a request carries it: the shard's group id and epoch in the client's map. */
export interface RouteClaim {
  readonly shard: number;
  readonly epoch: number;
}

export type RouteVerdict = 'current' | 'stale' | 'behind';

/** How `route` compares with `map`, for a key that `map` places in `keyShard`. */
export function judgeRoute(map: ShardMap, keyShard: Shard, route: RouteClaim): RouteVerdict {
  if (route.shard === keyShard.id) {
    if (route.epoch === keyShard.epoch) return 'current';
    return route.epoch < keyShard.epoch ? 'stale' : 'behind';
  }
  const named = shardById(map, route.shard);
  return route.epoch > (named?.epoch ?? map.version) ? 'behind' : 'stale';
}

/** IMPULSE_ERR_SHARD_STALE carrying what a client needs to route again: the shard holding the key now, in `map`. */
export function staleRouteError(map: ShardMap, keyShard: Shard, route: RouteClaim): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_SHARD_STALE', `the request was routed by shard ${route.shard} at epoch ${route.epoch}; the key lies in shard ${keyShard.id} at epoch ${keyShard.epoch} (shard map version ${map.version}): refresh the map and retry`, {
    details: {
      shard: keyShard.id,
      epoch: keyShard.epoch,
      start: keyShard.start.toString('hex'),
      end: keyShard.end === null ? null : keyShard.end.toString('hex'),
      replicas: keyShard.replicas.join(','),
      mapVersion: map.version,
    },
  });
}

/**
 * A shard group's refusal of a key outside its own bounds (at apply, or a
 * read after its read point): it was routed by a map older than the group's
 * range, and nothing was changed. Details `start`, `end` (hex; end null: no
 * end). Carries no `shard`: the member that routed it retries by its newer
 * map (ShardedKvService), where a route's staleness names the shard.
 */
export function outsideBoundsError(bounds: ShardBounds, key: Uint8Array, what: string): ImpulseError {
  const { start, end } = bounds;
  const range = `[${start.toString('hex')}, ${end === null ? 'end' : end.toString('hex')})`;
  return new ImpulseError('IMPULSE_ERR_SHARD_STALE', `key ${Buffer.from(key).subarray(0, 64).toString('hex')} (hex) is outside this shard's keys ${range}; the ${what} was routed by an old shard map and changed nothing`, {
    details: { start: start.toString('hex'), end: end === null ? null : end.toString('hex') },
  });
}
