/**
 * Transactions across shards: the commands of a two-phase commit as one
 * shard's Raft log carries them, and the locks and transaction records they
 * leave in the shard's state (a Percolator-style design; docs/sharding.md
 * "Transactions across shards"). Applying them: txn-apply.ts.
 *
 * A transaction `txnId` writes keys of several shards. One of its keys is the
 * PRIMARY key; the shard holding it keeps the transaction's record, the one
 * place its fate is decided. The steps, each a command in one shard's log:
 *
 *   1. `prepare` (every touched shard, its own ops): every op's condition
 *      holds and no key is locked by another transaction, else nothing
 *      changes; then one LOCK per key (`0x01 l/<key>`: the transaction, its
 *      primary key, the coordinator's clock when it began and the op). A
 *      locked key refuses ordinary writes (IMPULSE_ERR_TXN_LOCKED) and is
 *      read as its value before the lock. On the primary's shard a prepare is
 *      refused when the record already exists (an abort came first).
 *   2. `commit` (the primary's shard): THE COMMIT POINT. When the record is
 *      absent and the primary key is still locked by the transaction, the
 *      record becomes `committed` (listing every key of the transaction, for a
 *      sweeper that finds it later) and this shard's own locks are applied as
 *      ordinary writes in the same entry. Without the primary lock (it was
 *      never written, or an abort dropped it) the record becomes `aborted`.
 *   3. `resolve` (every other shard): the transaction's locks on the given
 *      keys become ordinary writes (commit) or vanish (abort). Idempotent.
 *   `abort` (the primary's shard; anyone may send it for an abandoned
 *      transaction): the record becomes `aborted` unless it is `committed`,
 *      and the primary lock is dropped, so no later commit can succeed.
 *   `forget` (the primary's shard): deletes the record. Only once every lock
 *      of the transaction is resolved (a committed record) — a lock whose
 *      record is gone is read as abandoned and aborted.
 *
 * Encoding: format byte TXN_COMMAND_FORMAT, then a msgpack array whose first
 * element is the kind (0 prepare .. 4 forget); ops as in command.ts
 * (`encodeOp`). Decoding treats the bytes as untrusted
 * (IMPULSE_ERR_COMMAND_INVALID).
 */
import { Packr } from 'msgpackr';
import { ImpulseError, isImpulseError } from '../errors.js';
import { type KvLimits, type KvOp, type Session, decodeOp, decodeSession, encodeOp, encodeSession, validateCommand, validateSession } from './command.js';

/** The first byte of a transaction command in the log (a plain command's is COMMAND_FORMAT, 1). */
export const TXN_COMMAND_FORMAT = 2;

/** Most locks one shard holds at once; a prepare beyond it is refused as unavailable (retry). */
export const TXN_LOCKS_MAX = 100_000;

const TXN_ID = /^[A-Za-z0-9_-]{1,64}$/;
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: false, int64AsType: 'number' });

export type TxnCommand =
  /** Lock this shard's `ops` for `txnId` (its primary key `primaryKey`, begun at `createdAtMs` on the coordinator's clock). */
  | { readonly kind: 'prepare'; readonly txnId: string; readonly primaryKey: Uint8Array; readonly createdAtMs: number; readonly ops: readonly KvOp[] }
  /** Decide `txnId` committed (on the primary's shard) and apply its locks on `keys` (this shard's); `otherKeys` are the rest, kept in the record. */
  | {
      readonly kind: 'commit';
      readonly txnId: string;
      readonly primaryKey: Uint8Array;
      readonly keys: readonly Uint8Array[];
      readonly otherKeys: readonly Uint8Array[];
      /** The client's session of the batch: a commit under a seq already applied here decides `aborted` and answers the first result (a client's retry). */
      readonly session?: Session;
    }
  /** Decide `txnId` aborted unless it committed (on the primary's shard). */
  | { readonly kind: 'abort'; readonly txnId: string; readonly primaryKey: Uint8Array }
  /** Apply (`commit`) or drop the locks of `txnId` on `keys`. */
  | { readonly kind: 'resolve'; readonly txnId: string; readonly commit: boolean; readonly keys: readonly Uint8Array[] }
  /** Delete the record of `txnId` (on the primary's shard). */
  | { readonly kind: 'forget'; readonly txnId: string; readonly primaryKey: Uint8Array };

/** A key's lock: which transaction holds it and what it will write. */
export interface TxnLock {
  readonly txnId: string;
  readonly primaryKey: Buffer;
  /** The coordinator's clock when the transaction began, ms (abandoned-lock TTL). */
  readonly createdAtMs: number;
  readonly op: { readonly type: 'put'; readonly value: Buffer } | { readonly type: 'del' };
}

export type TxnStatus = 'committed' | 'aborted';

