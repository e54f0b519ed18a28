/**
 * Applying transaction commands (src/kv/txn.ts) inside one apply batch
 * (apply.ts), and the in-memory table of a machine's locks.
 *
 * `LockTable` holds every lock the engine holds (loaded at open and after an
 * install or a seed, changed after each written batch), so that an ordinary
 * write checks its keys against the locks without reading the engine, and
 * not at all while the shard holds none. Its size is bounded by
 * TXN_LOCKS_MAX (a prepare beyond it is refused).
 *
 * `TxnPlanner` plans the commands of one batch: its lock and record changes
 * are an overlay over the table and the engine until the batch is written
 * (`LockTable.apply` then), so entries later in the batch see them.
 * Deterministic: results depend only on the state and the entries.
 */
import { ImpulseError } from '../errors.js';
import type { Engine, WriteOp } from '../storage/engine.js';
import { assert } from '../util/assert.js';
import type { KvOp } from './command.js';
import { LOCK_RANGE, isLockKey, isTxnRecordKey, lockKey, txnIdOfRecordKey, txnRecordKey, userKeyOfLock } from './keyspace.js';
import type { CommandResult, SessionTable } from './sessions.js';
import { TXN_LOCKS_MAX, type TxnCommand, type TxnLock, type TxnRecord, decodeLock, decodeTxnRecord, encodeLock, encodeTxnRecord } from './txn.js';

/** What applying an entry produced (apply.ts ApplyResult, repeated here to keep the import one-way). */
type Result = CommandResult | { readonly ok: false; readonly error: ImpulseError };

export class LockTable {
  /** By user key (latin1). */
  private readonly locks = new Map<string, TxnLock>();

  get size(): number {
    return this.locks.size;
  }

  get(key: Uint8Array): TxnLock | undefined {
    return this.locks.size === 0 ? undefined : this.locks.get(Buffer.from(key.buffer, key.byteOffset, key.length).toString('latin1'));
  }

  /** Every lock, with its user key, in no particular order. */
  *entries(): IterableIterator<{ readonly key: Buffer; readonly lock: TxnLock }> {
    for (const [key, lock] of this.locks) yield { key: Buffer.from(key, 'latin1'), lock };
  }

  /** Takes a written batch's lock changes (by latin1 user key; null: dropped). */
  apply(changes: ReadonlyMap<string, TxnLock | null>): void {
    for (const [key, lock] of changes) {
      if (lock === null) this.locks.delete(key);
      else this.locks.set(key, lock);
    }
  }

  /** The table of every lock `engine` holds. */
  static async load(engine: Engine): Promise<LockTable> {
    const table = new LockTable();
    let options: { gte?: Buffer; gt?: Buffer; lt: Buffer; limit: number } = { gte: LOCK_RANGE.gte, lt: LOCK_RANGE.lt, limit: 1000 };
    for (;;) {
      const page = await engine.range(options);
      for (const entry of page) table.locks.set(userKeyOfLock(entry.key).toString('latin1'), decodeLock(entry.value));
      if (page.length < 1000) return table;
      options = { gt: page[page.length - 1]!.key, lt: LOCK_RANGE.lt, limit: 1000 };
    }
  }
}

/** What a planner needs of the batch it plans into (apply.ts ApplyBatch). */
export interface TxnBatchPort {
  /** The revision of a write at log index `index`. */
  revisionAt(index: number): number;
  /** The failure of the first op whose condition does not hold, as of the entries planned so far. */
  firstFailedCondition(ops: readonly KvOp[]): Promise<CommandResult | undefined>;
  /** Plans an ordinary write of user key `key` at `index` (put `value`, or delete when undefined). */
  writeData(index: number, key: Uint8Array, value: Buffer | undefined): void;
  /** Plans a raw engine write. */
  push(op: WriteOp): void;
  /** The batch's session table (sessions.ts): a commit under a client session is deduplicated like a command. */
  readonly sessions: SessionTable;
}

export class TxnPlanner {
  /** The batch's lock changes by latin1 user key (null: dropped); the table takes them once the batch is written. */
  readonly lockChanges = new Map<string, TxnLock | null>();
  /** Records written (by id; null: deleted) in this batch. */
  readonly recordChanges = new Map<string, TxnRecord | null>();

  constructor(
    private readonly engine: Engine,
    private readonly table: LockTable,
    private readonly batch: TxnBatchPort,
  ) {}

  /** The lock on user key `key` as of the entries planned so far. */
  lockOf(key: Uint8Array): TxnLock | undefined {
    if (this.lockChanges.size > 0) {
      const planned = this.lockChanges.get(Buffer.from(key.buffer, key.byteOffset, key.length).toString('latin1'));
      if (planned !== undefined) return planned ?? undefined;
    }
    return this.table.get(key);
  }

