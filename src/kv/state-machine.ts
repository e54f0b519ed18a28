/**
 * The key-value state machine over any storage engine: what a Raft node
 * applies committed entries to, and what the single-node service writes
 * through. Keyspace: src/kv/keyspace.ts; records: record.ts; commands:
 * command.ts; sessions: sessions.ts; planning a batch: apply.ts; snapshot
 * images: snapshot-image.ts; where the engine lives: engine-home.ts.
 *
 * How to use:
 *   const machine = await KvStateMachine.open({ home, limits });
 *   machine.appliedIndex                         // restart point: entries after it are applied next
 *   await machine.applyBatch([{ index, term, type: 'command', command }, ...], { sync: false });
 *   await machine.flush();                       // make everything applied durable
 *   await machine.get(key); await machine.range({ gte, lt, limit });
 *   const image = await machine.snapshot();      // stream image.chunks to a follower
 *   const staged = await machine.stageSnapshot(chunks); await staged.install();
 *   machine.staged; await machine.installStaged();  // after a restart: a staged image survives until installed
 *
 * Contracts:
 *   - `applyBatch` applies consecutive entries IN ORDER in ONE engine batch
 *     together with the new applied index (split into several such batches,
 *     each atomic with its own applied index, only when one would pass
 *     APPLY_OPS_SOFT ops or APPLY_BYTES_SOFT bytes). A crash therefore leaves
 *     the applied index and the data in agreement: nothing re-applied or
 *     skipped when applying resumes at appliedIndex + 1.
 *   - `applyBatch`, `flush`, `snapshot` and installs run one at a time, in call
 *     order (they queue); reads run concurrently with all of them.
 *   - A failed engine write leaves the in-memory state as before the batch. If
 *     the engine shows the batch anyway, or cannot say, the machine stops:
 *     every later write rejects with the original error (fail-stop).
 */
import { ImpulseError } from '../errors.js';
import { type Engine, type EngineLimits, type EngineSnapshot, type EngineStats, type RangeOptions, type WriteOp, READ_NOT_SYNC } from '../storage/engine.js';
import { assert } from '../util/assert.js';
import { ApplyBatch, type ApplyEntry, type ApplyResult, CLUSTER_META_BYTES_MAX, REVISION_BASE_META_NAME, decodeRevisionBase } from './apply.js';
import type { KvLimits } from './command.js';
import type { EngineHome, EngineSlot } from './engine-home.js';
import {
  APPLIED_KEY,
  CLUSTER_META_RANGE,
  FORMAT_KEY,
  FORMAT_VALUE,
  SESSION_RANGE,
  TXN_RECORD_RANGE,
  capturedClientIdOf,
  capturedSessionRange,
  clientIdOf,
  clusterMetaKey,
  clusterMetaNameOf,
  dataKey,
  dataKeyLatin1,
  dataRange,
  isDataKey,
  isLockKey,
  isTxnRecordKey,
  lockKey,
  sessionKey,
  txnIdOfRecordKey,
  txnRecordKey,
  userKeyOf,
} from './keyspace.js';
import { RECORD_HEADER_BYTES_MAX, type StoredValue, decodeRecord, encodeVarints, readVarint } from './record.js';
import { DEFAULT_SESSION_LIMITS, type SessionLimits, SessionTable } from './sessions.js';
import { DEFAULT_CHUNK_BYTES_MAX, ImageReader, imageChunks } from './snapshot-image.js';
import { type TxnLock, type TxnRecord, decodeTxnRecord, encodeLock } from './txn.js';
import { compareBytes } from '../util/bytes.js';
import { LockTable } from './txn-apply.js';

export type { ApplyEntry, ApplyResult } from './apply.js';

/** One engine batch holds at most about this many ops and bytes (plus one entry); larger applies are split. */
export const APPLY_OPS_SOFT = 10_000;
export const APPLY_BYTES_SOFT = 8 * 1024 * 1024;

export interface KvStateMachineOptions {
  readonly home: EngineHome;
  readonly limits: KvLimits;
  /** Must be the same on every replica (the session table is replicated state). */
  readonly sessions?: SessionLimits;
  /** Snapshot image chunk size. Default 1 MiB. */
  readonly chunkBytesMax?: number;
}

export interface AppliedState {
  readonly index: number;
  readonly term: number;
}

