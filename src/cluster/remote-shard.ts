/**
 * Requests for a shard this member does not replicate (a sharded cluster
 * with more members than replicas a shard): sent to the shard's replicas over
 * the peer transport, so any member serves any key.
 *
 *   - writes: RPC `kv-forward` (the same the group's own followers use) to a
 *     replica; one that does not lead refuses with the leader it knows
 *     (IMPULSE_ERR_RAFT_NOT_LEADER, details.leader), and the next attempt
 *     goes there. The last leader heard of is remembered per shard.
 *   - reads: RPC `shard-read` to any replica, which takes its group's read
 *     point (linearizable: ReadIndex through its leader) and reads locally.
 *
 * Retries (within the request time): an attempt that surely had no effect
 * tries the next replica after a short pause; a write of unknown outcome is
 * repeated only when it carries a client session, else reported as
 * IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN (request-errors.ts); reads are always
 * repeatable.
 */
import { ImpulseError, isImpulseError } from '../errors.js';
import type { KvLimits } from '../kv/command.js';
import type { StoredValue } from '../kv/record.js';
import type { KvItem } from '../kv/state-machine.js';
import type { NodeId } from '../raft/types.js';
import type { ReadConsistency, WriteOutcome } from '../service/kv-service.js';
import type { Shard } from '../shard/shard-map.js';
import type { RangeOptions } from '../storage/engine.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { Clock } from '../util/clock.js';
import type { GroupRpc } from './group-rpc.js';
import type { HostedGroup } from './hosted-groups.js';
import { classifyFailure, isOutcomeOfApplying, outcomeUnknown, unavailable } from './request-errors.js';
import { type LockSeen, readShardKey, readShardRange, readTxnStatus } from './shard-reads.js';
import type { TxnDecision } from '../kv/txn.js';

/** The RPC channel of reads for a shard served by one of its replicas. */
export const SHARD_READ_CHANNEL = 'shard-read';
/** Extra ms a caller waits beyond the time it gave the replica, so the replica's own answer wins. */
const MARGIN_MS = 250;

export interface RemoteShardsOptions {
  readonly rpc: RpcEndpoint;
  /** This member: never asked (a replica of a shard whose group it has not opened yet asks the others). */
  readonly nodeId: NodeId;
  readonly clock: Clock;
  readonly requestTimeoutMs: number;
  /** Pause before the next attempt after a refusal, ms. */
  readonly retryPauseMs: number;
}

type ReadRequest = { readonly key: Uint8Array } | { readonly query: RangeOptions } | { readonly txnId: string; readonly primaryKey: Uint8Array };

export class RemoteShards {
  /** The leader last heard of, per shard (bounded by the number of shards in the map). */
  private readonly leaderHints = new Map<number, NodeId>();

  constructor(private readonly options: RemoteShardsOptions) {}

  async write(shard: Shard, bytes: Uint8Array, retrySafe: boolean): Promise<WriteOutcome> {
    const response = await this.call(shard, 'kv-forward', (t) => ({ g: shard.id, c: bytes, t }), retrySafe ? 'retry' : 'write');
    const revision = (response as { r?: unknown } | null)?.r;
    if (typeof revision !== 'number' || !Number.isSafeInteger(revision)) throw outcomeUnknown(`a replica of shard ${shard.id} answered the write with something that is not a revision`);
    return { revision };
  }

  /** `key`'s value at a replica of `shard`, and the transaction lock on it (shard-reads.ts readShardKey). */
  async get(shard: Shard, key: Uint8Array, consistency: ReadConsistency): Promise<{ found: StoredValue | undefined; locks: LockSeen[] }> {
    const response = (await this.read(shard, { key }, consistency)) as { v?: unknown; r?: unknown; l?: unknown } | null;
    const locks = locksOf(response?.l, shard);
    if (response?.v === null) return { found: undefined, locks };
    if (!(response?.v instanceof Uint8Array) || typeof response.r !== 'number') throw unavailable(`a replica of shard ${shard.id} answered a read with something that is not a value`);
    return { found: { value: Buffer.from(response.v), revision: response.r }, locks };
  }

