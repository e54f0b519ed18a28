/**
 * What the data of a normal Raft log entry means, and how a batch of
 * committed Raft entries becomes the key-value state machine's apply entries.
 *
 *   empty                      a new leader's no-op
 *   first byte 1               a key-value command (src/kv/command.ts: its own format byte, COMMAND_FORMAT)
 *   first byte 2               a step of a transaction across shards (src/kv/txn.ts; shard groups only)
 *   first byte 0x43 ('C')      a cluster command: 'C' + JSON (publish a member's client URL; set the shard map; split a shard group; a step of a split's GC; a merge step)
 *   anything else              handed to the key-value layer, which refuses it (IMPULSE_ERR_COMMAND_INVALID)
 *
 * Conf-change entries and cluster commands become writes of the membership
 * document or of the shard map (cluster metadata), so they change in the
 * same engine batch as the applied index. A shard map command applies only
 * when its map's version is the stored map's + 1 (none stored counts as 0):
 * of two concurrent changes, the second is a no-op. A shard group's commands are checked against
 * its own bounds (`KeyBounds`): one writing a key outside them is refused (IMPULSE_ERR_SHARD_STALE)
 * and changes nothing. Everything here is deterministic: every replica turns the same entries into
 * the same writes.
 */
import { outsideBoundsError } from '../shard/stale-route.js';
import type { ApplyEntry } from '../kv/apply.js';
import { type KvCommand, type KvLimits, decodeCommand } from '../kv/command.js';
import { type TxnCommand, decodeTxnCommand, isTxnCommandBytes, txnCommandKeys } from '../kv/txn.js';
import type { ImpulseError } from '../errors.js';
import type { Entry, NodeId } from '../raft/types.js';
import { META_GROUP, SHARD_BOUNDS_META_NAME, SHARD_MAP_META_NAME, type ShardBounds, boundsFromHex, boundsHex, encodeShardBounds, type ShardMap, encodeShardMap, sameShardBounds, shardContains, shardMapFromJson, shardMapToJson } from '../shard/shard-map.js';
import { CLUSTER_META_BYTES_MAX } from '../kv/apply.js';
import { compareBytes } from '../util/bytes.js';
import { type SplitRecord, encodeSplitRecord, splitMetaName, splitSessionsTag } from './shard-split.js';
import { MERGE_PREPARED_META_NAME, MERGE_ROLLED_BACK_META_NAME, type MergeMarks, NO_MERGE_MARKS, encodeAttempt, encodeMergePrepared, mergeAbortedMetaName, mergedMetaName } from './shard-merge.js';
import { type Membership, MEMBERSHIP_META_NAME, applyConfChange, applyPublish, encodeMembership, isClientUrl } from './membership.js';

export const CLUSTER_COMMAND_FORMAT = 0x43;

/** A member tells the cluster where clients reach it (etcd's member attribute publish). */
export interface PublishCommand {
  readonly type: 'publish';
  readonly nodeId: NodeId;
  readonly clientUrl: string;
}

/** The meta group's shard map becomes `map` (kept in the meta group only; see src/shard/shard-map.ts). */
export interface ShardMapCommand {
  readonly type: 'shard-map';
  readonly map: ShardMap;
}

/**
 * A shard group splits at `key` (strictly inside its bounds): it keeps
 * `[start, key)`, and group `rightId` is made from its state for
 * `[key, end)` (shard-split.ts). Outside a shard group, or with `key` not
 * strictly inside the bounds (a repeated proposal), a no-op.
 */
export interface SplitCommand {
  readonly type: 'split';
  readonly key: Buffer;
  readonly rightId: number;
}

/**
 * Merge steps (shard-merge.ts), each of one attempt (`epoch`: the right
 * shard's epoch at the intent; 0 in entries written before attempts were
 * kept). `prepare-merge` in the merged-away group's log freezes it (its
 * bounds must still be `bounds` and the attempt not rolled back there, else
 * a no-op); `commit-merge` in the surviving group's log takes in group
 * `rightId` (range `bounds`, starting where the survivor's ends, the attempt
 * not aborted there, else a no-op) and raises the revision base above
 * `revisionTop`. The rollback: `abort-merge` in the survivor's log (while its
 * range ends at `bounds.start`: it did not take the right group in; else a
 * no-op) voids every commit of that attempt or an earlier one;
 * `rollback-merge` in the merged-away group's log gives it its bounds back
 * (when it froze for that attempt or an earlier one) and voids later
 * prepares of the attempt.
 */