export interface KvItem extends StoredValue {
  readonly key: Buffer;
  /** Leaderless mode only, when the key has several siblings: every sibling value (`value` is the first). */
  readonly siblings?: readonly Buffer[];
}

/** What an image says about itself: where it stands in the log, and the cluster runtime's metadata at that point. */
export interface SnapshotMeta {
  readonly appliedIndex: number;
  readonly appliedTerm: number;
  readonly metadata: ReadonlyMap<string, Buffer>;
}

/** An image being produced. `chunks` can be iterated once; `release` when done (or on failure). */
export interface KvSnapshot extends SnapshotMeta {
  readonly chunks: AsyncIterable<Uint8Array>;
  release(): void;
}

/** A received image, durable in a fresh engine that is not live yet (`KvStateMachine.staged` after a restart). */
export interface StagedSnapshot extends SnapshotMeta {
  /** Switches to it atomically (`installStaged`). */
  install(): Promise<void>;
  /** Deletes it (`discardStaged`). */
  discard(): Promise<void>;
}

/**
 * What a new machine starts from when it is made from another machine's state
 * (the shard a split makes, from its parent's): it stands at `index`/`term`
 * with these metadata values, sessions and data records.
 */
export interface KvSeed {
  readonly index: number;
  readonly term: number;
  readonly metadata: ReadonlyArray<{ readonly name: string; readonly value: Uint8Array }>;
  /** Session records as another machine encoded them (`capturedSessions`). */
  readonly sessions: ReadonlyArray<{ readonly clientId: string; readonly record: Buffer }>;
  /** Pages of data entries as another machine holds them (`exportData`: engine keys and records, revisions kept). */
  readonly data: AsyncIterable<ReadonlyArray<{ readonly key: Buffer; readonly value: Buffer }>>;
  /** Locks and transaction records as another machine holds them (`exportTxnState`). */
  readonly txn?: ReadonlyArray<{ readonly key: Buffer; readonly value: Buffer }>;
}

/** State kept in memory, loaded from an engine at open and after an install. */
interface LoadedState {
  /** Replaced (never mutated) after each written batch: `durable` may share the object. */
  applied: AppliedState;
  readonly sessions: SessionTable;
  readonly metaNames: Set<string>;
  /** Added to the log index to make a revision (apply.ts REVISION_BASE_META_NAME); 0 until a shard merge. */
  revisionBase: number;
  /** Transactions' locks (txn-apply.ts), and the primary key of every transaction record the engine holds, by transaction id. */
  readonly locks: LockTable;
  readonly txnRecords: Map<string, Buffer>;
}

/**
 * The engine limits the layer needs beneath user limits `limits`: room for the
 * key prefix and the record header, for session records and metadata, and no
 * op or byte limit on the internal batches (the layer bounds those itself).
 */
export function engineLimitsFor(limits: KvLimits, sessions: SessionLimits = DEFAULT_SESSION_LIMITS): Partial<EngineLimits> {
  const sessionRecordBytesMax = 64 + sessions.windowSeqs * (32 + limits.keyBytesMax);
  return {
    keyBytesMax: Math.max(limits.keyBytesMax + 1, 256),
    valueBytesMax: Math.max(limits.valueBytesMax + RECORD_HEADER_BYTES_MAX, sessionRecordBytesMax, CLUSTER_META_BYTES_MAX),
    batchOpsMax: Number.MAX_SAFE_INTEGER,
    batchBytesMax: Number.MAX_SAFE_INTEGER,
    rangeLimitMax: Math.max(limits.rangeLimitMax, 1000),
  };
}

export class KvStateMachine {
  private slot: EngineSlot;
  private state: LoadedState;
  private durable: AppliedState;
  private failure: Error | undefined;
  /** The image staged by this process, its engine open, ready to install. */
  private stagedSlot: { slot: EngineSlot; state: LoadedState } | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  /** Serial work started or waiting (see `serial`). */
  private queued = 0;

  private constructor(
    private readonly options: KvStateMachineOptions,
    slot: EngineSlot,
    state: LoadedState,
  ) {
    this.slot = slot;
    this.state = state;
    this.durable = state.applied;
  }

  /** Opens the live engine of `options.home`; a new home starts empty at applied index 0. */
  static async open(options: KvStateMachineOptions): Promise<KvStateMachine> {
    const slot = await options.home.openLive();
    try {
      await initializeIfNew(slot.engine);
      return new KvStateMachine(options, slot, await loadState(slot.engine, options.sessions));
    } catch (error) {
      await slot.engine.close().catch(() => undefined);
      throw error;
    }
  }

