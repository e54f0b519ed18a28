/**
 * One leaderless node: its replica on an open engine, the coordinator, the
 * failure detector and hinted handoff, wired to a peer RPC endpoint (the
 * NodeHost's on TCP in production; an in-memory network in tests and the
 * simulator) and a Clock.
 *
 *   const node = await LeaderlessNode.open({ nodeId, members, engine, limits, rpc, clock, wallClockMs, logger, config });
 *   node.start();                    // heartbeats, handoff, anti-entropy and tombstone collection timers
 *   await node.coordinator.put(key, value, context, w);
 *   node.stop();                     // timers only; the owner closes the engine and the RPC endpoint
 */
import type { Logger } from 'pino';
import type { Engine } from '../storage/engine.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { Clock } from '../util/clock.js';
import { AntiEntropy } from './anti-entropy.js';
import { Coordinator, type LeaderlessMutations } from './coordinator.js';
import type { NodeId } from './dvv.js';
import { FailureDetector } from './failure-detector.js';
import { HintedHandoff } from './handoff.js';
import { type MembershipService, PeerLink, serveReplica } from './peer-link.js';
import { RangeReader } from './range.js';
import type { LeaderlessConfig } from './config.js';
import { Replica } from './replica.js';
import { EngineReplicaStore, type ReplicaStoreLimits } from './replica-store.js';
import type { Ring } from './ring.js';
import { type MemberAddress, type MembershipPhase, type MembershipState, Membership, checkMembers, decodeMembership, encodeMembership, membershipRejected } from './membership.js';
import { type ChangeOptions, MembershipChange } from './membership-change.js';
import { MembershipGossip } from './membership-gossip.js';
import { OwnershipHandoff } from './ownership.js';
import { TombstoneCollector } from './tombstones.js';

export interface LeaderlessNodeOptions {
  readonly nodeId: NodeId;
  /**
   * The members of a new cluster (the --initial-cluster; a joining member's is
   * the current members, without itself). Used until a membership state is
   * stored (membership.ts); after that the stored one counts.
   */
  readonly members: readonly NodeId[];
  /** Their peer addresses ("host:port"), when known (TCP members); '' otherwise. */
  readonly peerUrls?: ReadonlyMap<NodeId, string>;
  /** Told every membership, on open and after each change, so the transport can dial new members. */
  readonly onMembers?: (members: readonly MemberAddress[]) => void;
  /** An open engine; the node writes its format key on first use. */
  readonly engine: Engine;
  readonly limits: ReplicaStoreLimits;
  readonly rpc: Pick<RpcEndpoint, 'serve' | 'callAsync'>;
  readonly clock: Clock;
  /** Wall-clock ms for lww timestamps. */
  readonly wallClockMs: () => number;
  readonly logger: Logger;
  readonly config: LeaderlessConfig;
  /** Where the engine lives, for errors. */
  readonly where: string;
  /** The URL clients reach this member at (its --advertise-client), announced to peers in heartbeats; '' or absent when there is none. */
  readonly clientUrl?: string;
  /** Test-only (the simulator's mutation check). */
  readonly mutations?: LeaderlessMutations;
  /** How long the transfer step of a membership change may take on one member, ms (default TRANSFER_TIMEOUT_MS; the simulator shortens it so a lost step message costs seconds of virtual time, not minutes). */
  readonly transferTimeoutMs?: number;
}

/** How long the transfer step of a membership change may take on one member, ms. */
const TRANSFER_TIMEOUT_MS = 120_000;

export class LeaderlessNode {
  /** A repair started by a `repair` step runs (one at a time). */
  private repairing = false;

  private constructor(
    readonly options: LeaderlessNodeOptions,
    readonly membership: Membership,
    readonly store: EngineReplicaStore,
    readonly replica: Replica,
    readonly link: PeerLink,
    readonly detector: FailureDetector,
    readonly coordinator: Coordinator,
    readonly handoff: HintedHandoff,
    readonly antiEntropy: AntiEntropy,
    readonly ranges: RangeReader,
    readonly tombstones: TombstoneCollector,
    readonly ownership: OwnershipHandoff,
    readonly changes: MembershipChange,
    readonly gossip: MembershipGossip,
  ) {}