  /** The items of `query` at a replica of `shard`, and the transaction locks in its bounds (shard-reads.ts readShardRange). */
  async range(shard: Shard, query: RangeOptions, consistency: ReadConsistency): Promise<{ items: KvItem[]; locks: LockSeen[] }> {
    const response = (await this.read(shard, { query }, consistency)) as { i?: unknown; l?: unknown } | null;
    const items = response?.i;
    if (!Array.isArray(items)) throw unavailable(`a replica of shard ${shard.id} answered a range with something that is not a list`);
    const parsed = items.map((item: unknown) => {
      const [key, value, revision] = item as [unknown, unknown, unknown];
      if (!(key instanceof Uint8Array) || !(value instanceof Uint8Array) || typeof revision !== 'number') throw unavailable(`a replica of shard ${shard.id} answered a malformed item`);
      return { key: Buffer.from(key), value: Buffer.from(value), revision };
    });
    return { items: parsed, locks: locksOf(response?.l, shard) };
  }

  /** The status of transaction `txnId`'s record at a replica of `shard` (its primary key's), linearizable. */
  async txnStatus(shard: Shard, txnId: string, primaryKey: Uint8Array): Promise<TxnDecision | undefined> {
    const response = (await this.read(shard, { txnId, primaryKey }, 'linearizable')) as { st?: unknown; r?: unknown } | null;
    const status = response?.st;
    const revision = response?.r;
    if ((status !== 0 && status !== 1 && status !== 2) || !(revision === undefined || (Number.isSafeInteger(revision) && (revision as number) >= 0))) {
      throw unavailable(`a replica of shard ${shard.id} answered a transaction status with something that is not one`);
    }
    if (status === 0) return undefined;
    return { status: status === 1 ? 'committed' : 'aborted', ...(revision !== undefined ? { revision: revision as number } : {}) };
  }

  private read(shard: Shard, request: ReadRequest, consistency: ReadConsistency): Promise<unknown> {
    const s = consistency === 'serializable';
    const body = (t: number): unknown => ('key' in request ? { g: shard.id, k: request.key, s, t } : 'query' in request ? { g: shard.id, q: request.query, s, t } : { g: shard.id, k: request.primaryKey, x: request.txnId, s, t });
    return this.call(shard, SHARD_READ_CHANNEL, body, 'retry');
  }

  /**
   * One request to the shard's replicas until one answers or time runs out.
   * `unknown`: what an attempt of unknown outcome means — 'retry' (a read, or
   * a write under a session) or 'write' (reported as unknown at once).
   */
  private async call(shard: Shard, channel: string, body: (timeoutMs: number) => unknown, unknown: 'retry' | 'write'): Promise<unknown> {
    const { clock, requestTimeoutMs, retryPauseMs, rpc } = this.options;
    const deadline = clock.now() + requestTimeoutMs;
    let uncertain: unknown;
    const others = shard.replicas.filter((id) => id !== this.options.nodeId);
    if (others.length === 0) throw unavailable(`shard ${shard.id} is not open on this member, its only replica, yet; retry`);
    for (let attempt = 0; ; attempt++) {
      const target = this.leaderHints.get(shard.id) ?? others[attempt % others.length]!;
      const timeoutMs = Math.max(1, Math.round(deadline - clock.now()));
      try {
        return await rpc.callAsync(target, channel, body(timeoutMs), timeoutMs + MARGIN_MS);
      } catch (error) {
        this.leaderHints.delete(shard.id);
        const failure = classifyFailure(error);
        const writing = channel === 'kv-forward';
        // Once a write may have applied, no later refusal can say "nothing happened" any more.
        if (failure === 'final') throw writing && uncertain !== undefined && !isOutcomeOfApplying(error) ? outcomeUnknown((uncertain as Error).message, uncertain) : error;
        if (failure === 'unknown' && writing) {
          if (unknown === 'write') throw outcomeUnknown((error as Error).message, error);
          uncertain = error;
        }
        const leader = isImpulseError(error) ? error.details?.['leader'] : undefined;
        if (typeof leader === 'number' && others.includes(leader)) this.leaderHints.set(shard.id, leader);
        if (clock.now() + retryPauseMs >= deadline) {
          if (uncertain !== undefined) throw outcomeUnknown((error as Error).message, error);
          throw unavailable(`no replica of shard ${shard.id} answered within ${requestTimeoutMs} ms: ${(error as Error).message}`);
        }
        await new Promise<void>((resolve) => clock.setTimer(typeof leader === 'number' ? 0 : retryPauseMs, resolve));
      }
    }
  }
}

