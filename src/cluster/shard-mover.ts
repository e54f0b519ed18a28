/**
 * Replica moves of a sharded cluster, run by the meta group's leader (TiKV's
 * PD and CockroachDB's replicate queue, on our map): every `intervalMs` it
 *
 *   1. drives each move recorded in the shard map (src/shard/moves.ts) to
 *      its next step — so a move started by a previous leader, or cut short
 *      by a crash of either member, resumes from the map and the shard
 *      group's configuration (every step is idempotent, shard-conf.ts);
 *   2. while fewer than `movesMax` moves are in flight, plans placement
 *      (src/shard/placement.ts: replica counts first, then bytes by the
 *      sizes in `reports`) over the live members and records the first
 *      planned moves in the map, one per shard.
 *
 * Failure detection is the host's node liveness (node-liveness.ts): a member
 * heard from within `suspectAfterMs` is live and may receive replicas; one
 * silent for longer than `memberDeadAfterMs` is dead, and its replicas are
 * re-replicated on live members; in between it is suspect, and while a
 * suspect member holds a replica nothing new is planned (a slow member is not
 * stripped of its replicas, nor given new ones). A move whose target dies
 * before it was promoted is abandoned (the target removed from the group and
 * retired in the map).
 *
 *   3. every LEADER_ROUND_EVERY rounds: asks every live member which shards
 *      it leads, with their sizes and load (shard-leads.ts), and keeps the
 *      latest report of each shard (`reports`: `GET /shards` shows them);
 *   4. with `balanceLeaders`, in those rounds when every live member
 *      answered and no move is in flight or planned: hands leaderships over
 *      (Raft leadership transfer, asked of each shard's leader: shard-conf.ts
 *      `transfer`) until no member leads more than ceil(mean)
 *      (src/shard/leaders.ts), at most `movesMax` transfers a round. Replica
 *      moves come first: a move changes the voters a leadership may go to.
 *
 * Decisions go to the log (info: each move started, finished, abandoned, each
 * leadership handed over; warn: a failed step or transfer) and to /metrics
 * (`figures`).
 */
import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.js';
import { abortMove, finishMove, movesInFlight, startMove, targetPromoted } from '../shard/moves.js';
import { type PlacedShard, planPlacement } from '../shard/placement.js';
import { SHARD_REPLICAS, type Shard, type ShardMap, boundsHex, encodeShardMap, mergingShard, raftIdOf, shardById } from '../shard/shard-map.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { Clock } from '../util/clock.js';
import { Rounds } from '../util/rounds.js';
import type { HostedGroup, HostedGroups } from './hosted-groups.js';
import { encodeClusterCommand } from './log-entries.js';
import { peerAddresses } from './membership.js';
import type { NodeHost } from './node-host.js';
import { type ShardConfStep, askShardLeader } from './shard-conf.js';
import { type LeadSources, type ReportsSnapshot, ShardReports, askShardLeads, askShardReports, leadersFromReports, localShardLeads, reportsSnapshot, serveShardLeads, serveShardReports, type ShardLead } from './shard-leads.js';
import type { ShardLoad } from './shard-load.js';
import type { ShardSizes } from './shard-size.js';
import { leaderBound, leaderCounts, planLeaderTransfers, type LedShard } from '../shard/leaders.js';

/** Leader balance runs every this many rounds (with the default 1 s round: every 5 s), so a transfer's election settles and the reports see it before the next plan. */
export const LEADER_ROUND_EVERY = 5;

