/**
 * How the key-value layer lays out one engine's keyspace (as TiKV does with its
 * 'z' data prefix):
 *
 *   0x01 <name>       metadata of the layer itself (META_PREFIX):
 *                       "format"       the data format version (FORMAT_VALUE)
 *                       "applied"      the applied index and its term
 *                       "m/<name>"     opaque metadata set by the cluster runtime (e.g. the membership)
 *                       "s/<client>"   a client session (src/kv/sessions.ts)
 *                       "c/<tag>/<client>"  a session captured at one index (a split's copy for its new shard)
 *                       "l/<user key>" a transaction's lock on a user key (src/kv/txn.ts)
 *                       "t/<txn id>"   a transaction record, on its primary key's shard (src/kv/txn.ts)
 *   'z' <user key>    user data (DATA_PREFIX); the value is a record (src/kv/record.ts)
 *
 * Metadata sorts before data, so a scan of the whole engine (a snapshot image)
 * meets the format and applied index first. User ranges are translated into
 * the data prefix and never see metadata.
 */
import type { RangeOptions } from '../storage/engine.js';

export const META_PREFIX = 0x01;
export const DATA_PREFIX = 0x7a; // 'z'
/** The byte just after DATA_PREFIX: the exclusive upper bound of all data keys. */
const DATA_END = Buffer.from([DATA_PREFIX + 1]);
const DATA_START = Buffer.from([DATA_PREFIX]);

/** The value of the format key written by this version; anything else is refused at open. */
export const FORMAT_VALUE = Buffer.from('impulse-kv/1', 'latin1');

export const FORMAT_KEY = metaKey('format');
export const APPLIED_KEY = metaKey('applied');
const CLUSTER_META_PREFIX = 'm/';
const SESSION_PREFIX = 's/';
const CAPTURED_SESSION_PREFIX = 'c/';

/** The engine key holding metadata `name` (latin1). */
export function metaKey(name: string): Buffer {
  const key = Buffer.allocUnsafe(1 + name.length);
  key[0] = META_PREFIX;
  key.write(name, 1, 'latin1');
  return key;
}

/** The engine key of the cluster runtime's metadata `name`. */
export function clusterMetaKey(name: string): Buffer {
  return metaKey(CLUSTER_META_PREFIX + name);
}

/** The engine key of client `clientId`'s session. */
export function sessionKey(clientId: string): Buffer {
  return metaKey(SESSION_PREFIX + clientId);
}

/** The range of every session key (for loading sessions at open). */
export const SESSION_RANGE = { gte: metaKey(SESSION_PREFIX), lt: metaKey('s0') } as const; // '0' follows '/'
/** The range of every cluster metadata key. */
export const CLUSTER_META_RANGE = { gte: metaKey(CLUSTER_META_PREFIX), lt: metaKey('m0') } as const;

/**
 * The engine key of client `clientId`'s session as captured under `tag` (a
 * copy taken at one index, e.g. for the shard a split makes; tag: 1-32 of
 * [A-Za-z0-9._-]).
 */
export function capturedSessionKey(tag: string, clientId: string): Buffer {
  return metaKey(`${CAPTURED_SESSION_PREFIX}${tag}/${clientId}`);
}

/** The range of every session captured under `tag`. */
export function capturedSessionRange(tag: string): { readonly gte: Buffer; readonly lt: Buffer } {
  return { gte: metaKey(`${CAPTURED_SESSION_PREFIX}${tag}/`), lt: metaKey(`${CAPTURED_SESSION_PREFIX}${tag}0`) }; // '0' follows '/'
}

/** True when `engineKey` is a captured session's (under any tag). */
export function isCapturedSessionKey(engineKey: Uint8Array): boolean {
  const prefix = metaKey(CAPTURED_SESSION_PREFIX);
  return engineKey.length > prefix.length && Buffer.from(engineKey.buffer, engineKey.byteOffset, prefix.length).equals(prefix);
}

/** The client id of a captured session's engine key under `tag`. */
export function capturedClientIdOf(tag: string, engineKey: Buffer): string {
  return engineKey.toString('latin1', 1 + CAPTURED_SESSION_PREFIX.length + tag.length + 1);
}

/** The session's client id from its engine key. */
export function clientIdOf(engineKey: Buffer): string {
  return engineKey.toString('latin1', 1 + SESSION_PREFIX.length);
}

