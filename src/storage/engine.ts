/**
 * The storage engine contract.
 *
 * How to use: create an engine through `createEngine()` (src/storage/registry.ts),
 * `await engine.open()`, then `get`/`put`/`del`/`batch`/`range`, and finally
 * `await engine.close()`. Keys and values are bytes (`Uint8Array`, returned as
 * `Buffer`). Keys order by unsigned byte comparison (memcmp, shorter prefix first).
 * A value a read returns may be the engine's own memory (memory's map, lsm's
 * memtable, leveldb's row cache): callers must not modify it. An engine copies
 * what it is given to write, so callers may reuse their buffers.
 *
 * How to write an engine: extend `Engine` and implement the protected `_open`,
 * `_get`, `_write`, `_range`, `_stats` and `_close`. The public methods here
 * validate every argument against the limits, manage the lifecycle and run
 * group commit ONCE for all engines, so an engine only ever sees valid input:
 *
 *   - `_write(ops, sync)` applies `ops` in order, atomically (all or none), and
 *     when `sync` is true returns only after the write is on stable storage.
 *     Concurrent writers are queued here and handed to `_write` together (group
 *     commit), so one fsync serves every write that arrived while the previous
 *     one was in flight. `_write` is never called concurrently with itself.
 *   - `_get`, `_range` may run concurrently with each other and with `_write`.
 *     A read that starts after a write was acknowledged must see it.
 *   - `_write(ops, false)` (a write asked for without sync) may be lost in a
 *     power loss, but never out of order: after a crash the engine holds every
 *     synced write and a PREFIX of the unsynced ones after the last synced
 *     write, and a synced write makes every earlier write durable too.
 *   - `_snapshot()` is optional: an engine that can pin a version cheaply
 *     returns a native `SnapshotReader`; otherwise the base keeps a generic
 *     snapshot (src/storage/snapshot.ts).
 *
 * A shared conformance suite (testkit/storage/conformance.ts) runs against every
 * engine; an engine that skips a case says why next to the skip.
 */
import { type ErrorCode, ImpulseError } from '../errors.js';
import { assert } from '../util/assert.js';
import { compareBytes } from '../util/bytes.js';
import { type EngineSnapshot, PreimageSnapshot, type SnapshotReader, capturePreimages } from './snapshot.js';

export type { EngineSnapshot, SnapshotReader } from './snapshot.js';

export type SyncMode = 'fsync' | 'none';

/** What `Engine.getSync` returns when the engine cannot answer a read without waiting: the caller uses `get`. */
export const READ_NOT_SYNC: unique symbol = Symbol('impulse.readNotSync');
/** A read answered on the calling thread (`Engine.getSync`): the value, `undefined` when absent, or READ_NOT_SYNC. */
export type SyncRead = Buffer | undefined | typeof READ_NOT_SYNC;

/** One operation of an atomic batch. */
export type WriteOp =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: Uint8Array };

export interface Entry {
  readonly key: Buffer;
  readonly value: Buffer;
}

/**
 * A range query. Bounds use the abstract-level vocabulary: at most one lower
 * bound (`gte` or `gt`) and one upper bound (`lt` or `lte`). `limit` is required
 * and at most `limits.rangeLimitMax`: every scan is bounded; page with a cursor.
 */
export interface RangeOptions {
  readonly gte?: Uint8Array;
  readonly gt?: Uint8Array;
  readonly lt?: Uint8Array;
  readonly lte?: Uint8Array;
  /** Descending key order when true. Default false. */
  readonly reverse?: boolean;
  readonly limit: number;
}

/** A normalized key range as engines receive it. Absent bound = unbounded on that side. */
export interface KeyRange {
  readonly lower?: Buffer;
  readonly lowerInclusive: boolean;
  readonly upper?: Buffer;
  readonly upperInclusive: boolean;
}

/** Optional capabilities an engine declares. */
export interface EngineSupports {
  /** Acknowledged writes survive a process crash (with sync mode `fsync`, also power loss). */
  readonly durable: boolean;
  /** Key count is cheap (O(1)) and reported in stats. */
  readonly cheapKeyCount: boolean;
}

