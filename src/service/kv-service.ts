/**
 * The seam between the HTTP API and storage: one interface, several ways to
 * serve it. `LocalKvService` (local-kv-service.ts) is a single node over the
 * key-value state machine; the Raft service (the cluster runtime) implements
 * the same interface by proposing writes to its Raft group and serving reads
 * through ReadIndex; leaderless and sharded services come later.
 *
 * Contracts every implementation keeps:
 *   - `write` answers only after the command is APPLIED (and, on a durable
 *     store with fsync, durable): a read that starts after `write` resolved
 *     sees it. A write that rejects changed nothing, except where the error
 *     says the outcome is unknown (a timeout, a lost leader).
 *   - Each key has a revision: the index of its last write (a counter on a
 *     single node; the Raft index under Raft). `write` resolves with the
 *     command's revision; a failed condition rejects with
 *     IMPULSE_ERR_PRECONDITION_FAILED (details: `op`, `key`, current `revision`).
 *   - A write carrying a session (client id, seq) is applied at most once; a
 *     retry gets the first answer (src/kv/sessions.ts).
 *   - Reads are `linearizable` by default. `serializable` may answer from a
 *     local replica that lags (under Raft: by at most what it has not applied
 *     yet; see docs/api.md); on a single node both are the same.
 *   - Nothing here knows HTTP. Every error is an `ImpulseError`.
 */
import type { KvCommand, KvLimits } from '../kv/command.js';
import type { ContentDigest } from '../kv/digest.js';
import type { StoredValue } from '../kv/record.js';
import type { KvItem } from '../kv/state-machine.js';
import type { Engine, EngineHealth, RangeOptions, READ_NOT_SYNC, RecoveryReport } from '../storage/engine.js';

/** `KvService.getSync`'s "cannot answer without waiting" (the engine's sentinel, passed through). */
export { READ_NOT_SYNC } from '../storage/engine.js';

export type ReadConsistency = 'linearizable' | 'serializable';

export const READ_CONSISTENCIES: readonly ReadConsistency[] = ['linearizable', 'serializable'];

export interface ReadOptions extends RouteOptions {
  /** Default 'linearizable'. */
  readonly consistency?: ReadConsistency;
}

/**
 * The shard a client routed a key request by (the `Impulse-Shard` header): the
 * shard's group id and epoch in the client's cached map. A sharded service
 * refuses the request with IMPULSE_ERR_SHARD_STALE when its own map says the
 * key lies elsewhere or the shard's epoch rose; other services ignore it.
 */
export interface ShardRoute {
  readonly shard: number;
  readonly epoch: number;
}

export interface RouteOptions {
  readonly route?: ShardRoute;
  /**
   * A sharded service refuses a batch whose keys lie in several shards
   * (IMPULSE_ERR_BATCH_CROSS_SHARD, nothing applied) instead of committing it
   * as a transaction across shards: for a caller that put unrelated writes
   * together and can send them apart (the RESP front end's coalescer).
   */
  readonly refuseCrossShard?: boolean;
}

export interface WriteOutcome {
  /** The revision the command's writes got (for a delete: the delete's own revision). */
  readonly revision: number;
}

export interface ServiceStatus {
  /** How this node serves: 'local' (single node), 'raft', ... */
  readonly mode: string;
  /** The storage engine's name as given to --engine. */
  readonly engine: string;
  readonly durable: boolean;
  /** 'fsync' or 'none' (always 'none' for an engine that is not durable). */
  readonly sync: string;
  /** What an acknowledged write survives, in one sentence. */
  readonly durability: string;
  /** The index of the last applied write; revisions come from it. */
  readonly appliedIndex: number;
  /** The highest applied index known to be on stable storage. */
  readonly durableAppliedIndex: number;
  /** User keys, when the engine counts them cheaply; else null. */
  readonly keyCount: number | null;
  readonly diskBytes: number | null;
  /** Client sessions remembered for deduplication. */
  readonly sessions: number;
  readonly limits: KvLimits;
  /** Flat name → number figures of the engine and the service (exported to /metrics). */
  readonly figures: Readonly<Record<string, number>>;
  /** The storage engine's own health and what its last open recovered (`storageStatus`). */
  readonly storage: StorageStatus;
  /** How this node takes part in replication (under Raft: node and cluster id, role, term, leader, indexes); absent on a single node. */
  readonly replication?: Readonly<Record<string, unknown>>;
}

export interface StorageStatus {
  /** 'ok', 'degraded' (a transient resource error, e.g. a full disk; clears by itself), 'read-only' or 'failed' (until restart), with the reason and code. */
  readonly health: EngineHealth;
  /** What the engine's last open recovered and discarded (a torn log tail; damage an operator's recovery flag accepted); null when the engine reports nothing. */
  readonly recovery: RecoveryReport | null;
}