export interface PrepareMergeCommand {
  readonly type: 'prepare-merge';
  readonly leftId: number;
  readonly bounds: ShardBounds;
  readonly epoch: number;
}

export interface CommitMergeCommand {
  readonly type: 'commit-merge';
  readonly rightId: number;
  readonly bounds: ShardBounds;
  readonly revisionTop: number;
  readonly epoch: number;
}

export interface AbortMergeCommand {
  readonly type: 'abort-merge';
  readonly rightId: number;
  readonly bounds: ShardBounds;
  readonly epoch: number;
}

export interface RollbackMergeCommand {
  readonly type: 'rollback-merge';
  readonly leftId: number;
  readonly epoch: number;
}

type MergeStepCommand = PrepareMergeCommand | CommitMergeCommand | AbortMergeCommand | RollbackMergeCommand;

/**
 * The next step of the GC of the keys split `rightId` froze in this group
 * (shard-split-gc.ts): deletes at most `keysMax` of them (the first step
 * also the split record and the captured sessions). A no-op outside a shard
 * group, once the GC is done, or when the frozen range is inside the bounds
 * again (a merge took it back).
 */
export interface SplitGcCommand {
  readonly type: 'split-gc';
  readonly rightId: number;
  readonly keysMax: number;
}

export type ClusterCommand = PublishCommand | ShardMapCommand | SplitCommand | MergeStepCommand | SplitGcCommand;

/** Most keys one `split-gc` step may delete (its engine batch stays bounded whatever a proposer asks). */
export const SPLIT_GC_KEYS_MAX = 10_000;

/** Most bytes of an encoded cluster command (a shard map of SHARDS_MAX shards fits). */
const CLUSTER_COMMAND_BYTES_MAX = CLUSTER_META_BYTES_MAX;

export function encodeClusterCommand(command: ClusterCommand): Uint8Array {
  const value =
    command.type === 'shard-map'
      ? { type: command.type, map: shardMapToJson(command.map) }
      : command.type === 'split'
        ? { type: command.type, key: command.key.toString('hex'), rightId: command.rightId }
        : command.type === 'publish' || command.type === 'split-gc' || command.type === 'rollback-merge'
          ? command
          : { ...command, bounds: boundsHex(command.bounds) };
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const bytes = Buffer.allocUnsafe(1 + json.length);
  bytes[0] = CLUSTER_COMMAND_FORMAT;
  json.copy(bytes, 1);
  return bytes;
}

/** The cluster command in `data`, or undefined when it is malformed (then it changes nothing). */
export function decodeClusterCommand(data: Uint8Array): ClusterCommand | undefined {
  if (data.length < 2 || data.length > CLUSTER_COMMAND_BYTES_MAX || data[0] !== CLUSTER_COMMAND_FORMAT) return undefined;
  try {
    const value = JSON.parse(Buffer.from(data.buffer, data.byteOffset + 1, data.length - 1).toString('utf8')) as Record<string, unknown>;
    if (value['type'] === 'publish' && typeof value['nodeId'] === 'number' && Number.isSafeInteger(value['nodeId']) && value['nodeId'] > 0 && isClientUrl(value['clientUrl'])) {
      return { type: 'publish', nodeId: value['nodeId'], clientUrl: value['clientUrl'] };
    }
    const { key, rightId } = value;
    if (value['type'] === 'split' && typeof key === 'string' && /^([0-9a-f]{2})+$/.test(key) && typeof rightId === 'number' && Number.isSafeInteger(rightId) && rightId > META_GROUP) {
      return { type: 'split', key: Buffer.from(key, 'hex'), rightId };
    }
    const { keysMax } = value;
    if (value['type'] === 'split-gc' && typeof rightId === 'number' && Number.isSafeInteger(rightId) && rightId > META_GROUP && typeof keysMax === 'number' && Number.isSafeInteger(keysMax) && keysMax >= 1 && keysMax <= SPLIT_GC_KEYS_MAX) {
      return { type: 'split-gc', rightId, keysMax };
    }
    if (value['type'] === 'shard-map') {
      const map = shardMapFromJson(value['map']);
      if (typeof map !== 'string') return { type: 'shard-map', map };
    }
    return decodeMergeStep(value);
  } catch {
    // malformed: a no-op
  }
  return undefined;
}

