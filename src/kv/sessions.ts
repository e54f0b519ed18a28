/**
 * Client sessions: at-most-once writes across client retries (Raft
 * dissertation §6.3). A write carrying a session (client id, seq) that was
 * already applied is answered with the result remembered for it and applied
 * no second time.
 *
 * What is remembered, per client (one record `0x01 s/<client id>`):
 *   - `results`: seq → the command's result, for every applied seq >= `floor`;
 *   - `floor`: seqs below it are forgotten. It only rises, to the largest of
 *       (a) the client's own `ackedBelow` (it has the answers below it), and
 *       (b) seq - windowSeqs + 1 for any applied seq (the WINDOW: at most
 *           `windowSeqs` results per client, whatever the client sends);
 *   - `lastIndex`: the log index of the client's last applied write.
 * A write whose seq is below the floor is refused (IMPULSE_ERR_SESSION_EXPIRED)
 * rather than applied: it may be a retry of something applied long ago.
 *
 * Bounds: at most `clientsMax` sessions. A new client beyond that evicts the
 * session with the smallest `lastIndex` (least recently written). Everything
 * here depends only on the applied commands and their indexes, never on time
 * or randomness, so every replica evolves the table identically.
 *
 * Known limit: a client whose session was evicted (clientsMax other clients
 * wrote since its last write) is unknown again, so a retry of its last write
 * would be applied a second time. With the defaults that needs 4,096 other
 * clients to write between a request and its retry.
 *
 * Changes are staged per engine batch: `begin()`, `check`/`record` as commands
 * apply, `pendingOps()` to persist them with the batch, then `commit()` once
 * the engine batch is written or `rollback()` when it failed.
 */
import { Packr } from 'msgpackr';
import { ImpulseError } from '../errors.js';
import type { WriteOp } from '../storage/engine.js';
import { assert } from '../util/assert.js';
import type { Session } from './command.js';
import { sessionKey } from './keyspace.js';

export interface SessionLimits {
  /** Results remembered per client: seqs more than this far below the client's newest are forgotten. Default 256. */
  readonly windowSeqs: number;
  /** Most client sessions; the least recently written is evicted beyond it. Default 4,096. */
  readonly clientsMax: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = Object.freeze({ windowSeqs: 256, clientsMax: 4096 });

/** What a write command produced. */
export type CommandResult =
  | { readonly ok: true; readonly revision: number }
  | { readonly ok: false; readonly failed: { readonly op: number; readonly key: Buffer; readonly revision: number | null } };

export type SessionCheck =
  | { readonly kind: 'new' }
  | { readonly kind: 'duplicate'; readonly result: CommandResult }
  | { readonly kind: 'expired'; readonly floor: number };

interface SessionState {
  floor: number;
  lastIndex: number;
  readonly results: Map<number, CommandResult>;
}

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: false, int64AsType: 'number' });

export class SessionTable {
  private readonly sessions = new Map<string, SessionState>();
  /** While a batch is staged: each changed client's state before the batch (undefined: it had none). */
  private undo: Map<string, SessionState | undefined> | undefined;
  /** The one map `undo` uses, cleared after each batch (a batch per write on a quiet node: no allocation each time). */
  private readonly spareUndo = new Map<string, SessionState | undefined>();