/** A transaction record, on the primary key's shard. */
export interface TxnRecord {
  readonly status: TxnStatus;
  readonly primaryKey: Buffer;
  /** Every key of the transaction (a committed record; empty for an aborted one). */
  readonly keys: readonly Buffer[];
  /** A committed record: the revision of its commit entry, the batch's answer (absent: aborted, or a record written before revisions were kept). */
  readonly revision?: number;
}

/** What a transaction's record says, as the coordinator and resolvers read it: its status and, once committed, the commit's revision. */
export type TxnDecision = Pick<TxnRecord, 'status' | 'revision'>;

/** Checks a transaction id: 1-64 characters of [A-Za-z0-9_-]. */
export function validateTxnId(txnId: unknown): asserts txnId is string {
  if (typeof txnId !== 'string' || !TXN_ID.test(txnId)) throw new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', 'a transaction id is 1 to 64 characters of A-Z a-z 0-9 _ -');
}

/**
 * Checks a transaction command against `limits` (a prepare as a batch; key
 * lists at most batchOpsMax keys in all). Errors as `validateCommand`, or
 * IMPULSE_ERR_COMMAND_INVALID.
 */
export function validateTxnCommand(command: TxnCommand, limits: KvLimits): void {
  validateTxnId(command.txnId);
  const keys: Uint8Array[] = [];
  if (command.kind !== 'resolve') keys.push(command.primaryKey);
  if (command.kind === 'prepare') {
    if (!Number.isSafeInteger(command.createdAtMs) || command.createdAtMs < 0) throw new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', 'a prepare names when its transaction began, in ms >= 0');
    if (command.ops.length === 0) throw new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', 'a prepare locks at least one key');
    validateCommand({ ops: command.ops }, limits);
  }
  if (command.kind === 'commit' || command.kind === 'resolve') {
    const all = command.kind === 'commit' ? [...command.keys, ...command.otherKeys] : command.keys;
    if (all.length > limits.batchOpsMax) throw new ImpulseError('IMPULSE_ERR_BATCH_TOO_LARGE', `the transaction names ${all.length} keys; the limit is ${limits.batchOpsMax}`);
    keys.push(...all);
  }
  if (command.kind === 'commit' && command.session !== undefined) validateSession(command.session);
  for (const key of keys) {
    if (!(key instanceof Uint8Array) || key.length === 0 || key.length > limits.keyBytesMax) throw new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', `a transaction key must be 1 to ${limits.keyBytesMax} bytes`);
  }
}

/** The user keys a transaction command touches in the shard it is proposed to (what must lie in the shard's bounds). */
export function txnCommandKeys(command: TxnCommand): Uint8Array[] {
  switch (command.kind) {
    case 'prepare':
      return command.ops.map((op) => op.key);
    case 'commit':
      return [command.primaryKey, ...command.keys];
    case 'resolve':
      return [...command.keys];
    case 'abort':
    case 'forget':
      return [command.primaryKey];
  }
}

const KINDS = ['prepare', 'commit', 'abort', 'resolve', 'forget'] as const;

/** The log entry bytes of a valid transaction command. */
export function encodeTxnCommand(command: TxnCommand): Buffer {
  const kind = KINDS.indexOf(command.kind);
  let body: unknown[];
  switch (command.kind) {
    case 'prepare':
      body = [kind, command.txnId, command.primaryKey, command.createdAtMs, command.ops.map(encodeOp)];
      break;
    case 'commit':
      body = [kind, command.txnId, command.primaryKey, command.keys, command.otherKeys, encodeSession(command.session)];
      break;
    case 'resolve':
      body = [kind, command.txnId, command.commit, command.keys];
      break;
    case 'abort':
    case 'forget':
      body = [kind, command.txnId, command.primaryKey];
  }
  const packed = packr.pack(body);
  const bytes = Buffer.allocUnsafe(1 + packed.length);
  bytes[0] = TXN_COMMAND_FORMAT;
  bytes.set(packed, 1);
  return bytes;
}

/** True when log entry bytes hold a transaction command (by the format byte; decoding may still refuse them). */
export function isTxnCommandBytes(bytes: Uint8Array): boolean {
  return bytes.length >= 1 && bytes[0] === TXN_COMMAND_FORMAT;
}