export interface EngineLimits {
  /** Longest key in bytes. Default 4 KiB. */
  readonly keyBytesMax: number;
  /** Longest value in bytes. Default 16 MiB. */
  readonly valueBytesMax: number;
  /** Most operations in one batch. Default 10,000. */
  readonly batchOpsMax: number;
  /** Most key+value bytes in one batch. Default 64 MiB. */
  readonly batchBytesMax: number;
  /** Largest `limit` a range may ask for. Default 10,000. */
  readonly rangeLimitMax: number;
  /** Bytes of writes that may wait for group commit before new writes get IMPULSE_ERR_OVERLOADED. Default 256 MiB. */
  readonly writeQueueBytesMax: number;
  /** Most bytes handed to one `_write` call by group commit. Default 8 MiB. */
  readonly commitBytesMax: number;
  /** Most snapshots open at once (`snapshot()` beyond it is IMPULSE_ERR_OVERLOADED). Default 8. */
  readonly snapshotsOpenMax: number;
  /**
   * Bytes of overwritten values one generic snapshot may keep while writes go
   * on; past it the snapshot is aborted (IMPULSE_ERR_SNAPSHOT_ABORTED). Default 64 MiB.
   */
  readonly snapshotRetainedBytesMax: number;
}

export const DEFAULT_LIMITS: EngineLimits = Object.freeze({
  keyBytesMax: 4 * 1024,
  valueBytesMax: 16 * 1024 * 1024,
  batchOpsMax: 10_000,
  batchBytesMax: 64 * 1024 * 1024,
  rangeLimitMax: 10_000,
  writeQueueBytesMax: 256 * 1024 * 1024,
  commitBytesMax: 8 * 1024 * 1024,
  snapshotsOpenMax: 8,
  snapshotRetainedBytesMax: 64 * 1024 * 1024,
});

/** Options of one write. */
export interface WriteOptions {
  /**
   * `true`: acknowledged only once durable; `false`: may be lost in a power
   * loss (never reordered: see `_write`), made durable by any later synced
   * write. Default: the engine's sync mode (`fsync` → true). Meaningless for
   * engines that are not durable.
   */
  readonly sync?: boolean;
}

export interface EngineOptions {
  /** Directory for the engine's files. Required for durable engines. */
  readonly dataDir?: string;
  /** `fsync` (default): acknowledged writes are on stable storage. `none`: left to the OS. */
  readonly sync?: SyncMode;
  readonly limits?: Partial<EngineLimits>;
}

export interface EngineStats {
  /** Number of live keys, when cheap to know (see `supports.cheapKeyCount`). */
  readonly keyCount?: number;
  /** Bytes the engine's files use on disk, when it has files. */
  readonly diskBytes?: number;
  /** Engine-specific figures (flat name → number), exported to /status and /metrics. */
  readonly figures: Readonly<Record<string, number>>;
}

/**
 * How an open engine is doing, for `/health` and `/status`:
 *   - 'ok'
 *   - 'degraded': serving, but some operations fail for a transient reason
 *     the engine retries on its own (a full disk, too many open files); it
 *     returns to 'ok' by itself once the cause is gone.
 *   - 'read-only': reads are served, writes are refused until the engine is
 *     reopened (e.g. after a failed fsync: what is on disk can no longer be
 *     trusted to match what was written).
 *   - 'failed': writes are refused and stored data is damaged or the engine
 *     hit a bug; it needs an operator. Also the state of an engine that is
 *     not open.
 */
export type EngineHealthState = 'ok' | 'degraded' | 'read-only' | 'failed';

export interface EngineHealth {
  readonly state: EngineHealthState;
  /** Why, when not 'ok': a sentence an operator can act on. */
  readonly reason?: string;
  /** The catalog code of the error behind a state other than 'ok'. */
  readonly code?: ErrorCode;
}

/** Where an engine that logs writes (pino's `info`/`warn` fit): what recovery found, health changes. */
export interface EngineLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** What the last open had to recover and discard (a torn log tail, damage the operator chose to skip), for the log and `/status`. */
export interface RecoveryReport {
  /** One line for the log, e.g. "replayed 1,203 operations from 2 WAL segments; discarded a torn final record (37 bytes) of 000012.log". */
  readonly summary: string;
  /** True when something beyond what a crash explains was discarded (only with a recovery mode the operator chose). */
  readonly dataLost: boolean;
  /** Engine-specific detail (JSON): what was discarded, where and why. */
  readonly details: Readonly<Record<string, unknown>>;
}

