/**
 * Turning applied log entries into ONE engine batch (`ApplyBatch`), for the
 * state machine (src/kv/state-machine.ts).
 *
 * Entries are planned in order. A command's conditions are checked against the
 * state before it, which includes the commands planned earlier in the same
 * batch (an overlay of their writes, since the engine has not seen them yet).
 * A failed condition makes that command a no-op with a result naming the key
 * and its current revision; the batch goes on. Every key a command writes gets
 * the command's log index plus the machine's revision base as its revision
 * (the base is 0 until a shard merge raises it: `MergeAbsorb`).
 *
 * Deterministic: the result of an entry depends only on the engine state and
 * the entries before it, so every replica applying the same log agrees.
 */
import { ImpulseError, isImpulseError } from '../errors.js';
import type { Engine, WriteOp } from '../storage/engine.js';
import { type KvCommand, type KvLimits, type KvOp, decodeCommand } from './command.js';
import { assert } from '../util/assert.js';
import { capturedSessionKey, clusterMetaKey, dataKey, isCapturedSessionKey, isDataKey, isLockKey, isTxnRecordKey } from './keyspace.js';
import { encodeRecord, revisionOfRecord } from './record.js';
import type { CommandResult, SessionTable } from './sessions.js';
import type { TxnCommand, TxnLock, TxnRecord } from './txn.js';
import { type LockTable, TxnPlanner } from './txn-apply.js';

/** One committed log entry to apply. `term` is the Raft term (0 for the local service). */
export type ApplyEntry =
  /** A write command, decoded or as its log bytes (decoded and validated here). */
  | { readonly index: number; readonly term: number; readonly type: 'command'; readonly command: KvCommand | Uint8Array }
  /** Opaque metadata of the cluster runtime (e.g. the membership): set `name` to `value`, or delete it with null. */
  | {
      readonly index: number;
      readonly term: number;
      readonly type: 'meta';
      readonly name: string;
      readonly value: Uint8Array | null;
      /** Further metadata set at the same index (a group's bootstrap state: membership and shard bounds). */
      readonly more?: ReadonlyArray<{ readonly name: string; readonly value: Uint8Array | null }>;
      /**
       * Also copies every client session as it stands before this entry under this tag
       * (1-32 of [A-Za-z0-9._-]; `KvStateMachine.capturedSessions`): a shard split's sessions
       * for the shard it makes, durable in the same batch as the split.
       */
      readonly captureSessionsAs?: string;
      /** Also takes in a merged-away shard's keys and sessions, in the same batch (a shard merge's commit). */
      readonly absorb?: MergeAbsorb;
      /**
       * Also deletes these engine keys, in the same batch: data keys, captured
       * sessions, transaction locks and records only (a split's GC of the keys it
       * froze: src/cluster/shard-split-gc.ts). The caller bounds their number.
       */
      readonly deleteKeys?: readonly Buffer[];
    }
  /** A step of a transaction across shards (src/kv/txn.ts), decoded and checked by the layer above (a shard group's). */
  | { readonly index: number; readonly term: number; readonly type: 'txn'; readonly command: TxnCommand }
  /** An entry that changes nothing but the applied index (e.g. a new leader's empty entry). */
  | { readonly index: number; readonly term: number; readonly type: 'noop' }
  /** A command the layer above refused at apply (e.g. a key outside a shard's bounds): changes nothing but the applied index; its result is `error`. */
  | { readonly index: number; readonly term: number; readonly type: 'refused'; readonly error: ImpulseError };

/**
 * What a shard merge takes into the surviving group's state at its commit
 * entry (src/cluster/shard-merge.ts): its own stale keys in the range to
 * delete, the other group's data records (engine
 * keys and records, revisions as they are), its transaction locks and
 * records (src/kv/txn.ts), its sessions (encoded records:
 * merged with this machine's, `SessionTable.absorb`) and the highest
 * revision it could hold. The revision base rises so that every later
 * revision here is above `revisionTop` (no revision goes backwards: a
 * conditional write by revision never matches an older version, ABA).
 */
