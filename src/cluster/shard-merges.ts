/**
 * The runtime side of shard merges on one member (the protocol:
 * shard-merge.ts; the map: src/shard/merges.ts).
 *
 *   - `requestMerge(leftId)`: commits the intent in the meta group (the
 *     right neighbour marked merging into `leftId`); a versioned
 *     compare-and-set, tried again on a concurrent map change.
 *   - `reconcile(map)`: for every merge in flight, as the leader of a group
 *     involved, proposes that group's next step: prepare-merge (the right
 *     group's leader, while its bounds are its range in the map), commit-merge
 *     (the left group's leader, once its own replica of the right group
 *     applied the prepare: it proposes what that replica froze at), and the
 *     map's finish (the left group's leader, once its bounds cover both
 *     ranges). Called after every map, leader change and bounds change, and
 *     again after a pause while a step is not done: so a merge finishes
 *     whichever members lead, after any crash.
 *   - `destroyMerged(map)`: deletes this member's replica of a merged-away
 *     group once the map no longer names it and EVERY replica of the
 *     survivor took it in (its `merged.<id>` record; asked over RPC): until
 *     then the merged-away group lives on, frozen, so that a replica of the
 *     survivor that was down or behind can still bring its own replica of the
 *     merged-away group up to the prepare and take it in (TiKV instead ships
 *     the source's log in CommitMerge). A member down therefore delays only
 *     this deletion, never the merge.
 *   - RPC `shard-merge` {op: 'merged', group, other}: whether this member's
 *     replica of `group` took group `other` in.
 *   - `requestRollback(leftId)`: marks the merge into `leftId` to roll back
 *     (`abortMerge`); `reconcile` then proposes the rollback's steps instead
 *     (shard-merge.ts: abort in the left group, rollback in the right one once
 *     this member's replica of the left one applied the abort, then the map's
 *     `finishRollback`), or finishes the merge when the left group's commit
 *     came first. The meta leader marks a merge itself once it has been in
 *     flight longer than `timeoutMs` (as this member saw it).
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import { MERGE_RIGHT_BYTES_MAX, abortMerge, checkRightSize, finishMerge, finishRollback, startMerge } from '../shard/merges.js';
import { type Shard, type ShardMap, sameShardBounds, shardById } from '../shard/shard-map.js';
import type { Clock } from '../util/clock.js';
import type { HostedGroup, HostedGroups } from './hosted-groups.js';
import { encodeClusterCommand } from './log-entries.js';
import { frozenBytesAbove, mergedRightIds, readMergePrepared } from './shard-merge.js';

export const SHARD_MERGE_CHANNEL = 'shard-merge';
/** Retry pauses between two asks whether every survivor replica took a merged-away group in (a member down: not every 100 ms). */
const DESTROY_RETRY_PAUSES = 20;
/** Attempts of `requestMerge` (and of the map's finish) against concurrent map changes. */
const MERGE_MAP_ATTEMPTS = 5;

export interface ShardMergesOptions {
  readonly groups: HostedGroups;
  readonly meta: HostedGroup;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  /** Pause before a step that is not done yet (or failed) is tried again. */
  readonly retryPauseMs: number;
  /** How long a peer has to answer `shard-merge`. */
  readonly rpcTimeoutMs: number;
  /** `--shard-merge-timeout-ms`: the meta leader rolls back a merge in flight longer than this (0: never). */
  readonly timeoutMs: number;
  /**
   * Most key and value bytes of the right group a commit copies (default
   * MERGE_RIGHT_BYTES_MAX): the copy is one engine batch in memory on every
   * replica of the left group, so above it the merge is rolled back.
   */
  readonly copyBytesMax?: number;
  /** Follows the current map again (ShardGroups): reconciles merges and destroys merged-away replicas. */
  readonly refollow: () => void;
  readonly logger: Logger;
}

/** Merge decisions and steps of this member (the current meta leader's and shard leaders' since start). */
export interface MergeCounters {
  requested: number;
  prepared: number;
  committed: number;
  finished: number;
  /** Merges this member marked to roll back (its time bound as the meta leader, an operator's cancel through it, a copy above its bound as the left leader). */
  rollbacksRequested: number;
  /** Rollbacks this member finished in the map (the right shard serves its range again). */
  rolledBack: number;
  stepFailures: number;
}