  /** True when no lock exists or is planned: ordinary writes need no check. */
  get lockFree(): boolean {
    return this.table.size === 0 && this.lockChanges.size === 0;
  }

  /** The error of an ordinary command whose op writes a locked key, or undefined. */
  lockedError(ops: readonly KvOp[]): ImpulseError | undefined {
    if (this.lockFree) return undefined;
    for (const op of ops) {
      const lock = this.lockOf(op.key);
      if (lock !== undefined) return lockedError(op.key, lock);
    }
    return undefined;
  }

  /** Plans `command` at `index` and returns its result (txn.ts for what each kind does). */
  apply(index: number, command: TxnCommand): Promise<Result> | Result {
    switch (command.kind) {
      case 'prepare':
        return this.prepare(index, command);
      case 'commit':
        return this.commit(index, command);
      case 'abort':
        return this.abort(index, command);
      case 'resolve':
        this.resolveKeys(index, command.txnId, command.commit, command.keys);
        return this.ok(index);
      case 'forget':
        return this.forget(index, command.txnId);
    }
  }

  private async prepare(index: number, command: Extract<TxnCommand, { kind: 'prepare' }>): Promise<Result> {
    const { txnId, primaryKey, createdAtMs, ops } = command;
    const held = ops.map((op) => this.lockOf(op.key));
    const other = held.findIndex((lock) => lock !== undefined && lock.txnId !== txnId);
    if (other >= 0) return { ok: false, error: lockedError(ops[other]!.key, held[other]!) };
    // The same prepare applied twice (a proposal repeated): the locks stand, nothing to do.
    if (held.every((lock) => lock !== undefined)) return this.ok(index);
    if (held.some((lock) => lock !== undefined)) return { ok: false, error: lockedError(ops[held.findIndex((lock) => lock !== undefined)]!.key, held.find((lock) => lock !== undefined)!) };
    // On the primary's shard an existing record means the transaction was decided before its prepare arrived (an abort).
    if (ops.some((op) => Buffer.from(op.key).equals(primaryKey))) {
      const record = await this.recordOf(txnId);
      if (record !== undefined) return { ok: false, error: abortedError(txnId, `its record is already ${record.status}`) };
    }
    const failed = await this.batch.firstFailedCondition(ops);
    if (failed !== undefined) return failed;
    if (this.table.size + this.lockChanges.size + ops.length > TXN_LOCKS_MAX) {
      return { ok: false, error: new ImpulseError('IMPULSE_ERR_UNAVAILABLE', `the shard holds ${TXN_LOCKS_MAX} transaction locks, its bound; retry once transactions resolve`) };
    }
    const primary = Buffer.from(primaryKey);
    for (const op of ops) {
      this.setLock(op.key, { txnId, primaryKey: primary, createdAtMs, op: op.type === 'put' ? { type: 'put', value: Buffer.from(op.value) } : { type: 'del' } });
    }
    return this.ok(index);
  }

  /**
   * The commit point (txn.ts step 2). Committed already: resolves `keys`
   * again (idempotent). Aborted, or the primary lock is not the
   * transaction's: the record is (made) `aborted` and the answer is
   * IMPULSE_ERR_TXN_ABORTED.
   */
  private async commit(index: number, command: Extract<TxnCommand, { kind: 'commit' }>): Promise<Result> {
    const { txnId, primaryKey, keys, otherKeys, session } = command;
    const record = await this.recordOf(txnId);
    if (record?.status === 'aborted') return { ok: false, error: abortedError(txnId, 'it was aborted') };
    // A client's retry of a batch that committed before (under another transaction): this one is aborted, the first answer stands.
    const check = record === undefined && session !== undefined ? this.batch.sessions.check(session) : undefined;
    if (check !== undefined && check.kind !== 'new') {
      this.setRecord(txnId, { status: 'aborted', primaryKey: Buffer.from(primaryKey), keys: [] });
      this.resolveKeys(index, txnId, false, keys);
      if (check.kind === 'duplicate') return check.result;
      return { ok: false, error: new ImpulseError('IMPULSE_ERR_SESSION_EXPIRED', `client ${session!.clientId} write ${session!.seq} is below its oldest remembered write ${check.floor}; a retry this late is not applied again`) };
    }
    if (record === undefined) {
      if (this.lockOf(primaryKey)?.txnId !== txnId) {
        this.setRecord(txnId, { status: 'aborted', primaryKey: Buffer.from(primaryKey), keys: [] });
        return { ok: false, error: abortedError(txnId, 'its primary key holds no lock of it (never prepared, or aborted)') };
      }
      const all = [...keys, ...otherKeys].map((key) => Buffer.from(key));
      this.setRecord(txnId, { status: 'committed', primaryKey: Buffer.from(primaryKey), keys: all, revision: this.batch.revisionAt(index) });
      if (session !== undefined) this.batch.sessions.record(session, index, { ok: true, revision: this.batch.revisionAt(index) });
    }
    this.resolveKeys(index, txnId, true, keys);
    return this.ok(index);
  }

