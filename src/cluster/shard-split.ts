/**
 * A shard split as its parent group's log records it (TiKV's design: every
 * replica splits locally, at apply; docs/sharding.md "Splits").
 *
 *   1. the meta group commits the new map first (`splitShard`: the parent keeps
 *      its id and `[start, key)`, a new shard id takes `[key, end)`), a
 *      versioned compare-and-set, so the new id is unique;
 *   2. the parent's leader sees that its bounds are wider than its range in
 *      the map and proposes a `split` command in the parent's own log;
 *   3. at apply, on every replica, in one engine batch with the applied index:
 *      the parent's bounds shrink to `[start, key)` (later commands for the
 *      right-hand keys are refused, reads of them too), a split record
 *      (`split.<right id>`: the right part's bounds, the split's index and
 *      term, the parent's membership then) is stored, and the parent's client
 *      sessions are captured under the right id. The right-hand keys stay in
 *      the parent's engine, frozen: no later command can touch them;
 *   4. each replica then makes the right group from that durable state
 *      (`splitSeed`) at any later time — after a crash too: its log starts at
 *      the split's index and term, so its revisions continue above the copied
 *      keys' and every replica's copy is identical.
 *
 * Until the parent applies the split, the parent serves the right-hand keys
 * and the new group does not exist (requests routed to it are refused as
 * unavailable and retried); after, the group made from the parent's state at
 * the split's index serves them. Nothing is served by both, nothing by none
 * for longer than the split takes.
 */
import { ImpulseError } from '../errors.js';
import { REVISION_BASE_META_NAME, encodeRevisionBase } from '../kv/apply.js';
import type { KvSeed, KvStateMachine } from '../kv/state-machine.js';
import { SHARD_BOUNDS_META_NAME, type ShardBounds, boundsFromHex, boundsHex, encodeShardBounds } from '../shard/shard-map.js';
import type { HostedGroup } from './hosted-groups.js';
import { type Membership, MEMBERSHIP_META_NAME, decodeMembership, encodeMembership } from './membership.js';
import type { GroupSeed } from './raft-group.js';

/** What a parent group stores when it applies a split (metadata `split.<rightId>`). */
export interface SplitRecord {
  /** The new group's id (its shard's id in the map). */
  readonly rightId: number;
  /** The new group's bounds: the split key to the parent's end before the split. */
  readonly bounds: ShardBounds;
  /** The split command's index and term in the parent's log: the new group starts there. */
  readonly index: number;
  readonly term: number;
  /** The parent's membership at the split: the new group's first configuration. */
  readonly membership: Membership;
  /** The parent's revision base at the split (apply.ts; absent: 0): the new group's, so its revisions stay above the parent's. */
  readonly revisionBase?: number;
}

const SPLIT_META_PREFIX = 'split.';

export function splitMetaName(rightId: number): string {
  return `${SPLIT_META_PREFIX}${rightId}`;
}

/** The right id of a split record's metadata name, or undefined when `name` is not one. */
export function splitRightIdOf(name: string): number | undefined {
  if (!name.startsWith(SPLIT_META_PREFIX)) return undefined;
  const id = Number(name.slice(SPLIT_META_PREFIX.length));
  return Number.isSafeInteger(id) && id >= 2 ? id : undefined;
}

export function encodeSplitRecord(record: SplitRecord): Buffer {
  const { rightId, bounds, index, term, membership, revisionBase } = record;
  return Buffer.from(
    JSON.stringify({
      rightId,
      ...boundsHex(bounds),
      index,
      term,
      membership: Buffer.from(encodeMembership(membership)).toString('base64'),
      ...(revisionBase !== undefined && revisionBase > 0 ? { revisionBase } : {}),
    }),
    'utf8',
  );
}

/** Throws (a corruption of this member's own state) when `bytes` is not a split record. */
export function decodeSplitRecord(bytes: Uint8Array): SplitRecord {
  const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  const { rightId, start, end, index, term, membership, revisionBase } = value;
  const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
  const bounds = boundsFromHex(start, end);
  if (!count(rightId) || bounds === undefined || !count(index) || !count(term) || typeof membership !== 'string' || !(revisionBase === undefined || count(revisionBase))) {
    throw new Error('a split record is malformed');
  }
  const base = revisionBase === undefined ? {} : { revisionBase };
  return { rightId, bounds, index, term, membership: decodeMembership(Buffer.from(membership, 'base64')), ...base };
}

/** The tag the parent's sessions are captured under for the group `rightId`. */
export function splitSessionsTag(rightId: number): string {
  return `split.${rightId}`;
}

/** Reads the split records a parent group's state holds (every split it applied), by right id. */
export async function readSplitRecords(machine: KvStateMachine): Promise<Map<number, SplitRecord>> {
  const records = new Map<number, SplitRecord>();
  for (const name of machine.metaNamesStartingWith(SPLIT_META_PREFIX)) {
    const id = splitRightIdOf(name);
    const value = await machine.getMeta(name);
    if (id !== undefined && value !== undefined) records.set(id, decodeSplitRecord(value));
  }
  return records;
}

/**
 * The state of the group `record` makes, from its parent's machine: the
 * right-hand keys (frozen in the parent since the split), the sessions
 * captured at the split, its bounds and membership, at the split's index.
 */
export async function splitSeed(parent: KvStateMachine, record: SplitRecord): Promise<KvSeed> {
  return {
    index: record.index,
    term: record.term,
    metadata: [
      { name: MEMBERSHIP_META_NAME, value: encodeMembership(record.membership) },
      { name: SHARD_BOUNDS_META_NAME, value: encodeShardBounds(record.bounds) },
      ...(record.revisionBase !== undefined && record.revisionBase > 0 ? [{ name: REVISION_BASE_META_NAME, value: encodeRevisionBase(record.revisionBase) }] : []),
    ],
    sessions: await parent.capturedSessions(splitSessionsTag(record.rightId)),
    data: parent.exportData(record.bounds.start, record.bounds.end),
    txn: await parent.exportTxnState(record.bounds.start, record.bounds.end), // the right-hand keys' locks and records (src/kv/txn.ts)
  };
}

/**
 * The seed of the group `record` makes, from this member's replica of its
 * parent. It reads the frozen keys while no split GC step of the parent runs
 * (shard-split-gc.ts), and only while the record is still there: once the
 * GC started the copy is partial, and the open fails (unavailable; the
 * member opens the group again, then to take a snapshot from its leader).
 */
export function splitGroupSeed(parent: HostedGroup, record: SplitRecord): GroupSeed {
  const machine = parent.group.machine;
  return {
    index: record.index,
    term: record.term,
    confState: record.membership.confState,
    seed: (kv) =>
      machine.withFrozenKeys(async () => {
        if (!(await readSplitRecords(machine.machine)).has(record.rightId)) {
          throw new ImpulseError('IMPULSE_ERR_UNAVAILABLE', `shard ${parent.group.id} collected the keys split ${record.rightId} froze; that shard is to be taken by snapshot from its leader`);
        }
        await kv.seed(await splitSeed(machine.machine, record));
      }),
  };
}
