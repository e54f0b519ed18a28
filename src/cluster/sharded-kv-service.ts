/**
 * `ShardedKvService`: the `KvService` of a member of a sharded cluster
 * (started with `--split-keys`). The meta group (group 1) keeps the shard map
 * and the membership and holds no user data; every key lives in the shard
 * whose range holds it, and every shard is a Raft group of its own
 * (shard-groups.ts opens them).
 *
 *   - a read or a write goes to the shard of its key, on this member's
 *     replica of that group: a write is proposed there or forwarded to the
 *     group's leader (raft-requests.ts, per group), a linearizable read takes
 *     that group's read point; a shard this member does not replicate is
 *     asked at its replicas over the peer transport (remote-shard.ts);
 *   - a range walks the shards it overlaps in key order (reverse order when
 *     reversed), each read at its own group's read point, until `limit`
 *     items; the usual cursor pages on. Each shard's part is linearizable;
 *     the page as a whole is not one snapshot across shards;
 *   - a batch whose keys lie in more than one shard is a transaction across
 *     shards (shard-txn.ts: two-phase commit, the record in the first key's
 *     shard); reads and writes that meet its locks settle them first;
 *   - a key request may name the shard and epoch its client routed it by
 *     (`route`, the Impulse-Shard header); it is judged against this member's
 *     map first (src/shard/stale-route.ts): a stale route is refused with
 *     IMPULSE_ERR_SHARD_STALE and the shard that holds the key now, before
 *     anything is proposed; a route newer than this member's map waits for
 *     the meta group's read point once (the map the client saw is committed
 *     there), then is judged again;
 *   - revisions are the index of the key's shard's log (comparable within a
 *     shard only; a shard a split made starts its log at the split's index,
 *     so the revisions of the keys it took over stay below its own);
 *   - splits (shard-split.ts): a request a shard group refused because its
 *     keys left it (the member's map did not have the split yet) is routed
 *     again by the member's newer map (`afterSplits`, bounded); a shard this
 *     member replicates but has not opened yet (a split just made it) is
 *     waited for (bounded); reads are clipped to the shard's range and
 *     checked against the group's bounds (shard-reads.ts).
 *
 * Status, health and shutdown are the meta group's (RaftKvService), plus the
 * shard groups' health and figures.
 */
import { createHash } from 'node:crypto';
import { ImpulseError, isImpulseError } from '../errors.js';
import { type KvCommand, encodeCommand, validateCommand } from '../kv/command.js';
import { type ContentDigest, contentDigest } from '../kv/digest.js';
import type { StoredValue } from '../kv/record.js';
import type { KvItem } from '../kv/state-machine.js';
import type { KvService, ReadConsistency, ReadOptions, RouteOptions, ServiceHealth, ServiceStatus, ShardRoute, WriteOutcome } from '../service/kv-service.js';
import { READ_CONSISTENCIES, engineServiceHealth } from '../service/kv-service.js';
import { type Shard, type ShardMap, shardContains, shardFor, shardsOverlapping } from '../shard/shard-map.js';
import { judgeRoute, staleRouteError } from '../shard/stale-route.js';
import type { RangeOptions } from '../storage/engine.js';
import type { HostedGroup } from './hosted-groups.js';
import type { RaftKvService } from './raft-kv-service.js';
import type { RemoteShards } from './remote-shard.js';
import { outcomeUnknown, unavailable } from './request-errors.js';
import type { ShardGroups } from './shard-groups.js';
import { type LockSeen, clipToShard, readShardKey, readShardRange, readTxnStatus } from './shard-reads.js';
import type { TxnRecord } from '../kv/txn.js';
import { ShardTxns, type ShardTxnPort, type ShardTxnsOptions } from './shard-txn.js';
import { SystemClock } from '../util/clock.js';

/** Times a request refused by a shard group that split is routed again by the member's newer map. */
export const SPLIT_RETRIES = 3;
/** Times a read or write that met transaction locks settles them and tries again. */
const LOCK_ATTEMPTS = 4;