export interface ShardMoverOptions {
  readonly host: NodeHost;
  readonly meta: HostedGroup;
  /** This node's groups: a step for a shard it leads runs here. */
  readonly groups: HostedGroups;
  readonly rpc: RpcEndpoint;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Most moves in flight at once, cluster-wide (`--shard-moves-max`, ≥ 1). */
  readonly movesMax: number;
  /** A member silent longer than this is dead and its replicas are re-replicated, ms (`--member-dead-after-ms`). */
  readonly memberDeadAfterMs: number;
  /** `--shard-balance-leaders`: hand shard leaderships over so no member leads more than ceil(mean). */
  readonly balanceLeaders: boolean;
  /** `--shard-balance-bytes-min`: the byte band is at least this wide either side of the mean, bytes (src/shard/byte-balance.ts). */
  readonly balanceBytesMin: number;
  /** A member silent longer than this is not live (receives no replicas), ms; below memberDeadAfterMs. */
  readonly suspectAfterMs: number;
  /** How often the leader looks at the map, ms. */
  readonly intervalMs: number;
  /** How long one step on a shard group may take before it is tried again, ms. */
  readonly stepTimeoutMs: number;
  /** Pause after a refused attempt, ms. */
  readonly retryPauseMs: number;
  /** One Raft tick, ms (how often a leadership transfer is checked). */
  readonly tickMs: number;
  /** The running byte counts of the shards this member leads (reported to the meta leader). */
  readonly sizes: ShardSizes;
  /** The smoothed loads of the shards this member leads (reported to the meta leader). */
  readonly load: ShardLoad;
}

export interface ShardMoveCounters {
  started: number;
  rereplications: number;
  finished: number;
  abandoned: number;
  stepFailures: number;
  leaderTransfers: number;
  leaderTransferFailures: number;
}

type Moving = Shard & { readonly move: NonNullable<Shard['move']> };

export class ShardMover {
  readonly counters: ShardMoveCounters = { started: 0, rereplications: 0, finished: 0, abandoned: 0, stepFailures: 0, leaderTransfers: 0, leaderTransferFailures: 0 };
  /** Shards whose move this process drives now (at most the moves in the map: ≤ movesMax, plus those a previous leader left). */
  private readonly driving = new Set<number>();
  private readonly rounds: Rounds;
  private closed = false;
  private roundCount = 0;
  /** The most leaderships one live member held, and the bound, when this meta leader last looked at leaders (0: not yet). */
  private leadersMax = 0;
  private leadersBound = 0;
  /** The inputs (map version, reports version, live members) of the last plan when it planned nothing. */
  private emptyPlanInputs: string | undefined;

  /** The latest report of each shard (size, load, leader), kept while this member leads the meta group. */
  readonly reports = new ShardReports();
  private readonly leadSources: LeadSources;

  constructor(private readonly options: ShardMoverOptions) {
    // Every member answers the meta leader's question of which shards it leads; the meta leader answers for the reports.
    this.leadSources = { host: options.host, metaGroup: options.meta.group.id, sizes: options.sizes, load: options.load };
    serveShardLeads(options.rpc, this.leadSources);
    serveShardReports(options.rpc, () => this.localReports());
    this.rounds = new Rounds(options.clock, options.intervalMs, () => this.round(), options.logger, 'shard placement round failed; trying again');
  }

  start(): void {
    this.rounds.start();
  }

  close(): void {
    this.closed = true;
    this.rounds.stop();
  }

  /** The figures for /status and /metrics. */
  figures(): Record<string, number> {
    const map = this.map;
    return {
      shard_moves_in_flight: map === undefined ? 0 : movesInFlight(map).length,
      shard_moves_started: this.counters.started,
      shard_moves_rereplications: this.counters.rereplications,
      shard_moves_finished: this.counters.finished,
      shard_moves_abandoned: this.counters.abandoned,
      shard_move_step_failures: this.counters.stepFailures,
      shard_leader_transfers: this.counters.leaderTransfers,
      shard_leader_transfer_failures: this.counters.leaderTransferFailures,
      shard_leaders_max: this.leadersMax,
      shard_leaders_bound: this.leadersBound,
    };
  }

  private get map(): ShardMap | undefined {
    return this.options.meta.group.machine.shardMap;
  }

