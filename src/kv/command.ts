/**
 * Write commands: what goes into the Raft log and what the state machine
 * applies (the local service applies them too, without the log).
 *
 * A command is an atomic list of ops (`put` key value, `del` key), each with an
 * optional condition, plus an optional client session for deduplication:
 *   - `{ifRevision: n}` holds when the key exists with revision n;
 *   - `{ifAbsent: true}` holds when the key does not exist (on a delete, a
 *     guard: the delete of an absent key changes nothing).
 * Conditions are checked against the state BEFORE the command (every op's
 * condition sees the same state); if any fails, the command changes nothing.
 *
 * Encoding (`encodeCommand`): one version byte (COMMAND_FORMAT) and a msgpack
 * array `[ops, session]`, op = `[type (0 put, 1 del), key, value | null,
 * condition]` with condition null (none), 0 (ifAbsent) or n >= 1 (ifRevision),
 * session = null or `[clientId, seq, ackedBelow]` (ackedBelow 0 when absent).
 * `decodeCommand` treats its input as untrusted: anything malformed or over
 * the limits is IMPULSE_ERR_COMMAND_INVALID, never an exception from deep inside.
 */
import { Packr } from 'msgpackr';
import { type ErrorCode, ImpulseError, isImpulseError } from '../errors.js';

export type Condition = { readonly ifRevision: number } | { readonly ifAbsent: true };

export type KvOp =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array; readonly condition?: Condition }
  | { readonly type: 'del'; readonly key: Uint8Array; readonly condition?: Condition };

/**
 * A client session (Raft dissertation §6.3): `clientId` names the client,
 * `seq` numbers its writes (1, 2, ...; a retry reuses the number), and
 * `ackedBelow`, when given, says the client has its answers for every seq
 * below it, so their remembered results may be forgotten.
 */
export interface Session {
  readonly clientId: string;
  readonly seq: number;
  readonly ackedBelow?: number;
}

export interface KvCommand {
  readonly ops: readonly KvOp[];
  readonly session?: Session;
}

/** The user-facing limits every command and read is checked against. */
export interface KvLimits {
  /** Longest user key in bytes. */
  readonly keyBytesMax: number;
  /** Longest user value in bytes. */
  readonly valueBytesMax: number;
  /** Most ops in one command. */
  readonly batchOpsMax: number;
  /** Most key + value bytes in one command. */
  readonly batchBytesMax: number;
  /** Largest `limit` of one range read. */
  readonly rangeLimitMax: number;
}

export const COMMAND_FORMAT = 1;
const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: false, int64AsType: 'number' });

/**
 * Checks a command against `limits`; returns its key + value bytes. Errors:
 * IMPULSE_ERR_KEY_EMPTY / KEY_TOO_LARGE / VALUE_TOO_LARGE / BATCH_TOO_LARGE /
 * BATCH_INVALID (malformed op) / CONDITION_INVALID / SESSION_INVALID.
 */
export function validateCommand(command: KvCommand, limits: KvLimits): number {
  if (command === null || typeof command !== 'object' || !Array.isArray(command.ops)) {
    throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', 'a command carries an array of ops');
  }
  const { ops } = command;
  if (ops.length > limits.batchOpsMax) {
    throw new ImpulseError('IMPULSE_ERR_BATCH_TOO_LARGE', `batch has ${ops.length} operations; the limit is ${limits.batchOpsMax}`);
  }
  let bytes = 0;
  for (let index = 0; index < ops.length; index++) bytes += validateOp(ops[index], index, limits);
  if (bytes > limits.batchBytesMax) {
    throw new ImpulseError('IMPULSE_ERR_BATCH_TOO_LARGE', `batch carries ${bytes} bytes; the limit is ${limits.batchBytesMax}`);
  }
  if (command.session !== undefined) validateSession(command.session);
  return bytes;
}