export interface MergeAbsorb {
  /**
   * Engine keys of this machine inside the merged-in range to delete first:
   * keys an earlier split froze here that the other group deleted since
   * (they must not come back) — data keys, and locks on keys of the range
   * and records whose primary key lies in it that the other group no longer
   * holds (`KvStateMachine.exportTxnState`).
   */
  readonly deletes: readonly Buffer[];
  readonly data: ReadonlyArray<{ readonly key: Buffer; readonly value: Buffer }>;
  /**
   * The other group's locks on keys of the range and records whose primary
   * key lies in it, as it holds them (`KvStateMachine.exportTxnState`): a
   * transaction the merge met goes on in this group (its locks keep the keys,
   * its record is where the primary key now lives). They may take the lock
   * table past TXN_LOCKS_MAX, up to twice it; prepares are refused until it
   * falls below again.
   */
  readonly txn: ReadonlyArray<{ readonly key: Buffer; readonly value: Buffer }>;
  readonly sessions: ReadonlyArray<{ readonly clientId: string; readonly record: Buffer }>;
  readonly revisionTop: number;
}

/** The cluster metadata holding the revision base (decimal; absent: 0): a key written at log index i gets revision i + base. */
export const REVISION_BASE_META_NAME = 'revision-base';

export function encodeRevisionBase(base: number): Buffer {
  return Buffer.from(String(base), 'utf8');
}

/** The revision base in `bytes` (undefined: 0); IMPULSE_ERR_ENGINE_CORRUPTION when it is not a count. */
export function decodeRevisionBase(bytes: Uint8Array | undefined): number {
  if (bytes === undefined) return 0;
  const base = Number(Buffer.from(bytes).toString('utf8'));
  if (!Number.isSafeInteger(base) || base < 0) throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', 'the stored revision base is not a count');
  return base;
}

/** The outcome of one entry: a command's result, or an error that made it a no-op (expired session, malformed bytes). */
export type ApplyResult = CommandResult | { readonly ok: false; readonly error: ImpulseError };

/** Most bytes of one metadata value; names are 1-128 characters of [A-Za-z0-9._-]. */
export const CLUSTER_META_BYTES_MAX = 1024 * 1024;
const META_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const CAPTURE_TAG = /^[A-Za-z0-9._-]{1,32}$/;