  private get leading(): boolean {
    const { group } = this.options.meta;
    return !this.closed && group.leads;
  }

  /**
   * The meta leader's latest shard reports: its own when it leads the meta
   * group, else asked of the meta leader (undefined when there is none or it
   * does not answer within `timeoutMs`).
   */
  async reportsNow(timeoutMs: number): Promise<ReportsSnapshot | undefined> {
    const local = this.localReports();
    if (local !== undefined) return local;
    const leader = this.options.meta.group.leader;
    if (leader === 0 || leader === this.options.host.nodeId) return undefined;
    return askShardReports(this.options.rpc, leader, timeoutMs).catch((error: unknown) => {
      this.options.logger.debug({ err: error, metaLeader: leader }, 'the meta leader did not give its shard reports; GET /shards shows them as unknown');
      return undefined;
    });
  }

  private localReports(): ReportsSnapshot | undefined {
    return this.leading ? reportsSnapshot(this.options.host.nodeId, this.reports, this.options.clock.now()) : undefined;
  }

  private async round(): Promise<void> {
    const map = this.map;
    if (!this.leading || map === undefined) {
      this.reports.clear();
      return;
    }
    const inFlight = movesInFlight(map);
    for (const shard of inFlight) if (!this.driving.has(shard.id)) this.drive(shard.id);
    let started = 0;
    if (inFlight.length < this.options.movesMax) started = await this.plan(map, this.options.movesMax - inFlight.length);
    if (++this.roundCount % LEADER_ROUND_EVERY !== 0) return;
    const leads = await this.collectReports(map);
    if (leads !== undefined && this.options.balanceLeaders && inFlight.length === 0 && started === 0) await this.balanceLeaders(map, leads);
  }

  /** Asks every live member for its leads (sizes, load) and records them; resolves with them when every live member answered. */
  private async collectReports(map: ShardMap): Promise<Map<NodeId, readonly ShardLead[]> | undefined> {
    const { host, rpc, stepTimeoutMs, logger, clock } = this.options;
    const live = this.liveMembers(map);
    if (live === undefined) return undefined;
    const reports = new Map<NodeId, readonly ShardLead[]>();
    const asked = await Promise.allSettled(live.map(async (id) => reports.set(id, id === host.nodeId ? localShardLeads(this.leadSources) : await askShardLeads(rpc, id, stepTimeoutMs))));
    if (this.leading) this.reports.record(reports, new Set(map.shards.map((shard) => shard.id)), clock.now());
    const failed = asked.find((result) => result.status === 'rejected');
    if (failed === undefined) return reports;
    logger.debug({ err: failed.reason }, 'a live member did not say which shards it leads; its shards keep their previous reports, leader balance waits for the next round');
    return undefined;
  }

  // ---------------------------------------------------------------- planning

  /** Plans replica moves and starts at most `slots`; resolves with how many started. */
  private async plan(map: ShardMap, slots: number): Promise<number> {
    const { logger } = this.options;
    const live = this.liveMembers(map);
    if (live === undefined) return 0;
    // A plan that came out empty is not made again until the map, the live members or the reports change (a plan at thousands of shards takes tens of ms).
    const inputs = `${map.version}|${this.reports.version}|${live.join(',')}`;
    if (inputs === this.emptyPlanInputs) return 0;
    // Retired nodes are not excluded: a node returning to a shard takes a new Raft id (moves.ts).
    // With the sizes the shards' leaders reported (a shard with none weighs the mean: src/shard/placement-layout.ts).
    const shards: PlacedShard[] = map.shards.map((shard) => {
      const sizeBytes = this.reports.get(shard.id)?.sizeBytes;
      return { id: shard.id, replicas: replicasAfterMove(shard), ...(sizeBytes !== undefined && sizeBytes !== null ? { sizeBytes } : {}) };
    });
    const planned = planPlacement({ liveNodes: live, shards, replicationFactor: SHARD_REPLICAS, byteBandMinBytes: this.options.balanceBytesMin });
    this.emptyPlanInputs = planned.length === 0 ? inputs : undefined;
    const chosen = new Set<number>();
    for (const move of planned) {
      if (chosen.size >= slots) break;
      if (chosen.has(move.shard) || shardById(map, move.shard)?.move !== undefined || mergingShard(map, move.shard)) continue; // a merging shard moves after its merge
      chosen.add(move.shard);
      const rereplication = move.from === null || !live.includes(move.from);
      const written = await this.proposeMap((current) => startMove(current, move.shard, move.from, move.to));
      if (!written) continue;
      this.counters.started++;
      if (rereplication) this.counters.rereplications++;
      logger.info({ shard: move.shard, from: move.from, to: move.to, reason: rereplication ? 're-replicate (source dead or missing)' : 'balance', sizeBytes: this.reports.get(move.shard)?.sizeBytes ?? null, live }, 'shard replica move started');
      this.drive(move.shard);
    }
    return chosen.size;
  }