export class ShardMerges {
  /** Steps being proposed, by `<step>.<group>`: one at a time each. */
  private readonly busy = new Set<string>();
  private retryArmed = false;
  private closed = false;
  /** When this member first saw each merge in flight, by right shard id (with its attempt, the right shard's epoch). */
  private readonly seen = new Map<number, { epoch: number; atMs: number }>();
  readonly counters: MergeCounters = { requested: 0, prepared: 0, committed: 0, finished: 0, rollbacksRequested: 0, rolledBack: 0, stepFailures: 0 };

  constructor(private readonly options: ShardMergesOptions) {
    const { groups } = options;
    groups.rpc.serve(SHARD_MERGE_CHANNEL, (_from, body, reply) => {
      const { op, group, other } = (body ?? {}) as { op?: unknown; group?: unknown; other?: unknown };
      const hosted = typeof group === 'number' ? groups.get(group) : undefined;
      if (op !== 'merged' || hosted === undefined || typeof other !== 'number' || hosted.group.state !== 'running') return reply(null, { merged: false });
      reply(null, { merged: mergedRightIds(hosted.group.machine.machine).includes(other) });
    });
  }

  close(): void {
    this.closed = true;
  }

  /**
   * Merges shard `leftId`'s right neighbour into it: resolves with a map that
   * has the intent (the merge then runs on its own; `GET /shards` shows it in
   * flight, and the right shard gone when done). Asking again while it runs
   * is answered with the current map. IMPULSE_ERR_CONFIG_INVALID when the two
   * cannot merge (no such shard or neighbour, different replicas, a move or
   * another merge in flight; with `sizeOf`, a right shard above
   * MERGE_RIGHT_BYTES_MAX: merges.ts `checkRightSize`), IMPULSE_ERR_UNAVAILABLE when concurrent map
   * changes won every attempt or `sizeOf` does not know the right shard's size.
   */
  async requestMerge(leftId: number, sizeOf?: (shard: number) => number | undefined): Promise<ShardMap> {
    const { meta, logger } = this.options;
    for (let attempt = 0; attempt < MERGE_MAP_ATTEMPTS; attempt++) {
      await meta.requests.readBarrier();
      const map = this.mapNow();
      if (map.shards.some((shard) => shard.mergeInto === leftId)) return map;
      const next = startMerge(map, leftId);
      if (sizeOf !== undefined) checkRightSize(next, leftId, sizeOf);
      await meta.requests.write(encodeClusterCommand({ type: 'shard-map', map: next }), true);
      const written = this.mapNow();
      if (written.version >= next.version && written.shards.some((shard) => shard.mergeInto === leftId)) {
        this.counters.requested++;
        logger.info({ shard: leftId, right: next.shards.find((shard) => shard.mergeInto === leftId)?.id }, 'shard merge started: the right neighbour merges into the shard');
        return written;
      }
    }
    throw new ImpulseError('IMPULSE_ERR_UNAVAILABLE', `the shard map changed under ${MERGE_MAP_ATTEMPTS} merge attempts in a row; retry`, { details: { retryAfterSeconds: 1 } });
  }

  /** Proposes the next step of every merge in flight in `map` whose group this member leads (see the file comment). */
  reconcile(map: ShardMap): void {
    if (this.closed) return;
    this.noteMerges(map);
    let pending = false;
    for (const right of map.shards) {
      if (right.mergeInto === undefined) continue;
      const left = shardById(map, right.mergeInto);
      if (left === undefined) continue;
      this.rollBackIfOverdue(left.id, right);
      pending = (right.mergeAbort === true ? this.rollbackStep(left, right) : this.step(left, right)) || pending;
    }
    if (pending) this.retryLater(1);
  }

  /** How long this member has seen the merge of right shard `rightId` in flight (undefined: none in its map). */
  mergeAgeMs(rightId: number): number | undefined {
    const seen = this.seen.get(rightId);
    return seen === undefined ? undefined : this.options.clock.now() - seen.atMs;
  }

