/**
 * Transactions across shards on one member (docs/sharding.md "Transactions
 * across shards"; the state machine side: src/kv/txn.ts): the COORDINATOR of
 * a batch whose keys lie in several shards, and the RESOLVER of locks that
 * readers, writers and the background sweep meet.
 *
 * Coordinating a batch (`commit`):
 *   1. a transaction id unique in the cluster (`<node id>-<boot nonce>-<counter>`),
 *      the primary key (the batch's first key) and the time it began (this
 *      member's clock);
 *   2. `prepare` to every touched shard, in parallel, each with its own ops
 *      (never repeated: a prepare of unknown outcome aborts the transaction);
 *   3. when all answered ok and less than half the lock TTL has passed
 *      (COMMIT DEADLINE, below), `commit` in the primary key's shard: the
 *      commit point. Any refusal before it: `abort` there, `resolve` (abort)
 *      everywhere, and the first refusal is the answer (a failed condition as
 *      IMPULSE_ERR_PRECONDITION_FAILED with the op's index in the batch);
 *      A batch under a client session carries it in the commit: the primary's
 *      shard remembers the result like any write's, and a retry of the same
 *      seq (a new transaction) is aborted there and answered the first result
 *      (the coordinator reads the record to tell the two apart);
 *   4. `resolve` (commit) in every other shard, then `forget` the record;
 *      the client is answered only then, so its next request finds no lock
 *      of it. A resolve that fails leaves locks that readers and the sweep
 *      resolve forward (the record stays until then).
 *   The answer's revision is the primary shard's commit entry's; the keys of
 *   the other shards get their shard's resolve revision (revisions are per
 *   shard).
 *
 * Meeting a lock (`resolveLock`), as a reader, a writer or the sweep:
 *   the record at the primary key's shard (a linearizable read) decides —
 *   committed: `resolve` (commit) the key; aborted: `resolve` (abort);
 *   absent: the transaction is pending, unless this member has seen the lock
 *   for longer than the TTL (its own clock: no clocks are compared across
 *   members), then it is abandoned: `abort` at the primary (which writes
 *   `aborted` unless `committed` is there), and the record read again decides.
 *   A reader that meets a pending lock reads again, and answers the value
 *   before the lock when the lock is STILL there: a record is forgotten
 *   only after every lock of its transaction is resolved, so a lock seen
 *   after the record was read absent means the transaction had not
 *   committed when the record was read; the key kept its value while locked,
 *   so that value is the linearizable answer at that moment. (Answering the
 *   first read at once would be wrong: the transaction may have committed,
 *   resolved and forgotten its record between the two reads.)
 *
 * COMMIT DEADLINE: another member aborts a transaction only after it saw one
 * of its locks for a whole TTL, i.e. at least a TTL after the transaction
 * began; the coordinator proposes the commit only within TTL/2 of the begin.
 * So a prepare that lands after an abort (it was slow) can never be followed
 * by a commit, and an aborted record need not be kept to stop one (it is
 * forgotten with the rest). Assumes members' clocks run at about the same
 * rate (not that they agree).
 */
import { randomBytes } from 'node:crypto';
import { ImpulseError, isImpulseError } from '../errors.js';
import type { KvCommand, KvOp } from '../kv/command.js';
import { type TxnCommand, type TxnDecision, type TxnRecord, encodeTxnCommand } from '../kv/txn.js';
import type { WriteOutcome } from '../service/kv-service.js';
import { type Shard, type ShardMap, shardFor } from '../shard/shard-map.js';
import type { Clock } from '../util/clock.js';
import { classifyFailure } from './request-errors.js';
import type { LockSeen } from './shard-reads.js';