  /** Decides `aborted` unless committed; drops the primary lock. The answer is ok either way: read the record for the outcome. */
  private async abort(index: number, command: Extract<TxnCommand, { kind: 'abort' }>): Promise<Result> {
    const { txnId, primaryKey } = command;
    const record = await this.recordOf(txnId);
    if (record === undefined) this.setRecord(txnId, { status: 'aborted', primaryKey: Buffer.from(primaryKey), keys: [] });
    if (record?.status !== 'committed') this.resolveKeys(index, txnId, false, [primaryKey]);
    return this.ok(index);
  }

  private async forget(index: number, txnId: string): Promise<Result> {
    if ((await this.recordOf(txnId)) !== undefined) this.setRecord(txnId, null);
    return this.ok(index);
  }

  /**
   * Puts a lock or a record as another machine holds it (engine key and
   * value: a shard merge's copy, apply.ts `MergeAbsorb`), replacing what
   * this machine holds under that key, or deletes it (`value` undefined: a
   * frozen copy a merge or a split's GC drops). Planned like the batch's own
   * changes, so later entries and the machine's lock table see it. Any other
   * engine key is a broken invariant of the caller; a malformed value is
   * this member's corruption.
   */
  take(engineKey: Buffer, value: Buffer | undefined): void {
    if (isTxnRecordKey(engineKey)) {
      this.setRecord(txnIdOfRecordKey(engineKey), value === undefined ? null : decodeTxnRecord(value));
      return;
    }
    assert(isLockKey(engineKey), 'only locks and transaction records are taken in or dropped here', engineKey.subarray(0, 32).toString('hex'));
    const key = userKeyOfLock(engineKey);
    const name = key.toString('latin1');
    const lock = value === undefined ? null : decodeLock(value);
    this.lockChanges.set(name, lock); // replaces a frozen copy of another transaction's lock (no setLock check)
    this.batch.push(lock === null ? { type: 'del', key: lockKey(key) } : { type: 'put', key: lockKey(key), value: encodeLock(lock) });
  }

  /** Applies (commit) or drops the locks `txnId` holds on `keys`; other keys are left alone. */
  private resolveKeys(index: number, txnId: string, commit: boolean, keys: readonly Uint8Array[]): void {
    for (const key of keys) {
      const lock = this.lockOf(key);
      if (lock === undefined || lock.txnId !== txnId) continue;
      this.setLock(key, null);
      if (commit) this.batch.writeData(index, key, lock.op.type === 'put' ? lock.op.value : undefined);
    }
  }

  /** The record of `txnId` as of the entries planned so far. */
  async recordOf(txnId: string): Promise<TxnRecord | undefined> {
    const planned = this.recordChanges.get(txnId);
    if (planned !== undefined) return planned ?? undefined;
    const stored = await this.engine.get(txnRecordKey(txnId));
    return stored === undefined ? undefined : decodeTxnRecord(stored);
  }

  private setRecord(txnId: string, record: TxnRecord | null): void {
    this.recordChanges.set(txnId, record);
    const key = txnRecordKey(txnId);
    this.batch.push(record === null ? { type: 'del', key } : { type: 'put', key, value: encodeTxnRecord(record) });
  }

  private setLock(key: Uint8Array, lock: TxnLock | null): void {
    const name = Buffer.from(key.buffer, key.byteOffset, key.length).toString('latin1');
    assert(lock === null || this.lockOf(key) === undefined || this.lockOf(key)!.txnId === lock.txnId, 'a lock is set only on a free key', name);
    this.lockChanges.set(name, lock);
    const engineKey = lockKey(key);
    this.batch.push(lock === null ? { type: 'del', key: engineKey } : { type: 'put', key: engineKey, value: encodeLock(lock) });
  }

  private ok(index: number): Result {
    return { ok: true, revision: this.batch.revisionAt(index) };
  }
}

/** IMPULSE_ERR_TXN_LOCKED for `key`, held by `lock`. */
export function lockedError(key: Uint8Array, lock: TxnLock): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_TXN_LOCKED', `key 0x${Buffer.from(key).subarray(0, 32).toString('hex')} is locked by transaction ${lock.txnId}, not yet resolved; retry`, {
    details: { txn: lock.txnId, key: Buffer.from(key).toString('hex'), primary: lock.primaryKey.toString('hex') },
  });
}

function abortedError(txnId: string, why: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_TXN_ABORTED', `transaction ${txnId} did not commit: ${why}; nothing of it was applied`, { details: { txn: txnId } });
}