/** Serves `shard-read` for `hosted` (a replica): its group's read point, then a local read. Bodies are untrusted. */
export function serveShardReads(groupRpc: GroupRpc, hosted: HostedGroup, limits: KvLimits): void {
  groupRpc.serve(SHARD_READ_CHANNEL, hosted.group.id, (from, body, reply) => {
    const request = body as { k?: unknown; q?: unknown; s?: unknown; t?: unknown; x?: unknown } | null;
    const query = request?.q === undefined ? undefined : rangeQuery(request.q, limits);
    const txnId = request?.x;
    if (typeof request?.t !== 'number' || !(request.t > 0) || typeof request.s !== 'boolean' || (request.k instanceof Uint8Array) === (query !== undefined) || (txnId !== undefined && typeof txnId !== 'string')) {
      return reply(new ImpulseError('IMPULSE_ERR_QUERY_INVALID', 'a shard read is {g, k: key | q: range query | k: primary key and x: transaction id, s: serializable, t: timeout ms}'));
    }
    const serializable = request.s;
    const read = async (): Promise<unknown> => {
      if (typeof txnId === 'string') {
        const decision = await readTxnStatus(hosted, txnId, request.k as Uint8Array, serializable);
        return { st: decision === undefined ? 0 : decision.status === 'committed' ? 1 : 2, ...(decision?.revision !== undefined ? { r: decision.revision } : {}) };
      }
      if (query !== undefined) {
        const { items, locks } = await readShardRange(hosted, query, serializable);
        return { i: items.map((item) => [item.key, item.value, item.revision]), ...wireLocks(locks) };
      }
      const { found, locks } = await readShardKey(hosted, request.k as Uint8Array, serializable);
      return found === undefined ? { v: null, ...wireLocks(locks) } : { v: found.value, r: found.revision, ...wireLocks(locks) };
    };
    read().then(
      (response) => reply(null, response),
      (error: unknown) => reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', 'the shard read failed on the replica')),
    );
  });
}

/** Locks as a shard read's answer carries them: `l: [[key, txnId, primaryKey], ...]`, absent when none. */
function wireLocks(locks: readonly LockSeen[]): { l?: unknown[] } {
  return locks.length === 0 ? {} : { l: locks.map((lock) => [lock.key, lock.txnId, lock.primaryKey]) };
}

/** The locks of a replica's answer (absent: none, an older member's answer). */
function locksOf(value: unknown, shard: Shard): LockSeen[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw unavailable(`a replica of shard ${shard.id} answered malformed locks`);
  return value.map((lock: unknown) => {
    const [key, txnId, primaryKey] = (Array.isArray(lock) ? lock : []) as unknown[];
    if (!(key instanceof Uint8Array) || typeof txnId !== 'string' || !(primaryKey instanceof Uint8Array)) throw unavailable(`a replica of shard ${shard.id} answered a malformed lock`);
    return { key: Buffer.from(key), txnId, primaryKey: Buffer.from(primaryKey) };
  });
}

/** A range query from a peer, checked field by field (the state machine checks limits and bound pairs), or undefined. */
function rangeQuery(value: unknown, limits: KvLimits): RangeOptions | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { gte, gt, lt, lte, reverse, limit } = value as Record<string, unknown>;
  const bound = (b: unknown): boolean => b === undefined || b === null || (b instanceof Uint8Array && b.length <= limits.keyBytesMax);
  if (![gte, gt, lt, lte].every(bound) || (reverse !== undefined && reverse !== null && typeof reverse !== 'boolean') || typeof limit !== 'number') return undefined;
  const pick = (b: unknown): Uint8Array | undefined => (b instanceof Uint8Array ? b : undefined);
  return {
    limit,
    ...(pick(gte) !== undefined ? { gte: pick(gte)! } : {}),
    ...(pick(gt) !== undefined ? { gt: pick(gt)! } : {}),
    ...(pick(lt) !== undefined ? { lt: pick(lt)! } : {}),
    ...(pick(lte) !== undefined ? { lte: pick(lte)! } : {}),
    ...(reverse === true ? { reverse: true } : {}),
  };
}