type Lifecycle = 'new' | 'opening' | 'open' | 'closing' | 'closed';

interface PendingWrite {
  readonly ops: readonly WriteOp[];
  readonly bytes: number;
  readonly sync: boolean;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** A `snapshot()` call waiting in the write queue: it takes effect once every write queued before it is done. */
interface PendingSnapshot {
  readonly snapshotAt: true;
  readonly resolve: (snapshot: EngineSnapshot) => void;
  readonly reject: (error: unknown) => void;
}

export abstract class Engine {
  /** The engine's name as given to `--engine`. */
  abstract readonly name: string;
  abstract readonly supports: EngineSupports;

  readonly limits: EngineLimits;
  readonly syncMode: SyncMode;

  private lifecycle: Lifecycle = 'new';
  private readonly writeQueue: Array<PendingWrite | PendingSnapshot> = [];
  private writeQueueBytes = 0;
  private committing: Promise<void> | undefined;
  private operationsInFlight = 0;
  private operationsDrained: (() => void) | undefined;
  /** Group-commit figures: how many `_write` calls, and how many caller writes they carried. */
  private commitCalls = 0;
  private commitWrites = 0;
  /** Open snapshots (native and generic), and the generic ones that need preimages before each write. */
  private readonly snapshotsOpen = new Set<SnapshotReader>();
  private readonly preimageSnapshots = new Set<PreimageSnapshot>();

  protected constructor(options: EngineOptions) {
    this.limits = resolveLimits(options.limits);
    this.syncMode = options.sync ?? 'fsync';
    if (this.syncMode !== 'fsync' && this.syncMode !== 'none') {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `sync mode must be "fsync" or "none", got ${JSON.stringify(this.syncMode)}`);
    }
  }

  get isOpen(): boolean {
    return this.lifecycle === 'open';
  }

  /** Human-readable durability: what an acknowledged write survives. */
  get durability(): string {
    if (!this.supports.durable) return 'none (in-memory engine: data is lost when the process exits)';
    return this.syncMode === 'fsync'
      ? 'fsync (acknowledged writes are on stable storage; group commit)'
      : 'none (writes reach the OS page cache; a process crash keeps them, a power loss may not)';
  }

  async open(): Promise<void> {
    if (this.lifecycle !== 'new') {
      throw new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', `engine ${this.name} cannot be opened from state ${this.lifecycle}`);
    }
    this.lifecycle = 'opening';
    try {
      await this._open();
    } catch (error) {
      this.lifecycle = 'closed';
      throw error;
    }
    this.lifecycle = 'open';
  }

  // get, put and del are the hot path: written without `async` so a call costs
  // one promise, not three. Validation failures still arrive as rejections.

  /**
   * `get` answered on the calling thread, for engines that can answer without
   * waiting (memory; LevelDB's `getSync`; lsm and btree when what the read
   * needs is in memory or, lsm, readable with `readSync`): the same answer `get` would give
   * now, without a promise or a trip through the microtask queue (the HTTP
   * GET path, src/api/server.ts). READ_NOT_SYNC when this engine cannot: the
   * caller then uses `get`. A bad key or a closed engine THROWS the error
   * `get` would reject with. Nothing is in flight afterwards, so `close`
   * needs no tracking for it.
   */
  getSync(key: Uint8Array): SyncRead {
    this.validateKey(key);
    this.requireOpen();
    return this._getSync(toBuffer(key));
  }

  /**
   * `getSync` of the key whose bytes are the chars of `keyLatin1` (every char
   * below 256, one per byte: what `Buffer.toString('latin1')` gives), for a
   * caller that holds the key as such a string (the HTTP request target).
   * Engines keyed by latin1 strings (memory, leveldb's row cache, lsm's
   * memtables) then look it up with no Buffer made on the way; the others
   * get the key's bytes (`_getSyncLatin1`'s default). Same
   * answers and errors as `getSync`.
   */
  getSyncLatin1(keyLatin1: string): SyncRead {
    this.validateKeyLength(keyLatin1.length);
    this.requireOpen();
    return this._getSyncLatin1(keyLatin1);
  }