export class ShardedKvService implements KvService {
  readonly limits;
  private closing = false;
  private readonly txns: ShardTxns;

  constructor(
    private readonly meta: RaftKvService,
    private readonly shards: ShardGroups,
    private readonly remote: RemoteShards,
    /** Extra figures for /status and /metrics (the replica mover's: shard-mover.ts). */
    private readonly moveFigures: () => Record<string, number> = () => ({}),
    /** Transactions across shards: the clock, lock TTL and sweep interval (shard-txn.ts). */
    txnOptions: Omit<ShardTxnsOptions, 'nodeId'> = { clock: new SystemClock() },
  ) {
    this.limits = meta.limits;
    this.txns = new ShardTxns(this.txnPort(), { ...txnOptions, nodeId: shards.nodeId });
  }

  // ---- transactions across shards (shard-txn.ts) ---------------------------------------------

  /** What the transaction coordinator and resolver use of this service: routing, proposals and reads. */
  private txnPort(): ShardTxnPort {
    return {
      map: () => this.map(),
      propose: async (shard, bytes, retrySafe) => {
        const hosted = await this.hostedOrOpening(shard);
        if (hosted === undefined) return this.remote.write(shard, bytes, retrySafe);
        return this.onReplica(hosted, shard.id, 'write', hosted.requests.write(bytes, retrySafe));
      },
      status: async (shard, txnId, primaryKey) => {
        const hosted = await this.hostedOrOpening(shard);
        if (hosted === undefined) return this.remote.txnStatus(shard, txnId, primaryKey);
        return this.onReplica(hosted, shard.id, 'read', readTxnStatus(hosted, txnId, primaryKey, false));
      },
      ledLocks: (limit) => this.ledLocks(limit),
      ledRecords: (limit) => this.ledRecords(limit),
    };
  }

  /** The transaction records within their bounds of the shard groups this member leads, at most `limit`. */
  private async ledRecords(limit: number): Promise<Array<{ txnId: string; record: TxnRecord }>> {
    const records: Array<{ txnId: string; record: TxnRecord }> = [];
    for (const shard of this.map().shards) {
      const hosted = this.shards.hosted(shard);
      if (hosted === undefined || !hosted.group.leads) continue;
      const { machine, bounds } = hosted.group.machine;
      for (const txnId of machine.txnRecordIds()) {
        const record = await machine.txnRecord(txnId);
        if (record === undefined || (bounds !== undefined && !shardContains(bounds, record.primaryKey))) continue;
        records.push({ txnId, record });
        if (records.length >= limit) return records;
      }
    }
    return records;
  }

  /** The locks within their bounds of the shard groups this member leads, at most `limit`. */
  private ledLocks(limit: number): LockSeen[] {
    const locks: LockSeen[] = [];
    for (const shard of this.map().shards) {
      const hosted = this.shards.hosted(shard);
      if (hosted === undefined || !hosted.group.leads || hosted.group.machine.machine.lockCount === 0) continue;
      const bounds = hosted.group.machine.bounds;
      for (const { key, lock } of hosted.group.machine.machine.locks()) {
        if (bounds !== undefined && !shardContains(bounds, key)) continue; // a split's frozen copy: the new shard has its own
        locks.push({ key, txnId: lock.txnId, primaryKey: lock.primaryKey });
        if (locks.length >= limit) return locks;
      }
    }
    return locks;
  }