  /**
   * Marks the merge into shard `leftId` to roll back (merges.ts
   * `abortMerge`) and resolves with the map that has the mark; the rollback
   * then runs on its own (`GET /shards`: the right shard without `mergeInto`
   * when done), unless the left group had taken the right one in already:
   * then the merge finishes. IMPULSE_ERR_CONFIG_INVALID when no merge into
   * `leftId` is in flight.
   */
  async requestRollback(leftId: number, why: string): Promise<ShardMap> {
    const { meta, logger } = this.options;
    for (let attempt = 0; attempt < MERGE_MAP_ATTEMPTS; attempt++) {
      await meta.requests.readBarrier();
      const map = this.mapNow();
      const next = abortMerge(map, leftId);
      if (next === map) return map;
      await meta.requests.write(encodeClusterCommand({ type: 'shard-map', map: next }), true);
      const written = this.mapNow();
      if (written.version >= next.version && written.shards.some((shard) => shard.mergeInto === leftId && shard.mergeAbort === true)) {
        this.counters.rollbacksRequested++;
        logger.warn({ shard: leftId, why }, 'shard merge to be rolled back: the right neighbour serves its range again unless the left shard took it in first');
        return written;
      }
    }
    throw new ImpulseError('IMPULSE_ERR_UNAVAILABLE', `the shard map changed under ${MERGE_MAP_ATTEMPTS} rollback attempts in a row; retry`, { details: { retryAfterSeconds: 1 } });
  }

  /** Destroys this member's replicas of merged-away groups every replica of their survivors took in (see the file comment); asks again later while one has not. */
  async destroyMerged(map: ShardMap): Promise<void> {
    const { groups, logger } = this.options;
    for (const shard of map.shards) {
      const survivor = groups.get(shard.id);
      if (this.closed || survivor === undefined || survivor.group.state !== 'running') continue;
      for (const rightId of mergedRightIds(survivor.group.machine.machine)) {
        if (shardById(map, rightId) !== undefined || (groups.get(rightId) === undefined && (await groups.raftIdOnDisk(rightId)) === undefined)) continue;
        if (!(await this.everyReplicaMerged(shard, rightId))) {
          this.retryLater(DESTROY_RETRY_PAUSES);
          continue;
        }
        try {
          await groups.destroy(rightId);
          logger.info({ shard: rightId, into: shard.id }, 'destroyed this member\'s copy of a shard merged into its left neighbour');
        } catch (error) {
          logger.error({ err: error, shard: rightId }, 'could not destroy the copy of a merged-away shard; its files stay');
        }
      }
    }
  }

  /** Proposes the next step of the merge of `right` into `left` when this member leads the group it belongs to; true when the merge is not done here yet (try again later). */
  private step(left: Shard, right: Shard): boolean {
    const { groups, nodeId } = this.options;
    const leftGroup = groups.get(left.id);
    const rightGroup = groups.get(right.id);
    const leads = (hosted: HostedGroup | undefined): hosted is HostedGroup => hosted !== undefined && hosted.group.state === 'running' && hosted.group.leader === nodeId;
    if (leads(rightGroup) && rightGroup.group.machine.bounds !== undefined && sameShardBounds(rightGroup.group.machine.bounds, right)) {
      this.propose(`prepare.${right.id}`, async () => {
        await rightGroup.requests.write(encodeClusterCommand({ type: 'prepare-merge', leftId: left.id, bounds: { start: right.start, end: right.end }, epoch: right.epoch }), true);
        return true;
      }, 'prepared');
    }
    if (!leads(leftGroup)) return true;
    const bounds = leftGroup.group.machine.bounds;
    if (bounds === undefined) return false;
    if (sameShardBounds(bounds, left)) this.propose(`commit.${left.id}`, () => this.commitWhenReady(leftGroup, left, right), 'committed');
    else if (sameShardBounds(bounds, { start: left.start, end: right.end })) this.propose(`finish.${left.id}`, () => this.finishInMap(left.id), 'finished');
    return true;
  }

  /** Whether every other replica of `survivor` answers that it took group `rightId` in (a member that does not answer has not). */
  private async everyReplicaMerged(survivor: Shard, rightId: number): Promise<boolean> {
    const { groups, nodeId, rpcTimeoutMs } = this.options;
    for (const node of survivor.replicas) {
      if (node === nodeId) continue;
      const answer = (await groups.rpc.callAsync(node, SHARD_MERGE_CHANNEL, { op: 'merged', group: survivor.id, other: rightId }, rpcTimeoutMs).catch(() => null)) as { merged?: unknown } | null;
      if (answer?.merged !== true) return false;
    }
    return true;
  }

