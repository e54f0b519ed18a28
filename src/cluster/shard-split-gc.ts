/**
 * The GC of a split's frozen keys (docs/sharding.md "Splits", step 5).
 *
 * After a split of P at K (shard-split.ts) P's engine still holds the
 * right-hand keys, frozen, with the split record and the sessions captured
 * for the new group R: each replica of P makes its R from them. Once that
 * copy is no longer needed, P's leader deletes it through P's own log, so
 * every replica deletes the same keys at the same index:
 *
 *   1. **When.** P's leader asks every member of P's configuration that the
 *      map names as a replica of R (RPC `shard-split-gc`) whether its R
 *      stands durably at or past the split's index (seeded from its P, or
 *      installed from R's leader). Only then does it propose the first step.
 *      That first step, committed in P's log, is the durable record of the
 *      decision: a new leader finds the GC under way (the `split-gc.<R>`
 *      marker) and goes on without asking again. A member of P down or
 *      behind therefore delays the GC (never the split), as a member down
 *      delays the deletion of a merged-away group (shard-merges.ts).
 *   2. **Steps.** `split-gc {rightId, keysMax}` in P's log. At apply, each
 *      step reads P's engine as the entries before it left it (it is applied
 *      in an engine batch of its own, so what it deletes does not depend on
 *      how the log was cut into batches) and deletes the first `keysMax`
 *      frozen keys still there (at most SPLIT_GC_KEYS_MAX, a bound of the
 *      command): the transaction locks on keys of the frozen range and the
 *      records whose primary key lies in it first (src/kv/txn.ts: the new
 *      shard took its own copies), then the data keys. The first step also
 *      deletes the split record and the
 *      captured sessions; every step leaves the `split-gc.<R>` marker with
 *      the range still to delete, and the step that empties it deletes the
 *      marker. A step is a no-op once the GC is done. Keys of the frozen range
 *      that P's bounds hold again (a merge of R back into P took them in) are
 *      live, never deleted: a step deletes only what lies outside the bounds.
 *   3. **Seeds.** A seed of R reads P's frozen keys (splitSeed); it and the
 *      GC's steps of the same P never run at once (`RaftKvMachine.
 *      withFrozenKeys`), and a seed first checks that the split record is
 *      still there. Without the record (the GC started: the copy is partial)
 *      a replica of R is opened empty and takes R by snapshot from R's
 *      leader (ShardSplits.originOf 'snapshot').
 *
 * Every replica holds the same frozen keys at the same index (they are
 * frozen: no command touches them), so every replica's steps delete the same
 * keys. A crash between steps leaves the marker: the steps go on.
 *
 * **Rate.** The GC is background work: a leader proposes its steps no faster
 * than `keysPerSecondMax` keys a second (`--shard-split-gc-rate`, all the
 * shards it leads together), counting each step at its full `keysMax`; a
 * token bucket on the Clock (src/transport/byte-rate.ts) with a tenth of a
 * second of burst (at least one step). The time it waited is counted
 * (`shard_split_gc_wait_ms`), with the steps proposed (`shard_split_gc_steps`).
 *
 * **A new shard merged away before its GC** (the map no longer names it): the
 * record and the frozen keys can go once the merge went into the parent
 * itself (the parent's applied state holds `merged.<R>`, shard-merge.ts): the
 * commit precedes every later step in the parent's log, so every replica of
 * the parent took R in (which needed its R made) before it applies a step,
 * and the keys the merge brought back lie inside the parent's bounds, which
 * a step never deletes. Into another shard (the parent split again, and R
 * merged into that part): not decided here — nothing in the parent says
 * whether every replica of that shard took R in — so the record stays.
 */
import type { Logger } from 'pino';
import type { ApplyEntry, ApplyResult } from '../kv/apply.js';
import type { KvStateMachine } from '../kv/state-machine.js';
import { userKeyOf } from '../kv/keyspace.js';
import type { NodeId } from '../raft/types.js';
import { nodeOfRaftId } from '../shard/replica-id.js';
import { type ShardBounds, type ShardMap, boundsFromHex, boundsHex, shardById } from '../shard/shard-map.js';
import { compareBytes } from '../util/bytes.js';
import type { Clock } from '../util/clock.js';
import { Rounds } from '../util/rounds.js';
import { ByteRate } from '../transport/byte-rate.js';
import { DEFAULT_SHARD_SPLIT_GC_RATE } from './config.js';
import type { HostedGroup, HostedGroups } from './hosted-groups.js';
import { type ApplyPlan, SPLIT_GC_KEYS_MAX, encodeClusterCommand } from './log-entries.js';
import { type SplitRecord, decodeSplitRecord, splitMetaName, splitRightIdOf, splitSessionsTag } from './shard-split.js';
import { mergedRightIds } from './shard-merge.js';