/** How long a member waits, seeing a lock, before it aborts the lock's transaction as abandoned. Default (`--txn-lock-ttl-ms`). */
export const TXN_LOCK_TTL_MS = 10_000;
/** The bounds of `--txn-lock-ttl-ms`: below 100 ms a coordinator's commit deadline (half of it) is shorter than a few Raft rounds; above an hour a dead coordinator's locks would block their keys that long. */
export const TXN_LOCK_TTL_MS_MIN = 100;
export const TXN_LOCK_TTL_MS_MAX = 3_600_000;
/** Most transactions whose locks this member remembers first seeing (the oldest forgotten first). */
const OBSERVED_MAX = 10_000;
/** Most locks one sweep round resolves, and most records it finishes. */
const SWEEP_LOCKS_MAX = 64;
const SWEEP_RECORDS_MAX = 16;

/** What the coordinator and resolver need of the sharded service. */
export interface ShardTxnPort {
  /** The map requests are routed by (refuses while closing). */
  map(): ShardMap;
  /** Proposes transaction command bytes to `shard` (its group here or a remote replica); `retrySafe`: may be repeated on an unknown outcome. */
  propose(shard: Shard, bytes: Uint8Array, retrySafe: boolean): Promise<WriteOutcome>;
  /** What `txnId`'s record at `shard` (holding `primaryKey`) says, linearizable (undefined: no record). */
  status(shard: Shard, txnId: string, primaryKey: Uint8Array): Promise<TxnDecision | undefined>;
  /** The locks within their bounds of the shard groups this member leads, at most `limit`. */
  ledLocks(limit: number): LockSeen[];
  /** The transaction records within their bounds of the shard groups this member leads, at most `limit`. */
  ledRecords(limit: number): Promise<Array<{ readonly txnId: string; readonly record: TxnRecord }>>;
}

export interface ShardTxnsOptions {
  readonly nodeId: number;
  readonly clock: Clock;
  /** Lock TTL, ms (TXN_LOCK_TTL_MS). */
  readonly lockTtlMs?: number;
  /** Pause between two sweeps of the locks of the groups this member leads, ms (0: no sweep). */
  readonly sweepIntervalMs?: number;
}

/** This member's transaction figures since it started (for /metrics). */
export interface TxnCounters {
  started: number;
  committed: number;
  aborted: number;
  locksResolved: number;
  abandonedAborted: number;
}

export class ShardTxns {
  readonly counters: TxnCounters = { started: 0, committed: 0, aborted: 0, locksResolved: 0, abandonedAborted: 0 };
  /** Makes ids unique across this member's restarts (the counter starts again at 0). Not core logic: an id only needs to be unique. */
  private readonly nonce = randomBytes(6).toString('hex');
  private counter = 0;
  /** When this member first saw a lock of each transaction (its clock), oldest first. */
  private readonly observed = new Map<string, number>();
  private readonly ttlMs: number;
  private sweepTimer: { cancel(): void } | undefined;
  private closed = false;

  constructor(
    private readonly port: ShardTxnPort,
    private readonly options: ShardTxnsOptions,
  ) {
    this.ttlMs = options.lockTtlMs ?? TXN_LOCK_TTL_MS;
    this.scheduleSweep();
  }

  close(): void {
    this.closed = true;
    this.sweepTimer?.cancel();
  }