  /**
   * Proposes commit-merge in the left group once this member's replica of the
   * right group applied its prepare; does nothing (the next round asks again)
   * before. The copy's bound is checked here, on the right group's frozen
   * data (final since the prepare, the same on every replica): above
   * `copyBytesMax` the merge is rolled back instead.
   */
  private async commitWhenReady(leftGroup: HostedGroup, left: Shard, right: Shard): Promise<boolean> {
    const local = this.options.groups.get(right.id);
    const prepared = local === undefined ? undefined : await readMergePrepared(local.group.machine.machine);
    if (local === undefined || prepared === undefined || prepared.leftId !== left.id || prepared.epoch !== right.epoch) return false;
    const copyBytesMax = this.options.copyBytesMax ?? MERGE_RIGHT_BYTES_MAX;
    const bytes = await frozenBytesAbove(local.group.machine.machine, prepared, copyBytesMax);
    if (bytes !== undefined) {
      await this.requestRollback(left.id, `shard ${right.id} froze with more than ${copyBytesMax} bytes of keys and values (${bytes} counted): a merge copies at most that in one batch`);
      return false;
    }
    await leftGroup.requests.write(encodeClusterCommand({ type: 'commit-merge', rightId: right.id, bounds: prepared.bounds, revisionTop: prepared.revisionTop, epoch: prepared.epoch }), true);
    return true;
  }

  /**
   * The next step of the rollback of `right`'s merge into `left` (the map
   * marks it `mergeAbort`) where this member leads a group involved: the
   * abort in the left group (while it has not taken the right one in; when it
   * has, the merge finishes instead), the rollback in the right group (once
   * this member's replica of the left one applied the abort), then the
   * map's `finishRollback` (once this member's replica of the right one
   * serves its range again). True while not done here.
   */
  private rollbackStep(left: Shard, right: Shard): boolean {
    const { groups, nodeId } = this.options;
    const leftGroup = groups.get(left.id);
    const rightGroup = groups.get(right.id);
    const leads = (hosted: HostedGroup | undefined): hosted is HostedGroup => hosted !== undefined && hosted.group.state === 'running' && hosted.group.leader === nodeId;
    const attempt = right.epoch;
    const leftBounds = leftGroup?.group.machine.bounds;
    const aborted = (leftGroup?.group.machine.mergeMarks.aborted.get(right.id) ?? 0) >= attempt;
    if (leads(leftGroup) && leftBounds !== undefined) {
      if (sameShardBounds(leftBounds, { start: left.start, end: right.end })) this.propose(`finish.${left.id}`, () => this.finishInMap(left.id), 'finished');
      else if (sameShardBounds(leftBounds, left) && !aborted) {
        this.propose(`abort.${left.id}`, async () => {
          await leftGroup.requests.write(encodeClusterCommand({ type: 'abort-merge', rightId: right.id, bounds: { start: right.start, end: right.end }, epoch: attempt }), true);
          return true;
        });
      }
    }
    if (leads(rightGroup) && aborted) {
      const machine = rightGroup.group.machine;
      if (machine.mergeMarks.rolledBack < attempt) {
        this.propose(`rollback.${right.id}`, async () => {
          await rightGroup.requests.write(encodeClusterCommand({ type: 'rollback-merge', leftId: left.id, epoch: attempt }), true);
          return true;
        });
      } else if (machine.bounds !== undefined && sameShardBounds(machine.bounds, right)) {
        this.propose(`unfreeze.${right.id}`, () => this.finishRollbackInMap(left.id, attempt), 'rolledBack');
      }
    }
    return true;
  }