  /** The value stored under `key`, or `undefined` when absent. */
  get(key: Uint8Array): Promise<Buffer | undefined> {
    let pending: Promise<Buffer | undefined>;
    try {
      this.validateKey(key);
      this.enter();
    } catch (error) {
      return Promise.reject(error);
    }
    try {
      pending = this._get(toBuffer(key));
    } catch (error) {
      this.leave();
      return Promise.reject(error);
    }
    return pending.then(
      (value) => {
        this.leave();
        return value;
      },
      (error: unknown) => {
        this.leave();
        throw error;
      },
    );
  }

  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    try {
      this.validateKey(key);
      this.validateValue(value);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.enqueueWrite([{ type: 'put', key, value }], key.byteLength + value.byteLength, this.defaultSync);
  }

  /** Deletes `key`. Idempotent: deleting an absent key succeeds. */
  del(key: Uint8Array): Promise<void> {
    try {
      this.validateKey(key);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.enqueueWrite([{ type: 'del', key }], key.byteLength, this.defaultSync);
  }

  /**
   * Applies `ops` in order, atomically: after a crash either all are visible or
   * none. `options.sync` overrides the engine's sync mode for this write.
   */
  batch(ops: readonly WriteOp[], options?: WriteOptions): Promise<void> {
    // Not `async`, like put and del: the key-value layer writes every group through here.
    let bytes: number;
    let sync: boolean;
    try {
      bytes = this.validateBatch(ops);
      sync = options?.sync ?? this.defaultSync;
      if (typeof sync !== 'boolean') throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', 'sync must be a boolean');
      if (ops.length === 0) {
        this.requireOpen();
        return Promise.resolve();
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.enqueueWrite(ops.slice(), bytes, sync);
  }

  /** Entries in `[lower, upper]` per the bounds, in key order (or reverse), at most `limit`. */
  range(options: RangeOptions): Promise<Entry[]> {
    return this.rangeWith(options, (range, reverse, limit) => this._range(range, reverse, limit));
  }

  /**
   * A point-in-time view for paged scans while writes go on: it sees every
   * write queued before this call and none queued after. Release it when done
   * (closing the engine releases it too). At most `snapshotsOpenMax` at once.
   */
  snapshot(): Promise<EngineSnapshot> {
    if (this.lifecycle !== 'open') {
      try {
        this.requireOpen();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.snapshotsOpen.size >= this.limits.snapshotsOpenMax) {
      return Promise.reject(new ImpulseError('IMPULSE_ERR_OVERLOADED', `${this.snapshotsOpen.size} snapshots are open; the limit is ${this.limits.snapshotsOpenMax}`));
    }
    if (!this.committing && this.writeQueue.length === 0) return Promise.resolve(this.openSnapshot());
    return new Promise<EngineSnapshot>((resolve, reject) => {
      this.writeQueue.push({ snapshotAt: true, resolve, reject });
      if (!this.committing) this.committing = this.commitLoop();
    });
  }

  async stats(): Promise<EngineStats> {
    this.enter();
    try {
      const stats = await this._stats();
      return {
        ...stats,
        figures: {
          ...stats.figures,
          group_commit_calls: this.commitCalls,
          group_commit_writes: this.commitWrites,
          write_queue_bytes: this.writeQueueBytes,
        },
      };
    } finally {
      this.leave();
    }
  }

  /**
   * Stops accepting operations, waits for queued writes and in-flight reads to
   * finish, then closes the engine. Idempotent.
   */
  async close(): Promise<void> {
    if (this.lifecycle === 'closed' || this.lifecycle === 'closing' || this.lifecycle === 'new') {
      this.lifecycle = this.lifecycle === 'new' ? 'closed' : this.lifecycle;
      return;
    }
    this.lifecycle = 'closing';
    while (this.committing) await this.committing;
    for (const snapshot of [...this.snapshotsOpen]) snapshot.release();
    if (this.operationsInFlight > 0) {
      await new Promise<void>((resolve) => {
        this.operationsDrained = resolve;
      });
    }
    try {
      await this._close();
    } finally {
      this.lifecycle = 'closed';
    }
  }

  /** How the engine is doing (see `EngineHealthState`). Cheap; safe to call at any time. */
  health(): EngineHealth {
    if (this.lifecycle !== 'open') return { state: 'failed', reason: `engine ${this.name} is ${this.lifecycle === 'new' ? 'not open yet' : this.lifecycle}`, code: 'IMPULSE_ERR_ENGINE_NOT_OPEN' };
    return this._health();
  }

  /** What the last open recovered and discarded; undefined for engines with nothing to recover or before open. */
  get recoveryReport(): RecoveryReport | undefined {
    return undefined;
  }

  // ---- the storage part each engine implements -------------------------------------------

  /** Health while open; engines that can degrade override it. */
  protected _health(): EngineHealth {
    return { state: 'ok' };
  }

  protected abstract _open(): Promise<void>;
  protected abstract _get(key: Buffer): Promise<Buffer | undefined>;
  /** `_get` on the calling thread, or READ_NOT_SYNC (the default) when the engine cannot answer without waiting. Runs only while open. */
  protected _getSync(_key: Buffer): SyncRead {
    return READ_NOT_SYNC;
  }
  /** `_getSync` of a key given as a latin1 string (`getSyncLatin1`); by default through its bytes. Runs only while open. */
  protected _getSyncLatin1(keyLatin1: string): SyncRead {
    return this._getSync(Buffer.from(keyLatin1, 'latin1'));
  }
  protected abstract _write(ops: readonly WriteOp[], sync: boolean): Promise<void>;
  protected abstract _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]>;
  protected abstract _stats(): Promise<EngineStats>;
  protected abstract _close(): Promise<void>;

  /**
   * A native point-in-time reader, for engines that have one; `undefined`
   * (the default) makes the base keep a generic snapshot. Called when no
   * `_write` is in flight, at the snapshot's point.
   */
  protected _snapshot(): SnapshotReader | undefined {
    return undefined;
  }

  // ---- validation, lifecycle and group commit --------------------------------------------

  private requireOpen(): void {
    if (this.lifecycle !== 'open') {
      throw new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', `engine ${this.name} is ${this.lifecycle === 'new' ? 'not open yet' : this.lifecycle}`);
    }
  }

  private enter(): void {
    this.requireOpen();
    this.operationsInFlight++;
  }

  private leave(): void {
    this.operationsInFlight--;
    if (this.operationsInFlight === 0 && this.operationsDrained) {
      const drained = this.operationsDrained;
      this.operationsDrained = undefined;
      drained();
    }
  }

  /** Checks a batch against the limits; returns its key + value bytes. */
  private validateBatch(ops: readonly WriteOp[]): number {
    if (!Array.isArray(ops)) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', 'a batch is an array of operations');
    if (ops.length > this.limits.batchOpsMax) {
      throw new ImpulseError('IMPULSE_ERR_BATCH_TOO_LARGE', `batch has ${ops.length} operations; the limit is ${this.limits.batchOpsMax}`);
    }
    let bytes = 0;
    for (const op of ops) {
      if (op === null || typeof op !== 'object') throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', 'every batch operation is an object');
      this.validateKey(op.key);
      if (op.type === 'put') {
        this.validateValue(op.value);
        bytes += op.key.byteLength + op.value.byteLength;
      } else if (op.type === 'del') {
        bytes += op.key.byteLength;
      } else {
        throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `unknown batch operation type ${JSON.stringify((op as { type: unknown }).type)}`);
      }
    }
    if (bytes > this.limits.batchBytesMax) {
      throw new ImpulseError('IMPULSE_ERR_BATCH_TOO_LARGE', `batch carries ${bytes} bytes; the limit is ${this.limits.batchBytesMax}`);
    }
    return bytes;
  }

  private validateKey(key: unknown): asserts key is Uint8Array {
    if (!(key instanceof Uint8Array)) throw new ImpulseError('IMPULSE_ERR_KEY_EMPTY', 'a key must be bytes');
    this.validateKeyLength(key.byteLength);
  }

  private validateKeyLength(keyBytes: number): void {
    if (keyBytes === 0) throw new ImpulseError('IMPULSE_ERR_KEY_EMPTY');
    if (keyBytes > this.limits.keyBytesMax) {
      throw new ImpulseError('IMPULSE_ERR_KEY_TOO_LARGE', `key is ${keyBytes} bytes; the limit is ${this.limits.keyBytesMax}`);
    }
  }

  private validateValue(value: unknown): asserts value is Uint8Array {
    if (!(value instanceof Uint8Array)) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', 'a value must be bytes');
    if (value.byteLength > this.limits.valueBytesMax) {
      throw new ImpulseError('IMPULSE_ERR_VALUE_TOO_LARGE', `value is ${value.byteLength} bytes; the limit is ${this.limits.valueBytesMax}`);
    }
  }

  private normalizeRange(options: RangeOptions): { range: KeyRange; reverse: boolean; limit: number } {
    if (options === null || typeof options !== 'object') throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'range options are required');
    const { gte, gt, lt, lte, reverse = false, limit } = options;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > this.limits.rangeLimitMax) {
      throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', `limit must be an integer from 1 to ${this.limits.rangeLimitMax}, got ${String(limit)}`);
    }
    if (typeof reverse !== 'boolean') throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'reverse must be a boolean');
    if (gte !== undefined && gt !== undefined) throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'give at most one of gte and gt');
    if (lt !== undefined && lte !== undefined) throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'give at most one of lt and lte');
    if (!isBound(gte) || !isBound(gt) || !isBound(lt) || !isBound(lte)) throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'range bounds must be bytes');
    const lower = gte ?? gt;
    const upper = lt ?? lte;
    // One object shape whatever the bounds (no spreads): this runs for every scan and seek.
    const range: KeyRange = {
      lower: lower === undefined ? undefined : toBuffer(lower),
      lowerInclusive: gte !== undefined,
      upper: upper === undefined ? undefined : toBuffer(upper),
      upperInclusive: lte !== undefined,
    };
    return { range, reverse, limit };
  }

  /** Validates `options`, then runs `read` on the normalized range while the engine is held open (live and snapshot reads). */
  private async rangeWith(options: RangeOptions, read: (range: KeyRange, reverse: boolean, limit: number) => Promise<Entry[]>): Promise<Entry[]> {
    const { range, reverse, limit } = this.normalizeRange(options);
    this.enter();
    try {
      if (isEmptyRange(range)) return [];
      const entries = await read(range, reverse, limit);
      assert(entries.length <= limit, 'engine returned more entries than the limit', this.name, entries.length, limit);
      return entries;
    } finally {
      this.leave();
    }
  }

  private get defaultSync(): boolean {
    return this.syncMode === 'fsync';
  }

  /** Opens a snapshot now (no `_write` is in flight) and wraps it in the validating public view. */
  private openSnapshot(): EngineSnapshot {
    let reader = this._snapshot();
    if (reader === undefined) {
      const generic = new PreimageSnapshot((range, reverse, limit) => this._range(range, reverse, limit), this.limits.snapshotRetainedBytesMax, (done) => {
        this.preimageSnapshots.delete(done);
      });
      this.preimageSnapshots.add(generic);
      reader = generic;
    }
    const opened = reader;
    this.snapshotsOpen.add(opened);
    let released = false;
    const range = (options: RangeOptions): Promise<Entry[]> =>
      this.rangeWith(options, (normalized, reverse, limit) => {
        if (released) throw new ImpulseError('IMPULSE_ERR_SNAPSHOT_ABORTED', 'the snapshot was released');
        return opened.range(normalized, reverse, limit);
      });
    return {
      range,
      get: async (key) => {
        this.validateKey(key);
        const [entry] = await range({ gte: key, lte: key, limit: 1 });
        return entry?.value;
      },
      release: () => {
        if (released) return;
        released = true;
        this.snapshotsOpen.delete(opened);
        opened.release();
      },
    };
  }

  private enqueueWrite(ops: readonly WriteOp[], bytes: number, sync: boolean): Promise<void> {
    if (this.lifecycle !== 'open') {
      try {
        this.requireOpen();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.writeQueueBytes + bytes > this.limits.writeQueueBytesMax && this.writeQueue.length > 0) {
      return Promise.reject(
        new ImpulseError('IMPULSE_ERR_OVERLOADED', `${this.writeQueueBytes} bytes of writes are already waiting; the limit is ${this.limits.writeQueueBytesMax}`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.writeQueue.push({ ops, bytes, sync, resolve, reject });
      this.writeQueueBytes += bytes;
      if (!this.committing) this.committing = this.commitLoop();
    });
  }

  /**
   * Group commit. While one `_write` is in flight, new writes queue up; when it
   * returns, everything queued (up to `commitBytesMax`) goes to the next
   * `_write` as one atomic batch with one sync (synced when any member asked
   * for sync). Each caller's own ops stay contiguous and in order, so
   * per-caller atomicity is preserved. A `snapshot()` request in the queue is
   * a boundary: groups never span it, and it opens when everything before it
   * is written.
   */
  private async commitLoop(): Promise<void> {
    try {
      while (this.writeQueue.length > 0) {
        const head = this.writeQueue[0]!;
        if ('snapshotAt' in head) {
          // Every write queued before the snapshot() call is done, and no later one has started.
          this.writeQueue.shift();
          if (this.lifecycle === 'open') head.resolve(this.openSnapshot());
          else head.reject(new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', `engine ${this.name} is ${this.lifecycle}`));
          continue;
        }
        await this.commitGroup(this.takeGroup());
      }
    } finally {
      this.committing = undefined;
    }
  }

  /** The next group: queued writes up to `commitBytesMax` (at least one), stopping at a snapshot request. */
  private takeGroup(): PendingWrite[] {
    const group: PendingWrite[] = [];
    let groupBytes = 0;
    while (this.writeQueue.length > 0) {
      const next = this.writeQueue[0]!;
      if ('snapshotAt' in next) break;
      if (group.length > 0 && groupBytes + next.bytes > this.limits.commitBytesMax) break;
      group.push(next);
      groupBytes += next.bytes;
      this.writeQueue.shift();
    }
    return group;
  }

  /** One `_write` for the whole group, synced when any member asked for sync. */
  private async commitGroup(group: readonly PendingWrite[]): Promise<void> {
    const ops = group.length === 1 ? group[0]!.ops : group.flatMap((pending) => pending.ops);
    const sync = this.supports.durable && group.some((pending) => pending.sync);
    let groupBytes = 0;
    for (const pending of group) groupBytes += pending.bytes;
    this.commitCalls++;
    this.commitWrites += group.length;
    try {
      // Generic snapshots must learn the values this write replaces before it starts (snapshot.ts).
      if (this.preimageSnapshots.size > 0) await capturePreimages(this.preimageSnapshots, ops, (key) => this._get(key));
      await this._write(ops, sync);
      for (const pending of group) pending.resolve();
    } catch (error) {
      for (const pending of group) pending.reject(error);
    } finally {
      this.writeQueueBytes -= groupBytes;
    }
  }
}

/** A range bound is absent or bytes (checked one by one: this runs for every scan). */
function isBound(bound: unknown): boolean {
  return bound === undefined || bound instanceof Uint8Array;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function resolveLimits(overrides: Partial<EngineLimits> | undefined): EngineLimits {
  const limits = { ...DEFAULT_LIMITS, ...(overrides ?? {}) };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `limit ${name} must be a positive integer, got ${String(value)}`);
    }
  }
  return Object.freeze(limits);
}