  /** Commits `command` (valid; its keys in the shards `touched` of `map`, two or more) atomically. See the file comment. */
  async commit(command: KvCommand, map: ShardMap): Promise<WriteOutcome> {
    const { clock } = this.options;
    const began = clock.now();
    const txnId = `${this.options.nodeId}-${this.nonce}-${++this.counter}`;
    this.counters.started++;
    const primaryKey = command.ops[0]!.key;
    const parts = partsByShard(command.ops, map);
    const primary = parts.find((part) => part.shard.id === shardFor(map, primaryKey).id)!;
    const prepare = (part: Part): TxnCommand => ({ kind: 'prepare', txnId, primaryKey, createdAtMs: Math.max(0, Math.round(began)), ops: part.ops.map(({ op }) => op) });
    const prepared = await Promise.allSettled(parts.map((part) => this.port.propose(part.shard, encodeTxnCommand(prepare(part)), false)));
    const refused = prepared.findIndex((outcome) => outcome.status === 'rejected');
    if (refused >= 0 || clock.now() - began > this.ttlMs / 2) {
      const status = (await this.rollBack(txnId, primaryKey, primary, parts))?.status;
      const reason: unknown = refused < 0 ? undefined : (prepared[refused] as PromiseRejectedResult).reason;
      // A prepare of unknown outcome, or one too late: once the record says aborted, nothing of it applies.
      if (refused < 0 || (classifyFailure(reason) === 'unknown' && status === 'aborted')) {
        throw new ImpulseError('IMPULSE_ERR_TXN_ABORTED', `transaction ${txnId} did not prepare in every shard within ${this.ttlMs / 2} ms, or a prepare's outcome was unknown; it was aborted and nothing of it was applied`, { details: { txn: txnId } });
      }
      throw inBatchTerms(reason, parts[refused]!);
    }
    const keys = (part: Part): Uint8Array[] => part.ops.map(({ op }) => op.key);
    const otherKeys = parts.filter((part) => part !== primary).flatMap(keys);
    const { session } = command;
    let outcome = await this.decide(txnId, primaryKey, primary, { kind: 'commit', txnId, primaryKey, keys: keys(primary), otherKeys, ...(session !== undefined ? { session } : {}) });
    if ('refused' in outcome) {
      const decision = await this.rollBack(txnId, primaryKey, primary, parts);
      // The record has the last word: a refusal the proposal path took for "no effect" must not be
      // answered for a transaction whose commit applied after all (readers roll it forward).
      if (decision?.status !== 'committed') throw outcome.refused;
      outcome = { revision: decision.revision ?? 0 };
    }
    // Under a session, an ok may be the answer of an earlier attempt of the same client write (the commit then aborted this one): the record tells.
    if (session !== undefined) {
      let decision: TxnDecision | undefined;
      try {
        decision = await this.port.status(primary.shard, txnId, primaryKey);
      } catch {
        // The record cannot be read now (its replica closed under the read: a move, a merge). The write took effect —
        // this commit or an earlier attempt's — so the answer is ok, never a refusal; this transaction's locks are left
        // to readers and the sweep, which go by the record (resolving them here could apply a value the record never committed).
        return outcome;
      }
      if (decision?.status !== 'committed') {
        await this.rollBack(txnId, primaryKey, primary, parts);
        return outcome;
      }
    }
    this.counters.committed++;
    const resolved = await Promise.allSettled(parts.filter((part) => part !== primary).map((part) => this.send(part.shard, { kind: 'resolve', txnId, commit: true, keys: keys(part) })));
    if (resolved.every((each) => each.status === 'fulfilled')) await this.send(primary.shard, { kind: 'forget', txnId, primaryKey }).catch(() => undefined);
    return { revision: outcome.revision };
  }

  /**
   * Proposes the commit. A refusal that surely changed nothing (aborted,
   * keys left the shard) is returned as `refused`; on an unknown outcome
   * the transaction is decided by an abort (which loses to a commit already
   * applied) and the record read.
   */
  private async decide(txnId: string, primaryKey: Uint8Array, primary: Part, commit: TxnCommand): Promise<WriteOutcome | { refused: unknown }> {
    try {
      return await this.port.propose(primary.shard, encodeTxnCommand(commit), false);
    } catch (error) {
      if (classifyFailure(error) !== 'unknown') return { refused: error }; // nothing applied, or the state machine's answer
      const decision = await this.decideByAbort(txnId, primaryKey, primary.shard).catch(() => undefined);
      if (decision?.status === 'committed') return { revision: decision.revision ?? 0 }; // committed by the first proposal: its revision is in the record (0 from a member that did not keep it)
      if (decision?.status === 'aborted') return { refused: new ImpulseError('IMPULSE_ERR_TXN_ABORTED', `transaction ${txnId}: its commit's outcome was unknown and it was aborted; nothing of it was applied`, { details: { txn: txnId } }) };
      throw error; // cannot tell: the outcome stays unknown (readers and the sweep resolve its locks either way)
    }
  }

