/**
 * The runtime side of shard splits on one member (the protocol: shard-split.ts).
 *
 *   - `requestSplit(key)`: commits the new map in the meta group (the shard
 *     holding `key` splits there; the right part gets a new id). A versioned
 *     compare-and-set: a concurrent map change makes it try again on the new
 *     map (at most SPLIT_MAP_ATTEMPTS times).
 *   - `reconcile(map)`: as the leader of a shard group whose own bounds are
 *     wider than its range in the map, proposes the `split` command in that
 *     group's log. Called when a map applies, when this member becomes a
 *     shard's leader, and after a failed proposal (after a pause, while it
 *     still leads): so a split whose map is committed finishes whichever
 *     member leads the parent, after any crash.
 *   - size checks (`--shard-split-bytes`): every `sizeCheckMs`, for each
 *     shard this member leads whose split is not under way, its running
 *     byte count (shard-size.ts: a counted base plus the bytes applied
 *     since; a scan only when that passes the threshold) is compared with
 *     the threshold; past it, the shard is split at its middle key by bytes.
 *     Without a threshold the same rounds keep the running byte count of
 *     every led shard for the meta leader's reports (ShardSizes.recount),
 *     scanning at most RECOUNT_BYTES_PER_ROUND a round (a round stops after
 *     the shard that passes it).
 *   - `originOf(shard)`: how a member that replicates a shard and does not
 *     host it yet must open it: made from the split record one of its groups
 *     holds, later (its parent has not applied the split yet), as one of the
 *     first map's shards, or from a snapshot of its leader.
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import { type Shard, type ShardMap, mergingShard, nextShardId, sameShardBounds, shardById, shardContains, shardFor, splitShard } from '../shard/shard-map.js';
import { compareBytes } from '../util/bytes.js';
import type { Clock } from '../util/clock.js';
import { Rounds } from '../util/rounds.js';
import type { HostedGroup, HostedGroups } from './hosted-groups.js';
import { encodeClusterCommand } from './log-entries.js';
import type { GroupSeed } from './raft-group.js';
import { ShardSizes } from './shard-size.js';
import { readSplitRecords, splitGroupSeed } from './shard-split.js';

/** Without a split threshold, a size round stops counting shards once it scanned this many bytes (the rest wait for the next round). */
export const RECOUNT_BYTES_PER_ROUND = 64 << 20;

/** Attempts of `requestSplit` against concurrent map changes. */
export const SPLIT_MAP_ATTEMPTS = 5;

export interface ShardSplitsOptions {
  readonly groups: HostedGroups;
  readonly meta: HostedGroup;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  /** Pause before proposing a failed split command again (while this member still leads the parent). */
  readonly retryPauseMs: number;
  /** A shard this member leads splits at its middle key past this many bytes of keys and values; 0: never by size. */
  readonly splitBytes: number;
  /** Interval of the size checks, ms. */
  readonly sizeCheckMs: number;
  readonly logger: Logger;
}

/** How to open a shard this member replicates (see `originOf`). */
export type ShardOrigin = { readonly kind: 'split'; readonly seed: GroupSeed } | { readonly kind: 'pending' } | { readonly kind: 'first-map' } | { readonly kind: 'snapshot' };

export class ShardSplits {
  private readonly proposing = new Set<number>();
  private closed = false;
  private readonly sizeChecks: Rounds;
  /** The running byte counts of the shards this member checked (shard-size.ts). */
  readonly sizes: ShardSizes;

  constructor(private readonly options: ShardSplitsOptions) {
    this.sizes = new ShardSizes(Math.max(1, options.splitBytes));
    this.sizeChecks = new Rounds(options.clock, options.sizeCheckMs, () => this.checkSizes(), options.logger, 'a shard size check failed; checking again later');
    this.sizeChecks.start();
  }

  close(): void {
    this.closed = true;
    this.sizeChecks.stop();
  }

  /**
   * Splits, one at a time, each shard this member leads that passed the size
   * threshold (and is not splitting already); without a threshold, keeps
   * their running byte counts (at most RECOUNT_BYTES_PER_ROUND scanned).
   */
  private async checkSizes(): Promise<void> {
    const { groups, meta, nodeId, splitBytes, logger } = this.options;
    let scannedBytes = 0;
    for (const shard of meta.group.machine.shardMap?.shards ?? []) {
      const hosted = groups.get(shard.id);
      const bounds = hosted?.group.machine.bounds;
      if (this.closed || hosted === undefined || bounds === undefined || hosted.group.state !== 'running' || hosted.group.leader !== nodeId) continue;
      if (!sameShardBounds(bounds, shard) || shard.move !== undefined || mergingShard(this.mapNow(), shard.id)) continue; // a split or merge of this shard is under way, or a move (no split until it ends)
      if (splitBytes <= 0) {
        if (scannedBytes >= RECOUNT_BYTES_PER_ROUND) return;
        scannedBytes += await this.sizes.recount(hosted.group.machine, bounds);
        continue;
      }
      const key = await this.sizes.check(hosted.group.machine, bounds);
      if (key === undefined) continue;
      logger.info({ shard: shard.id, key: key.toString('hex'), splitBytes }, 'a shard passed --shard-split-bytes: splitting it at its middle key');
      await this.requestSplit(key);
    }
  }

