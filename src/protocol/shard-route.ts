/**
 * The `Impulse-Shard` request header, shared by the server and the client:
 * the shard a client routed a key request by, as its cached shard map had it
 * (TiKV's region id + region epoch in every request's context).
 *
 *   Impulse-Shard: <shard id>:<epoch>       e.g. Impulse-Shard: 7:3
 *
 * A member whose map says otherwise (the key lies in another shard now, or the
 * shard's epoch rose) answers 421 IMPULSE_ERR_SHARD_STALE with the shard that
 * holds the key now; docs/sharding.md, "Stale routes".
 */
import { ImpulseError } from '../errors.js';

/** The header's name, lower case as Node gives request headers. */
export const SHARD_ROUTE_HEADER = 'impulse-shard';

/** Ids and epochs are positive safe integers; 15 digits bound the header's length. */
const ROUTE = /^([1-9][0-9]{0,14}):([1-9][0-9]{0,14})$/;

/** The shard a request was routed by: the shard's group id and its epoch in the client's map. */
export interface WireShardRoute {
  readonly shard: number;
  readonly epoch: number;
}

export function formatShardRoute(route: WireShardRoute): string {
  return `${route.shard}:${route.epoch}`;
}

/** The route in a header value; undefined when absent; IMPULSE_ERR_SHARD_ROUTE_INVALID when malformed. */
export function parseShardRoute(value: string | string[] | undefined): WireShardRoute | undefined {
  if (value === undefined) return undefined;
  const match = typeof value === 'string' ? ROUTE.exec(value.trim()) : null;
  if (match === null) throw new ImpulseError('IMPULSE_ERR_SHARD_ROUTE_INVALID', 'Impulse-Shard must be <shard id>:<epoch>, two positive integers, given once (e.g. Impulse-Shard: 7:3)');
  return { shard: Number(match[1]), epoch: Number(match[2]) };
}