  /** Aborts at the primary unless committed, and reads the decision. */
  private async decideByAbort(txnId: string, primaryKey: Uint8Array, shard: Shard): Promise<TxnDecision | undefined> {
    await this.send(shard, { kind: 'abort', txnId, primaryKey });
    return this.port.status(shard, txnId, primaryKey);
  }

  /**
   * Aborts the transaction at the primary, drops its locks everywhere and forgets the record (best
   * effort: what fails is left to the sweep). Answers the decision read after the abort: 'committed'
   * when a commit won (nothing is dropped then).
   */
  private async rollBack(txnId: string, primaryKey: Uint8Array, primary: Part, parts: readonly Part[]): Promise<TxnDecision | undefined> {
    this.counters.aborted++;
    const decision = await this.decideByAbort(txnId, primaryKey, primary.shard).catch(() => undefined);
    if (decision?.status !== 'aborted') return decision;
    const dropped = await Promise.allSettled(parts.map((part) => this.send(part.shard, { kind: 'resolve', txnId, commit: false, keys: part.ops.map(({ op }) => op.key) })));
    if (dropped.every((each) => each.status === 'fulfilled')) await this.send(primary.shard, { kind: 'forget', txnId, primaryKey }).catch(() => undefined);
    return decision;
  }

  /**
   * Settles the locks of one transaction a read, a write or the sweep met in
   * one shard (`locks`: same txnId and primary key, keys of one shard, at
   * most batchOpsMax): 'resolved' when they are gone now (read again),
   * 'pending' when the transaction is undecided and not abandoned (a reader
   * answers the values before it).
   */
  async resolveLocks(locks: readonly LockSeen[]): Promise<'resolved' | 'pending'> {
    const [lock] = locks;
    if (lock === undefined) return 'resolved';
    const map = this.port.map();
    const primaryShard = shardFor(map, lock.primaryKey);
    let status = (await this.port.status(primaryShard, lock.txnId, lock.primaryKey))?.status;
    if (status === undefined) {
      if (!this.abandoned(lock.txnId)) return 'pending';
      status = (await this.decideByAbort(lock.txnId, lock.primaryKey, primaryShard))?.status;
      if (status === 'aborted') this.counters.abandonedAborted++;
      if (status === undefined) return 'pending';
    }
    await this.send(shardFor(map, lock.key), { kind: 'resolve', txnId: lock.txnId, commit: status === 'committed', keys: locks.map((each) => each.key) });
    this.counters.locksResolved += locks.length;
    this.observed.delete(lock.txnId);
    return 'resolved';
  }

  /** `resolveLocks` for each transaction among `locks` (met in one shard); the ids of those found pending. */
  async resolveAll(locks: readonly LockSeen[], keysMax: number): Promise<Set<string>> {
    const pending = new Set<string>();
    for (const group of byTransaction(locks, keysMax)) if ((await this.resolveLocks(group)) === 'pending') pending.add(group[0]!.txnId);
    return pending;
  }

  /** True once this member has seen a lock of `txnId` for a whole TTL (it starts counting now if it had not). */
  private abandoned(txnId: string): boolean {
    const now = this.options.clock.now();
    const first = this.observed.get(txnId);
    if (first !== undefined) return now - first >= this.ttlMs;
    if (this.observed.size >= OBSERVED_MAX) this.observed.delete(this.observed.keys().next().value!);
    this.observed.set(txnId, now);
    return false;
  }

  private send(shard: Shard, command: TxnCommand): Promise<WriteOutcome> {
    return this.port.propose(shard, encodeTxnCommand(command), true); // resolve, abort and forget are idempotent
  }