export const SPLIT_GC_CHANNEL = 'shard-split-gc';

/** Frozen keys one GC step deletes (its engine batch: at most this many deletes, plus the captured sessions in the first step). */
export const SPLIT_GC_KEYS_PER_STEP = 1024;

const SPLIT_GC_META_PREFIX = 'split-gc.';

/** The metadata naming what split `rightId`'s GC has still to delete (present while it runs). */
export function splitGcMetaName(rightId: number): string {
  return `${SPLIT_GC_META_PREFIX}${rightId}`;
}

function encodeGcMarker(rest: ShardBounds): Buffer {
  return Buffer.from(JSON.stringify(boundsHex(rest)), 'utf8');
}

/** Throws (a corruption of this member's own state) when `bytes` is not a marker. */
function decodeGcMarker(bytes: Uint8Array): ShardBounds {
  const { start, end } = JSON.parse(Buffer.from(bytes).toString('utf8')) as { start?: unknown; end?: unknown };
  const bounds = boundsFromHex(start, end);
  if (bounds === undefined) throw new Error('a split GC marker is malformed');
  return bounds;
}

/** The right ids of every split whose frozen keys `machine` still holds (a split record, or a GC under way). */
export function frozenRightIds(machine: KvStateMachine): number[] {
  const ids = new Set<number>();
  for (const name of machine.metaNamesStartingWith('split')) {
    const id = name.startsWith(SPLIT_GC_META_PREFIX) ? Number(name.slice(SPLIT_GC_META_PREFIX.length)) : splitRightIdOf(name);
    if (id !== undefined && Number.isSafeInteger(id)) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}

/** What split `rightId`'s GC has still to delete in `machine` (the record's range before the first step), or undefined when nothing. */
async function frozenRange(machine: KvStateMachine, rightId: number): Promise<{ range: ShardBounds; record: SplitRecord | undefined } | undefined> {
  const recordBytes = await machine.getMeta(splitMetaName(rightId));
  const record = recordBytes === undefined ? undefined : decodeSplitRecord(recordBytes);
  if (record !== undefined) return { range: record.bounds, record };
  const marker = await machine.getMeta(splitGcMetaName(rightId));
  return marker === undefined ? undefined : { range: decodeGcMarker(marker), record: undefined };
}

/**
 * The part of a frozen `range` outside the group's `bounds`: all of it, or,
 * when a merge took part of it back in (the group's bounds reach into it
 * from the left), what lies past the bounds' end (possibly nothing).
 */
function outside(range: ShardBounds, bounds: ShardBounds): ShardBounds {
  const empty = bounds.end !== null && compareBytes(bounds.start, bounds.end) >= 0;
  if (empty || !overlapping(range, bounds)) return range;
  if (bounds.end === null || (range.end !== null && compareBytes(bounds.end, range.end) >= 0) || compareBytes(bounds.start, range.start) > 0) return { start: range.start, end: range.start };
  return { start: compareBytes(bounds.end, range.start) > 0 ? bounds.end : range.start, end: range.end };
}

/** Whether ranges `a` and `b` share a key (end exclusive, null: unbounded). */
function overlapping(a: ShardBounds, b: ShardBounds): boolean {
  return (a.end === null || compareBytes(b.start, a.end) < 0) && (b.end === null || compareBytes(a.start, b.end) < 0);
}

/** The frozen ranges of every other split whose record `machine` still holds (their new shards may still be made from those keys). */
async function otherFrozenRanges(machine: KvStateMachine, rightId: number): Promise<ShardBounds[]> {
  const ranges: ShardBounds[] = [];
  for (const name of machine.metaNamesStartingWith('split')) {
    const id = splitRightIdOf(name);
    if (id === undefined || id === rightId) continue;
    const bytes = await machine.getMeta(name);
    if (bytes !== undefined) ranges.push(decodeSplitRecord(bytes).bounds);
  }
  return ranges;
}

/**
 * `range` cut short where another split's frozen range begins, and empty
 * when one covers its start: after a merge took a split's keys back in and
 * the group split again, the same keys are frozen for the later split, whose
 * new shard may still be made from them, and its own GC deletes them once
 * that is safe. Keys of `range` past such a range are left alone (a leak,
 * never a loss); every replica holds the same records at the same index, so
 * every replica cuts the same way.
 */
function beforeOtherFreezes(range: ShardBounds, others: readonly ShardBounds[]): ShardBounds {
  let end = range.end;
  for (const other of others) {
    if (!overlapping({ start: range.start, end }, other)) continue;
    if (compareBytes(other.start, range.start) <= 0) return { start: range.start, end: range.start };
    end = other.start;
  }
  return { start: range.start, end };
}

/** A GC step to apply: its log position and the group's bounds there (log-entries.ts `gcSteps`). */
export interface GcStepAt {
  readonly index: number;
  readonly term: number;
  readonly rightId: number;
  readonly keysMax: number;
  readonly bounds: ShardBounds;
}

/**
 * The apply entry of a GC step, read from `machine` as every entry before
 * the step left it (the caller applies it alone, and never while a seed
 * reads the frozen keys). `droppedRecord`: this step deleted the split
 * record (a replica still to make R takes it by snapshot from now on).
 */
export async function splitGcEntry(machine: KvStateMachine, step: GcStepAt): Promise<{ entry: ApplyEntry; droppedRecord: boolean }> {
  const { index, term, rightId, keysMax, bounds } = step;
  const frozen = await frozenRange(machine, rightId);
  if (frozen === undefined) return { entry: { index, term, type: 'noop' }, droppedRecord: false };
  const { record } = frozen;
  const range = beforeOtherFreezes(outside(frozen.range, bounds), await otherFrozenRanges(machine, rightId));
  const empty = range.end !== null && compareBytes(range.start, range.end) >= 0;
  // The frozen locks and records first (each step's budget is keysMax keys in all), then the data keys.
  const txnKeys = empty ? [] : machine.txnKeysIn(range.start, range.end, keysMax + 1);
  const dataBudget = Math.max(0, keysMax - txnKeys.length);
  const keys = empty || txnKeys.length > keysMax ? [] : await machine.dataKeysIn(range.start, range.end, dataBudget + 1);
  const next = keys[dataBudget];
  const deleteKeys = [...txnKeys.slice(0, keysMax), ...keys.slice(0, dataBudget)];
  if (record !== undefined) deleteKeys.push(...(await machine.capturedSessionKeys(splitSessionsTag(rightId))));
  const rest = txnKeys.length > keysMax ? encodeGcMarker(range) : next === undefined ? null : encodeGcMarker({ start: Buffer.from(userKeyOf(next)), end: range.end });
  const entry: ApplyEntry = {
    index,
    term,
    type: 'meta',
    name: splitGcMetaName(rightId),
    value: rest,
    more: record !== undefined ? [{ name: splitMetaName(rightId), value: null }] : [],
    deleteKeys,
  };
  return { entry, droppedRecord: record !== undefined };
}

/**
 * Applies `entries` (a planned batch, `gcSteps` its GC steps' placeholders)
 * to `machine`: the entries between two steps in one batch each, every step
 * alone, read from the engine after the entries before it, inside
 * `exclusive` (no seed reads the frozen keys meanwhile). `recordDropped`: a
 * step deleted a split record.
 */
export async function applyWithGcSteps(
  machine: KvStateMachine,
  entries: readonly ApplyEntry[],
  gcSteps: ApplyPlan['gcSteps'],
  sync: boolean,
  exclusive: <T>(work: () => Promise<T>) => Promise<T>,
): Promise<{ results: ApplyResult[]; recordDropped: boolean }> {
  const results: ApplyResult[] = [];
  let recordDropped = false;
  let from = 0;
  for (const step of gcSteps) {
    if (step.position > from) results.push(...(await machine.applyBatch(entries.slice(from, step.position), { sync })));
    const { index, term } = entries[step.position]!;
    const applied = await exclusive(async () => {
      const gc = await splitGcEntry(machine, { ...step, index, term });
      return { droppedRecord: gc.droppedRecord, results: await machine.applyBatch([gc.entry], { sync }) };
    });
    results.push(...applied.results);
    recordDropped ||= applied.droppedRecord;
    from = step.position + 1;
  }
  if (from < entries.length) results.push(...(await machine.applyBatch(entries.slice(from), { sync })));
  return { results, recordDropped };
}

export interface SplitGcOptions {
  readonly groups: HostedGroups;
  readonly meta: HostedGroup;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  /** Interval of the GC rounds, ms (a round asks and collects every split the member's led shards hold). */
  readonly intervalMs: number;
  /** How long a peer has to answer `shard-split-gc`. */
  readonly rpcTimeoutMs: number;
  /** Keys a step deletes; default SPLIT_GC_KEYS_PER_STEP (1..SPLIT_GC_KEYS_MAX). */
  readonly keysPerStep?: number;
  /** Most keys a second this member's steps delete, all its led shards together (≥ 1; default DEFAULT_SHARD_SPLIT_GC_RATE). */
  readonly keysPerSecondMax?: number;
  readonly logger: Logger;
}

/** This member's split GC since it started. */
export interface SplitGcCounters {
  /** Steps proposed (`shard_split_gc_steps`). */
  steps: number;
  /** Time spent waiting for the rate before a step, ms (`shard_split_gc_wait_ms`). */
  waitMs: number;
}

/** The runtime side on one member: answers whether its replica of a group made it, and, as a shard's leader, runs the GC of its splits' frozen keys. */
export class SplitGc {
  private readonly rounds: Rounds;
  private readonly rate: ByteRate;
  private readonly keysMax: number;
  private closed = false;
  readonly counters: SplitGcCounters = { steps: 0, waitMs: 0 };

  constructor(private readonly options: SplitGcOptions) {
    const { groups, clock, intervalMs, logger } = options;
    this.keysMax = Math.min(SPLIT_GC_KEYS_MAX, Math.max(1, options.keysPerStep ?? SPLIT_GC_KEYS_PER_STEP));
    this.rate = new ByteRate(options.keysPerSecondMax ?? DEFAULT_SHARD_SPLIT_GC_RATE, this.keysMax, clock);
    groups.rpc.serve(SPLIT_GC_CHANNEL, (_from, body, reply) => {
      const { group, index } = (body ?? {}) as { group?: unknown; index?: unknown };
      reply(null, { made: typeof group === 'number' && typeof index === 'number' && this.madeHere(group, index) });
    });
    this.rounds = new Rounds(clock, intervalMs, () => this.round(), logger, 'a split GC round failed; trying again later');
    this.rounds.start();
  }

  close(): void {
    this.closed = true;
    this.rounds.stop();
  }

  /** One round: for each shard this member leads, the GC of every split whose frozen keys it still holds. */
  async round(): Promise<void> {
    const map = this.options.meta.group.machine.shardMap;
    for (const shard of map?.shards ?? []) {
      const hosted = this.options.groups.get(shard.id);
      if (map === undefined || hosted === undefined || !this.leads(hosted)) continue;
      for (const rightId of frozenRightIds(hosted.group.machine.machine)) await this.collect(map, hosted, rightId);
    }
  }

  /** Steps split `rightId`'s GC in `parent` to its end, once safe (see the file comment), while this member leads `parent`. */
  private async collect(map: ShardMap, parent: HostedGroup, rightId: number): Promise<void> {
    const machine = parent.group.machine;
    const { keysMax } = this;
    for (;;) {
      const frozen = await frozenRange(machine.machine, rightId);
      if (frozen === undefined || this.closed || !this.leads(parent)) return;
      if (frozen.record !== undefined && !(await this.everyReplicaMade(map, parent, frozen.record))) return;
      await this.paced();
      if (this.closed || !this.leads(parent)) return;
      this.counters.steps++;
      await parent.requests.write(encodeClusterCommand({ type: 'split-gc', rightId, keysMax }), true);
      if ((await frozenRange(machine.machine, rightId)) === undefined) {
        this.options.logger.info({ shard: parent.group.id, right: rightId }, 'deleted the keys a split froze in its parent');
      }
    }
  }

  /** Waits until the rate lets one more step of `keysMax` keys go (see the file comment), counting the wait. */
  private async paced(): Promise<void> {
    const { clock } = this.options;
    for (let wait = this.rate.take(this.keysMax); wait > 0 && !this.closed; wait = this.rate.take(this.keysMax)) {
      const from = clock.now();
      await new Promise<void>((resolve) => clock.setTimer(wait, resolve));
      this.counters.waitMs += clock.now() - from;
    }
  }

  /**
   * Whether every member of `parent`'s configuration that `map` names as a
   * replica of the split's new shard (or as its move's target) has made it
   * durably (a member that does not answer has not). The new shard gone
   * from the map (merged away): true when it merged into `parent` itself
   * (see the file comment), else false: the copy stays (docs/sharding.md).
   */
  private async everyReplicaMade(map: ShardMap, parent: HostedGroup, record: SplitRecord): Promise<boolean> {
    const { groups, nodeId, rpcTimeoutMs } = this.options;
    const right = shardById(map, record.rightId);
    if (right === undefined) return mergedRightIds(parent.group.machine.machine).includes(record.rightId);
    const { voters, learners } = parent.group.membership.confState;
    for (const node of new Set([...voters, ...learners].map(nodeOfRaftId))) {
      if (!right.replicas.includes(node) && right.move?.to !== node) continue;
      if (node === nodeId) {
        if (!this.madeHere(right.id, record.index)) return false;
        continue;
      }
      const answer = (await groups.rpc.callAsync(node, SPLIT_GC_CHANNEL, { group: right.id, index: record.index }, rpcTimeoutMs).catch(() => null)) as { made?: unknown } | null;
      if (answer?.made !== true) return false;
    }
    return true;
  }

  /** Whether this member's replica of `group` stands durably at or past `index`. */
  private madeHere(group: number, index: number): boolean {
    const hosted = this.options.groups.get(group);
    return hosted !== undefined && hosted.group.state === 'running' && hosted.group.machine.durableAppliedIndex() >= index;
  }

  private leads(hosted: HostedGroup): boolean {
    return hosted.group.state === 'running' && hosted.group.leader === this.options.nodeId && hosted.group.machine.bounds !== undefined;
  }
}