/** The metadata name from a cluster metadata engine key. */
export function clusterMetaNameOf(engineKey: Buffer): string {
  return engineKey.toString('latin1', 1 + CLUSTER_META_PREFIX.length);
}

// ---- transactions (src/kv/txn.ts) ----------------------------------------------------------
const LOCK_PREFIX = metaKey('l/');
const TXN_RECORD_PREFIX = 't/';

/** The engine key of the transaction lock on user key `key` (lock keys sort as their user keys do). */
export function lockKey(key: Uint8Array): Buffer {
  const engineKey = Buffer.allocUnsafe(LOCK_PREFIX.length + key.length);
  LOCK_PREFIX.copy(engineKey, 0);
  engineKey.set(key, LOCK_PREFIX.length);
  return engineKey;
}

/** The user key of a lock's engine key (a view). */
export function userKeyOfLock(engineKey: Buffer): Buffer {
  return engineKey.subarray(LOCK_PREFIX.length);
}

/** The range of every lock key. */
export const LOCK_RANGE = { gte: LOCK_PREFIX, lt: metaKey('l0') } as const; // '0' follows '/'

/** The engine key of transaction `txnId`'s record. */
export function txnRecordKey(txnId: string): Buffer {
  return metaKey(TXN_RECORD_PREFIX + txnId);
}

/** True when `engineKey` is a lock's. */
export function isLockKey(engineKey: Uint8Array): boolean {
  return engineKey.length > LOCK_PREFIX.length && Buffer.from(engineKey.buffer, engineKey.byteOffset, LOCK_PREFIX.length).equals(LOCK_PREFIX);
}

/** True when `engineKey` is a transaction record's. */
export function isTxnRecordKey(engineKey: Uint8Array): boolean {
  const prefix = metaKey(TXN_RECORD_PREFIX);
  return engineKey.length > prefix.length && Buffer.from(engineKey.buffer, engineKey.byteOffset, prefix.length).equals(prefix);
}

/** The transaction id of a record's engine key. */
export function txnIdOfRecordKey(engineKey: Buffer): string {
  return engineKey.toString('latin1', 1 + TXN_RECORD_PREFIX.length);
}

/** The range of every transaction record. */
export const TXN_RECORD_RANGE = { gte: metaKey(TXN_RECORD_PREFIX), lt: metaKey('t0') } as const;

/** The engine key of user key `key`. */
export function dataKey(key: Uint8Array): Buffer {
  const engineKey = Buffer.allocUnsafe(1 + key.length);
  engineKey[0] = DATA_PREFIX;
  engineKey.set(key, 1);
  return engineKey;
}

const DATA_PREFIX_LATIN1 = String.fromCharCode(DATA_PREFIX);

/** `dataKey` for a key held as a latin1 string (one char per byte): the engine key as such a string. */
export function dataKeyLatin1(keyLatin1: string): string {
  return DATA_PREFIX_LATIN1 + keyLatin1;
}

/** The user key of a data engine key (a view, no copy). */
export function userKeyOf(engineKey: Buffer): Buffer {
  return engineKey.subarray(1);
}

/** True when `engineKey` is a data key. */
export function isDataKey(engineKey: Uint8Array): boolean {
  return engineKey.length > 1 && engineKey[0] === DATA_PREFIX;
}

/** True when `engineKey` is a metadata key. */
export function isMetaKey(engineKey: Uint8Array): boolean {
  return engineKey.length > 1 && engineKey[0] === META_PREFIX;
}

/**
 * Translates a range over user keys into the same range over their engine
 * keys: bounds get the data prefix; an absent bound becomes the edge of the
 * data prefix, so the scan never leaves it.
 */
export function dataRange(options: RangeOptions): RangeOptions {
  const { gte, gt, lt, lte, reverse, limit } = options;
  return {
    ...(gte !== undefined ? { gte: dataKey(gte) } : gt !== undefined ? { gt: dataKey(gt) } : { gte: DATA_START }),
    ...(lt !== undefined ? { lt: dataKey(lt) } : lte !== undefined ? { lte: dataKey(lte) } : { lt: DATA_END }),
    ...(reverse !== undefined ? { reverse } : {}),
    limit,
  };
}