  private scheduleSweep(): void {
    const interval = this.options.sweepIntervalMs ?? 0;
    if (interval <= 0 || this.closed) return;
    this.sweepTimer = this.options.clock.setTimer(interval, () => {
      this.sweep().finally(() => this.scheduleSweep());
    });
  }

  /** One round of the background resolver: the locks (at most SWEEP_LOCKS_MAX) of the groups this member leads. */
  async sweep(): Promise<void> {
    let locks: LockSeen[];
    try {
      locks = this.port.ledLocks(SWEEP_LOCKS_MAX);
    } catch {
      return; // closing, or no map yet
    }
    for (const group of byTransaction(locks, SWEEP_LOCKS_MAX)) {
      if (this.closed) return;
      await this.resolveLocks(group).catch(() => undefined); // tried again next round
    }
    for (const { txnId, record } of await this.port.ledRecords(SWEEP_RECORDS_MAX).catch(() => [])) {
      if (this.closed) return;
      if (this.abandoned(`record:${txnId}`)) await this.finish(txnId, record).catch(() => undefined);
    }
  }

  /**
   * Finishes a transaction whose coordinator left its record (it died after
   * the commit or an abort): resolves every key of a committed one (the
   * record lists them), then forgets the record. Run only on records seen
   * for a whole TTL, so a living coordinator finishes its own first.
   */
  private async finish(txnId: string, record: TxnRecord): Promise<void> {
    if (record.status === 'committed') {
      const map = this.port.map();
      const byShard = new Map<number, { shard: Shard; keys: Buffer[] }>();
      for (const key of record.keys) {
        const shard = shardFor(map, key);
        const entry = byShard.get(shard.id) ?? { shard, keys: [] };
        entry.keys.push(key);
        byShard.set(shard.id, entry);
      }
      for (const { shard, keys } of byShard.values()) await this.send(shard, { kind: 'resolve', txnId, commit: true, keys });
    }
    await this.send(shardFor(this.port.map(), record.primaryKey), { kind: 'forget', txnId, primaryKey: record.primaryKey });
    this.observed.delete(`record:${txnId}`);
  }
}

/** `locks` grouped by transaction, at most `keysMax` keys a group (in the order met). */
function byTransaction(locks: readonly LockSeen[], keysMax: number): LockSeen[][] {
  const groups = new Map<string, LockSeen[][]>();
  for (const lock of locks) {
    const list = groups.get(lock.txnId) ?? [];
    if (list.length === 0 || list[list.length - 1]!.length >= keysMax) list.push([]);
    list[list.length - 1]!.push(lock);
    groups.set(lock.txnId, list);
  }
  return [...groups.values()].flat();
}

interface Part {
  readonly shard: Shard;
  /** The shard's ops, with their index in the batch. */
  readonly ops: ReadonlyArray<{ readonly op: KvOp; readonly index: number }>;
}

function partsByShard(ops: readonly KvOp[], map: ShardMap): Part[] {
  const parts = new Map<number, { shard: Shard; ops: Array<{ op: KvOp; index: number }> }>();
  for (const [index, op] of ops.entries()) {
    const shard = shardFor(map, op.key);
    let part = parts.get(shard.id);
    if (part === undefined) parts.set(shard.id, (part = { shard, ops: [] }));
    part.ops.push({ op, index });
  }
  return [...parts.values()];
}

/** A shard's refusal of its prepare, told in the batch's terms (a failed condition's op index is the batch's). */
function inBatchTerms(error: unknown, part: Part): unknown {
  if (!isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED')) return error;
  const op = error.details?.['op'];
  const index = typeof op === 'number' ? part.ops[op]?.index : undefined;
  if (index === undefined) return error;
  return new ImpulseError('IMPULSE_ERR_PRECONDITION_FAILED', error.message.replace(`op ${op}`, `op ${index}`), { details: { ...error.details, op: index } });
}
