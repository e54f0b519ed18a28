/**
 * The shard groups of one member, kept in step with the shard map that the
 * meta group (group 1) holds (src/shard/shard-map.ts):
 *
 *   - the first map: a cluster started with `--split-keys` has none until
 *     the meta group's leader proposes it (a `shard-map` cluster command of
 *     version 1, built from the split keys and the initial voters, the same
 *     on every member because both are part of the cluster id); whichever
 *     leader proposes first wins, the others' proposals are no-ops;
 *   - every applied map: the member opens each shard group it replicates and
 *     does not host yet, bootstrapping the replicas' identical empty state
 *     with the shard's bounds (HostedGroups.open; the group refuses at apply
 *     any key outside them) on a first start; after a restart the groups'
 *     files say everything and the voters and bounds given are ignored.
 *     A shard a split made is opened as shard-splits.ts says (made from its
 *     parent's split record, later, or from its leader's snapshot);
 *   - splits (shard-splits.ts): `split(key)` commits a split in the map; after
 *     every map, a bounds change of a hosted group (it applied a split) and a
 *     leader change, the member reconciles: it opens the groups splits made
 *     and, as a parent's leader, proposes the split its map asks for;
 *   - merges (shard-merges.ts): `merge(leftId)` commits a merge's intent in
 *     the map; after every map, bounds change and leader change the member
 *     proposes the merge steps of the groups it leads, and deletes its copies
 *     of merged-away groups once every survivor replica took them in;
 *   - leftovers (shard-leftovers.ts): files of groups this member does not
 *     host that the map (at the meta group's read point) no longer gives it —
 *     what a crash between leaving a group and deleting the copy leaves — are
 *     deleted, in the open chain, every `sizeCheckMs` when there are any.
 *
 * Opens run one at a time in map order (a promise chain): a map applied while
 * one runs is taken up after it.
 */