  static async open(options: LeaderlessNodeOptions): Promise<LeaderlessNode> {
    const { nodeId, config, clock } = options;
    const store = await EngineReplicaStore.open(options.engine, options.limits, options.where);
    const stored = await store.readMembership();
    const initial: MembershipState = stored !== undefined ? decodeMembership(stored, options.where) : { epoch: 0, members: checkMembers(options.members.map((id) => ({ id, peerUrl: options.peerUrls?.get(id) ?? '' }))) };
    const replica = new Replica({ nodeId, store, conflicts: config.conflicts, wallClockMs: options.wallClockMs });
    const link = new PeerLink(nodeId, replica, options.rpc, options.limits);
    const memberIds = (state: MembershipState): NodeId[] => [...new Set([...state.members, ...(state.pending?.members ?? [])].map((member) => member.id))];
    const detector = new FailureDetector(
      { self: nodeId, clock, heartbeatMs: config.heartbeatMs, suspectAfterMs: config.suspectAfterMs, downAfterMs: config.downAfterMs, ping: (to, timeoutMs) => link.ping(to, timeoutMs).then((status) => gossip.heard(to, status)) },
      memberIds(initial),
    );
    // Set below, once the parts that react to a change exist; a change cannot arrive before `serveReplica`.
    let onChange = (_state: MembershipState): void => undefined;
    const membership = new Membership(initial, config.vnodesPerNode, (state) => store.writeMembership(encodeMembership(state)), (state) => onChange(state));
    const ring = (): Ring => membership.ring();
    // A member that missed a commit step brings itself forward from its peers' heartbeat answers (membership-gossip.ts).
    const gossip = new MembershipGossip({
      self: nodeId,
      membership,
      link,
      commit: (epoch) => node.membershipStep('commit', epoch, []),
      abort: (epoch, members) => node.membershipStep('abort', epoch, members),
      // Removed while it was down (a forced removal): hand every key to the owners, as a member that left does.
      removed: () => node.ownership.scheduleCleanup(),
      logger: options.logger,
      timeoutMs: config.requestTimeoutMs,
    });
    const coordinator = new Coordinator({ self: nodeId, ring, pendingRing: () => membership.pendingRing(), replicas: config.replicas, sloppy: config.sloppy, link, detector, replica, clock, requestTimeoutMs: config.requestTimeoutMs, ...(options.mutations !== undefined ? { mutations: options.mutations } : {}) });
    const handoff = new HintedHandoff({ store, replica, link, detector, clock, logger: options.logger, intervalMs: config.handoffIntervalMs, timeoutMs: config.requestTimeoutMs, ring, replicas: config.replicas });
    const antiEntropy = new AntiEntropy({
      self: nodeId,
      store,
      replica,
      link,
      ring,
      replicas: config.replicas,
      detector,
      clock,
      logger: options.logger,
      intervalMs: config.antiEntropyIntervalMs,
      passTimeMaxMs: config.antiEntropyPassTimeMaxMs,
      passBytesMax: config.antiEntropyPassBytesMax,
      timeoutMs: config.requestTimeoutMs,
      ...(options.mutations?.antiEntropySkipsOddLeaves === true ? { skipOddLeaves: true } : {}),
    });
    const ranges = new RangeReader({ ring, replicas: config.replicas, link, replica, timeoutMs: config.requestTimeoutMs });
    const tombstones = new TombstoneCollector({
      self: nodeId,
      store,
      link,
      detector,
      ring,
      changing: () => membership.pendingRing() !== undefined,
      replicas: config.replicas,
      clock,
      wallClockMs: options.wallClockMs,
      logger: options.logger,
      graceMs: config.tombstoneGraceMs,
      intervalMs: config.tombstoneIntervalMs,
      timeoutMs: config.requestTimeoutMs,
    });
    const ownership = new OwnershipHandoff({ self: nodeId, store, replica, link, ring, changing: () => membership.pendingRing() !== undefined, replicas: config.replicas, clock, logger: options.logger, timeoutMs: config.requestTimeoutMs, ...(options.mutations?.handoffMovesNothing === true ? { movesNothing: true } : {}) });
    const changes = new MembershipChange({
      membership,
      self: nodeId,
      liveness: (id) => detector.liveness(id),
      clock,
      replicas: config.replicas,
      requestTimeoutMs: config.requestTimeoutMs,
      transferTimeoutMs: options.transferTimeoutMs ?? TRANSFER_TIMEOUT_MS,
      // The claimant runs its own step itself.
      send: (to, phase, epoch, next, timeoutMs) => (to === nodeId ? node.membershipStep(phase, epoch, next) : link.membershipStep(to, phase, epoch, next, timeoutMs)),
    });
    const node: LeaderlessNode = new LeaderlessNode(options, membership, store, replica, link, detector, coordinator, handoff, antiEntropy, ranges, tombstones, ownership, changes, gossip);
    onChange = (state) => {
      detector.setMembers(memberIds(state));
      gossip.retain(memberIds(state));
      options.onMembers?.(membership.everyone());
    };
    options.onMembers?.(membership.everyone());
    serveReplica(options.rpc, replica, options.limits, antiEntropy, node.membershipService());
    return node;
  }

  /** The current ring (it changes with the membership). */
  get ring(): Ring {
    return this.membership.ring();
  }

