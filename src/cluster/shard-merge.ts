/**
 * A shard merge as the two groups' logs record it (docs/sharding.md
 * "Merges"; TiKV's PrepareMerge / CommitMerge, CockroachDB's subsumption of
 * the right-hand range). Right group R merges into its left neighbour L,
 * both on the same members:
 *
 *   1. the meta group commits the intent (`startMerge`: R.mergeInto = L);
 *   2. R's leader proposes `prepare-merge` in R's log: at apply, R's bounds
 *      become empty (every later command and read is refused with the
 *      retryable stale-route error) and a record `merge-prepared` (L, the
 *      index, R's range, R's highest possible revision) is stored, in one
 *      batch. R's data is frozen from then on;
 *   3. once its own replica of R applied (2), L's leader proposes
 *      `commit-merge` in L's log; at apply, each replica
 *      of L takes R's keys and sessions from its LOCAL replica of R (waiting
 *      for it to apply (2)), widens its bounds and raises its revision base
 *      above R's revisions, in one synced batch, with a record `merged.<R>`;
 *   4. the meta group widens L and drops R (`finishMerge`);
 *   5. each member destroys its replica of R once every replica of L holds
 *      `merged.<R>` (asked over RPC `shard-merge`; never earlier: a replica
 *      of L behind or down may still need its own replica of R, which
 *      catches up from R's group while that lives).
 *
 * A crash anywhere leaves R owning its range (until (3) applies) or L (after),
 * R frozen in between: every step is redone from durable state by whichever
 * member leads (shard-merges.ts).
 *
 * Rollback (TiKV's RollbackMerge), once the map marks the merge `mergeAbort`:
 *
 *   R1. L's leader proposes `abort-merge` (R, attempt) in L's log: applied
 *       while L has not taken R in, it stores `merge-aborted.<R>` = attempt;
 *   R2. once its own replica of L applied (R1), R's leader proposes
 *       `rollback-merge` in R's log: R's bounds come back from its
 *       `merge-prepared` record, the record goes, and `merge-rolled-back` =
 *       attempt is stored (a prepare of that attempt applied later is a no-op);
 *   R3. the map drops R's marks and raises R's epoch (`finishRollback`).
 *
 * THE RULE: L's log decides. `commit-merge` and `abort-merge` of one attempt
 * both need L's range to end where R's starts, and each changes that: the
 * commit widens L, the abort stores a mark that makes every later commit of
 * that attempt (or an earlier one) a no-op. So whichever L's log orders
 * first takes effect, on every replica of L, and the other never does; R
 * unfreezes only after the abort is applied in L (committed, so final).
 * `attempt` is R's epoch at the intent (merges.ts). Neither can be decided
 * without L's group: with L's quorum lost, R stays frozen until it is back.
 */
import type { MergeAbsorb } from '../kv/apply.js';
import type { KvStateMachine } from '../kv/state-machine.js';
import { type ShardBounds, boundsFromHex, boundsHex } from '../shard/shard-map.js';

/** What a merged-away group stores when it applies `prepare-merge` (metadata `merge-prepared`). */
export interface MergePrepared {
  /** The group it merges into (its left neighbour). */
  readonly leftId: number;
  /** The prepare-merge command's index: the group's data is final there. */
  readonly index: number;
  /** The group's bounds before the merge froze them. */
  readonly bounds: ShardBounds;
  /** Above every revision the group ever gave (index + its revision base). */
  readonly revisionTop: number;
  /** The merge's attempt (R's epoch at the intent; 0: a record written before attempts were kept). */
  readonly epoch: number;
}

export const MERGE_PREPARED_META_NAME = 'merge-prepared';
const MERGED_META_PREFIX = 'merged.';
/** A merged-away group's highest rolled-back attempt (decimal). */
export const MERGE_ROLLED_BACK_META_NAME = 'merge-rolled-back';
const MERGE_ABORTED_META_PREFIX = 'merge-aborted.';

/** The metadata a surviving group stores when it applied the abort of group `rightId`'s merge (the attempt, decimal). */
export function mergeAbortedMetaName(rightId: number): string {
  return `${MERGE_ABORTED_META_PREFIX}${rightId}`;
}

/**
 * A group's merge state as its applies need it (kept in memory beside its
 * bounds; `readMergeMarks` at open and after a snapshot): what it froze for,
 * as a merged-away group, and which attempts it rolled back or aborted.
 */
export interface MergeMarks {
  /** The group applied `prepare-merge` of this record and has not rolled it back. */
  readonly prepared?: MergePrepared;
  /** The highest attempt rolled back in this group (0: none). */
  readonly rolledBack: number;
  /** As a survivor: the highest attempt aborted, by right group id (deleted by a later attempt's commit: `merged` then decides). */
  readonly aborted: ReadonlyMap<number, number>;
  /** As a survivor: the right groups it took in (`merged.<R>`): every later commit or abort of one of them is a no-op. */
  readonly merged: ReadonlySet<number>;
}

export const NO_MERGE_MARKS: MergeMarks = { rolledBack: 0, aborted: new Map(), merged: new Set() };