  // ---------------------------------------------------------------- leader balance

  /** Hands shard leaderships over (at most `movesMax` this round) so that no live member leads more than ceil(mean), by every live member's `reports`. */
  private async balanceLeaders(map: ShardMap, reports: ReadonlyMap<NodeId, readonly ShardLead[]>): Promise<void> {
    const { movesMax, logger } = this.options;
    const live = [...reports.keys()].sort((a, b) => a - b);
    const leaders = leadersFromReports(reports);
    // With each shard's smoothed load, as the tie-break of which leadership goes and to whom (leaders.ts).
    const shards: LedShard[] = map.shards.map((shard) => {
      const load = this.reports.get(shard.id)?.requestsPerSecond;
      return { id: shard.id, voters: shard.replicas, leader: leaders.get(shard.id) ?? 0, ...(load !== undefined && load !== null ? { load } : {}) };
    });
    const counts = leaderCounts(live, shards);
    this.leadersBound = leaderBound([...counts.values()].reduce((sum, count) => sum + count, 0), live.length);
    this.leadersMax = Math.max(...counts.values());
    const transfers = planLeaderTransfers(live, shards).slice(0, movesMax);
    await Promise.all(transfers.map(async ({ shard: id, from, to }) => {
      const shard = shardById(map, id)!;
      logger.info({ shard: id, from, to, leadersOfFrom: counts.get(from), leadersOfTo: counts.get(to), bound: this.leadersBound, requestsPerSecond: this.reports.get(id)?.requestsPerSecond ?? null }, 'shard leadership handed over for balance');
      try {
        await this.conf(shard, { op: 'transfer', id: to });
        this.counters.leaderTransfers++;
      } catch (error) {
        this.counters.leaderTransferFailures++;
        logger.warn({ err: error, shard: id, from, to }, 'a leader transfer for balance failed; the next leader round plans again');
      }
    }));
  }

  /** The live members (may receive replicas), or undefined while a suspect member holds a replica (nothing is planned then). */
  private liveMembers(map: ShardMap): NodeId[] | undefined {
    const { host, meta, suspectAfterMs, memberDeadAfterMs, logger } = this.options;
    const { voters, learners } = meta.group.membership.confState;
    const holders = new Set(map.shards.flatMap((shard) => [...shard.replicas, ...(shard.move !== undefined ? [shard.move.to] : [])]));
    const live: NodeId[] = [];
    for (const id of [...voters, ...learners]) {
      const silentMs = host.silentForMs(id);
      if (silentMs <= suspectAfterMs) live.push(id);
      else if (silentMs <= memberDeadAfterMs && holders.has(id)) {
        logger.debug({ member: id, silentMs }, 'a member holding replicas is suspect: no placement until it speaks or is dead');
        return undefined;
      }
    }
    return live.length === 0 ? undefined : live.sort((a, b) => a - b);
  }