  start(): void {
    this.detector.start();
    this.handoff.start();
    this.antiEntropy.start();
    this.tombstones.start();
    // Keys a change moved away (the cleanup of a commit interrupted by a restart) are handed off again.
    this.ownership.scheduleCleanup();
  }

  stop(): void {
    this.detector.stop();
    this.handoff.stop();
    this.antiEntropy.stop();
    this.tombstones.stop();
    this.ownership.stop();
  }

  /** Changes the membership to `members`, this node the claimant (membership.ts; `force`: membership-change.ts); resolves once every member committed it. */
  changeMembership(members: readonly MemberAddress[], options: ChangeOptions = {}): Promise<void> {
    // The transport must know a new member's address before the first step goes to it.
    this.options.onMembers?.(checkMembers(members));
    return this.changes.run(members, options);
  }

  /** This node's membership as the peer protocol serves it: the steps, the ping answer, the committed membership. */
  membershipService(): MembershipService {
    return {
      step: (phase, epoch, members) => this.membershipStep(phase, epoch, members),
      status: () => ({ epoch: this.membership.view.epoch, clientUrl: this.options.clientUrl ?? '' }),
      committed: () => ({ epoch: this.membership.view.epoch, members: this.membership.view.members }),
    };
  }

  /** This node's part of a membership step (from a claimant, or this node's own). */
  async membershipStep(phase: MembershipPhase, epoch: number, members: readonly MemberAddress[]): Promise<void> {
    switch (phase) {
      case 'pending':
        return this.membership.begin(epoch, members);
      case 'transfer': {
        const next = this.membership.pendingRing();
        if (next === undefined || this.membership.view.pending?.epoch !== epoch) throw membershipRejected(`no change of epoch ${epoch} is pending here`, { epoch: this.membership.view.epoch });
        await this.ownership.transfer(this.membership.ring(), next);
        return;
      }
      case 'commit':
        await this.membership.commit(epoch);
        this.ownership.scheduleCleanup();
        return;
      case 'abort':
        return this.membership.abort(epoch, members);
      case 'repair':
        // After a forced removal committed here: the ranges this member gained are filled from the surviving replicas.
        if (this.membership.view.epoch >= epoch) this.repairInBackground();
        return;
    }
  }

  /** Starts `antiEntropy.repairAll()` (bounded per peer, as `impulse repair`) unless one started this way still runs. */
  private repairInBackground(): void {
    if (this.repairing) return;
    this.repairing = true;
    const { logger } = this.options;
    void this.antiEntropy
      .repairAll()
      .then(
        (results) => logger.info({ results }, 'anti-entropy repair after a forced removal done'),
        (error: unknown) => logger.warn({ err: error }, 'anti-entropy repair after a forced removal failed; background anti-entropy and read repair go on'),
      )
      .finally(() => (this.repairing = false));
  }
  /** Flat figures of every repair path and request kind (for /status and /metrics). */
  figures(): Record<string, number> {
    const { coordinator, replica, handoff } = this;
    return {
      leaderless_reads: coordinator.figures.reads,
      leaderless_writes: coordinator.figures.writes,
      leaderless_quorum_failures: coordinator.figures.quorumFailures,
      leaderless_read_repairs: coordinator.figures.readRepairs,
      leaderless_hinted_writes: coordinator.figures.hintedWrites,
      leaderless_hints_stored: replica.figures.hintsStored,
      leaderless_hints_delivered: handoff.hintsDelivered,
      leaderless_hint_delivery_failures: handoff.deliveryFailures,
      leaderless_writes_coordinated: replica.figures.writesCoordinated,
      leaderless_sets_applied: replica.figures.setsApplied,
      leaderless_sets_changed: replica.figures.setsChanged,
      leaderless_anti_entropy_exchanges: this.antiEntropy.figures.exchanges,
      leaderless_anti_entropy_exchanges_failed: this.antiEntropy.figures.exchangesFailed,
      leaderless_anti_entropy_leaves_differing: this.antiEntropy.figures.leavesDiffering,
      leaderless_anti_entropy_keys_pulled: this.antiEntropy.figures.keysPulled,
      leaderless_anti_entropy_keys_pushed: this.antiEntropy.figures.keysPushed,
      leaderless_anti_entropy_bytes: this.antiEntropy.figures.bytesExchanged,
      leaderless_tombstones_collected: replica.figures.tombstonesCollected,
      leaderless_tombstone_collections_blocked: this.tombstones.figures.blocked,
      leaderless_membership_epoch: this.membership.view.epoch,
      leaderless_keys_transferred: this.ownership.figures.keysTransferred,
      leaderless_keys_handed_off: this.ownership.figures.keysHandedOff,
      leaderless_membership_commits_pulled: this.gossip.figures.commitsPulled,
      leaderless_membership_aborts_pulled: this.gossip.figures.abortsPulled,
      leaderless_membership_removals_pulled: this.gossip.figures.removalsPulled,
    };
  }
}