  /** Commits the map without the merge into `leftId` (rolled back in the right group at `attempt`): the right shard at a new epoch. */
  private async finishRollbackInMap(leftId: number, attempt: number): Promise<boolean> {
    const { meta, logger } = this.options;
    for (let tries = 0; tries < MERGE_MAP_ATTEMPTS; tries++) {
      await meta.requests.readBarrier();
      const map = this.mapNow();
      const right = map.shards.find((shard) => shard.mergeInto === leftId);
      if (right === undefined || right.mergeAbort !== true || right.epoch !== attempt) return tries > 0;
      await meta.requests.write(encodeClusterCommand({ type: 'shard-map', map: finishRollback(map, leftId) }), true);
      logger.info({ shard: leftId, right: right.id }, 'shard merge rolled back: the right neighbour serves its range again');
    }
    logger.warn({ shard: leftId }, 'the shard map changed under every attempt to finish a merge rollback; trying again later');
    return false;
  }

  /** Notes when this member first saw each merge in flight in `map` (`mergeAgeMs`); forgets those gone. */
  private noteMerges(map: ShardMap): void {
    const now = this.options.clock.now();
    const present = new Set<number>();
    for (const shard of map.shards) {
      if (shard.mergeInto === undefined) continue;
      present.add(shard.id);
      const seen = this.seen.get(shard.id);
      if (seen === undefined || seen.epoch !== shard.epoch) this.seen.set(shard.id, { epoch: shard.epoch, atMs: now });
    }
    for (const id of this.seen.keys()) if (!present.has(id)) this.seen.delete(id);
  }

  /** As the meta leader: marks `right`'s merge into `leftId` to roll back once this member has seen it in flight longer than `timeoutMs`. */
  private rollBackIfOverdue(leftId: number, right: Shard): void {
    const { timeoutMs, meta, nodeId, logger } = this.options;
    const age = this.mergeAgeMs(right.id);
    if (timeoutMs <= 0 || right.mergeAbort === true || age === undefined || age <= timeoutMs || meta.group.leader !== nodeId) return;
    const key = `overdue.${right.id}`;
    if (this.busy.has(key)) return;
    this.busy.add(key);
    this.requestRollback(leftId, `in flight ${age} ms, over --shard-merge-timeout-ms ${timeoutMs}`).then(
      () => this.busy.delete(key),
      (error: unknown) => {
        this.busy.delete(key);
        logger.warn({ err: error, shard: leftId }, 'marking an overdue shard merge to roll back failed; trying again');
      },
    );
  }

  /** Commits the merged map (the left shard widened, the right one gone) once the left group took the right one in. */
  private async finishInMap(leftId: number): Promise<boolean> {
    const { meta, logger } = this.options;
    for (let attempt = 0; attempt < MERGE_MAP_ATTEMPTS; attempt++) {
      await meta.requests.readBarrier();
      const map = this.mapNow();
      if (!map.shards.some((shard) => shard.mergeInto === leftId)) return attempt > 0;
      await meta.requests.write(encodeClusterCommand({ type: 'shard-map', map: finishMerge(map, leftId) }), true);
      logger.info({ shard: leftId }, 'shard merge finished: the map widened the shard over its merged-away neighbour');
    }
    logger.warn({ shard: leftId }, 'the shard map changed under every attempt to finish a merge; trying again later');
    return false;
  }

  /** Runs `work` (one step) unless the same step runs already; `counter` counts it when it says it is done. */
  private propose(key: string, work: () => Promise<boolean>, counter?: 'prepared' | 'committed' | 'finished' | 'rolledBack'): void {
    if (this.busy.has(key) || this.closed) return;
    this.busy.add(key);
    work().then(
      (done) => {
        this.busy.delete(key);
        if (done && counter !== undefined) this.counters[counter]++;
      },
      (error: unknown) => {
        this.busy.delete(key);
        this.counters.stepFailures++;
        this.options.logger.warn({ err: error, step: key }, 'a shard merge step failed; trying again while this member leads the group');
      },
    );
  }

  /** Follows the map again (ShardGroups: reconcile and destroyMerged) after `pauses` retry pauses (one timer at a time). */
  private retryLater(pauses: number): void {
    if (this.retryArmed || this.closed) return;
    this.retryArmed = true;
    this.options.clock.setTimer(pauses * this.options.retryPauseMs, () => {
      this.retryArmed = false;
      if (!this.closed) this.options.refollow();
    });
  }

  private mapNow(): ShardMap {
    return this.options.meta.group.machine.appliedShardMap();
  }
}