/** A merge step in a cluster command's JSON, or undefined. */
function decodeMergeStep(value: Record<string, unknown>): MergeStepCommand | undefined {
  const { type, rightId, leftId, revisionTop, epoch = 0 } = value;
  const id = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > META_GROUP;
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) return undefined;
  if (type === 'rollback-merge' && id(leftId) && epoch >= 1) return { type, leftId, epoch };
  const bounds = boundsFromJson(value['bounds']);
  if (bounds === undefined) return undefined;
  if (type === 'prepare-merge' && id(leftId)) return { type, leftId, bounds, epoch };
  if (type === 'abort-merge' && id(rightId) && epoch >= 1) return { type, rightId, bounds, epoch };
  if (type === 'commit-merge' && id(rightId) && typeof revisionTop === 'number' && Number.isSafeInteger(revisionTop) && revisionTop >= 1) return { type, rightId, bounds, revisionTop, epoch };
  return undefined;
}

/** A merge step's range: not empty. */
function boundsFromJson(value: unknown): ShardBounds | undefined {
  const { start, end } = (value ?? {}) as { start?: unknown; end?: unknown };
  const bounds = boundsFromHex(start, end);
  return bounds !== undefined && (bounds.end === null || compareBytes(bounds.start, bounds.end) < 0) ? bounds : undefined;
}

export interface ApplyPlan {
  readonly entries: ApplyEntry[];
  /** The membership after the batch. */
  readonly membership: Membership;
  readonly membershipChanged: boolean;
  /** The shard map after the batch (undefined: none stored). */
  readonly shardMap: ShardMap | undefined;
  readonly shardMapChanged: boolean;
  /** A shard group's bounds after the batch (undefined: the group keeps none). */
  readonly bounds: ShardBounds | undefined;
  /** The splits the batch applies, in log order (a shard group's). */
  readonly splits: SplitRecord[];
  /** The merge steps the batch applies (a shard group's): `prepared` froze it, or another step other than a commit changed its merge state (an abort, a rollback); each of `commits` takes a group in (its apply entry, at `position` in `entries`, gets its `absorb` before the batch is applied). */
  readonly prepared: boolean;
  /** A shard group's merge marks after the batch (undefined: the group keeps no bounds). */
  readonly mergeMarks: MergeMarks | undefined;
  readonly commits: ReadonlyArray<{ readonly position: number; readonly rightId: number; readonly bounds: ShardBounds; readonly revisionTop: number }>;
  /** The split GC steps of the batch (a shard group's): the entry at `position` is a placeholder until the step is read from the engine as it stands after the entries before it (`bounds`: the group's then). */
  readonly gcSteps: ReadonlyArray<{ readonly position: number; readonly rightId: number; readonly keysMax: number; readonly bounds: ShardBounds }>;
}

/** A shard group's bounds, revision base (apply.ts) and the limits its commands are decoded with. */
export interface KeyBounds {
  readonly bounds: ShardBounds;
  readonly limits: KvLimits;
  /** Absent: 0. */
  readonly revisionBase?: number;
  /** Absent: none (NO_MERGE_MARKS). */
  readonly merge?: MergeMarks;
}