  /**
   * Splits the shard holding `key` at `key` (committed in the meta group);
   * resolves with a map that has the split, once this member applied it. A
   * key that starts a shard already is split there: the current map (so a
   * retried request is answered again). IMPULSE_ERR_UNAVAILABLE when
   * concurrent map changes won every attempt, and while the shard has a
   * replica move in flight (retry after it). The new shard serves once its
   * parent applied the split (shard-split.ts); requests until then are
   * refused as unavailable and retried.
   */
  async requestSplit(key: Uint8Array): Promise<ShardMap> {
    const { meta } = this.options;
    for (let attempt = 0; attempt < SPLIT_MAP_ATTEMPTS; attempt++) {
      await meta.requests.readBarrier();
      const map = this.mapNow();
      const shard = shardFor(map, key);
      if (compareBytes(shard.start, key) === 0) return map;
      if (shard.move !== undefined) throw moving(shard);
      await meta.requests.write(encodeClusterCommand({ type: 'shard-map', map: splitShard(map, shard.id, key, nextShardId(map)) }), true);
    }
    throw new ImpulseError('IMPULSE_ERR_UNAVAILABLE', `the shard map changed under ${SPLIT_MAP_ATTEMPTS} split attempts in a row; retry`, { details: { retryAfterSeconds: 1 } });
  }

  /** Proposes the split command in every group this member leads whose bounds are wider than its range in `map`. */
  reconcile(map: ShardMap): void {
    for (const shard of map.shards) {
      const hosted = this.options.groups.get(shard.id);
      if (hosted !== undefined) this.reconcileGroup(map, shard, hosted);
    }
  }

  /** How to open `shard` on this member (it replicates it and does not host it). */
  async originOf(map: ShardMap, shard: Shard): Promise<ShardOrigin> {
    if (shard.epoch === 1) return { kind: 'first-map' }; // epoch 1: the first map's, made by no split
    let pending = false;
    for (const other of map.shards) {
      const parent = this.options.groups.get(other.id);
      if (parent === undefined || other.id === shard.id || parent.group.state !== 'running') continue;
      const record = (await readSplitRecords(parent.group.machine.machine)).get(shard.id);
      if (record !== undefined) return { kind: 'split', seed: splitGroupSeed(parent, record) };
      const bounds = parent.group.machine.bounds;
      if (bounds !== undefined && shardContains(bounds, shard.start)) pending = true;
    }
    return pending ? { kind: 'pending' } : { kind: 'snapshot' };
  }

  private reconcileGroup(map: ShardMap, shard: Shard, hosted: HostedGroup): void {
    const { group } = hosted;
    const bounds = group.machine.bounds;
    if (this.closed || bounds === undefined || group.state !== 'running' || group.leader !== this.options.nodeId || this.proposing.has(group.id)) return;
    // A merge widens the survivor's bounds before the map widens its range: that is no split to propose.
    if (mergingShard(map, shard.id)) return;
    const key = shard.end;
    // The map's range ends inside the bounds: the group has not applied the split the map made.
    if (key === null || compareBytes(key, bounds.start) <= 0 || !shardContains(bounds, key)) return;
    const right = shardFor(map, key);
    this.proposing.add(group.id);
    hosted.requests.write(encodeClusterCommand({ type: 'split', key, rightId: right.id }), true).then(
      () => {
        this.proposing.delete(group.id);
        this.options.logger.info({ shard: group.id, right: right.id, key: key.toString('hex') }, 'shard split applied in its parent group');
      },
      (error: unknown) => {
        this.proposing.delete(group.id);
        this.options.logger.warn({ err: error, shard: group.id, right: right.id }, 'proposing a shard split failed; trying again while this member leads the shard');
        this.options.clock.setTimer(this.options.retryPauseMs, () => {
          const now = this.options.meta.group.machine.shardMap;
          const current = now === undefined ? undefined : shardById(now, group.id);
          if (now !== undefined && current !== undefined) this.reconcileGroup(now, current, hosted);
        });
      },
    );
  }

  private mapNow(): ShardMap {
    return this.options.meta.group.machine.appliedShardMap();
  }
}

/** The refusal of a split of `shard` while a replica move of it is in flight (retryable: moves take seconds). */
function moving(shard: Shard): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_UNAVAILABLE', `shard ${shard.id} has a replica move in flight; it splits after the move (retry)`, { details: { shard: shard.id, moveFrom: shard.move?.from ?? null, moveTo: shard.move?.to ?? null, retryAfterSeconds: 1 } });
}