  /**
   * Runs `read` (one shard's part) and settles the transaction locks it met
   * (shard-txn.ts): decided ones are resolved, and the part is read again.
   * A read whose every lock belongs to a transaction found pending AFTER an
   * earlier read saw its lock is the answer (the values before the locks;
   * shard-txn.ts says why the lock must be seen again). A serializable read
   * ignores locks (it may be stale anyway).
   */
  private async throughLocks<T extends { readonly locks: readonly LockSeen[] }>(consistency: ReadConsistency, read: () => Promise<T>): Promise<T> {
    const pending = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      const result = await read();
      if (consistency === 'serializable') return result;
      const unsettled = result.locks.filter((lock) => !pending.has(lock.txnId));
      if (unsettled.length === 0) return result;
      if (attempt >= LOCK_ATTEMPTS) throw unavailable('the keys read are locked by transactions across shards being resolved; retry');
      for (const txnId of await this.txns.resolveAll(unsettled, this.limits.batchOpsMax)) pending.add(txnId);
    }
  }

  /**
   * Runs `write`; when a key it writes is locked by a transaction across
   * shards (IMPULSE_ERR_TXN_LOCKED: nothing applied), settles that lock and
   * tries again, at most LOCK_ATTEMPTS times; a pending transaction's lock
   * is the answer (retryable).
   */
  private async writeAfterLocks(write: () => Promise<WriteOutcome>): Promise<WriteOutcome> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        const lock = isImpulseError(error, 'IMPULSE_ERR_TXN_LOCKED') ? lockOfError(error) : undefined;
        if (lock === undefined || attempt >= LOCK_ATTEMPTS) throw error;
        if ((await this.txns.resolveLocks([lock])) === 'pending') throw error;
      }
    }
  }

  /** This member's transaction figures (shard-txn.ts). */
  private txnFigures(): Record<string, number> {
    const { started, committed, aborted, locksResolved, abandonedAborted } = this.txns.counters;
    return { shard_txns_started: started, shard_txns_committed: committed, shard_txns_aborted: aborted, shard_txn_locks_resolved: locksResolved, shard_txns_abandoned_aborted: abandonedAborted };
  }

  async get(key: Uint8Array, options?: ReadOptions): Promise<StoredValue | undefined> {
    const consistency = consistencyOf(options);
    return this.afterSplits(async () => {
      const shard = shardFor(await this.routedMap(key, options?.route), key);
      const hosted = await this.hostedOrOpening(shard);
      if (hosted === undefined) return (await this.throughLocks(consistency, () => this.remote.get(shard, key, consistency))).found;
      this.shards.offerKey(shard.id, key); // a load split's key sample (while the shard is hot here)
      return (await this.throughLocks(consistency, () => this.onReplica(hosted, shard.id, 'read', readShardKey(hosted, key, consistency === 'serializable')))).found;
    });
  }

  range(query: RangeOptions, options?: ReadOptions): Promise<KvItem[]> {
    return this.afterSplits(() => this.rangeOnce(query, options));
  }

  private async rangeOnce(query: RangeOptions, options?: ReadOptions): Promise<KvItem[]> {
    const lower = query.gte ?? query.gt;
    // An inclusive upper bound: the shard holding it is the last one (an exclusive bound one byte past it).
    const upper = query.lt ?? (query.lte === undefined ? undefined : Buffer.concat([query.lte, Buffer.of(0)]));
    const consistency = consistencyOf(options);
    const shards = shardsOverlapping(this.map(), lower, upper);
    if (query.reverse === true) shards.reverse();
    const items: KvItem[] = [];
    for (const shard of shards) {
      if (items.length >= query.limit) break;
      // A parent's engine may hold the keys a split gave another shard: clip to this shard's range.
      const part = clipToShard({ ...query, limit: query.limit - items.length }, shard);
      const hosted = await this.hostedOrOpening(shard);
      const read = hosted === undefined ? () => this.remote.range(shard, part, consistency) : () => this.onReplica(hosted, shard.id, 'read', readShardRange(hosted, part, consistency === 'serializable'));
      items.push(...(await this.throughLocks(consistency, read)).items);
    }
    return items;
  }

  async write(command: KvCommand, options?: RouteOptions): Promise<WriteOutcome> {
    validateCommand(command, this.limits);
    return this.afterSplits(() => this.writeAfterLocks(() => this.writeOnce(command, options)));
  }

  private async writeOnce(command: KvCommand, options?: RouteOptions): Promise<WriteOutcome> {
    const first = command.ops[0];
    const map = first === undefined ? this.map() : await this.routedMap(first.key, options?.route);
    const touched = new Map<number, Shard>();
    for (const op of command.ops) {
      const shard = shardFor(map, op.key);
      touched.set(shard.id, shard);
    }
    if (touched.size > 1 && options?.refuseCrossShard === true) {
      throw new ImpulseError('IMPULSE_ERR_BATCH_CROSS_SHARD', `the batch writes keys of ${touched.size} shards and its caller asked for no transaction`, { details: { shards: [...touched.keys()].join(',') } });
    }
    if (touched.size > 1) return this.txns.commit(command, map); // a transaction across shards (shard-txn.ts)
    const [shard] = touched.values();
    if (shard === undefined) return this.meta.write(command); // an empty batch: validated, nothing to route
    const hosted = await this.hostedOrOpening(shard);
    const retrySafe = command.session !== undefined;
    if (hosted === undefined) return this.remote.write(shard, encodeCommand(command), retrySafe);
    this.shards.offerKey(shard.id, first!.key); // a load split's key sample (while the shard is hot here)
    return this.onReplica(hosted, shard.id, 'write', hosted.requests.write(encodeCommand(command), retrySafe));
  }

  /**
   * `work` on this member's replica `hosted` of shard `shardId`, with the
   * replica's refusal made retryable when it closed under the request
   * (`replicaGone`): a write's outcome is then unknown, a read is retried.
   */
  private onReplica<T>(hosted: HostedGroup, shardId: number, what: 'read' | 'write', work: Promise<T>): Promise<T> {
    return work.catch((error: unknown) => {
      if (!this.replicaGone(error, hosted)) throw error;
      const why = `this member's replica of shard ${shardId} closed under the ${what} (it moved away or merged into its neighbour)`;
      throw what === 'write' ? outcomeUnknown(why, error) : unavailable(`${why}; retry`);
    });
  }

  /**
   * Whether `error` is a local shard group's refusal because its replica here
   * closed or stopped while this service runs (a move took it away, a merge
   * destroyed it): not "this node is shutting down", which the group says of
   * any close. A write waiting on it has an unknown outcome (the client
   * retries it with its session, which the shard's new home deduplicates); a
   * read is simply retried.
   */
  private replicaGone(error: unknown, hosted: HostedGroup): boolean {
    if (this.closing || !(isImpulseError(error, 'IMPULSE_ERR_SHUTTING_DOWN') || isImpulseError(error, 'IMPULSE_ERR_RAFT_STOPPED'))) return false;
    return hosted.group.state === 'closed' || hosted.group.state === 'removed';
  }

  async status(): Promise<ServiceStatus> {
    const status = await this.meta.status();
    const map = this.shards.map;
    let hostedCount = 0;
    let quiesced = 0;
    let keyCount = 0;
    let diskBytes = 0;
    // Summed over every hosted shard group (the meta group's own are status.figures' raft_log_*).
    let shardLogFsyncs = 0;
    let shardLogSaves = 0;
    for (const shard of map?.shards ?? []) {
      const hosted = this.shards.hosted(shard);
      if (hosted === undefined) continue;
      hostedCount++;
      if (hosted.group.quiesced) quiesced++;
      const log = hosted.group.logStore.stats();
      shardLogFsyncs += log.fsyncs ?? 0;
      shardLogSaves += log.saves ?? 0;
      const stats = await hosted.group.machine.machine.stats();
      keyCount += stats.keyCount ?? 0;
      diskBytes += stats.diskBytes ?? 0;
    }
    const figures = { ...status.figures, ...this.moveFigures(), shard_map_version: map?.version ?? 0, shards: map?.shards.length ?? 0, shards_hosted: hostedCount, shards_quiesced: quiesced, shards_log_fsyncs: shardLogFsyncs, shards_log_saves: shardLogSaves, shard_size_scans: this.shards.sizes.scans, ...this.loadSplitFigures(), ...this.mergeFigures(map), ...this.txnFigures() };
    return { ...status, mode: 'raft-sharded', keyCount, diskBytes, figures };
  }

  health(): ServiceHealth {
    const meta = this.meta.health();
    if (meta.status !== 'ok') return meta;
    const map = this.shards.map;
    if (map === undefined) return { status: 'unavailable', reason: 'the shard map is not applied on this member yet' };
    for (const shard of map.shards) {
      const hosted = this.shards.hosted(shard);
      if (hosted === undefined) continue;
      const { state, failure } = hosted.group;
      if (state === 'failed') return { status: 'failed', reason: `shard ${shard.id} failed and stopped (${failure?.message ?? 'unknown cause'}); restart the node after fixing the cause` };
      const storage = engineServiceHealth(hosted.group.machine.machine.engine);
      if (storage.status !== 'ok') return { ...storage, reason: `shard ${shard.id}: ${storage.reason ?? storage.status}` };
    }
    return meta;
  }

  /**
   * SHA-256 over the shards' digests in key order (their ids and digests);
   * `appliedIndex` is the sum of the shards' applied indexes, so two members
   * with equal sums that both settled hold equal states exactly when the
   * digests agree; `shards` lists each shard's, for members that host
   * different shards.
   */
  async digest(): Promise<ContentDigest> {
    const hash = createHash('sha256');
    let appliedIndex = 0;
    let bytes = 0;
    const shards: Array<{ id: number; appliedIndex: number; digest: string }> = [];
    for (const shard of this.map().shards) {
      const hosted = this.shards.hosted(shard);
      if (hosted === undefined) continue; // another member's replica: not part of this member's state
      const digest = await contentDigest(hosted.group.machine.machine);
      hash.update(`${shard.id}:${digest.digest}\n`);
      appliedIndex += digest.appliedIndex;
      bytes += digest.bytes;
      shards.push({ id: shard.id, appliedIndex: digest.appliedIndex, digest: digest.digest });
    }
    return { appliedIndex, appliedTerm: 0, digest: hash.digest('hex'), bytes, shards };
  }

  /** Refuses new requests, then shuts the member down (idempotent). */
  close(): Promise<void> {
    this.closing = true;
    this.txns.close();
    this.shards.close();
    return this.meta.close();
  }

  /**
   * The map to route `key` by, once `route` (when given) is judged current
   * against it: IMPULSE_ERR_SHARD_STALE when this member's map is newer than
   * the client's; when the client's is newer, one wait for the meta group's
   * read point and a second judgement, then IMPULSE_ERR_UNAVAILABLE (retry).
   */
  private async routedMap(key: Uint8Array, route: ShardRoute | undefined): Promise<ShardMap> {
    let map = this.map();
    if (route === undefined) return map;
    let verdict = judgeRoute(map, shardFor(map, key), route);
    if (verdict === 'behind') {
      await this.shards.catchUp();
      map = this.map();
      verdict = judgeRoute(map, shardFor(map, key), route);
    }
    if (verdict === 'stale') throw staleRouteError(map, shardFor(map, key), route);
    if (verdict === 'behind') throw unavailable(`the request was routed by shard ${route.shard} at epoch ${route.epoch}, newer than this member's shard map (version ${map.version}); retry`);
    return map;
  }

  /**
   * This member's group of `shard`. When it replicates the shard and has not
   * opened it yet (a split just made it, from the parent's state here), it
   * waits for it (ShardGroups.waitHosted, bounded); undefined: ask the
   * other replicas.
   */
  private async hostedOrOpening(shard: Shard): Promise<HostedGroup | undefined> {
    const hosted = this.shards.hosted(shard);
    if (hosted !== undefined || !shard.replicas.includes(this.shards.nodeId)) return hosted;
    return this.shards.waitHosted(shard);
  }

  /**
   * Runs `attempt`; when a shard group refused it because the keys left the
   * group (a split this member's map did not have: IMPULSE_ERR_SHARD_STALE
   * without a `shard`, nothing changed), waits for the meta group's read
   * point (the split's map is committed before any group splits) and tries
   * again by the newer map, at most SPLIT_RETRIES times; a group frozen by a
   * merge in flight is answered IMPULSE_ERR_UNAVAILABLE then (retry: the
   * merge takes moments). A stale client route (with `shard`) goes back to
   * the client, which refreshes.
   */
  private async afterSplits<T>(attempt: () => Promise<T>): Promise<T> {
    for (let retry = 0; ; retry++) {
      try {
        return await attempt();
      } catch (error) {
        if (!isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE') || error.details?.['shard'] !== undefined) throw error;
        if (retry >= SPLIT_RETRIES) throw this.mergeInFlight() ? unavailable('the keys\' shard is merging into its left neighbour (frozen until the merge commits); retry') : error;
        await this.shards.catchUp();
      }
    }
  }

  /** This member's load-split decisions since it started (shard-load-splits.ts). */
  private loadSplitFigures(): Record<string, number> {
    const { decided, refused, failed } = this.shards.loadSplitCounters;
    return { shard_load_splits_decided: decided, shard_load_splits_refused: refused, shard_load_split_failures: failed };
  }

  /** The merges in flight in `map` and this member's merge steps since it started (shard-merges.ts). */
  private mergeFigures(map: ShardMap | undefined): Record<string, number> {
    const { requested, prepared, committed, finished, stepFailures, rollbacksRequested, rolledBack } = this.shards.mergeCounters;
    const inFlight = map?.shards.filter((shard) => shard.mergeInto !== undefined).length ?? 0;
    return {
      shard_merges_in_flight: inFlight, shard_merges_requested: requested, shard_merges_prepared: prepared, shard_merges_committed: committed, shard_merges_finished: finished, shard_merge_step_failures: stepFailures,
      shard_merge_rollbacks_requested: rollbacksRequested, shard_merges_rolled_back: rolledBack,
    };
  }

  /** True when this member's map has a shard merge in flight: a group refusing its own keys is then frozen by the merge (shard-merge.ts), not behind a split. */
  private mergeInFlight(): boolean {
    return this.shards.map?.shards.some((shard) => shard.mergeInto !== undefined) ?? false;
  }

  /** The map requests are routed by; refuses while closing or before the first map applied. */
  private map(): ShardMap {
    if (this.closing) throw new ImpulseError('IMPULSE_ERR_SHUTTING_DOWN', 'the service is closing and takes no new requests');
    const map = this.shards.map;
    if (map === undefined) throw unavailable('the shard map is not applied on this member yet (the cluster is starting)');
    return map;
  }

}

function consistencyOf(options: ReadOptions | undefined): ReadConsistency {
  const consistency = options?.consistency ?? 'linearizable';
  if (!READ_CONSISTENCIES.includes(consistency)) throw new ImpulseError('IMPULSE_ERR_QUERY_INVALID', `consistency must be ${READ_CONSISTENCIES.join(' or ')}`);
  return consistency;
}

/** The lock an IMPULSE_ERR_TXN_LOCKED names (details `txn`, `key` and `primary`, hex), or undefined. */
function lockOfError(error: ImpulseError): LockSeen | undefined {
  const { txn, key, primary } = error.details ?? {};
  const hex = (value: unknown): value is string => typeof value === 'string' && /^([0-9a-f]{2})+$/.test(value);
  if (typeof txn !== 'string' || !hex(key) || !hex(primary)) return undefined;
  return { key: Buffer.from(key, 'hex'), txnId: txn, primaryKey: Buffer.from(primary, 'hex') };
}