  // ---------------------------------------------------------------- driving one move

  /** Drives shard `shardId`'s move to its end (or until this node stops leading the meta group); resumable from the map at any point. */
  private drive(shardId: number): void {
    this.driving.add(shardId);
    const loop = async (): Promise<void> => {
      while (this.leading) {
        const shard = shardById(this.map!, shardId);
        if (shard?.move === undefined) return;
        try {
          await this.step(shard as Moving);
        } catch (error) {
          this.counters.stepFailures++;
          this.options.logger.warn({ err: error, shard: shardId, move: shard.move }, 'a shard move step failed; trying again');
          await this.pause(this.options.retryPauseMs);
        }
      }
    };
    loop().finally(() => this.driving.delete(shardId));
  }

  /** The next step of `shard`'s move (see src/shard/moves.ts for the order). */
  private async step(shard: Moving): Promise<void> {
    const { from, to } = shard.move;
    const { logger } = this.options;
    if (!shard.replicas.includes(to)) {
      if (this.options.host.silentForMs(to) > this.options.memberDeadAfterMs) {
        await this.conf(shard, { op: 'remove', id: to });
        if (await this.proposeMap((map) => abortMove(map, shard.id, true))) {
          this.counters.abandoned++;
          logger.info({ shard: shard.id, from, to }, 'shard replica move abandoned: its target is dead');
        }
        return;
      }
      const peerUrl = peerAddresses(this.options.meta.group.membership).get(to);
      if (peerUrl === undefined) throw new Error(`node ${to} has no peer address in the membership`);
      // With the shard's range: the leader refuses while a split the map made is not applied in the group (shard-conf.ts).
      await this.conf(shard, { op: 'add-learner', id: to, peerUrl, bounds: boundsHex(shard), replicaId: raftIdOf(shard, to) });
      await this.conf(shard, { op: 'promote', id: to });
      await this.proposeMap((map) => targetPromoted(map, shard.id));
      return;
    }
    if (from !== null) await this.conf(shard, { op: 'remove', id: from });
    if (await this.proposeMap((map) => finishMove(map, shard.id))) {
      this.counters.finished++;
      logger.info({ shard: shard.id, from, to }, 'shard replica move finished');
    }
  }

  private conf(shard: Shard, step: ShardConfStep): Promise<unknown> {
    const { rpc, clock, stepTimeoutMs, retryPauseMs, host, groups } = this.options;
    const alive = (id: NodeId): boolean => host.silentForMs(id) <= this.options.suspectAfterMs;
    const route = { rpc, nodeId: host.nodeId, local: (id: number) => groups.get(id), alive, retryPauseMs, timing: { clock, stepTimeoutMs, pollMs: this.options.tickMs } };
    // The whole step may take the leader's step time plus the attempts before it reached the leader.
    return askShardLeader(route, shard, step, 2 * stepTimeoutMs);
  }

  /**
   * Proposes the map `change` makes of the current one; true once that map is
   * the applied one. A concurrent change (same version) makes ours a no-op:
   * false, and the caller looks at the map again.
   */
  private async proposeMap(change: (map: ShardMap) => ShardMap): Promise<boolean> {
    const next = change(this.map!);
    await this.options.meta.requests.write(encodeClusterCommand({ type: 'shard-map', map: next }), true);
    const applied = this.map;
    return applied !== undefined && applied.version === next.version && encodeShardMap(applied).equals(encodeShardMap(next));
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => this.options.clock.setTimer(ms, resolve));
  }
}

/** A shard's replicas once its move (if any) finished: the planner plans from there. */
function replicasAfterMove(shard: Shard): readonly NodeId[] {
  if (shard.move === undefined) return shard.replicas;
  const { from, to } = shard.move;
  return [...new Set([...shard.replicas.filter((id) => id !== from), to])].sort((a, b) => a - b);
}
