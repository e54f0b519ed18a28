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
}

export const MERGE_PREPARED_META_NAME = 'merge-prepared';
const MERGED_META_PREFIX = 'merged.';

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
  const { leftId, index, bounds, revisionTop } = record;
  return Buffer.from(JSON.stringify({ leftId, index, ...boundsHex(bounds), revisionTop }), 'utf8');
}

/** Throws (a corruption of this member's own state) when `bytes` is not a merge record. */
export function decodeMergePrepared(bytes: Uint8Array): MergePrepared {
  const { leftId, index, start, end, revisionTop } = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
  const bounds = boundsFromHex(start, end);
  if (!count(leftId) || !count(index) || bounds === undefined || !count(revisionTop)) throw new Error('a merge record is malformed');
  return { leftId, index, bounds, revisionTop };
}

/** The merge record of a group that applied `prepare-merge`, or undefined. */
export async function readMergePrepared(machine: KvStateMachine): Promise<MergePrepared | undefined> {
  const value = await machine.getMeta(MERGE_PREPARED_META_NAME);
  return value === undefined ? undefined : decodeMergePrepared(value);
}

/**
 * What the surviving group takes in from `right` (a replica that applied
 * `prepare-merge`, so its data and sessions no longer change): every key of
 * its frozen range, its sessions, and its revision top.
 */
export async function mergeAbsorbOf(right: KvStateMachine, prepared: MergePrepared): Promise<Omit<MergeAbsorb, 'deletes'>> {
  const data: Array<{ key: Buffer; value: Buffer }> = [];
  for await (const page of right.exportData(prepared.bounds.start, prepared.bounds.end)) data.push(...page);
  return { data, sessions: await right.encodedSessions(), revisionTop: prepared.revisionTop };
}

/**
 * The keys the surviving group `left` holds inside the merged-in range that
 * the merged-away group does not: a split's frozen copies of keys deleted
 * since (the survivor once was that range's parent). Deleted by the merge.
 */
export async function staleKeysOf(left: KvStateMachine, bounds: ShardBounds, absorbed: Omit<MergeAbsorb, 'deletes'>): Promise<Buffer[]> {
  const kept = new Set(absorbed.data.map(({ key }) => key.toString('latin1')));
  const stale: Buffer[] = [];
  for await (const page of left.exportData(bounds.start, bounds.end)) for (const { key } of page) if (!kept.has(key.toString('latin1'))) stale.push(key);
  return stale;
}