import type { Logger } from 'pino';
import type { ShardView, ShardsView } from '../protocol/shard-view.js';
import type { NodeId } from '../raft/types.js';
import { replicaRole } from '../shard/moves.js';
import { META_GROUP, SHARD_BOUNDS_META_NAME, type Shard, type ShardMap, encodeShardBounds, initialShardMap, raftIdOf } from '../shard/shard-map.js';
import { generationOf } from '../shard/replica-id.js';
import type { HostedGroup, HostedGroups } from './hosted-groups.js';
import type { RaftGroup } from './raft-group.js';
import { encodeClusterCommand } from './log-entries.js';
import { peerAddresses } from './membership.js';
import type { ReportedShard, ReportsSnapshot } from './shard-leads.js';
import type { ShardSizes } from './shard-size.js';
import { type MergeCounters, ShardMerges } from './shard-merges.js';
import { ShardSplits } from './shard-splits.js';
import { SplitGc } from './shard-split-gc.js';
import { LeftoverGc } from './shard-leftovers.js';
import { LOAD_SPLIT_HOLD_CHECKS, type LoadSplitCounters, ShardLoadSplits } from './shard-load-splits.js';
import { ShardLoad } from './shard-load.js';
import type { Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';

export interface ShardGroupsOptions {
  readonly groups: HostedGroups;
  /** The meta group on this member (group 1). */
  readonly meta: HostedGroup;
  readonly nodeId: NodeId;
  /** `--split-keys` of a new cluster (empty: not sharded, unless the meta group already holds a map). */
  readonly splitKeys: readonly Buffer[];
  /** The initial voters (the replicas of every initial shard). */
  readonly initialVoters: readonly NodeId[];
  readonly clock: Clock;
  /** Pause before a failed split proposal is made again; the poll interval of `waitHosted`. */
  readonly retryPauseMs: number;
  /** How long a request waits for a shard group this member replicates to open (`waitHosted`). */
  readonly waitHostedMs: number;
  /** `--shard-split-bytes` (0: off) and the interval of the size checks (ShardSplits). */
  readonly splitBytes: number;
  readonly sizeCheckMs: number;
  /** Keys one step of a split's GC deletes (default SPLIT_GC_KEYS_PER_STEP; shard-split-gc.ts). */
  readonly splitGcKeysPerStep?: number;
  /** `--shard-split-gc-rate`: most keys a second this member's split GC deletes (default DEFAULT_SHARD_SPLIT_GC_RATE; shard-split-gc.ts). */
  readonly splitGcKeysPerSecond?: number;
  /** `--shard-split-qps` (0: off): load-triggered splits, checked every `sizeCheckMs` (ShardLoadSplits). */
  readonly splitQps: number;
  /** `--shard-merge-timeout-ms` (0: never): the meta leader rolls back a merge in flight longer (ShardMerges). */
  readonly mergeTimeoutMs: number;
  /** Most key and value bytes a merge's commit copies (default MERGE_RIGHT_BYTES_MAX; ShardMerges). */
  readonly mergeCopyBytesMax?: number;
  /** For the load splits' key samples. */
  readonly random: Random;
  readonly logger: Logger;
}

export class ShardGroups {
  private opening: Promise<void> = Promise.resolve();
  private proposing = false;
  private closed = false;
  private readonly splits: ShardSplits;
  private readonly merges: ShardMerges;
  private readonly splitGc: SplitGc;
  private readonly leftovers: LeftoverGc;
  private readonly loadSplits: ShardLoadSplits;
  /** The smoothed load of each shard this member leads (shard-load.ts): its reports and its load splits read it. */
  readonly load: ShardLoad;

  constructor(private readonly options: ShardGroupsOptions) {
    const { meta, groups, nodeId, clock, retryPauseMs, splitBytes, sizeCheckMs, logger } = options;
    this.splits = new ShardSplits({ groups, meta, nodeId, clock, retryPauseMs, splitBytes, sizeCheckMs, logger });
    this.splitGc = new SplitGc({ groups, meta, nodeId, clock, intervalMs: sizeCheckMs, rpcTimeoutMs: options.waitHostedMs, logger, ...(options.splitGcKeysPerStep !== undefined ? { keysPerStep: options.splitGcKeysPerStep } : {}), ...(options.splitGcKeysPerSecond !== undefined ? { keysPerSecondMax: options.splitGcKeysPerSecond } : {}) });
    this.load = new ShardLoad(clock);
    this.loadSplits = new ShardLoadSplits({
      groups, meta, nodeId, clock, random: options.random, splitQps: options.splitQps, checkMs: sizeCheckMs, holdMs: LOAD_SPLIT_HOLD_CHECKS * sizeCheckMs, load: this.load,
      requestSplit: (key) => this.splits.requestSplit(key), logger,
    });
    this.leftovers = new LeftoverGc({
      groups, nodeId, clock, intervalMs: sizeCheckMs, logger,
      catchUp: () => this.catchUp(),
      map: () => this.map,
      serial: (work) => this.inOpenChain(work),
    });
    this.merges = new ShardMerges({ groups, meta, nodeId, clock, retryPauseMs, rpcTimeoutMs: options.waitHostedMs, timeoutMs: options.mergeTimeoutMs, ...(options.mergeCopyBytesMax !== undefined ? { copyBytesMax: options.mergeCopyBytesMax } : {}), logger, refollow: () => this.refollow() });
    meta.group.listen({
      shardMapChanged: (map) => this.follow(map),
      leaderChanged: () => this.proposeFirstMap(),
    });
    const current = meta.group.machine.shardMap;
    if (current !== undefined) this.follow(current);
    else this.proposeFirstMap();
  }

  /** True when this cluster is sharded (started with split keys, or its meta group holds a map). */
  get sharded(): boolean {
    return this.options.splitKeys.length > 0 || this.map !== undefined;
  }

  get nodeId(): NodeId {
    return this.options.nodeId;
  }

  /** The shard map the meta group applied on this member (undefined until the first one). */
  get map(): ShardMap | undefined {
    return this.options.meta.group.machine.shardMap;
  }

  /** The group of `shard` when this member hosts it. */
  hosted(shard: Shard): HostedGroup | undefined {
    return this.options.groups.get(shard.id);
  }

  /** Resolves once this member applied every shard map the meta group committed before the call (its read point). */
  catchUp(): Promise<void> {
    return this.options.meta.requests.readBarrier();
  }

  /**
   * `shard`'s group once this member opened it (a shard a split made opens
   * when its parent here applied the split), polling every retry pause for at
   * most `waitHostedMs`; undefined when it did not open in time.
   */
  async waitHosted(shard: Shard): Promise<HostedGroup | undefined> {
    const { clock, retryPauseMs, waitHostedMs } = this.options;
    const deadline = clock.now() + waitHostedMs;
    for (;;) {
      const hosted = this.hosted(shard);
      if (hosted !== undefined || this.closed || clock.now() + retryPauseMs > deadline) return hosted;
      await new Promise<void>((resolve) => clock.setTimer(retryPauseMs, resolve));
    }
  }

  /** Resolves once every group of the current map this member replicates is open (or failed to open, logged). */
  settled(): Promise<void> {
    return this.opening;
  }

  /** The running byte counts of the shards this member checks the size of (shard-size.ts). */
  get sizes(): ShardSizes {
    return this.splits.sizes;
  }

  /** Splits the shard holding `key` at `key` (ShardSplits.requestSplit); resolves with the map that has the split. */
  split(key: Uint8Array): Promise<ShardMap> {
    return this.splits.requestSplit(key);
  }

  /**
   * Merges shard `leftId`'s right neighbour into it (ShardMerges.requestMerge);
   * resolves with the map that has the merge in flight. With `reports` (an
   * operator's request), the right shard's reported size must be known and
   * at most MERGE_RIGHT_BYTES_MAX (else IMPULSE_ERR_UNAVAILABLE to retry once
   * reported, or IMPULSE_ERR_CONFIG_INVALID).
   */
  merge(leftId: number, reports?: ReportsSnapshot): Promise<ShardMap> {
    return this.merges.requestMerge(leftId, reports === undefined ? undefined : (shard) => reports.shards.get(shard)?.sizeBytes ?? undefined);
  }

  /** Rolls back the merge into shard `leftId` (ShardMerges.requestRollback): an operator's request. */
  cancelMerge(leftId: number): Promise<ShardMap> {
    return this.merges.requestRollback(leftId, 'an operator asked (POST /shards/merge/cancel)');
  }

  /** How long this member has seen the merge of right shard `rightId` in flight (undefined: none). */
  mergeAgeMs(rightId: number): number | undefined {
    return this.merges.mergeAgeMs(rightId);
  }

  /** A request for `key` reached this member's replica of shard `shardId` (sampled for a load split while the shard is hot here). */
  offerKey(shardId: number, key: Uint8Array): void {
    this.loadSplits.offer(shardId, key);
  }

  /** This member's load-split decisions since it started. */
  get loadSplitCounters(): LoadSplitCounters {
    return this.loadSplits.counters;
  }

  /** This member's merge decisions and steps since it started. */
  get mergeCounters(): MergeCounters {
    return this.merges.counters;
  }

  /** This member's shard figures for /status and /metrics: the leftover copies it deleted (shard-leftovers.ts), its split GC's steps and waits (shard-split-gc.ts). */
  figures(): Record<string, number> {
    const { deleted, kept } = this.leftovers.counters;
    const { steps, waitMs } = this.splitGc.counters;
    return { shard_replicas_gc: deleted, shard_replicas_gc_kept: kept, shard_split_gc_steps: steps, shard_split_gc_wait_ms: Math.round(waitMs) };
  }

  /** Stops opening groups and proposing splits and merges (the host closes the open ones). */
  close(): void {
    this.closed = true;
    this.splits.close();
    this.splitGc.close();
    this.leftovers.close();
    this.loadSplits.close();
    this.merges.close();
  }

  private follow(map: ShardMap): void {
    this.opening = this.opening.then(async () => {
      // Copies that left first: a split's new shard whose parent here is such a copy (removed from
      // the parent's group before it applied the split) is opened empty, for a snapshot, only once
      // that parent is gone (ShardSplits.originOf) — else it would wait for a split that never comes.
      await this.destroyUnassigned(map);
      await this.openMissing(map);
      await this.merges.destroyMerged(map).catch((error: unknown) => this.options.logger.error({ err: error }, 'looking for merged-away shard copies to delete failed'));
      if (this.closed) return;
      this.splits.reconcile(map);
      this.merges.reconcile(map);
    });
  }

  /** Runs `work` after every open queued before it; a failure of `work` is the caller's and leaves the chain going. */
  private inOpenChain(work: () => Promise<void>): Promise<void> {
    const run = this.opening.then(work);
    this.opening = run.catch(() => undefined);
    return run;
  }

  /** A shard's leader changed: as its new leader, this member may have a split or a merge step to propose. */
  private reconcileSplits(): void {
    const map = this.map;
    if (map === undefined || this.closed) return;
    this.splits.reconcile(map);
    this.merges.reconcile(map);
  }

  /** Follows the current map again: a hosted group applied a split (or installed a snapshot). */
  private refollow(): void {
    const map = this.map;
    if (map !== undefined) this.follow(map);
  }

  /**
   * Replica moves (src/shard/moves.ts): a shard group this member hosts whose
   * shard the map no longer gives it — neither a replica nor a move's target:
   * it was removed from the group (the map records that only after the
   * group's configuration committed it) or its move was abandoned — is
   * closed and its files deleted.
   */
  private async destroyUnassigned(map: ShardMap): Promise<void> {
    const { groups, nodeId, logger } = this.options;
    for (const shard of map.shards) {
      if (this.closed) return;
      if (replicaRole(shard, nodeId) !== 'none' || groups.get(shard.id) === undefined) continue;
      try {
        await groups.destroy(shard.id);
        logger.info({ shard: shard.id, epoch: shard.epoch }, 'destroyed this member\'s copy of a shard that moved away');
      } catch (error) {
        logger.error({ err: error, shard: shard.id }, 'could not destroy the copy of a shard that moved away; its files stay');
      }
    }
  }

  private async openMissing(map: ShardMap): Promise<void> {
    const { groups, meta, nodeId, logger } = this.options;
    const addresses = peerAddresses(meta.group.membership);
    for (const shard of map.shards) {
      if (this.closed) return;
      const role = replicaRole(shard, nodeId);
      if (role === 'none') continue;
      const raftId = await this.raftIdToOpen(shard);
      if (raftId === undefined) continue;
      if (role === 'incoming') {
        await this.openIncoming(shard, raftId);
        continue;
      }
      const voters = new Map(shard.replicas.map((id) => [id, addresses.get(id)] as const).filter((entry): entry is [NodeId, string] => entry[1] !== undefined));
      try {
        const origin = await this.splits.originOf(map, shard);
        if (origin.kind === 'pending') continue; // its parent's split apply reconciles again
        const bounds = { name: SHARD_BOUNDS_META_NAME, value: encodeShardBounds(shard) };
        const firstVoters = origin.kind === 'first-map' && voters.size === shard.replicas.length ? voters : undefined;
        const hosted = await groups.open(shard.id, firstVoters, [bounds], origin.kind === 'split' ? origin.seed : undefined, raftId);
        this.listenTo(hosted.group);
        logger.info({ shard: shard.id, epoch: shard.epoch, origin: origin.kind }, 'opened shard group');
      } catch (error) {
        logger.error({ err: error, shard: shard.id }, 'could not open a shard group; requests for its keys are refused on this member');
      }
    }
  }

  /**
   * The Raft id under which to open this member's replica of `shard` (the
   * map's, src/shard/replica-id.ts), or undefined when nothing is to be
   * opened now: the group is hosted under that id already, or the files here
   * are of a LATER generation than the map names (this map is older than
   * them: a newer one follows). Files or an open group of an EARLIER
   * generation belong to a replica the group removed before this node was
   * added again (generations only rise, and a node gets a new one only after
   * its removal committed): they are closed and deleted first.
   */
  private async raftIdToOpen(shard: Shard): Promise<number | undefined> {
    const { groups, nodeId, logger } = this.options;
    const raftId = raftIdOf(shard, nodeId);
    const hostedId = groups.get(shard.id)?.group.driver.id;
    let present: number | undefined;
    try {
      present = hostedId ?? (await groups.raftIdOnDisk(shard.id));
    } catch (error) {
      logger.error({ err: error, shard: shard.id }, 'could not read which Raft id this member\'s copy of a shard is of; not opening it');
      return undefined;
    }
    if (present === undefined) return raftId;
    if (generationOf(present) >= generationOf(raftId)) return hostedId === undefined && present === raftId ? raftId : undefined;
    try {
      await groups.destroy(shard.id);
    } catch (error) {
      logger.error({ err: error, shard: shard.id, oldRaftId: present }, 'could not delete this member\'s copy of a shard from before it left the shard\'s group; not opening it under its new Raft id');
      return undefined;
    }
    logger.info({ shard: shard.id, oldRaftId: present, raftId }, 'deleted this member\'s copy of a shard from before it left the shard\'s group; opening it under its new Raft id');
    return raftId;
  }

  /** A hosted shard group's events this member follows: a split applied (bounds changed) and a new leader (which may have a split to propose). Moved-in groups too: they may lead, and split, later. */
  private listenTo(group: RaftGroup): void {
    group.listen({ boundsChanged: () => this.refollow(), leaderChanged: () => this.reconcileSplits() });
  }

  /** Opens the group of a shard moving to this member, empty: it joins as a learner and takes a snapshot from the group's leader (moves.ts). */
  private async openIncoming(shard: Shard, raftId: number): Promise<void> {
    const { groups, logger } = this.options;
    try {
      const hosted = await groups.open(shard.id, undefined, [], undefined, raftId);
      this.listenTo(hosted.group);
      logger.info({ shard: shard.id, epoch: shard.epoch, from: shard.move?.from ?? null }, 'opened a shard group moving to this member; waiting for its snapshot');
    } catch (error) {
      logger.error({ err: error, shard: shard.id }, 'could not open the group of a shard moving here');
    }
  }

  /** As the meta group's leader, proposes the first map of a cluster started with split keys (again after a failure while it still leads; else the next leader does). */
  private proposeFirstMap(): void {
    const { meta, nodeId, splitKeys, initialVoters, logger } = this.options;
    if (this.closed || this.proposing || splitKeys.length === 0 || this.map !== undefined || meta.group.leader !== nodeId) return;
    this.proposing = true;
    const map = initialShardMap(splitKeys, initialVoters);
    meta.requests.write(encodeClusterCommand({ type: 'shard-map', map }), true).then(
      () => {
        this.proposing = false;
      },
      (error: unknown) => {
        this.proposing = false;
        logger.warn({ err: error }, 'proposing the first shard map failed; trying again while this member leads the meta group');
        this.proposeFirstMap();
      },
    );
  }
}

/**
 * `GET /shards` as this member sees it: the map (or, unsharded, group 1 as
 * the one shard) with its view of each group, and each shard's latest report
 * at the meta leader (`reports`; undefined: none could be had).
 */
export async function shardsView(clusterId: string, nodeId: NodeId, shards: ShardGroups, meta: HostedGroup, reports?: ReportsSnapshot): Promise<ShardsView> {
  const map = shards.map;
  const reportsFrom = reports?.from ?? null;
  if (!shards.sharded) {
    const whole: Shard = { id: META_GROUP, start: Buffer.alloc(0), end: null, epoch: 1, replicas: [...meta.group.membership.confState.voters].sort((a, b) => a - b) };
    return { clusterId, nodeId, sharded: false, version: 1, reportsFrom, shards: [await shardView(whole, meta, shards.sizes, undefined)] };
  }
  const views: ShardView[] = [];
  for (const shard of map?.shards ?? []) views.push({ ...(await shardView(shard, shards.hosted(shard), shards.sizes, reports?.shards.get(shard.id))), ...mergeViewFields(shard, shards) });
  return { clusterId, nodeId, sharded: true, version: map?.version ?? 0, reportsFrom, shards: views };
}

/** A merge in flight's rollback mark and age (as this member saw it) for `GET /shards`. */
function mergeViewFields(shard: Shard, shards: ShardGroups): Pick<ShardView, 'mergeAbort' | 'mergeAgeMs'> {
  const ageMs = shard.mergeInto === undefined ? undefined : shards.mergeAgeMs(shard.id);
  return { ...(shard.mergeAbort === true ? { mergeAbort: true as const } : {}), ...(ageMs !== undefined ? { mergeAgeMs: ageMs } : {}) };
}

async function shardView(shard: Shard, hosted: HostedGroup | undefined, sizes: ShardSizes, report: ReportedShard | undefined): Promise<ShardView> {
  const range = {
    id: shard.id,
    start: shard.start.toString('hex'),
    end: shard.end === null ? null : shard.end.toString('hex'),
    epoch: shard.epoch,
    replicas: shard.replicas,
    ...(shard.move !== undefined ? { move: shard.move } : {}),
    ...(shard.retired !== undefined ? { retired: shard.retired } : {}),
    ...(shard.replicaIds !== undefined ? { replicaIds: shard.replicaIds } : {}),
    ...(shard.nextGeneration !== undefined ? { nextGeneration: shard.nextGeneration } : {}),
    ...(shard.mergeInto !== undefined ? { mergeInto: shard.mergeInto } : {}),
    ...(shard.alignTo !== undefined ? { alignTo: shard.alignTo } : {}),
    reportedSizeBytes: report?.sizeBytes ?? null,
    requestsPerSecond: report?.requestsPerSecond ?? null,
    reportAgeMs: report?.ageMs ?? null,
  };
  if (hosted === undefined || hosted.group.state !== 'running') {
    return { ...range, leader: null, local: false, appliedIndex: null, keyCount: null, diskBytes: null, sizeBytes: null, proposals: null, quiesced: false };
  }
  const { group } = hosted;
  const stats = await group.machine.machine.stats();
  return {
    ...range,
    leader: group.leader === 0 ? null : group.leader,
    local: true,
    appliedIndex: group.machine.appliedIndex,
    keyCount: stats.keyCount ?? null,
    diskBytes: stats.diskBytes ?? null,
    sizeBytes: sizes.estimate(group.machine) ?? null,
    proposals: group.driver.metrics().proposals,
    quiesced: group.quiesced,
  };
}
