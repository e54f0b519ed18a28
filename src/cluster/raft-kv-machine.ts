/**
 * The Raft driver's state machine on a real node: the seam
 * `RaftStateMachine<ApplyResult, ImagePayload>` (src/raft/driver-seams.ts)
 * over the key-value state machine (src/kv/state-machine.ts).
 *
 *   - apply: normal entries become key-value commands (their results go back
 *     to the proposers; a shard group refuses those outside its own bounds,
 *     the `shard-bounds` metadata written at its bootstrap), conf changes
 *     and cluster commands become writes of the membership document or the
 *     shard map (log-entries.ts); the whole batch is ONE
 *     `applyBatch`, atomic with the applied index. Applies are written WITHOUT
 *     fsync: the Raft log is durable, and entries after the durable applied
 *     index are applied again after a crash. `flush` makes them durable once
 *     `flushEntries` are pending (and the host flushes now and then), which
 *     moves `durableAppliedIndex`, the bound of log compaction. A shard
 *     merge's steps are the exception: synced, and a commit's batch first
 *     takes in the merged-away group from this member's replica of it
 *     (`mergeSource`; shard-merge.ts), so a batch is cut before a commit:
 *     the entries before it apply first. A split GC step is applied in a
 *     batch of its own (`applyPlanned`; shard-split-gc.ts).
 *   - snapshot: an engine snapshot between two applies, streamed lazily and
 *     released when the transfer ends (image-stream.ts).
 *   - stageSnapshot: the stream goes into a fresh engine, which must stand
 *     exactly at the snapshot message's index, term and configuration.
 *   - installSnapshot: the atomic switch to the staged engine.
 *
 * The driver's callbacks run through `guard`, never straight from a promise:
 * a broken invariant inside the driver then stops this group, not the process.
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { ApplyEntry, ApplyResult, MergeAbsorb } from '../kv/apply.js';
import type { KvLimits } from '../kv/command.js';
import { DEFAULT_CHUNK_BYTES_MAX } from '../kv/snapshot-image.js';
import type { KvStateMachine } from '../kv/state-machine.js';
import type { RaftStateMachine, SnapshotImage } from '../raft/driver-seams.js';
import type { ConfState, Entry, SnapshotMeta } from '../raft/types.js';
import { type ImagePayload, ImageStream, unframeChunks } from './image-stream.js';
import { SHARD_BOUNDS_META_NAME, SHARD_MAP_META_NAME, type ShardBounds, type ShardMap, decodeShardBounds, decodeShardMap } from '../shard/shard-map.js';
import { type ApplyPlan, planApply } from './log-entries.js';
import { type MergeMarks, NO_MERGE_MARKS, readMergeMarks, staleKeysOf } from './shard-merge.js';
import { applyWithGcSteps } from './shard-split-gc.js';
import { EMPTY_MEMBERSHIP, MEMBERSHIP_META_NAME, type Membership, decodeMembership } from './membership.js';

export interface RaftKvMachineOptions {
  readonly machine: KvStateMachine;
  /** The limits commands are decoded with (those of `machine`). */
  readonly limits: KvLimits;
  readonly logger: Logger;
  /** Runs a callback into the driver; a throw (a broken invariant) stops the group, never the process. */
  readonly guard: (work: () => void) => void;
  /** Flush once this many applied entries are not yet durable. >= 1. */
  readonly flushEntries: number;
  /** After every apply or install, on the driver's loop: the new applied index. */
  readonly onApplied?: (appliedIndex: number) => void;
  /** After an apply or install changed the membership. */
  readonly onMembership?: (membership: Membership) => void;
  /** After an apply or install changed the shard map (the meta group's). */
  readonly onShardMap?: (map: ShardMap) => void;
  /** After an apply changed a shard group's bounds (a split or a merge step) or a split GC step deleted a split record, or an install replaced them. */
  readonly onBounds?: (bounds: ShardBounds) => void;
  /**
   * A shard merge's commit applies in this group: what it takes in from the
   * merged-away group `rightId` (this member's replica of it, once that
   * applied the prepare-merge that froze it at `revisionTop`; shard-merges.ts). Absent: a commit-merge fails the group.
   */
  readonly mergeSource?: (rightId: number, bounds: ShardBounds, revisionTop: number) => Promise<Omit<MergeAbsorb, 'deletes'>>;
  /** A background flush failed: the group must stop (the state machine refuses writes from now on). */
  readonly onFlushFailed?: (error: Error) => void;
}

