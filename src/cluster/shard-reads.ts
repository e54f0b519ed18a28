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
import type { TxnDecision } from '../kv/txn.js';
import { type ShardBounds, shardContains } from '../shard/shard-map.js';
import { outsideBoundsError } from '../shard/stale-route.js';
import type { RangeOptions } from '../storage/engine.js';
import { compareBytes } from '../util/bytes.js';
import type { HostedGroup } from './hosted-groups.js';

/**
 * `key`'s value in the group `hosted` after its read point (none when
 * `serializable`), and the transaction lock on it, if any (read in the same
 * turn: the value is the one before the lock's write; shard-txn.ts decides
 * what a reader answers).
 */
export async function readShardKey(hosted: HostedGroup, key: Uint8Array, serializable: boolean): Promise<{ found: StoredValue | undefined; locks: LockSeen[] }> {
  await readPoint(hosted, serializable);
  const bounds = hosted.group.machine.bounds;
  if (bounds !== undefined && !shardContains(bounds, key)) throw outsideBoundsError(bounds, key, 'read');
  const { machine } = hosted.group.machine;
  const lock = machine.lockOf(key); // before the read's await: the value read is then at most as new as the lock
  const found = await machine.get(key);
  return { found, locks: lock === undefined ? [] : [{ key: Buffer.from(key), txnId: lock.txnId, primaryKey: lock.primaryKey }] };
}

/**
 * The items of `query` (clipped to a shard already: `clipToShard`) in the
 * group `hosted` after its read point, and the transaction locks inside the
 * query's bounds (whatever its limit: at most TXN_LOCKS_MAX).
 */
export async function readShardRange(hosted: HostedGroup, query: RangeOptions, serializable: boolean): Promise<{ items: KvItem[]; locks: LockSeen[] }> {
  await readPoint(hosted, serializable);
  const bounds = hosted.group.machine.bounds;
  if (bounds !== undefined) {
    const outside = keyOutside(query, bounds);
    if (outside !== undefined) throw outsideBoundsError(bounds, outside, 'range read');
  }
  const { machine } = hosted.group.machine;
  const locks = machine.lockCount === 0 ? [] : machine.locks().filter(({ key }) => inQuery(query, key)).map(({ key, lock }) => ({ key, txnId: lock.txnId, primaryKey: lock.primaryKey }));
  return { items: await machine.range(query), locks };
}

/** A transaction lock a read met: the locked key, its transaction and primary key. */
export interface LockSeen {
  readonly key: Buffer;
  readonly txnId: string;
  readonly primaryKey: Buffer;
}

/** What transaction `txnId`'s record in the group `hosted` (its primary key's) says, after the read point (undefined: no record). */
export async function readTxnStatus(hosted: HostedGroup, txnId: string, primaryKey: Uint8Array, serializable: boolean): Promise<TxnDecision | undefined> {
  await readPoint(hosted, serializable);
  const bounds = hosted.group.machine.bounds;
  if (bounds !== undefined && !shardContains(bounds, primaryKey)) throw outsideBoundsError(bounds, primaryKey, 'read');
  const record = await hosted.group.machine.machine.txnRecord(txnId);
  return record === undefined ? undefined : { status: record.status, ...(record.revision !== undefined ? { revision: record.revision } : {}) };
}

/** True when `key` lies within `query`'s bounds. */
function inQuery(query: RangeOptions, key: Uint8Array): boolean {
  if (query.gte !== undefined && compareBytes(key, query.gte) < 0) return false;
  if (query.gt !== undefined && compareBytes(key, query.gt) <= 0) return false;
  if (query.lt !== undefined && compareBytes(key, query.lt) >= 0) return false;
  if (query.lte !== undefined && compareBytes(key, query.lte) > 0) return false;
  return true;
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