/** Turns committed Raft entries into apply entries, tracking the membership, the shard map and the bounds they change; with `keys`, refuses commands outside the bounds. */
export function planApply(entries: readonly Entry[], membership: Membership, shardMap?: ShardMap, keys?: KeyBounds): ApplyPlan {
  let current = membership;
  let changed = false;
  let map = shardMap;
  let mapChanged = false;
  let bounded = keys;
  const splits: SplitRecord[] = [];
  let prepared = false;
  const commits: Array<ApplyPlan['commits'][number]> = [];
  const gcSteps: Array<ApplyPlan['gcSteps'][number]> = [];
  const planned = entries.map((entry, position): ApplyEntry => {
    const { index, term } = entry;
    let next: Membership;
    if (entry.kind === 'conf-change') {
      next = applyConfChange(current, entry.change, entry.confState);
    } else if (entry.data.length === 0) {
      return { index, term, type: 'noop' };
    } else if (entry.data[0] !== CLUSTER_COMMAND_FORMAT) {
      if (bounded === undefined) return { index, term, type: 'command', command: entry.data };
      return boundedCommand(index, term, entry.data, bounded);
    } else {
      const command = decodeClusterCommand(entry.data);
      if (command?.type === 'split') {
        const split = bounded === undefined ? undefined : planSplit(command, bounded, index, term, current);
        if (split === undefined || bounded === undefined) return { index, term, type: 'noop' };
        bounded = { ...bounded, bounds: split.left };
        splits.push(split.record);
        return split.entry;
      }
      if (command?.type === 'prepare-merge' || command?.type === 'commit-merge' || command?.type === 'abort-merge' || command?.type === 'rollback-merge') {
        // Transaction locks and records are frozen with the data and carried by the commit (shard-merge.ts `mergeAbsorbOf`).
        const step = bounded === undefined ? undefined : planMergeStep(command, bounded, index, term);
        if (step === undefined || bounded === undefined) return { index, term, type: 'noop' };
        bounded = step.keys;
        if (command.type !== 'commit-merge') prepared = true;
        else commits.push({ position, rightId: command.rightId, bounds: command.bounds, revisionTop: command.revisionTop });
        return step.entry;
      }
      if (command?.type === 'split-gc') {
        if (bounded !== undefined) gcSteps.push({ position, rightId: command.rightId, keysMax: command.keysMax, bounds: bounded.bounds });
        return { index, term, type: 'noop' };
      }
      if (command?.type === 'shard-map') {
        if (command.map.version !== (map?.version ?? 0) + 1) return { index, term, type: 'noop' };
        map = command.map;
        mapChanged = true;
        return { index, term, type: 'meta', name: SHARD_MAP_META_NAME, value: encodeShardMap(command.map) };
      }
      next = command === undefined ? current : applyPublish(current, command.nodeId, command.clientUrl);
    }
    if (next === current && entry.kind !== 'conf-change') return { index, term, type: 'noop' };
    current = next;
    changed = true;
    return { index, term, type: 'meta', name: MEMBERSHIP_META_NAME, value: encodeMembership(next) };
  });
  return { entries: planned, membership: current, membershipChanged: changed, shardMap: map, shardMapChanged: mapChanged, bounds: bounded?.bounds, splits, prepared, mergeMarks: bounded === undefined ? undefined : (bounded.merge ?? NO_MERGE_MARKS), commits, gcSteps };
}

/**
 * A merge step of a group with `keys` at `index` (shard-merge.ts, its rule):
 * the group's bounds, revision base and merge marks after it and the apply
 * entry writing them with the step's record; undefined when the step does
 * not apply (a repeated, late or voided proposal: a no-op). A commit's entry
 * still lacks its `absorb`.
 */
function planMergeStep(command: MergeStepCommand, keys: KeyBounds, index: number, term: number): { keys: KeyBounds; entry: ApplyEntry } | undefined {
  const { bounds } = keys;
  const marks = keys.merge ?? NO_MERGE_MARKS;
  const meta = (value: ShardBounds, more: Array<{ name: string; value: Uint8Array | null }>): ApplyEntry => ({ index, term, type: 'meta', name: SHARD_BOUNDS_META_NAME, value: encodeShardBounds(value), more });
  switch (command.type) {
    case 'prepare-merge': {
      if (!sameShardBounds(bounds, command.bounds) || (command.epoch <= marks.rolledBack && marks.rolledBack > 0)) return undefined;
      const frozen: ShardBounds = { start: bounds.start, end: bounds.start };
      const prepared = { leftId: command.leftId, index, bounds, revisionTop: index + (keys.revisionBase ?? 0), epoch: command.epoch };
      return { keys: { ...keys, bounds: frozen, merge: { ...marks, prepared } }, entry: meta(frozen, [{ name: MERGE_PREPARED_META_NAME, value: encodeMergePrepared(prepared) }]) };
    }
    case 'rollback-merge': {
      const { prepared } = marks;
      if (command.epoch <= marks.rolledBack || (prepared !== undefined && (prepared.epoch > command.epoch || prepared.leftId !== command.leftId))) return undefined;
      const restored = prepared?.bounds ?? bounds;
      const rolledBack = { rolledBack: command.epoch, aborted: marks.aborted, merged: marks.merged };
      return { keys: { ...keys, bounds: restored, merge: rolledBack }, entry: meta(restored, [{ name: MERGE_PREPARED_META_NAME, value: null }, { name: MERGE_ROLLED_BACK_META_NAME, value: encodeAttempt(command.epoch) }]) };
    }
    case 'abort-merge':
    case 'commit-merge': {
      // Both need the survivor's range to end where the right one starts, and both end that: the first in the log wins.
      if (bounds.end === null || !bounds.end.equals(command.bounds.start) || marks.merged.has(command.rightId)) return undefined;
      const aborted = marks.aborted.get(command.rightId);
      if (aborted !== undefined && command.epoch <= aborted) return undefined;
      if (command.type === 'abort-merge') {
        const merge = { ...marks, aborted: new Map(marks.aborted).set(command.rightId, command.epoch) };
        return { keys: { ...keys, merge }, entry: meta(bounds, [{ name: mergeAbortedMetaName(command.rightId), value: encodeAttempt(command.epoch) }]) };
      }
      // The commit stores merged.<R>, which voids every later commit or abort of R here: an abort mark of an earlier attempt is no longer needed.
      const widened: ShardBounds = { start: bounds.start, end: command.bounds.end };
      const merged = new Set(marks.merged).add(command.rightId);
      const remaining = new Map(marks.aborted);
      remaining.delete(command.rightId);
      const more = [{ name: mergedMetaName(command.rightId), value: Buffer.from(String(index)) }, ...(aborted !== undefined ? [{ name: mergeAbortedMetaName(command.rightId), value: null }] : [])];
      return { keys: { ...keys, bounds: widened, revisionBase: Math.max(keys.revisionBase ?? 0, command.revisionTop - index), merge: { ...marks, aborted: remaining, merged } }, entry: meta(widened, more) };
    }
  }
}