function validateOp(op: KvOp | undefined, index: number, limits: KvLimits): number {
  if (op === null || typeof op !== 'object') throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `op ${index} is not an object`);
  if (op.type !== 'put' && op.type !== 'del') throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `op ${index} has unknown type ${JSON.stringify(String((op as { type: unknown }).type))}`);
  const { key } = op;
  if (!(key instanceof Uint8Array)) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `op ${index}: a key must be bytes`);
  if (key.length === 0) throw new ImpulseError('IMPULSE_ERR_KEY_EMPTY');
  if (key.length > limits.keyBytesMax) throw new ImpulseError('IMPULSE_ERR_KEY_TOO_LARGE', `key is ${key.length} bytes; the limit is ${limits.keyBytesMax}`);
  let bytes = key.length;
  if (op.type === 'put') {
    if (!(op.value instanceof Uint8Array)) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `op ${index}: a value must be bytes`);
    if (op.value.length > limits.valueBytesMax) {
      throw new ImpulseError('IMPULSE_ERR_VALUE_TOO_LARGE', `value is ${op.value.length} bytes; the limit is ${limits.valueBytesMax}`);
    }
    bytes += op.value.length;
  }
  if (op.condition !== undefined) validateCondition(op.condition, index);
  return bytes;
}

function validateCondition(condition: Condition, index: number): void {
  if (condition === null || typeof condition !== 'object') throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', `op ${index}: a condition is an object`);
  const keys = Object.keys(condition);
  if (keys.length === 1 && keys[0] === 'ifRevision') {
    const { ifRevision } = condition as { ifRevision: unknown };
    if (!isRevision(ifRevision)) throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', `op ${index}: ifRevision must be an integer from 1 to 2^53-1`);
    return;
  }
  // ifAbsent on a delete is a guard: the op changes nothing, but the command applies only if the key
  // is still absent (the Redis front end's DEL needs it to count deleted keys exactly).
  if (keys.length === 1 && keys[0] === 'ifAbsent' && (condition as { ifAbsent: unknown }).ifAbsent === true) return;
  throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', `op ${index}: a condition is {ifRevision: n} or {ifAbsent: true}`);
}

/** Checks a session: client id of 1-64 characters [A-Za-z0-9_-], seq >= 1, 1 <= ackedBelow <= seq. */
export function validateSession(session: Session): void {
  if (session === null || typeof session !== 'object') throw new ImpulseError('IMPULSE_ERR_SESSION_INVALID', 'a session is an object');
  if (typeof session.clientId !== 'string' || !CLIENT_ID.test(session.clientId)) {
    throw new ImpulseError('IMPULSE_ERR_SESSION_INVALID', 'a client id is 1 to 64 characters of A-Z a-z 0-9 _ -');
  }
  if (!isRevision(session.seq)) throw new ImpulseError('IMPULSE_ERR_SESSION_INVALID', 'a client sequence number is an integer from 1 to 2^53-1');
  if (session.ackedBelow !== undefined && (!isRevision(session.ackedBelow) || session.ackedBelow > session.seq)) {
    throw new ImpulseError('IMPULSE_ERR_SESSION_INVALID', 'the acknowledged-below mark is an integer from 1 to the sequence number');
  }
}