  get appliedIndex(): number {
    return this.state.applied.index;
  }

  get appliedTerm(): number {
    return this.state.applied.term;
  }

  /** The highest applied index known to be on stable storage (equals appliedIndex after a synced write). */
  get durableAppliedIndex(): number {
    return this.durable.index;
  }

  get engine(): Engine {
    return this.slot.engine;
  }

  get limits(): KvLimits {
    return this.options.limits;
  }

  /** Why writes are refused, when the machine stopped after a failed write. */
  get failedWith(): Error | undefined {
    return this.failure;
  }

  /**
   * Applies `entries` (consecutive, starting at appliedIndex + 1) and returns
   * one result per entry. `sync` overrides the engine's sync mode (false:
   * durable at the next synced write or `flush`).
   */
  applyBatch(entries: readonly ApplyEntry[], options: { sync?: boolean } = {}): Promise<ApplyResult[]> {
    return this.serial(() => this.applyNow(entries, options.sync));
  }

  /** Makes everything applied so far durable (no-op when it already is). */
  flush(): Promise<void> {
    return this.serial(async () => {
      this.requireHealthy();
      if (this.durable.index === this.state.applied.index) return;
      const applied = this.state.applied;
      await this.slot.engine.batch([{ type: 'put', key: APPLIED_KEY, value: encodeVarints(applied.index, applied.term) }], { sync: true });
      this.durable = applied;
    });
  }

  /** The value and revision under user key `key`, or undefined. */
  async get(key: Uint8Array): Promise<StoredValue | undefined> {
    validateUserKey(key, this.options.limits);
    const record = await this.slot.engine.get(dataKey(key));
    return record === undefined ? undefined : decodeRecord(record, 'value');
  }

  /** `get` answered on the calling thread when the engine can (`Engine.getSync`), else READ_NOT_SYNC; throws what `get` rejects with. */
  getSync(key: Uint8Array): StoredValue | undefined | typeof READ_NOT_SYNC {
    validateUserKey(key, this.options.limits);
    const record = this.slot.engine.getSync(dataKey(key));
    return record === undefined || record === READ_NOT_SYNC ? record : decodeRecord(record, 'value');
  }

  /** `getSync` of the user key whose bytes are the chars of `keyLatin1` (`Engine.getSyncLatin1`). */
  getSyncLatin1(keyLatin1: string): StoredValue | undefined | typeof READ_NOT_SYNC {
    validateUserKeyLength(keyLatin1.length, this.options.limits);
    const record = this.slot.engine.getSyncLatin1(dataKeyLatin1(keyLatin1));
    return record === undefined || record === READ_NOT_SYNC ? record : decodeRecord(record, 'value');
  }