/** True when no key can satisfy the range (lower above upper, or equal with an exclusive side). */
export function isEmptyRange(range: KeyRange): boolean {
  if (range.lower === undefined || range.upper === undefined) return false;
  const order = Buffer.compare(range.lower, range.upper);
  return order > 0 || (order === 0 && !(range.lowerInclusive && range.upperInclusive));
}

/** True when `key` is inside `range`. For engines that filter while scanning. */
export function inRange(key: Uint8Array, range: KeyRange): boolean {
  return aboveLower(key, range) && belowUpper(key, range);
}

export function aboveLower(key: Uint8Array, range: KeyRange): boolean {
  if (range.lower === undefined) return true;
  const order = compareBytes(key, range.lower);
  return range.lowerInclusive ? order >= 0 : order > 0;
}

export function belowUpper(key: Uint8Array, range: KeyRange): boolean {
  if (range.upper === undefined) return true;
  const order = compareBytes(key, range.upper);
  return range.upperInclusive ? order <= 0 : order < 0;
}

/**
 * The smallest key greater than every key that starts with `prefix`, or
 * `undefined` when there is none (the prefix is all 0xff bytes). Turns a prefix
 * scan into the half-open range `[prefix, prefixUpperBound(prefix))`.
 */
export function prefixUpperBound(prefix: Uint8Array): Buffer | undefined {
  let end = prefix.byteLength;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return undefined;
  const bound = Buffer.from(prefix.subarray(0, end));
  bound[end - 1] = prefix[end - 1]! + 1;
  return bound;
}