export async function readMergeMarks(machine: KvStateMachine): Promise<MergeMarks> {
  const prepared = await readMergePrepared(machine);
  const rolledBack = decodeAttempt(await machine.getMeta(MERGE_ROLLED_BACK_META_NAME));
  const aborted = new Map<number, number>();
  for (const name of machine.metaNamesStartingWith(MERGE_ABORTED_META_PREFIX)) {
    const rightId = Number(name.slice(MERGE_ABORTED_META_PREFIX.length));
    if (Number.isSafeInteger(rightId) && rightId >= 2) aborted.set(rightId, decodeAttempt(await machine.getMeta(name)));
  }
  return { ...(prepared !== undefined ? { prepared } : {}), rolledBack, aborted, merged: new Set(mergedRightIds(machine)) };
}

export function encodeAttempt(attempt: number): Buffer {
  return Buffer.from(String(attempt), 'utf8');
}

/** Throws (a corruption of this member's own state) when `bytes` is not an attempt; undefined: 0. */
function decodeAttempt(bytes: Uint8Array | undefined): number {
  if (bytes === undefined) return 0;
  const attempt = Number(Buffer.from(bytes).toString('utf8'));
  if (!Number.isSafeInteger(attempt) || attempt < 0) throw new Error('a merge attempt record is malformed');
  return attempt;
}

/** The metadata a surviving group stores when it applied the commit of group `rightId`'s merge. */
export function mergedMetaName(rightId: number): string {
  return `${MERGED_META_PREFIX}${rightId}`;
}

/** The right ids of every merge `machine` (a surviving group) committed. */
export function mergedRightIds(machine: KvStateMachine): number[] {
  return machine
    .metaNamesStartingWith(MERGED_META_PREFIX)
    .map((name) => Number(name.slice(MERGED_META_PREFIX.length)))
    .filter((id) => Number.isSafeInteger(id) && id >= 2);
}

export function encodeMergePrepared(record: MergePrepared): Buffer {
  const { leftId, index, bounds, revisionTop, epoch } = record;
  return Buffer.from(JSON.stringify({ leftId, index, ...boundsHex(bounds), revisionTop, ...(epoch > 0 ? { epoch } : {}) }), 'utf8');
}

/** Throws (a corruption of this member's own state) when `bytes` is not a merge record. */
export function decodeMergePrepared(bytes: Uint8Array): MergePrepared {
  const { leftId, index, start, end, revisionTop, epoch = 0 } = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
  const bounds = boundsFromHex(start, end);
  if (!count(leftId) || !count(index) || bounds === undefined || !count(revisionTop) || !(epoch === 0 || count(epoch))) throw new Error('a merge record is malformed');
  return { leftId, index, bounds, revisionTop, epoch };
}

/** The merge record of a group that applied `prepare-merge`, or undefined. */
export async function readMergePrepared(machine: KvStateMachine): Promise<MergePrepared | undefined> {
  const value = await machine.getMeta(MERGE_PREPARED_META_NAME);
  return value === undefined ? undefined : decodeMergePrepared(value);
}

/**
 * What the surviving group takes in from `right` (a replica that applied
 * `prepare-merge`, so its data, locks, records and sessions no longer
 * change): every key of its frozen range, the locks on them and the records
 * of the transactions whose primary key is among them, its sessions, and its
 * revision top.
 */
export async function mergeAbsorbOf(right: KvStateMachine, prepared: MergePrepared): Promise<Omit<MergeAbsorb, 'deletes'>> {
  const data: Array<{ key: Buffer; value: Buffer }> = [];
  const { start, end } = prepared.bounds;
  for await (const page of right.exportData(start, end)) data.push(...page);
  return { data, txn: await right.exportTxnState(start, end), sessions: await right.encodedSessions(), revisionTop: prepared.revisionTop };
}

/**
 * The key and value bytes `right` (a replica that applied `prepared`) holds in
 * its frozen range, locks and transaction records included, once they pass
 * `limit` (counted up to the page that passed it), or undefined when they
 * are at most `limit`: the bound of a merge's copy, on the exact state the
 * commit would take in.
 */
export async function frozenBytesAbove(right: KvStateMachine, prepared: MergePrepared, limit: number): Promise<number | undefined> {
  const { start, end } = prepared.bounds;
  let bytes = 0;
  for (const { key, value } of await right.exportTxnState(start, end)) bytes += key.length + value.length;
  if (bytes > limit) return bytes;
  for await (const page of right.exportData(start, end)) {
    for (const { key, value } of page) bytes += key.length + value.length;
    if (bytes > limit) return bytes;
  }
  return undefined;
}

/**
 * The keys the surviving group `left` holds inside the merged-in range that
 * the merged-away group does not: a split's frozen copies of keys deleted
 * since (the survivor once was that range's parent), and likewise of locks
 * and transaction records resolved or forgotten since. Deleted by the merge.
 */
export async function staleKeysOf(left: KvStateMachine, bounds: ShardBounds, absorbed: Omit<MergeAbsorb, 'deletes'>): Promise<Buffer[]> {
  const kept = new Set([...absorbed.data, ...absorbed.txn].map(({ key }) => key.toString('latin1')));
  const stale: Buffer[] = [];
  for await (const page of left.exportData(bounds.start, bounds.end)) for (const { key } of page) if (!kept.has(key.toString('latin1'))) stale.push(key);
  for (const { key } of await left.exportTxnState(bounds.start, bounds.end)) if (!kept.has(key.toString('latin1'))) stale.push(key);
  return stale;
}