  /** User entries in the range (bounds and order as `Engine.range`), with revisions. `limit` <= limits.rangeLimitMax. */
  async range(options: RangeOptions): Promise<KvItem[]> {
    const { limit } = options;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > this.options.limits.rangeLimitMax) {
      throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', `limit must be an integer from 1 to ${this.options.limits.rangeLimitMax}, got ${String(limit)}`);
    }
    if (options.gte !== undefined && options.gt !== undefined) throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'give at most one of gte and gt');
    if (options.lt !== undefined && options.lte !== undefined) throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'give at most one of lt and lte');
    const entries = await this.slot.engine.range(dataRange(options));
    return entries.map((entry) => ({ key: userKeyOf(entry.key), ...decodeRecord(entry.value, 'value') }));
  }

  // ---- transactions across shards (src/kv/txn.ts) --------------------------------------------

  /** The lock of a transaction on user key `key`, as last applied (undefined: none). */
  lockOf(key: Uint8Array): TxnLock | undefined {
    return this.state.locks.get(key);
  }

  /** How many locks this machine holds. */
  get lockCount(): number {
    return this.state.locks.size;
  }

  /** Every lock, as last applied, in no particular order (at most TXN_LOCKS_MAX). */
  locks(): Array<{ readonly key: Buffer; readonly lock: TxnLock }> {
    return [...this.state.locks.entries()];
  }

  /**
   * The engine entries of the locks on keys in [start, end) and of the
   * records whose primary key is in it (end null: to the last key): what a
   * split's new shard takes with its keys (`KvSeed.txn`) and a merge's
   * survivor with the merged-away group's (apply.ts `MergeAbsorb.txn`).
   * Consistent for keys no command touches while it runs (a split's frozen
   * right-hand keys, a merged-away group's frozen range).
   */
  async exportTxnState(start: Uint8Array, end: Uint8Array | null): Promise<Array<{ key: Buffer; value: Buffer }>> {
    const entries: Array<{ key: Buffer; value: Buffer }> = [];
    for (const { key, lock } of this.state.locks.entries()) if (inRange(key, start, end)) entries.push({ key: lockKey(key), value: encodeLock(lock) });
    for (const [txnId, primaryKey] of this.state.txnRecords) {
      if (!inRange(primaryKey, start, end)) continue;
      const value = await this.slot.engine.get(txnRecordKey(txnId));
      if (value !== undefined) entries.push({ key: txnRecordKey(txnId), value });
    }
    return entries;
  }

  /**
   * The engine keys of the locks on user keys in [start, end) (end null: to
   * the last key), in key order, then of the records whose primary key is in
   * it, in id order; the first `limit` of them. What a split's GC deletes
   * with the frozen data (src/cluster/shard-split-gc.ts): the same on every
   * replica holding the same state. From memory; O(locks + records).
   */
  txnKeysIn(start: Uint8Array, end: Uint8Array | null, limit: number): Buffer[] {
    const locks = [...this.state.locks.entries()].filter(({ key }) => inRange(key, start, end)).map(({ key }) => key);
    const keys = locks.sort(compareBytes).slice(0, limit).map(lockKey);
    if (keys.length >= limit) return keys;
    const records = [...this.state.txnRecords].filter(([, primaryKey]) => inRange(primaryKey, start, end)).map(([txnId]) => txnId);
    return [...keys, ...records.sort().slice(0, limit - keys.length).map(txnRecordKey)];
  }

  /** The ids of the transaction records this machine holds, as last applied. */
  txnRecordIds(): string[] {
    return [...this.state.txnRecords.keys()];
  }

  /** The record of transaction `txnId`, as last applied (undefined: none). */
  async txnRecord(txnId: string): Promise<TxnRecord | undefined> {
    const stored = await this.slot.engine.get(txnRecordKey(txnId));
    return stored === undefined ? undefined : decodeTxnRecord(stored);
  }

  /** The cluster runtime's metadata `name`, as last applied. */
  async getMeta(name: string): Promise<Buffer | undefined> {
    return this.slot.engine.get(clusterMetaKey(name));
  }

  /** Added to a log index to make a revision: 0 until a shard merge raised it (apply.ts `MergeAbsorb`). */
  get revisionBase(): number {
    return this.state.revisionBase;
  }

  /** The names of the cluster metadata values set now that start with `prefix`. */
  metaNamesStartingWith(prefix: string): string[] {
    return [...this.state.metaNames].filter((name) => name.startsWith(prefix));
  }

  /** Every client session as last applied, as encoded records (what a shard merge takes from the merged-away group). */
  encodedSessions(): Promise<Array<{ clientId: string; record: Buffer }>> {
    return this.sessionRecords(SESSION_RANGE, clientIdOf);
  }

  /** Every session captured under `tag` (ApplyEntry `captureSessionsAs`), as encoded records. */
  capturedSessions(tag: string): Promise<Array<{ clientId: string; record: Buffer }>> {
    return this.sessionRecords(capturedSessionRange(tag), (key) => capturedClientIdOf(tag, key));
  }

  /** The session records the engine holds in `range`, each with the client id `clientIdIn` reads from its key. */
  private async sessionRecords(range: { readonly gte: Buffer; readonly lt: Buffer }, clientIdIn: (engineKey: Buffer) => string): Promise<Array<{ clientId: string; record: Buffer }>> {
    const sessions: Array<{ clientId: string; record: Buffer }> = [];
    for await (const entry of scanAll(this.slot.engine, range)) sessions.push({ clientId: clientIdIn(entry.key), record: entry.value });
    return sessions;
  }

  /**
   * The engine keys of the first `limit` data entries of user keys in
   * [start, end) (end null: to the last key), in key order: what a split's
   * GC deletes next (src/cluster/shard-split-gc.ts).
   */
  async dataKeysIn(start: Uint8Array, end: Uint8Array | null, limit: number): Promise<Buffer[]> {
    const bounds = dataRange({ ...(start.length > 0 ? { gte: start } : {}), ...(end !== null ? { lt: end } : {}), limit });
    return (await this.slot.engine.range(bounds)).map((entry) => entry.key);
  }

  /** The engine keys of every session captured under `tag` (to delete them with `deleteKeys`). */
  async capturedSessionKeys(tag: string): Promise<Buffer[]> {
    const keys: Buffer[] = [];
    for await (const entry of scanAll(this.slot.engine, capturedSessionRange(tag))) keys.push(entry.key);
    return keys;
  }

  /**
   * The data entries of user keys in [start, end) (end null: to the last key)
   * as the engine holds them (engine key and record), a page at a time; for
   * `seed` of another machine. Consistent only for keys no write touches
   * while it runs (a split's frozen right-hand keys).
   */
  async *exportData(start: Uint8Array, end: Uint8Array | null): AsyncGenerator<Array<{ key: Buffer; value: Buffer }>> {
    const bounds = dataRange({ ...(start.length > 0 ? { gte: start } : {}), ...(end !== null ? { lt: end } : {}), limit: 1 });
    for await (const page of pagesOf(this.slot.engine, { gte: bounds.gte!, lt: bounds.lt! })) yield page;
  }

  /**
   * Makes this new machine (applied index 0) stand at the seed's index with
   * its data, sessions and metadata. The data and sessions are written
   * unsynced, page by page; the metadata and the applied index last, in one
   * synced batch: a crash before it leaves applied index 0, and seeding again
   * from the same seed rewrites the same keys (nothing else is in the engine).
   */
  seed(seed: KvSeed): Promise<void> {
    return this.serial(async () => {
      this.requireHealthy();
      assert(this.state.applied.index === 0 && seed.index >= 1, 'only a new machine is seeded, at an index >= 1', { applied: this.state.applied.index, seed: seed.index });
      const engine = this.slot.engine;
      for await (const page of seed.data) {
        assert(page.every((entry) => isDataKey(entry.key)), 'a seed page holds data keys only');
        if (page.length > 0) await engine.batch(page.map((entry): WriteOp => ({ type: 'put', key: entry.key, value: entry.value })), { sync: false });
      }
      const ops: WriteOp[] = seed.sessions.map(({ clientId, record }) => ({ type: 'put', key: sessionKey(clientId), value: record }));
      for (const { name, value } of seed.metadata) ops.push({ type: 'put', key: clusterMetaKey(name), value: Buffer.from(value) });
      for (const { key, value } of seed.txn ?? []) {
        assert(isLockKey(key) || isTxnRecordKey(key), 'a seed carries locks and transaction records in `txn`');
        ops.push({ type: 'put', key, value });
      }
      ops.push({ type: 'put', key: APPLIED_KEY, value: encodeVarints(seed.index, seed.term) });
      await engine.batch(ops, { sync: true });
      this.state = await loadState(engine, this.options.sessions);
      this.durable = this.state.applied;
    });
  }

  /** Engine stats, with the user key count (the engine's count less the layer's own keys) where known. */
  async stats(): Promise<EngineStats & { sessions: number }> {
    const stats = await this.slot.engine.stats();
    const ownKeys = 2 + this.state.sessions.size + this.state.metaNames.size + this.state.locks.size + this.state.txnRecords.size; // format, applied, sessions, metadata, locks, records
    return { ...stats, ...(stats.keyCount !== undefined ? { keyCount: stats.keyCount - ownKeys } : {}), sessions: this.state.sessions.size };
  }

  /**
   * An image of the whole engine at the current applied index, produced from
   * an engine snapshot while applies go on (see src/storage/snapshot.ts for
   * what bounds it). Taken between two applies, so its applied index is exact.
   */
  snapshot(): Promise<KvSnapshot> {
    return this.serial(async () => {
      const snapshot = await this.slot.engine.snapshot();
      try {
        const meta = await readSnapshotMeta(snapshot);
        return { ...meta, chunks: imageChunks(snapshot, this.options.chunkBytesMax ?? DEFAULT_CHUNK_BYTES_MAX), release: () => snapshot.release() };
      } catch (error) {
        snapshot.release();
        throw error;
      }
    });
  }

  /**
   * Writes a received image into a fresh engine (validating every chunk),
   * makes it durable and records it as staged: it survives a restart (see
   * `staged`) until installed or discarded, and replaces an image staged
   * before. Nothing live changes. On any failure the fresh engine is deleted.
   */
  async stageSnapshot(chunks: AsyncIterable<Uint8Array>): Promise<StagedSnapshot> {
    const { home } = this.options;
    const slot = await home.createStaging();
    let state: LoadedState;
    let metadata: Map<string, Buffer>;
    try {
      const { keyBytesMax, valueBytesMax } = slot.engine.limits;
      const reader = new ImageReader({ keyBytesMax, valueBytesMax, chunkBytesMax: this.options.chunkBytesMax ?? DEFAULT_CHUNK_BYTES_MAX });
      for await (const chunk of chunks) {
        const entries = reader.read(chunk);
        // Synced per chunk: the image must be whole on disk before it can become live, on every engine.
        if (entries.length > 0) await slot.engine.batch(entries.map((entry): WriteOp => ({ type: 'put', key: entry.key, value: entry.value })), { sync: true });
      }
      reader.finish();
      const format = await slot.engine.get(FORMAT_KEY);
      if (format === undefined || !format.equals(FORMAT_VALUE)) throw new ImpulseError('IMPULSE_ERR_SNAPSHOT_INVALID', 'snapshot image: no format key, or one this impulse does not read');
      state = await loadState(slot.engine, this.options.sessions).catch((error: unknown) => {
        throw new ImpulseError('IMPULSE_ERR_SNAPSHOT_INVALID', `snapshot image: its metadata is malformed: ${(error as Error).message}`, { cause: error });
      });
      metadata = await readMetadata(slot.engine);
      await this.stagedSlot?.slot.engine.close(); // replaced: markStaged deletes it
      await home.markStaged(slot, state.applied.index, state.applied.term);
    } catch (error) {
      await home.remove(slot).catch(() => undefined);
      throw error;
    }
    this.stagedSlot = { slot, state };
    return { appliedIndex: state.applied.index, appliedTerm: state.applied.term, metadata, install: () => this.installStaged(), discard: () => this.discardStaged() };
  }

  /** The complete image staged and not installed yet, also after a restart; undefined when none. */
  get staged(): { readonly appliedIndex: number; readonly appliedTerm: number } | undefined {
    const record = this.options.home.staged;
    return record === undefined ? undefined : { appliedIndex: record.index, appliedTerm: record.term };
  }

  /**
   * Switches to the staged image atomically (the old engine is then deleted);
   * the applied index becomes the image's. Rejects with
   * IMPULSE_ERR_SNAPSHOT_INVALID when nothing is staged.
   */
  installStaged(): Promise<void> {
    return this.serial(async () => {
      const staged = this.stagedSlot ?? (await this.reopenStaged());
      this.stagedSlot = undefined;
      await this.install(staged.slot, staged.state);
    });
  }

  /** Deletes the staged image, if any. */
  discardStaged(): Promise<void> {
    return this.serial(async () => {
      if (this.options.home.staged === undefined) return;
      const { slot } = this.stagedSlot ?? (await this.reopenStaged());
      this.stagedSlot = undefined;
      await this.options.home.remove(slot);
    });
  }

  /** Closes the live engine. In-flight reads finish first. */
  async close(): Promise<void> {
    await this.tail.catch(() => undefined);
    await this.stagedSlot?.slot.engine.close();
    await this.slot.engine.close();
  }

  // ---- internals ----------------------------------------------------------------------------

  /** Runs `work` after everything queued before it; a failure does not block later work. */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    // Nothing queued: start at once (the common case on the write path: no promise hops to wait for).
    const run = this.queued === 0 ? work() : this.tail.then(work, work);
    this.queued++;
    const settled = (): void => {
      this.queued--;
    };
    this.tail = run.then(settled, settled);
    return run;
  }

  private requireHealthy(): void {
    if (this.failure !== undefined) {
      throw new ImpulseError('IMPULSE_ERR_ENGINE_IO', `the state machine stopped after a failed write and takes no more: ${this.failure.message}`, { cause: this.failure });
    }
  }

  private async applyNow(entries: readonly ApplyEntry[], sync: boolean | undefined): Promise<ApplyResult[]> {
    this.requireHealthy();
    const results: ApplyResult[] = [];
    let batch: ApplyBatch | undefined;
    try {
      for (const entry of entries) {
        const expected = (batch?.last?.index ?? this.state.applied.index) + 1;
        assert(entry.index === expected, 'entries must be applied consecutively', { expected, got: entry.index });
        if (batch !== undefined && (batch.ops.length >= APPLY_OPS_SOFT || batch.bytes >= APPLY_BYTES_SOFT)) {
          const full = batch;
          batch = undefined; // write() settles its session changes, written or rolled back
          await this.write(full, sync);
        }
        batch ??= this.newBatch();
        const result = batch.add(entry); // a promise only when a condition needs a read
        results.push(result instanceof Promise ? await result : result);
      }
    } catch (error) {
      if (batch !== undefined) this.state.sessions.rollback();
      throw error;
    }
    if (batch !== undefined) await this.write(batch, sync);
    return results;
  }

  private newBatch(): ApplyBatch {
    this.state.sessions.begin();
    return new ApplyBatch(this.slot.engine, this.state.sessions, this.options.limits, this.state.locks, this.state.revisionBase);
  }

  /** Writes one planned batch with its applied index; on failure restores the in-memory state or stops. */
  private async write(batch: ApplyBatch, sync: boolean | undefined): Promise<void> {
    const last = batch.last;
    assert(last !== undefined, 'writing an empty apply batch');
    const ops = batch.ops;
    this.state.sessions.appendPendingOps(ops);
    ops.push({ type: 'put', key: APPLIED_KEY, value: encodeVarints(last.index, last.term) });
    const engine = this.slot.engine;
    try {
      await engine.batch(ops, sync === undefined ? undefined : { sync });
    } catch (error) {
      this.state.sessions.rollback();
      await this.stopUnlessUnapplied(error as Error);
      throw error;
    }
    this.state.sessions.commit();
    if (batch.metaChanges.size > 0) {
      for (const [name, present] of batch.metaChanges) {
        if (present) this.state.metaNames.add(name);
        else this.state.metaNames.delete(name);
      }
    }
    this.state.applied = last;
    this.state.revisionBase = batch.revisionBase;
    const txn = batch.txnChanges;
    if (txn !== undefined) {
      this.state.locks.apply(txn.lockChanges);
      for (const [txnId, record] of txn.recordChanges) {
        if (record === null) this.state.txnRecords.delete(txnId);
        else this.state.txnRecords.set(txnId, record.primaryKey);
      }
    }
    const synced = sync ?? engine.syncMode === 'fsync';
    if (synced || !engine.supports.durable) this.durable = last;
  }

  /** After a failed write: if the engine does not show the old applied index, its state is unknown: stop. */
  private async stopUnlessUnapplied(error: Error): Promise<void> {
    try {
      const applied = decodeApplied(await this.slot.engine.get(APPLIED_KEY));
      if (applied.index === this.state.applied.index) return;
    } catch {
      // cannot tell: stop
    }
    this.failure = error;
  }

  /** The staged slot kept across a restart, opened and loaded. */
  private async reopenStaged(): Promise<{ slot: EngineSlot; state: LoadedState }> {
    if (this.options.home.staged === undefined) throw new ImpulseError('IMPULSE_ERR_SNAPSHOT_INVALID', 'no staged snapshot to install');
    const slot = await this.options.home.openStaged();
    return { slot, state: await loadState(slot.engine, this.options.sessions) };
  }

  private async install(slot: EngineSlot, state: LoadedState): Promise<void> {
    await this.options.home.promote(slot);
    const previous = this.slot;
    this.slot = slot;
    this.state = state;
    this.durable = state.applied;
    this.failure = undefined;
    await this.options.home.remove(previous);
  }
}