export class ApplyBatch {
  readonly ops: WriteOp[] = [];
  /** Key + value bytes of `ops`. */
  bytes = 0;
  /** The last entry planned. */
  last: { index: number; term: number } | undefined;
  /** Cluster metadata names this batch sets (true) or deletes (false). */
  readonly metaChanges = new Map<string, boolean>();
  /**
   * The data keys planned so far with their revision (null: deleted), in
   * order; `overlay` indexes them by key, built only when a condition needs it
   * (most batches have none, and converting every key costs).
   */
  private readonly planned: Array<{ readonly key: Buffer; readonly revision: number | null }> = [];
  private overlay: Map<string, number | null> | undefined;
  private overlaid = 0;
  /** Transactions' locks and records (txn-apply.ts): made on first need (a batch while the machine holds no lock needs none). */
  private txnPlanner: TxnPlanner | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly sessions: SessionTable,
    private readonly limits: KvLimits,
    /** The machine's locks as they stand before the batch. */
    private readonly locks: LockTable,
    /** The revision base when the batch begins; `revisionBase` after it (a merge raises it). */
    private base = 0,
  ) {}

  /** The transaction planner of this batch, made on first use. */
  private get txn(): TxnPlanner {
    this.txnPlanner ??= new TxnPlanner(this.engine, this.locks, {
      revisionAt: (index) => index + this.base,
      firstFailedCondition: (ops) => this.firstFailedCondition(ops),
      writeData: (index, key, value) => this.writeData(index, key, value),
      push: (op) => this.push(op),
      sessions: this.sessions,
    });
    return this.txnPlanner;
  }

  /** The lock and record changes of the batch (undefined: none planned), for the machine to take once it is written. */
  get txnChanges(): { readonly lockChanges: ReadonlyMap<string, TxnLock | null>; readonly recordChanges: ReadonlyMap<string, TxnRecord | null> } | undefined {
    return this.txnPlanner;
  }

  /** The revision base after the entries planned so far. */
  get revisionBase(): number {
    return this.base;
  }

  get isEmpty(): boolean {
    return this.last === undefined;
  }

  /** Plans `entry` into the batch and returns its result (a promise only when a condition needs a read). */
  add(entry: ApplyEntry): ApplyResult | Promise<ApplyResult> {
    this.last = { index: entry.index, term: entry.term };
    switch (entry.type) {
      case 'noop':
        return { ok: true, revision: entry.index + this.base };
      case 'refused':
        return { ok: false, error: entry.error };
      case 'meta': {
        const result = this.addMeta(entry.index, [{ name: entry.name, value: entry.value }, ...(entry.more ?? [])]);
        if (result.ok && entry.captureSessionsAs !== undefined) this.captureSessions(entry.captureSessionsAs);
        if (result.ok && entry.absorb !== undefined) this.absorb(entry.index, entry.absorb);
        if (result.ok && entry.deleteKeys !== undefined) this.deleteKeys(entry.deleteKeys);
        return result;
      }
      case 'command':
        return this.addCommand(entry.index, entry.command);
      case 'txn':
        return this.txn.apply(entry.index, entry.command);
    }
  }

  /** Sets every one of `values`, or (one of them malformed) none. */
  private addMeta(index: number, values: ReadonlyArray<{ readonly name: string; readonly value: Uint8Array | null }>): ApplyResult {
    const malformed = ({ name, value }: (typeof values)[number]): boolean => typeof name !== 'string' || !META_NAME.test(name) || (value !== null && (!(value instanceof Uint8Array) || value.length > CLUSTER_META_BYTES_MAX));
    if (values.some(malformed)) {
      return { ok: false, error: new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', `metadata entry ${index}: the name must be 1-128 of [A-Za-z0-9._-] and the value at most ${CLUSTER_META_BYTES_MAX} bytes`) };
    }
    for (const { name, value } of values) {
      const key = clusterMetaKey(name);
      this.push(value === null ? { type: 'del', key } : { type: 'put', key, value: Buffer.from(value) });
      this.metaChanges.set(name, value !== null);
    }
    return { ok: true, revision: index + this.base };
  }

  /** Takes a merged-away shard's keys, locks, records and sessions in, and raises the base above its revisions (`MergeAbsorb`). */
  private absorb(index: number, absorb: MergeAbsorb): void {
    this.deleteKeys(absorb.deletes);
    for (const { key, value } of absorb.data) {
      this.push({ type: 'put', key, value });
      this.planned.push({ key, revision: revisionOfRecord(value, 'a merged-in record') });
    }
    for (const { key, value } of absorb.txn) this.txn.take(key, value);
    for (const { clientId, record } of absorb.sessions) this.sessions.absorb(clientId, record, 'a merged-in session');
    // Every later entry j > index gets j + base > revisionTop.
    const base = Math.max(this.base, absorb.revisionTop - index);
    if (base !== this.base) {
      this.base = base;
      this.push({ type: 'put', key: clusterMetaKey(REVISION_BASE_META_NAME), value: encodeRevisionBase(base) });
      this.metaChanges.set(REVISION_BASE_META_NAME, true);
    }
  }

  /** Deletes data keys, captured sessions, locks and records (`deleteKeys`); any other engine key is a broken invariant of the layer above. */
  private deleteKeys(keys: readonly Buffer[]): void {
    for (const key of keys) {
      if (isLockKey(key) || isTxnRecordKey(key)) {
        this.txn.take(key, undefined); // the machine's lock table and record index follow
        continue;
      }
      assert(isDataKey(key) || isCapturedSessionKey(key), 'an apply entry deletes only data keys, captured sessions, locks and records', key.subarray(0, 32).toString('hex'));
      this.push({ type: 'del', key });
      if (isDataKey(key)) this.planned.push({ key, revision: null });
    }
  }

  /** Copies every session (as of the entries planned so far) under `tag`. Tags are never reused, so the copies need no deletes. */
  private captureSessions(tag: string): void {
    assert(CAPTURE_TAG.test(tag), 'a session capture tag is 1-32 of [A-Za-z0-9._-]', tag);
    for (const { clientId, record } of this.sessions.encodedAll()) this.push({ type: 'put', key: capturedSessionKey(tag, clientId), value: record });
  }

  private addCommand(index: number, encoded: KvCommand | Uint8Array): ApplyResult | Promise<ApplyResult> {
    let command: KvCommand;
    try {
      command = encoded instanceof Uint8Array ? decodeCommand(encoded, this.limits) : encoded;
    } catch (error) {
      if (isImpulseError(error)) return { ok: false, error };
      throw error;
    }
    const { session } = command;
    if (session !== undefined) {
      const check = this.sessions.check(session);
      if (check.kind === 'duplicate') return check.result;
      if (check.kind === 'expired') {
        return {
          ok: false,
          error: new ImpulseError(
            'IMPULSE_ERR_SESSION_EXPIRED',
            `client ${session.clientId} write ${session.seq} is below its oldest remembered write ${check.floor}; a retry this late is not applied again`,
          ),
        };
      }
    }
    // A key locked by a transaction across shards takes no ordinary write until the transaction resolves.
    const locked = this.locks.size === 0 && this.txnPlanner === undefined ? undefined : this.txn.lockedError(command.ops);
    if (locked !== undefined) return { ok: false, error: locked };
    const finish = (failed: CommandResult | undefined): CommandResult => {
      const result = failed ?? this.addOps(index, command.ops);
      if (session !== undefined) this.sessions.record(session, index, result);
      return result;
    };
    // Most commands carry no condition: they need no read, so they are planned without awaiting.
    return command.ops.some((op) => op.condition !== undefined) ? this.firstFailedCondition(command.ops).then(finish) : finish(undefined);
  }

  /** The failure result of the first op whose condition does not hold, or undefined when all hold. */
  private async firstFailedCondition(ops: readonly KvOp[]): Promise<CommandResult | undefined> {
    for (let op = 0; op < ops.length; op++) {
      const { key, condition } = ops[op]!;
      if (condition === undefined) continue;
      const revision = await this.revisionOf(key);
      const holds = 'ifRevision' in condition ? revision === condition.ifRevision : revision === null;
      if (!holds) return { ok: false, failed: { op, key: Buffer.from(key), revision } };
    }
    return undefined;
  }

  private addOps(index: number, ops: readonly KvOp[]): CommandResult {
    for (const op of ops) this.writeData(index, op.key, op.type === 'put' ? op.value : undefined);
    return { ok: true, revision: index + this.base };
  }

  /** Plans a write of user key `key` at `index`: put `value`, or delete when undefined. */
  private writeData(index: number, userKey: Uint8Array, value: Uint8Array | undefined): void {
    const key = dataKey(userKey);
    const revision = index + this.base;
    if (value !== undefined) this.push({ type: 'put', key, value: encodeRecord(revision, value) });
    else this.push({ type: 'del', key });
    this.planned.push({ key, revision: value !== undefined ? revision : null });
  }

  /** The key's revision as of the ops planned so far (null when absent). */
  private async revisionOf(key: Uint8Array): Promise<number | null> {
    const engineKey = dataKey(key);
    const overlay = (this.overlay ??= new Map());
    for (; this.overlaid < this.planned.length; this.overlaid++) {
      const { key: plannedKey, revision } = this.planned[this.overlaid]!;
      overlay.set(plannedKey.toString('latin1'), revision);
    }
    const planned = overlay.get(engineKey.toString('latin1'));
    if (planned !== undefined) return planned;
    const record = await this.engine.get(engineKey);
    return record === undefined ? null : revisionOfRecord(record, `value of key 0x${Buffer.from(key).subarray(0, 32).toString('hex')}`);
  }

  private push(op: WriteOp): void {
    this.ops.push(op);
    this.bytes += op.key.length + (op.type === 'put' ? op.value.length : 0);
  }
}
