/**
 * The GC of leftover shard replicas (TiKV's "destroy peer" of a stale peer,
 * CockroachDB's replica GC queue): files of shard groups on this member that
 * the shard map no longer gives it and that no group here hosts. They are
 * what a crash leaves between a member's leaving a shard's group and its
 * deleting its copy (ShardGroups.destroyUnassigned and ShardMerges.
 * destroyMerged run only on hosted groups, and after a restart a member
 * opens only the groups its map gives it).
 *
 * A round (every `intervalMs`, never two at once):
 *
 *   1. lists the group ids with files here (`HostedGroups.idsOnDisk`) that
 *      are not hosted and not the meta group; none: done (an idle round costs
 *      one directory listing). The same candidates that the last verdict kept
 *      are judged again only after KEPT_RECHECK_MS, so a kept leftover does
 *      not cost a meta round every interval;
 *   2. waits for the meta group's read point (a linearizable read of the
 *      map): the map applied here after a restart may be older than the one
 *      that gave this member a replica, and a stale map must never delete it;
 *   3. judges each candidate against the map now applied (at or past that
 *      point) with `leftoverVerdict`, inside the member's open chain (`serial`:
 *      every group's files are made there, so none appears meanwhile), and
 *      deletes at most LEFTOVERS_PER_ROUND of them, logging each.
 *
 * Conservative by construction: any doubt keeps the files (the reasons are
 * in `leftoverVerdict`); a kept copy costs disk, a wrongly deleted one could
 * cost a replica the map still counts on.
 */
import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.js';
import { replicaRole } from '../shard/moves.js';
import { META_GROUP, type ShardMap, shardById } from '../shard/shard-map.js';
import type { Clock } from '../util/clock.js';
import { Rounds } from '../util/rounds.js';
import type { HostedGroups } from './hosted-groups.js';

/** Most leftover groups one round deletes (the next round goes on). */
export const LEFTOVERS_PER_ROUND = 16;
/** A round whose candidates were all kept by the last verdict waits this long before judging them again, ms. */
export const KEPT_RECHECK_MS = 60_000;

/**
 * What to do with the files of group `groupId` on node `nodeId`, which hosts
 * no such group, given `map` (at or past the meta group's read point) and,
 * for a group the map no longer names, the group its copy here merges into
 * (`mergesInto`: its `merge-prepared` record's left id; undefined: no such
 * record, or it could not be read).
 *
 *   - the meta group, a shard this node replicates or is the target of a
 *     move to (its open is the member's to do): keep;
 *   - a shard the map names without this node: its copy left the group (a
 *     move finished, or was abandoned after its target was removed; the map
 *     records both only once the group's configuration did): delete;
 *   - an id above every id the map ever gave: unknown to this map: keep;
 *   - an id the map dropped (merged away): delete only when the copy here
 *     applied its prepare-merge into a shard that the map names without this
 *     node — no replica here will ever take the copy in (a node returning to
 *     that shard takes it by snapshot, under a new Raft id). A merge target
 *     this node replicates: keep (ShardMerges.destroyMerged deletes it once
 *     every replica took it in); a target the map no longer names (merged
 *     further), or no record: keep.
 */
export function leftoverVerdict(map: ShardMap, nodeId: NodeId, groupId: number, mergesInto: number | undefined): { delete: boolean; reason: string } {
  if (groupId === META_GROUP) return { delete: false, reason: 'the meta group' };
  const shard = shardById(map, groupId);
  if (shard !== undefined) {
    const role = replicaRole(shard, nodeId);
    return role === 'none' ? { delete: true, reason: 'the shard left this member' } : { delete: false, reason: role === 'replica' ? 'this member replicates the shard' : 'the shard is moving to this member' };
  }
  if (groupId > highestIdOf(map)) return { delete: false, reason: 'an id newer than the map' };
  if (mergesInto === undefined) return { delete: false, reason: 'merged away, but this copy holds no merge record' };
  const target = shardById(map, mergesInto);
  if (target === undefined) return { delete: false, reason: 'merged into a shard that was merged away in turn' };
  if (replicaRole(target, nodeId) !== 'none') return { delete: false, reason: 'merged into a shard this member replicates (deleted once every replica took it in)' };
  return { delete: true, reason: 'merged into a shard that left this member' };
}