/** Whether user key `key` lies in [start, end) (end null: unbounded). */
function inRange(key: Uint8Array, start: Uint8Array, end: Uint8Array | null): boolean {
  return compareBytes(key, start) >= 0 && (end === null || compareBytes(key, end) < 0);
}

/** A new engine gets the format key and applied index 0; one with data but no format key is refused. */
async function initializeIfNew(engine: Engine): Promise<void> {
  const format = await engine.get(FORMAT_KEY);
  if (format !== undefined) {
    if (!format.equals(FORMAT_VALUE)) {
      throw new ImpulseError('IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED', `the store's format is ${JSON.stringify(format.toString('latin1').slice(0, 40))}; this impulse reads ${FORMAT_VALUE.toString('latin1')}`);
    }
    return;
  }
  const [any] = await engine.range({ limit: 1 });
  if (any !== undefined) {
    throw new ImpulseError(
      'IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED',
      'the engine holds data but no format key: it was written by an older impulse (values without revisions). It is left untouched.',
    );
  }
  await engine.batch(
    [
      { type: 'put', key: FORMAT_KEY, value: FORMAT_VALUE },
      { type: 'put', key: APPLIED_KEY, value: encodeVarints(0, 0) },
    ],
    { sync: true },
  );
}

async function loadState(engine: Engine, sessionLimits: SessionLimits | undefined): Promise<LoadedState> {
  const applied = decodeApplied(await engine.get(APPLIED_KEY));
  const sessions = new SessionTable(sessionLimits);
  for await (const entry of scanAll(engine, SESSION_RANGE)) sessions.load(clientIdOf(entry.key), entry.value, 'session');
  const metaNames = new Set<string>();
  for await (const entry of scanAll(engine, CLUSTER_META_RANGE)) metaNames.add(clusterMetaNameOf(entry.key));
  const revisionBase = decodeRevisionBase(await engine.get(clusterMetaKey(REVISION_BASE_META_NAME)));
  const txnRecords = new Map<string, Buffer>();
  for await (const entry of scanAll(engine, TXN_RECORD_RANGE)) txnRecords.set(txnIdOfRecordKey(entry.key), decodeTxnRecord(entry.value).primaryKey);
  return { applied, sessions, metaNames, revisionBase, locks: await LockTable.load(engine), txnRecords };
}