  constructor(readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS) {
    assert(Number.isSafeInteger(limits.windowSeqs) && limits.windowSeqs >= 1, 'session window must be a positive integer', limits.windowSeqs);
    assert(Number.isSafeInteger(limits.clientsMax) && limits.clientsMax >= 1, 'session client bound must be a positive integer', limits.clientsMax);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Loads one persisted session (at open). `where` names the record in corruption errors. */
  load(clientId: string, record: Buffer, where: string): void {
    this.sessions.set(clientId, decodeSession(record, where));
  }

  /** Whether `session`'s seq is new, already applied (with its result), or forgotten. */
  check(session: Session): SessionCheck {
    const state = this.sessions.get(session.clientId);
    if (state === undefined) return { kind: 'new' };
    if (session.seq < state.floor) return { kind: 'expired', floor: state.floor };
    const result = state.results.get(session.seq);
    return result === undefined ? { kind: 'new' } : { kind: 'duplicate', result };
  }

  begin(): void {
    assert(this.undo === undefined, 'session batch begun twice');
    this.undo = this.spareUndo;
  }

  /** Remembers the result of `session`'s write, applied at log `index`. Requires `check` = new, inside a batch. */
  record(session: Session, index: number, result: CommandResult): void {
    const undo = this.undo;
    assert(undo !== undefined, 'session result recorded outside a batch');
    let state = this.sessions.get(session.clientId);
    if (!undo.has(session.clientId)) undo.set(session.clientId, state === undefined ? undefined : cloneState(state));
    if (state === undefined) {
      if (this.sessions.size >= this.limits.clientsMax) this.evictLeastRecent(undo);
      state = { floor: 1, lastIndex: index, results: new Map() };
      this.sessions.set(session.clientId, state);
    }
    state.results.set(session.seq, result);
    state.lastIndex = index;
    const floor = Math.max(state.floor, session.ackedBelow ?? 1, session.seq - this.limits.windowSeqs + 1);
    if (floor > state.floor) {
      state.floor = floor;
      for (const seq of state.results.keys()) if (seq < floor) state.results.delete(seq);
    }
  }

  /**
   * Merges a session record of another machine (a merged-away shard's) into
   * this table, inside a batch: the union of the results, the higher floor
   * (a seq either side forgot stays refused as expired, never applied
   * twice), the later last index. `where` names the record in corruption errors.
   */
  absorb(clientId: string, record: Buffer, where: string): void {
    const undo = this.undo;
    assert(undo !== undefined, 'session absorbed outside a batch');
    const other = decodeSession(record, where);
    const state = this.sessions.get(clientId);
    if (!undo.has(clientId)) undo.set(clientId, state === undefined ? undefined : cloneState(state));
    if (state === undefined && this.sessions.size >= this.limits.clientsMax) this.evictLeastRecent(undo);
    const merged: SessionState = state === undefined ? other : { floor: Math.max(state.floor, other.floor), lastIndex: Math.max(state.lastIndex, other.lastIndex), results: new Map([...other.results, ...state.results]) };
    const newest = Math.max(0, ...merged.results.keys());
    merged.floor = Math.max(merged.floor, newest - this.limits.windowSeqs + 1);
    for (const seq of merged.results.keys()) if (seq < merged.floor) merged.results.delete(seq);
    this.sessions.set(clientId, merged);
  }

  /** Every session as it stands now (pending changes of the open batch included), encoded as its engine record. */
  encodedAll(): Array<{ readonly clientId: string; readonly record: Buffer }> {
    return [...this.sessions].map(([clientId, state]) => ({ clientId, record: encodeSession(state) }));
  }

  /** Appends to `ops` the engine ops that persist the staged changes: a put per changed client, a delete per evicted one. */
  appendPendingOps(ops: WriteOp[]): void {
    assert(this.undo !== undefined, 'session ops asked for outside a batch');
    if (this.undo.size === 0) return;
    for (const clientId of this.undo.keys()) {
      const state = this.sessions.get(clientId);
      ops.push(state === undefined ? { type: 'del', key: sessionKey(clientId) } : { type: 'put', key: sessionKey(clientId), value: encodeSession(state) });
    }
  }

  /** The staged changes are persisted: keep them. */
  commit(): void {
    this.undo?.clear();
    this.undo = undefined;
  }

  /** The engine batch failed: restore every session as it was at `begin()`. */
  rollback(): void {
    const undo = this.undo;
    assert(undo !== undefined, 'session rollback outside a batch');
    for (const [clientId, state] of undo) {
      if (state === undefined) this.sessions.delete(clientId);
      else this.sessions.set(clientId, state);
    }
    undo.clear();
    this.undo = undefined;
  }

  private evictLeastRecent(undo: Map<string, SessionState | undefined>): void {
    let oldest: string | undefined;
    let oldestIndex = Infinity;
    for (const [clientId, state] of this.sessions) {
      if (state.lastIndex < oldestIndex) {
        oldest = clientId;
        oldestIndex = state.lastIndex;
      }
    }
    assert(oldest !== undefined, 'eviction from an empty session table');
    if (!undo.has(oldest)) undo.set(oldest, this.sessions.get(oldest));
    this.sessions.delete(oldest);
  }
}

function cloneState(state: SessionState): SessionState {
  return { floor: state.floor, lastIndex: state.lastIndex, results: new Map(state.results) };
}

/** `[floor, lastIndex, results]`, a result being `[seq, revision]` (ok) or `[seq, op, key, revision | null]` (failed). */
function encodeSession(state: SessionState): Buffer {
  const results: unknown[] = [];
  for (const [seq, result] of state.results) {
    results.push(result.ok ? [seq, result.revision] : [seq, result.failed.op, result.failed.key, result.failed.revision]);
  }
  return packr.pack([state.floor, state.lastIndex, results]);
}

function decodeSession(record: Buffer, where: string): SessionState {
  const corrupt = (what: string): ImpulseError => new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `${where}: session record ${what}`);
  let raw: unknown;
  try {
    raw = packr.unpack(record);
  } catch (error) {
    throw corrupt(`is not msgpack (${(error as Error).message})`);
  }
  if (!Array.isArray(raw) || raw.length !== 3 || !Array.isArray(raw[2])) throw corrupt('is not [floor, lastIndex, results]');
  const [floor, lastIndex, rawResults] = raw as [unknown, unknown, unknown[]];
  if (!isCount(floor) || !isCount(lastIndex)) throw corrupt('has a bad floor or index');
  const results = new Map<number, CommandResult>();
  for (const item of rawResults) {
    if (Array.isArray(item) && item.length === 2 && isCount(item[0]) && isCount(item[1])) {
      results.set(item[0], { ok: true, revision: item[1] });
    } else if (Array.isArray(item) && item.length === 4 && isCount(item[0]) && isCount(item[1]) && item[2] instanceof Uint8Array && (item[3] === null || isCount(item[3]))) {
      results.set(item[0], { ok: false, failed: { op: item[1], key: Buffer.from(item[2]), revision: item[3] as number | null } });
    } else {
      throw corrupt('has a malformed result');
    }
  }
  return { floor, lastIndex, results };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