/**
 * A split of a group with `bounds` at `command.key`, applied at `index`: the
 * left bounds, the record of the right part and the apply entry writing both
 * (and capturing the sessions); undefined when the key is not strictly inside
 * the bounds (a repeated or late proposal: a no-op).
 */
function planSplit(command: SplitCommand, keys: KeyBounds, index: number, term: number, membership: Membership): { left: ShardBounds; record: SplitRecord; entry: ApplyEntry } | undefined {
  const { key, rightId } = command;
  const { bounds } = keys;
  if (compareBytes(key, bounds.start) <= 0 || !shardContains(bounds, key)) return undefined;
  const left: ShardBounds = { start: bounds.start, end: key };
  const record: SplitRecord = { rightId, bounds: { start: key, end: bounds.end }, index, term, membership, ...(keys.revisionBase !== undefined && keys.revisionBase > 0 ? { revisionBase: keys.revisionBase } : {}) };
  const entry: ApplyEntry = {
    index,
    term,
    type: 'meta',
    name: SHARD_BOUNDS_META_NAME,
    value: encodeShardBounds(left),
    more: [{ name: splitMetaName(rightId), value: encodeSplitRecord(record) }],
    captureSessionsAs: splitSessionsTag(rightId),
  };
  return { left, record, entry };
}

/**
 * A command entry of a shard group: refused when it writes a key outside the
 * group's bounds (it was routed by a map older than the group's range),
 * else passed on decoded (decoded once). Bytes that do not decode go on as
 * they are, for the key-value layer to refuse with its own error.
 */
function boundedCommand(index: number, term: number, data: Uint8Array, keys: KeyBounds): ApplyEntry {
  if (isTxnCommandBytes(data)) return boundedTxnCommand(index, term, data, keys);
  let command: KvCommand;
  try {
    command = decodeCommand(data, keys.limits);
  } catch {
    return { index, term, type: 'command', command: data };
  }
  const outside = command.ops.find((op) => !shardContains(keys.bounds, op.key));
  if (outside === undefined) return { index, term, type: 'command', command };
  const error = outsideBoundsError(keys.bounds, outside.key, 'write');
  return { index, term, type: 'refused', error };
}

/**
 * A transaction step (src/kv/txn.ts) of a shard group: refused like any
 * command when a key it touches here lies outside the bounds, and when it
 * does not decode (transaction steps reach shard groups only).
 */
function boundedTxnCommand(index: number, term: number, data: Uint8Array, keys: KeyBounds): ApplyEntry {
  let command: TxnCommand;
  try {
    command = decodeTxnCommand(data, keys.limits);
  } catch (error) {
    return { index, term, type: 'refused', error: error as ImpulseError };
  }
  const outside = txnCommandKeys(command).find((key) => !shardContains(keys.bounds, key));
  if (outside === undefined) return { index, term, type: 'txn', command };
  return { index, term, type: 'refused', error: outsideBoundsError(keys.bounds, outside, 'write') };
}
