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
 *     (Ranges do not change at runtime yet, so every replica bootstraps the
 *     same bounds; a split must change them through the group's own log.)
 *
 * Opens run one at a time in map order (a promise chain): a map applied while
 * one runs is taken up after it.
 */
import type { Logger } from 'pino';
import type { ShardView, ShardsView } from '../protocol/shard-view.js';
import type { NodeId } from '../raft/types.js';
import { replicaRole } from '../shard/moves.js';
import { META_GROUP, SHARD_BOUNDS_META_NAME, type Shard, type ShardMap, encodeShardBounds, initialShardMap } from '../shard/shard-map.js';
import type { HostedGroup, HostedGroups } from './hosted-groups.js';
import { encodeClusterCommand } from './log-entries.js';
import { peerAddresses } from './membership.js';

export interface ShardGroupsOptions {
  readonly groups: HostedGroups;
  /** The meta group on this member (group 1). */
  readonly meta: HostedGroup;
  readonly nodeId: NodeId;
  /** `--split-keys` of a new cluster (empty: not sharded, unless the meta group already holds a map). */
  readonly splitKeys: readonly Buffer[];
  /** The initial voters (the replicas of every initial shard). */
  readonly initialVoters: readonly NodeId[];
  readonly logger: Logger;
}

export class ShardGroups {
  private opening: Promise<void> = Promise.resolve();
  private proposing = false;
  private closed = false;

  constructor(private readonly options: ShardGroupsOptions) {
    const { meta } = options;
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

  /** Resolves once every group of the current map this member replicates is open (or failed to open, logged). */
  settled(): Promise<void> {
    return this.opening;
  }

  /** Stops opening groups (the host closes the open ones). */
  close(): void {
    this.closed = true;
  }

  private follow(map: ShardMap): void {
    this.opening = this.opening.then(() => this.openMissing(map)).then(() => this.destroyUnassigned(map));
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
      if (role === 'none' || groups.get(shard.id) !== undefined) continue;
      if (role === 'incoming') {
        await this.openIncoming(shard);
        continue;
      }
      const voters = new Map(shard.replicas.map((id) => [id, addresses.get(id)] as const).filter((entry): entry is [NodeId, string] => entry[1] !== undefined));
      try {
        const bounds = { name: SHARD_BOUNDS_META_NAME, value: encodeShardBounds(shard) };
        await groups.open(shard.id, voters.size === shard.replicas.length ? voters : undefined, [bounds]);
        logger.info({ shard: shard.id, epoch: shard.epoch }, 'opened shard group');
      } catch (error) {
        logger.error({ err: error, shard: shard.id }, 'could not open a shard group; requests for its keys are refused on this member');
      }
    }
  }

  /** Opens the group of a shard moving to this member, empty: it joins as a learner and takes a snapshot from the group's leader (moves.ts). */
  private async openIncoming(shard: Shard): Promise<void> {
    const { groups, logger } = this.options;
    try {
      await groups.open(shard.id, undefined);
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

/** `GET /shards` as this member sees it: the map (or, unsharded, group 1 as the one shard) with its view of each group. */
export async function shardsView(clusterId: string, nodeId: NodeId, shards: ShardGroups, meta: HostedGroup): Promise<ShardsView> {
  const map = shards.map;
  if (!shards.sharded) {
    const whole: Shard = { id: META_GROUP, start: Buffer.alloc(0), end: null, epoch: 1, replicas: [...meta.group.membership.confState.voters].sort((a, b) => a - b) };
    return { clusterId, nodeId, sharded: false, version: 1, shards: [await shardView(whole, meta)] };
  }
  const views: ShardView[] = [];
  for (const shard of map?.shards ?? []) views.push(await shardView(shard, shards.hosted(shard)));
  return { clusterId, nodeId, sharded: true, version: map?.version ?? 0, shards: views };
}

async function shardView(shard: Shard, hosted: HostedGroup | undefined): Promise<ShardView> {
  const range = {
    id: shard.id,
    start: shard.start.toString('hex'),
    end: shard.end === null ? null : shard.end.toString('hex'),
    epoch: shard.epoch,
    replicas: shard.replicas,
    ...(shard.move !== undefined ? { move: shard.move } : {}),
    ...(shard.retired !== undefined ? { retired: shard.retired } : {}),
  };
  if (hosted === undefined || hosted.group.state !== 'running') {
    return { ...range, leader: null, local: false, appliedIndex: null, keyCount: null, diskBytes: null, proposals: null, quiesced: false };
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
    proposals: group.driver.metrics().proposals,
    quiesced: group.quiesced,
  };
}