function isRevision(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

/** The log entry bytes of a valid command (see the file comment for the layout). */
export function encodeCommand(command: KvCommand): Buffer {
  const ops = command.ops.map(encodeOp);
  const body = packr.pack([ops, encodeSession(command.session)]);
  const bytes = Buffer.allocUnsafe(1 + body.length);
  bytes[0] = COMMAND_FORMAT;
  bytes.set(body, 1);
  return bytes;
}

/** One op as the log holds it: `[type, key, value | null, condition]` (the file comment); `decodeOp` reads it back. */
export function encodeOp(op: KvOp): unknown[] {
  return [op.type === 'put' ? 0 : 1, op.key, op.type === 'put' ? op.value : null, encodeCondition(op.condition)];
}

function encodeCondition(condition: Condition | undefined): number | null {
  if (condition === undefined) return null;
  return 'ifRevision' in condition ? condition.ifRevision : 0;
}

/** A session as the log holds it: `[clientId, seq, ackedBelow]` (0 when absent), or null. */
export function encodeSession(session: Session | undefined): unknown[] | null {
  return session === undefined ? null : [session.clientId, session.seq, session.ackedBelow ?? 0];
}

/** Decodes untrusted log entry bytes into a valid command, or throws IMPULSE_ERR_COMMAND_INVALID. */
export function decodeCommand(bytes: Uint8Array, limits: KvLimits): KvCommand {
  if (!(bytes instanceof Uint8Array) || bytes.length < 2) throw invalid('it is shorter than two bytes');
  if (bytes[0] !== COMMAND_FORMAT) throw invalid(`its format byte is ${bytes[0]}, this impulse reads ${COMMAND_FORMAT}`);
  let body: unknown;
  try {
    body = packr.unpack(Buffer.from(bytes.buffer, bytes.byteOffset + 1, bytes.length - 1));
  } catch (error) {
    throw invalid(`it is not msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(body) || body.length !== 2 || !Array.isArray(body[0])) throw invalid('it is not [ops, session]');
  const [rawOps, rawSession] = body as [unknown[], unknown];
  if (rawOps.length > limits.batchOpsMax) throw invalid(`it has ${rawOps.length} ops; the limit is ${limits.batchOpsMax}`);
  const ops = rawOps.map(decodeOp);
  const command: KvCommand = rawSession === null ? { ops } : { ops, session: decodeSession(rawSession) };
  try {
    validateCommand(command, limits);
  } catch (error) {
    if (isImpulseError(error)) throw invalid(error.message, error.code);
    throw error;
  }
  return command;
}

/** An op from its untrusted log form (`encodeOp`); IMPULSE_ERR_COMMAND_INVALID when malformed (limits unchecked: `validateCommand`). */
export function decodeOp(raw: unknown, index: number): KvOp {
  if (!Array.isArray(raw) || raw.length !== 4) throw invalid(`op ${index} is not [type, key, value, condition]`);
  const [type, key, value, rawCondition] = raw as [unknown, unknown, unknown, unknown];
  if (!(key instanceof Uint8Array)) throw invalid(`op ${index}: the key is not bytes`);
  let condition: Condition | undefined;
  if (rawCondition === 0) condition = { ifAbsent: true };
  else if (typeof rawCondition === 'number') condition = { ifRevision: rawCondition };
  else if (rawCondition !== null) throw invalid(`op ${index}: the condition is not null or a number`);
  const withCondition = condition === undefined ? {} : { condition };
  if (type === 0) {
    if (!(value instanceof Uint8Array)) throw invalid(`op ${index}: a put's value is not bytes`);
    return { type: 'put', key, value, ...withCondition };
  }
  if (type === 1 && value === null) return { type: 'del', key, ...withCondition };
  throw invalid(`op ${index}: type ${String(type)} with ${value === null ? 'no' : 'a'} value is neither a put nor a delete`);
}

/** A session from its untrusted log form `[clientId, seq, ackedBelow]` (types only; `validateSession` checks the values). */
export function decodeSession(raw: unknown): Session {
  if (!Array.isArray(raw) || raw.length !== 3) throw invalid('the session is not [clientId, seq, ackedBelow]');
  const [clientId, seq, ackedBelow] = raw as [unknown, unknown, unknown];
  if (typeof clientId !== 'string' || typeof seq !== 'number' || typeof ackedBelow !== 'number') throw invalid('the session fields have the wrong types');
  return ackedBelow === 0 ? { clientId, seq } : { clientId, seq, ackedBelow };
}

function invalid(reason: string, code?: ErrorCode): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', `the command cannot be applied: ${reason}${code === undefined ? '' : ` (${code})`}`);
}