export class RaftKvMachine implements RaftStateMachine<ApplyResult, ImagePayload> {
  private membershipValue: Membership;
  private shardMapValue: ShardMap | undefined;
  /** A shard group's own bounds (undefined: the meta group, or a group bootstrapped before bounds were kept). */
  private boundsValue: ShardBounds | undefined;
  /** A shard group's merge state (shard-merge.ts `MergeMarks`), as applied: kept beside the bounds, which its steps change. */
  private mergeMarksValue: MergeMarks;
  private flushing = false;
  private writtenBytesValue = 0;
  private dataGenerationValue = 0;
  /** The last of the work run under `withFrozenKeys`. */
  private frozenKeysTail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly options: RaftKvMachineOptions,
    stored: StoredCluster,
  ) {
    this.membershipValue = stored.membership;
    this.shardMapValue = stored.shardMap;
    this.boundsValue = stored.bounds;
    this.mergeMarksValue = stored.mergeMarks;
  }

  /** Wraps an open key-value state machine; reads the membership (empty for a member that has not joined yet), shard map and bounds it holds. */
  static async open(options: RaftKvMachineOptions): Promise<RaftKvMachine> {
    return new RaftKvMachine(options, await readStored(options.machine));
  }

  /** The shard group's merge state as applied (what it froze for, the attempts it rolled back or aborted). */
  get mergeMarks(): MergeMarks {
    return this.mergeMarksValue;
  }

  /** The shard group's own key bounds, when it keeps them. */
  get bounds(): ShardBounds | undefined {
    return this.boundsValue;
  }

  /**
   * Key and value bytes of the puts this group applied since it opened (a put
   * whose condition failed included): an upper bound of how much its data
   * inside its bounds grew since any earlier reading. The shard size
   * estimate (shard-size.ts) adds it to a counted base.
   */
  get writtenBytes(): number {
    return this.writtenBytesValue;
  }

  /** +1 whenever the group's data changed other than by applied commands (a split shrank its bounds, a snapshot replaced it): a size counted before is void. */
  get dataGeneration(): number {
    return this.dataGenerationValue;
  }

  get membership(): Membership {
    return this.membershipValue;
  }

  /** The shard map this group keeps (the meta group, once set); undefined for every other group. */
  get shardMap(): ShardMap | undefined {
    return this.shardMapValue;
  }

  /** The applied shard map; IMPULSE_ERR_UNAVAILABLE before the first one applied (the cluster is starting). */
  appliedShardMap(): ShardMap {
    if (this.shardMapValue === undefined) throw new ImpulseError('IMPULSE_ERR_UNAVAILABLE', 'the shard map is not applied on this member yet (the cluster is starting)');
    return this.shardMapValue;
  }

  get machine(): KvStateMachine {
    return this.options.machine;
  }

  get appliedIndex(): number {
    return this.options.machine.appliedIndex;
  }

  apply(entries: readonly Entry[], done: (error: Error | null, results?: readonly ApplyResult[]) => void): void {
    const bounds = this.boundsValue;
    const { machine } = this.options;
    const keys = bounds === undefined ? undefined : { bounds, limits: this.options.limits, revisionBase: machine.revisionBase, merge: this.mergeMarksValue };
    const plan = planApply(entries, this.membershipValue, this.shardMapValue, keys);
    const commitAt = plan.commits[0]?.position ?? 0;
    if (commitAt > 0) return this.applyCut(entries, commitAt, done);
    const merging = plan.commits.length > 0 || plan.prepared;
    this.applyPlanned(plan, merging)
      .then(
        ({ results, recordDropped }) => {
          if (plan.membershipChanged) this.membershipValue = plan.membership;
          if (plan.shardMapChanged) this.shardMapValue = plan.shardMap;
          this.boundsValue = plan.bounds;
          this.mergeMarksValue = plan.mergeMarks ?? NO_MERGE_MARKS;
          this.writtenBytesValue += putBytesOf(plan.entries);
          if (plan.splits.length > 0 || merging) this.dataGenerationValue++;
          this.options.guard(() => done(null, results));
          if (plan.membershipChanged) this.options.onMembership?.(plan.membership);
          if (plan.shardMapChanged && plan.shardMap !== undefined) this.options.onShardMap?.(plan.shardMap);
          if ((plan.splits.length > 0 || merging || recordDropped) && plan.bounds !== undefined) this.options.onBounds?.(plan.bounds);
          this.options.onApplied?.(this.appliedIndex);
          if (this.appliedIndex - this.durableAppliedIndex() >= this.options.flushEntries) this.flushInBackground();
        },
        (error: unknown) => this.options.guard(() => done(asError(error))),
      );
  }

  /**
   * Applies `entries` before `at` (a merge commit's position) in a batch of
   * their own, then the rest, and answers for both: what a commit takes in
   * is fetched before its batch applies (`withAbsorbs`), so it must not wait
   * on the entries before it — a replica catching up may meet the split that
   * made the merged-away shard and that shard's merge commit in one batch,
   * and the shard is made from the split's record (hosted-groups.ts
   * `madeFromSplit`) only once the split applied.
   */
  private applyCut(entries: readonly Entry[], at: number, done: (error: Error | null, results?: readonly ApplyResult[]) => void): void {
    this.apply(entries.slice(0, at), (error, before) => {
      if (error !== null) return done(error);
      this.apply(entries.slice(at), (rest, after) => (rest !== null ? done(rest) : done(null, [...(before ?? []), ...(after ?? [])])));
    });
  }

  /**
   * Applies `plan` (a merge step synced: a member destroys a merged-away group
   * only after its survivor durably took it in). Each split GC step reads the
   * engine as the entries before it left it, so it is applied in an engine
   * batch of its own, between those before and after it: what it deletes then
   * does not depend on how the log was cut into batches (shard-split-gc.ts).
   * `recordDropped`: a GC step deleted a split record.
   */
  private async applyPlanned(plan: ApplyPlan, merging: boolean): Promise<{ results: ApplyResult[]; recordDropped: boolean }> {
    const { machine } = this.options;
    return applyWithGcSteps(machine, await this.withAbsorbs(plan), plan.gcSteps, merging, (work) => this.withFrozenKeys(work));
  }

  /**
   * Runs `work` while no split GC step of this group runs (and no other such
   * work): a seed of a new shard from this group's frozen keys
   * (shard-splits.ts) must not read them while a step deletes them.
   */
  withFrozenKeys<T>(work: () => Promise<T>): Promise<T> {
    const run = this.frozenKeysTail.then(work, work);
    this.frozenKeysTail = run.catch(() => undefined);
    return run;
  }

  /** `plan`'s entries with every merge commit's `absorb` filled in from this member's replica of the merged-away group. */
  private async withAbsorbs(plan: ApplyPlan): Promise<ApplyEntry[]> {
    if (plan.commits.length === 0) return plan.entries;
    const { mergeSource } = this.options;
    if (mergeSource === undefined) throw new ImpulseError('IMPULSE_ERR_INTERNAL', 'a shard merge commit reached a group that cannot take merged-in shards');
    const entries = [...plan.entries];
    for (const { position, rightId, bounds, revisionTop } of plan.commits) {
      const absorbed = await mergeSource(rightId, bounds, revisionTop);
      const absorb: MergeAbsorb = { ...absorbed, deletes: await staleKeysOf(this.options.machine, bounds, absorbed) };
      if (absorb.revisionTop !== revisionTop) throw new ImpulseError('IMPULSE_ERR_INTERNAL', `shard ${rightId}'s replica here froze with revision top ${absorb.revisionTop}; the merge commit names ${revisionTop}`);
      const entry = entries[position]!;
      if (entry.type === 'meta') entries[position] = { ...entry, absorb };
    }
    return entries;
  }

  durableAppliedIndex(): number {
    return this.options.machine.durableAppliedIndex;
  }

  /** Makes everything applied durable; at most one at a time (a second call while one runs is a no-op). */
  flushInBackground(): void {
    if (this.flushing || this.appliedIndex === this.durableAppliedIndex()) return;
    this.flushing = true;
    this.options.machine.flush().then(
      () => {
        this.flushing = false;
      },
      (error: unknown) => {
        this.flushing = false;
        this.options.logger.error({ err: error }, 'flushing the applied state failed: the group stops');
        this.options.onFlushFailed?.(asError(error));
      },
    );
  }

  snapshot(done: (error: Error | null, image?: SnapshotImage<ImagePayload>) => void): void {
    this.options.machine.snapshot().then(
      (snapshot) => {
        let confState: ConfState;
        try {
          const stored = snapshot.metadata.get(MEMBERSHIP_META_NAME);
          confState = stored === undefined ? EMPTY_MEMBERSHIP.confState : decodeMembership(stored).confState;
        } catch (error) {
          snapshot.release();
          return this.options.guard(() => done(asError(error)));
        }
        const meta: SnapshotMeta = { index: snapshot.appliedIndex, term: snapshot.appliedTerm, confState };
        const payload = new ImageStream(snapshot.chunks, () => snapshot.release());
        this.options.guard(() => done(null, { meta, payload }));
      },
      (error: unknown) => this.options.guard(() => done(asError(error))),
    );
  }

  stageSnapshot(image: SnapshotImage<ImagePayload>, done: (error: Error | null) => void): void {
    const machine = this.options.machine;
    const { keyBytesMax, valueBytesMax } = machine.engine.limits;
    const chunks = unframeChunks(image.payload, DEFAULT_CHUNK_BYTES_MAX + keyBytesMax + valueBytesMax + 64);
    machine
      .stageSnapshot(chunks)
      .then(async (staged) => {
        const stored = staged.metadata.get(MEMBERSHIP_META_NAME);
        const confState = stored === undefined ? undefined : decodeMembership(stored).confState;
        const { meta } = image;
        if (staged.appliedIndex !== meta.index || staged.appliedTerm !== meta.term || confState === undefined || !sameConf(confState, meta.confState)) {
          await staged.discard();
          throw new ImpulseError('IMPULSE_ERR_SNAPSHOT_INVALID', `the image stands at ${staged.appliedIndex}/${staged.appliedTerm}, its message at ${meta.index}/${meta.term} (or their configurations differ)`);
        }
      })
      .then(
        () => this.options.guard(() => done(null)),
        (error: unknown) => this.options.guard(() => done(asError(error))),
      );
  }

  installSnapshot(meta: SnapshotMeta, done: (error: Error | null) => void): void {
    const machine = this.options.machine;
    const staged = machine.staged;
    if (staged === undefined || staged.appliedIndex !== meta.index || staged.appliedTerm !== meta.term) {
      const what = staged === undefined ? 'none' : `${staged.appliedIndex}/${staged.appliedTerm}`;
      return this.options.guard(() => done(new ImpulseError('IMPULSE_ERR_SNAPSHOT_INVALID', `no staged image at ${meta.index}/${meta.term} (staged: ${what})`)));
    }
    machine
      .installStaged()
      .then(() => readStored(machine))
      .then(
        ({ membership, shardMap, bounds, mergeMarks }) => {
          this.membershipValue = membership;
          this.shardMapValue = shardMap;
          this.boundsValue = bounds;
          this.mergeMarksValue = mergeMarks;
          this.dataGenerationValue++;
          this.options.guard(() => done(null));
          this.options.onMembership?.(membership);
          if (shardMap !== undefined) this.options.onShardMap?.(shardMap);
          if (bounds !== undefined) this.options.onBounds?.(bounds);
          this.options.onApplied?.(this.appliedIndex);
        },
        (error: unknown) => this.options.guard(() => done(asError(error))),
      );
  }
}

