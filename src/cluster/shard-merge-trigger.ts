/**
 * The automatic merge trigger (`--shard-merge-bytes`; docs/sharding.md
 * "Merges"), run by the meta group's leader as the replica mover is: every
 * round it takes the latest shard sizes the shard leaders reported to it
 * (shard-leads.ts `ShardReports`) and the live members (the mover's view),
 * and carries out `planMergeRound` (src/shard/alignment.ts):
 *
 *   - drops the alignments that no longer qualify (a member of the pair not
 *     live, the pair grew past the thresholds): the balancers are free again;
 *   - when no merge is in flight, starts one: a pair whose alignment is done
 *     first, else the first pair `mergeCandidates` (src/shard/merges.ts)
 *     finds on the same members — two neighbours each under M bytes, their
 *     sum under half of `--shard-split-bytes`, neither changed (split,
 *     merged, moved: its epoch rose) within `--shard-merge-quiet-ms`
 *     (TiKV's split-merge-interval; hysteresis against split–merge flapping);
 *   - marks candidate pairs on different members for alignment (the mover
 *     then moves the right shard's replicas onto the left's), at most
 *     `alignmentsMax` in flight.
 *
 * One merge at a time: a merge is a few log entries and a copy of a small
 * shard. A shard's "last change" is when this leader first saw its current
 * epoch, so a new meta leader waits the quiet time before its first merge
 * or alignment (an alignment a previous leader marked goes on).
 */
import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.js';
import { alignments, dropAlignment, planMergeRound, startAlignment } from '../shard/alignment.js';
import { type ShardMap, shardById } from '../shard/shard-map.js';
import type { Clock } from '../util/clock.js';
import { Rounds } from '../util/rounds.js';
import type { HostedGroup } from './hosted-groups.js';
import type { ShardReport } from './shard-leads.js';
import { proposeShardMap } from './shard-mover.js';

export interface ShardMergeTriggerOptions {
  readonly meta: HostedGroup;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  readonly logger: Logger;
  /** `--shard-merge-bytes`: 0 turns the trigger off. */
  readonly mergeBytes: number;
  /** `--shard-split-bytes` (0: off). */
  readonly splitBytes: number;
  /** `--shard-merge-quiet-ms`: a shard whose epoch rose more recently than this does not merge. */
  readonly quietMs: number;
  /** Interval of the rounds, ms. */
  readonly intervalMs: number;
  /** Reports older than this are not used (a shard whose leader stopped reporting is not merged on old news). */
  readonly reportMaxAgeMs: number;
  /** The meta leader's latest report of each shard. */
  readonly reports: () => ReadonlyMap<number, ShardReport>;
  /** The live members (ShardMover.liveMembers), undefined while a member holding replicas is suspect. */
  readonly live: (map: ShardMap) => readonly NodeId[] | undefined;
  /** Most alignments in flight at once (`--shard-moves-max`: their moves share that bound anyway). */
  readonly alignmentsMax: number;
  /** Starts a merge of `leftId`'s right neighbour into it (ShardGroups.merge). */
  readonly merge: (leftId: number) => Promise<ShardMap>;
}

export class ShardMergeTrigger {
  private readonly rounds: Rounds;
  /** Each shard's epoch and when this member, leading the meta group, first saw it. */
  private readonly epochSeen = new Map<number, { epoch: number; atMs: number }>();
  private decided = 0;
  private alignmentsStarted = 0;
  private alignmentsDropped = 0;

  constructor(private readonly options: ShardMergeTriggerOptions) {
    this.rounds = new Rounds(options.clock, options.mergeBytes > 0 ? options.intervalMs : 0, () => this.round(), options.logger, 'a shard merge round failed; trying again');
  }

  start(): void {
    this.rounds.start();
  }

  close(): void {
    this.rounds.stop();
  }

  /** `/status` and `/metrics` figures: merges and alignments this member decided while leading the meta group, and the alignments in its map. */
  figures(): Record<string, number> {
    const map = this.options.meta.group.machine.shardMap;
    return {
      shard_merges_decided: this.decided,
      shard_alignments_started: this.alignmentsStarted,
      shard_alignments_dropped: this.alignmentsDropped,
      shard_alignments_in_flight: map === undefined ? 0 : alignments(map).length,
    };
  }

  private async round(): Promise<void> {
    const { meta, nodeId, clock, logger, mergeBytes, splitBytes, quietMs, reportMaxAgeMs } = this.options;
    const map = meta.group.machine.shardMap;
    if (map === undefined || meta.group.leader !== nodeId) {
      this.epochSeen.clear();
      return;
    }
    const now = clock.now();
    const recentlyChanged = this.noteEpochs(map, now, quietMs);
    const sizes = new Map<number, number>();
    for (const [shard, report] of this.options.reports()) if (report.sizeBytes !== null && now - report.reportedAtMs <= reportMaxAgeMs) sizes.set(shard, report.sizeBytes);
    const live = this.options.live(map);
    const plan = planMergeRound({ map, sizes, live: live === undefined ? undefined : new Set(live), recentlySplit: recentlyChanged, mergeBytes, splitBytes, alignmentsMax: this.options.alignmentsMax });
    for (const { right, why } of plan.drop) {
      if (!(await proposeShardMap(meta, (current) => dropAlignment(current, right)))) continue;
      this.alignmentsDropped++;
      logger.info({ right, left: shardById(map, right)?.alignTo, why }, 'shard alignment for a merge dropped: the balancers may move both shards again');
    }
    for (const leftId of plan.align) {
      const right = map.shards[map.shards.findIndex((shard) => shard.id === leftId) + 1]!;
      // The map may have changed since the plan (a move of the pair started): refused then, and planned again next round.
      const marked = await proposeShardMap(meta, (current) => startAlignment(current, leftId)).catch((error: unknown) => {
        logger.debug({ err: error, shard: leftId }, 'a shard alignment was not started: the map changed; the next round plans again');
        return false;
      });
      if (!marked) continue;
      this.alignmentsStarted++;
      logger.info({ shard: leftId, right: right.id, leftReplicas: shardById(map, leftId)?.replicas, rightReplicas: right.replicas, leftBytes: sizes.get(leftId), rightBytes: sizes.get(right.id), mergeBytes }, 'two small neighbouring shards are on different members: aligning the right one\'s replicas with the left one\'s before merging');
    }
    if (plan.merge === undefined) return;
    const right = map.shards[map.shards.findIndex((shard) => shard.id === plan.merge) + 1]!;
    logger.info({ shard: plan.merge, right: right.id, leftBytes: sizes.get(plan.merge), rightBytes: sizes.get(right.id), mergeBytes, splitBytes, aligned: right.alignTo === plan.merge }, 'two neighbouring shards are under --shard-merge-bytes: merging the right one into the left');
    this.decided++;
    await this.options.merge(plan.merge);
  }

  /** Records the epochs of `map` and returns the shards whose epoch this member first saw less than `quietMs` ago. */
  private noteEpochs(map: ShardMap, now: number, quietMs: number): Set<number> {
    const recent = new Set<number>();
    const present = new Set<number>();
    for (const shard of map.shards) {
      present.add(shard.id);
      let seen = this.epochSeen.get(shard.id);
      if (seen === undefined || seen.epoch !== shard.epoch) this.epochSeen.set(shard.id, (seen = { epoch: shard.epoch, atMs: now }));
      if (now - seen.atMs < quietMs) recent.add(shard.id);
    }
    for (const id of this.epochSeen.keys()) if (!present.has(id)) this.epochSeen.delete(id);
    return recent;
  }
}