/** Anything with a paged `range`: an engine or an engine snapshot. */
interface RangeReader {
  range(options: RangeOptions): Promise<Array<{ key: Buffer; value: Buffer }>>;
}

async function readMetadata(reader: RangeReader): Promise<Map<string, Buffer>> {
  const metadata = new Map<string, Buffer>();
  for await (const entry of scanAll(reader, CLUSTER_META_RANGE)) metadata.set(clusterMetaNameOf(entry.key), entry.value);
  return metadata;
}

async function readSnapshotMeta(snapshot: EngineSnapshot): Promise<SnapshotMeta> {
  const applied = decodeApplied(await snapshot.get(APPLIED_KEY));
  return { appliedIndex: applied.index, appliedTerm: applied.term, metadata: await readMetadata(snapshot) };
}

/** Every entry in `bounds`, page by page. */
async function* scanAll(reader: RangeReader, bounds: { readonly gte: Buffer; readonly lt: Buffer }): AsyncGenerator<{ key: Buffer; value: Buffer }> {
  for await (const page of pagesOf(reader, bounds)) yield* page;
}

/** The entries in `bounds` in pages of at most 1000. */
async function* pagesOf(reader: RangeReader, bounds: { readonly gte: Uint8Array; readonly lt: Uint8Array }): AsyncGenerator<Array<{ key: Buffer; value: Buffer }>> {
  let options: RangeOptions = { ...bounds, limit: 1000 };
  for (;;) {
    const page = await reader.range(options);
    if (page.length > 0) yield page;
    if (page.length < 1000) return;
    options = { gt: page[page.length - 1]!.key, lt: bounds.lt, limit: 1000 };
  }
}

function decodeApplied(value: Buffer | undefined): AppliedState {
  if (value === undefined) throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', 'the store has a format key but no applied index');
  const index = readVarint(value, 0, 'applied index');
  const term = readVarint(value, index.next, 'applied term');
  if (term.next !== value.length) throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', 'the applied index record has trailing bytes');
  return { index: index.value, term: term.value };
}

function validateUserKey(key: Uint8Array, limits: KvLimits): void {
  if (!(key instanceof Uint8Array)) throw new ImpulseError('IMPULSE_ERR_KEY_EMPTY');
  validateUserKeyLength(key.length, limits);
}

function validateUserKeyLength(keyBytes: number, limits: KvLimits): void {
  if (keyBytes === 0) throw new ImpulseError('IMPULSE_ERR_KEY_EMPTY');
  if (keyBytes > limits.keyBytesMax) throw new ImpulseError('IMPULSE_ERR_KEY_TOO_LARGE', `key is ${keyBytes} bytes; the limit is ${limits.keyBytesMax}`);
}