async function readMembership(machine: KvStateMachine): Promise<Membership> {
  const stored = await machine.getMeta(MEMBERSHIP_META_NAME);
  return stored === undefined ? EMPTY_MEMBERSHIP : decodeMembership(stored);
}

interface StoredCluster {
  readonly membership: Membership;
  readonly shardMap: ShardMap | undefined;
  readonly bounds: ShardBounds | undefined;
  readonly mergeMarks: MergeMarks;
}

async function readStored(machine: KvStateMachine): Promise<StoredCluster> {
  const map = await machine.getMeta(SHARD_MAP_META_NAME);
  const bounds = await machine.getMeta(SHARD_BOUNDS_META_NAME);
  return {
    membership: await readMembership(machine),
    shardMap: map === undefined ? undefined : decodeShardMap(map),
    bounds: bounds === undefined ? undefined : decodeShardBounds(bounds),
    mergeMarks: bounds === undefined ? NO_MERGE_MARKS : await readMergeMarks(machine),
  };
}

/** Key and value bytes of the puts in `entries` (a command still in log bytes, undecoded: its length, which is more). */
function putBytesOf(entries: readonly ApplyEntry[]): number {
  let bytes = 0;
  for (const entry of entries) {
    if (entry.type !== 'command') continue;
    const { command } = entry;
    if (command instanceof Uint8Array) bytes += command.length;
    else for (const op of command.ops) bytes += op.type === 'put' ? op.key.length + op.value.length : 0;
  }
  return bytes;
}

function sameConf(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly number[], y: readonly number[]): boolean => x.length === y.length && [...x].sort((p, q) => p - q).every((id, i) => id === [...y].sort((p, q) => p - q)[i]);
  return same(a.voters, b.voters) && same(a.learners, b.learners);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