/** The highest group id `map` ever gave (its shards', and merged-away ones'). */
function highestIdOf(map: ShardMap): number {
  return Math.max(map.highestId ?? META_GROUP, ...map.shards.map((each) => each.id));
}

export interface LeftoverGcOptions {
  readonly groups: HostedGroups;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  /** Interval of the rounds, ms (≤ 0: no rounds). */
  readonly intervalMs: number;
  /** Resolves once this member applied every map committed before the call (the meta group's read point). */
  readonly catchUp: () => Promise<void>;
  /** The map applied on this member now. */
  readonly map: () => ShardMap | undefined;
  /** Runs `work` in the member's open chain (no group's files are made meanwhile). */
  readonly serial: (work: () => Promise<void>) => Promise<void>;
  readonly logger: Logger;
}

/** This member's leftover GC since it started. */
export interface LeftoverCounters {
  /** Leftover copies deleted (`shard_replicas_gc`). */
  deleted: number;
  /** Candidates a verdict kept (counted once per verdict). */
  kept: number;
}

export class LeftoverGc {
  private readonly rounds: Rounds;
  private closed = false;
  /** The candidates the last verdict kept, and when. */
  private lastKept: { readonly ids: ReadonlySet<number>; readonly atMs: number } | undefined;
  readonly counters: LeftoverCounters = { deleted: 0, kept: 0 };

  constructor(private readonly options: LeftoverGcOptions) {
    this.rounds = new Rounds(options.clock, options.intervalMs, () => this.round(), options.logger, 'a leftover shard replica GC round failed; trying again later');
    this.rounds.start();
  }

  close(): void {
    this.closed = true;
    this.rounds.stop();
  }

  /** One round (see the file comment). */
  async round(): Promise<void> {
    const { groups, clock, catchUp, serial } = this.options;
    const candidates = await this.candidates();
    if (candidates.length === 0 || this.closed) return;
    const kept = this.lastKept;
    if (kept !== undefined && clock.now() - kept.atMs < KEPT_RECHECK_MS && candidates.every((id) => kept.ids.has(id))) return;
    await catchUp();
    await serial(async () => {
      const map = this.options.map();
      if (map === undefined || this.closed) return;
      const keptIds = new Set<number>();
      let deleted = 0;
      for (const id of await this.candidates()) {
        if (this.closed || deleted >= LEFTOVERS_PER_ROUND) break;
        if (groups.get(id) !== undefined) continue;
        if (await this.judge(map, id)) deleted++;
        else keptIds.add(id);
      }
      this.lastKept = { ids: keptIds, atMs: clock.now() };
    });
  }

  /** Group ids with files here, not hosted, not the meta group. */
  private async candidates(): Promise<number[]> {
    const { groups } = this.options;
    return (await groups.idsOnDisk()).filter((id) => id !== META_GROUP && groups.get(id) === undefined);
  }

  /** Judges group `id`'s files and deletes them when the verdict says so; true when deleted. */
  private async judge(map: ShardMap, id: number): Promise<boolean> {
    const { groups, nodeId, logger } = this.options;
    // Only a group the map dropped (merged away) is judged by its merge record: read it for no other.
    const mergedAway = shardById(map, id) === undefined && id <= highestIdOf(map);
    let mergesInto: number | undefined;
    if (mergedAway) {
      try {
        mergesInto = (await groups.mergePreparedOnDisk(id))?.leftId;
      } catch (error) {
        logger.warn({ err: error, shard: id }, 'could not read the merge record of a leftover shard copy; keeping it');
      }
    }
    const verdict = leftoverVerdict(map, nodeId, id, mergesInto);
    if (!verdict.delete) {
      this.counters.kept++;
      logger.debug({ shard: id, mapVersion: map.version, reason: verdict.reason }, 'kept the files of a shard copy this member does not host');
      return false;
    }
    try {
      await groups.destroy(id);
    } catch (error) {
      logger.error({ err: error, shard: id }, 'could not delete a leftover shard copy; its files stay (the next round tries again)');
      return false;
    }
    this.counters.deleted++;
    logger.info({ shard: id, mapVersion: map.version, reason: verdict.reason, mergesInto: mergesInto ?? null }, 'deleted a leftover copy of a shard this member no longer replicates');
    return true;
  }
}