/** Decodes untrusted log entry bytes into a valid transaction command, or throws IMPULSE_ERR_COMMAND_INVALID. */
export function decodeTxnCommand(bytes: Uint8Array, limits: KvLimits): TxnCommand {
  if (bytes.length < 2 || bytes[0] !== TXN_COMMAND_FORMAT) throw invalid('it is not a transaction command');
  let body: unknown;
  try {
    body = packr.unpack(Buffer.from(bytes.buffer, bytes.byteOffset + 1, bytes.length - 1));
  } catch (error) {
    throw invalid(`it is not msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(body) || typeof body[0] !== 'number') throw invalid('it is not [kind, ...]');
  const command = commandOf(body as unknown[], limits);
  try {
    validateTxnCommand(command, limits);
  } catch (error) {
    if (isImpulseError(error)) throw invalid(`${error.message} (${error.code})`);
    throw error;
  }
  return command;
}

function commandOf(body: unknown[], limits: KvLimits): TxnCommand {
  const [kind, txnId, a, b, c, d] = body;
  if (typeof txnId !== 'string') throw invalid('the transaction id is not a string');
  const arity = { 0: 5, 1: 6, 2: 3, 3: 4, 4: 3 }[kind as number];
  if (arity === undefined || body.length !== arity) throw invalid(`kind ${String(kind)} with ${body.length} fields is no transaction command`);
  switch (kind) {
    case 0: {
      if (typeof b !== 'number' || !Array.isArray(c) || c.length > limits.batchOpsMax) throw invalid('a prepare is [0, txnId, primaryKey, createdAtMs, ops]');
      return { kind: 'prepare', txnId, primaryKey: keyOf(a), createdAtMs: b, ops: c.map(decodeOp) };
    }
    case 1: {
      const commit = { kind: 'commit' as const, txnId, primaryKey: keyOf(a), keys: keysOf(b, limits), otherKeys: keysOf(c, limits) };
      return d === null ? commit : { ...commit, session: decodeSession(d) };
    }
    case 3: {
      if (typeof a !== 'boolean') throw invalid('a resolve is [3, txnId, commit, keys]');
      return { kind: 'resolve', txnId, commit: a, keys: keysOf(b, limits) };
    }
    default:
      return { kind: kind === 2 ? 'abort' : 'forget', txnId, primaryKey: keyOf(a) };
  }
}

function keyOf(value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid('a key is not bytes');
  return value;
}

function keysOf(value: unknown, limits: KvLimits): Uint8Array[] {
  if (!Array.isArray(value) || value.length > limits.batchOpsMax) throw invalid('a key list is not an array of at most batchOpsMax keys');
  return value.map(keyOf);
}

/** A lock as the engine keeps it: msgpack `[txnId, primaryKey, createdAtMs, type (0 put, 1 del), value | null]`. */
export function encodeLock(lock: TxnLock): Buffer {
  const { txnId, primaryKey, createdAtMs, op } = lock;
  return packr.pack([txnId, primaryKey, createdAtMs, op.type === 'put' ? 0 : 1, op.type === 'put' ? op.value : null]);
}

/** Reads a stored lock; IMPULSE_ERR_ENGINE_CORRUPTION when malformed (it is this member's own state). */
export function decodeLock(bytes: Buffer): TxnLock {
  const value = unpackStored(bytes, 'lock');
  const [txnId, primaryKey, createdAtMs, type, payload] = Array.isArray(value) ? (value as unknown[]) : [];
  if (typeof txnId !== 'string' || !(primaryKey instanceof Uint8Array) || typeof createdAtMs !== 'number' || !(type === 0 ? payload instanceof Uint8Array : type === 1 && payload === null)) {
    throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', 'a stored transaction lock is malformed');
  }
  const op = type === 0 ? { type: 'put' as const, value: Buffer.from(payload as Uint8Array) } : { type: 'del' as const };
  return { txnId, primaryKey: Buffer.from(primaryKey), createdAtMs, op };
}

/** A record as the engine keeps it: msgpack `[status (1 committed, 2 aborted), primaryKey, keys]`, and `revision` last when it has one. */
export function encodeTxnRecord(record: TxnRecord): Buffer {
  const fields: unknown[] = [record.status === 'committed' ? 1 : 2, record.primaryKey, record.keys];
  if (record.revision !== undefined) fields.push(record.revision);
  return packr.pack(fields);
}

/** Reads a stored record; IMPULSE_ERR_ENGINE_CORRUPTION when malformed. */
export function decodeTxnRecord(bytes: Buffer): TxnRecord {
  const value = unpackStored(bytes, 'record');
  const fields = Array.isArray(value) ? (value as unknown[]) : [];
  const [status, primaryKey, keys, revision] = fields;
  const revisionValid = fields.length === 3 || (fields.length === 4 && Number.isSafeInteger(revision) && (revision as number) >= 0);
  if ((status !== 1 && status !== 2) || !(primaryKey instanceof Uint8Array) || !Array.isArray(keys) || !keys.every((key) => key instanceof Uint8Array) || !revisionValid) {
    throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', 'a stored transaction record is malformed');
  }
  const record = { status: status === 1 ? ('committed' as const) : ('aborted' as const), primaryKey: Buffer.from(primaryKey), keys: (keys as Uint8Array[]).map((key) => Buffer.from(key)) };
  return revision === undefined ? record : { ...record, revision: revision as number };
}

function unpackStored(bytes: Buffer, what: string): unknown {
  try {
    return packr.unpack(bytes);
  } catch {
    throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `a stored transaction ${what} is not msgpack`);
  }
}

function invalid(reason: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', `the transaction command cannot be applied: ${reason}`);
}