export interface ServiceHealth {
  /**
   * 'ok': serving; 'failed': requests (or writes) refused until restart (reason
   * says why); 'unavailable': not serving now (closed, or under Raft no
   * leader); 'removed': a cluster member that was removed from its cluster;
   * 'degraded': serving, but the storage engine fails some operations for a
   * transient reason it retries on its own (a full disk, no file descriptors);
   * 'read-only': the storage engine serves reads and refuses writes until
   * restart (e.g. after a failed fsync).
   */
  readonly status: 'ok' | 'failed' | 'unavailable' | 'removed' | 'degraded' | 'read-only';
  readonly reason?: string;
  /** The storage engine's health when it is not 'ok' (and decided `status`, unless something above it did). */
  readonly engine?: EngineHealth;
}

/** `ServiceStatus.storage` of `engine`. */
export function storageStatus(engine: Engine): StorageStatus {
  return { health: engine.health(), recovery: engine.recoveryReport ?? null };
}

/**
 * The service's health when nothing above the engine is wrong: 'ok' while the
 * engine is, else the engine's state (its 'failed' and 'read-only' stop
 * writes; 'degraded' fails some) with its reason.
 */
export function engineServiceHealth(engine: Engine): ServiceHealth {
  const health = engine.health();
  if (health.state === 'ok') return { status: 'ok' };
  return { status: health.state, reason: `storage engine ${engine.name}: ${health.reason ?? health.state}`, engine: health };
}

/** A read under causal versions (leaderless mode): the live sibling values and the context that supersedes them. */
export interface CausalRead {
  /** Live values, one per sibling (tombstones left out); empty when the key is absent or deleted. */
  readonly values: readonly Buffer[];
  /** The opaque causal context (the `Impulse-Context` header); present even for an absent key. */
  readonly context: string;
}

/**
 * What a service with causal versions offers beyond `KvService` (leaderless
 * mode, src/leaderless/): reads that return every sibling and a context, and
 * writes that supersede exactly the versions their context saw. `r` and `w`
 * are the client's strings (a number, `one`, `quorum`, `all`); absent means
 * the cluster's default.
 */
export interface CausalKv {
  getCausal(key: Buffer, options: { readonly r?: string }): Promise<CausalRead>;
  /** Writes `value` (null: delete) with `context` (absent: a blind write, concurrent with everything). Resolves with the new context. */
  putCausal(key: Buffer, value: Buffer | null, options: { readonly context?: string; readonly w?: string }): Promise<{ readonly context: string }>;
}

export interface KvService {
  /** The user-facing limits (keys, values, batches, range pages). */
  readonly limits: KvLimits;
  /** Present on services with causal versions (leaderless): the API then serves keys through it. */
  readonly causal?: CausalKv;
  /** The value and revision under `key`, or undefined when absent. */
  get(key: Uint8Array, options?: ReadOptions): Promise<StoredValue | undefined>;
  /**
   * Optional: `get` answered on the calling thread when it can be (a single
   * node whose engine reads without waiting), else READ_NOT_SYNC and the
   * caller uses `get`. The same answer `get` gives for a call made now, with
   * the same guarantees; bad input THROWS the error `get` would reject with.
   */
  getSync?(key: Uint8Array, options?: ReadOptions): StoredValue | undefined | typeof READ_NOT_SYNC;
  /**
   * Optional, with `getSync`: `getSync` of the key whose bytes are the chars
   * of `keyLatin1` (every char below 256, one per byte), with the default read
   * options: for the HTTP path, which holds a plain key as such a string.
   */
  getSyncLatin1?(keyLatin1: string): StoredValue | undefined | typeof READ_NOT_SYNC;
  /** Entries of a range with their revisions; bounds and order as `Engine.range`, `limit` <= limits.rangeLimitMax. */
  range(query: RangeOptions, options?: ReadOptions): Promise<KvItem[]>;
  /** Applies `command` atomically (all ops or none) and resolves once it is applied. `options.route`: see `ShardRoute`. */
  write(command: KvCommand, options?: RouteOptions): Promise<WriteOutcome>;
  status(): Promise<ServiceStatus>;
  health(): ServiceHealth;
  /** A digest of the whole state at the current applied index (src/kv/digest.ts); a full scan. */
  digest(): Promise<ContentDigest>;
  /** Stops accepting writes, finishes the queued ones, closes storage. Idempotent. */
  close(): Promise<void>;
}
