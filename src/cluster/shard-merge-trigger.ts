/**
 * The automatic merge trigger (`--shard-merge-bytes`; docs/sharding.md
 * "Merges"), run by the meta group's leader as the replica mover is: every
 * round it takes the latest shard sizes the shard leaders reported to it
 * (shard-leads.ts `ShardReports`), and when no merge and no move is in flight
 * it starts the first merge `planMerges` (src/shard/merges.ts) finds: two
 * neighbours each under M bytes, their sum under half of
 * `--shard-split-bytes`, on the same members, and neither changed (split,
 * merged, moved: its epoch rose) within `--shard-merge-quiet-ms` (TiKV's
 * split-merge-interval; hysteresis against split–merge flapping). One merge
 * at a time: a merge is a few log entries and a copy of a small shard.
 *
 * A shard's "last change" is when this leader first saw its current epoch,
 * so a new meta leader waits the quiet time before its first merge.
 */
import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.js';
import { planMerges } from '../shard/merges.js';
import { type ShardMap, mergingShard } from '../shard/shard-map.js';
import type { Clock } from '../util/clock.js';
import { Rounds } from '../util/rounds.js';
import type { HostedGroup } from './hosted-groups.js';
import type { ShardReport } from './shard-leads.js';

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
  /** Starts a merge of `leftId`'s right neighbour into it (ShardGroups.merge). */
  readonly merge: (leftId: number) => Promise<ShardMap>;
}

export class ShardMergeTrigger {
  private readonly rounds: Rounds;
  /** Each shard's epoch and when this member, leading the meta group, first saw it. */
  private readonly epochSeen = new Map<number, { epoch: number; atMs: number }>();
  private decided = 0;

  constructor(private readonly options: ShardMergeTriggerOptions) {
    this.rounds = new Rounds(options.clock, options.mergeBytes > 0 ? options.intervalMs : 0, () => this.round(), options.logger, 'a shard merge round failed; trying again');
  }

  start(): void {
    this.rounds.start();
  }

  close(): void {
    this.rounds.stop();
  }

  /** `/status` and `/metrics` figures: merges this member decided while leading the meta group. */
  figures(): Record<string, number> {
    return { shard_merges_decided: this.decided };
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
    if (map.shards.some((shard) => shard.move !== undefined || mergingShard(map, shard.id))) return;
    const sizes = new Map<number, number>();
    for (const [shard, report] of this.options.reports()) if (report.sizeBytes !== null && now - report.reportedAtMs <= reportMaxAgeMs) sizes.set(shard, report.sizeBytes);
    const [leftId] = planMerges(map, sizes, { mergeBytes, splitBytes, recentlySplit: recentlyChanged });
    if (leftId === undefined) return;
    const right = map.shards[map.shards.findIndex((shard) => shard.id === leftId) + 1]!;
    logger.info({ shard: leftId, right: right.id, leftBytes: sizes.get(leftId), rightBytes: sizes.get(right.id), mergeBytes, splitBytes }, 'two neighbouring shards are under --shard-merge-bytes: merging the right one into the left');
    this.decided++;
    await this.options.merge(leftId);
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
