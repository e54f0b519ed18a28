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
import { PeerLink, serveReplica } from './peer-link.js';
import { RangeReader } from './range.js';
import type { LeaderlessConfig } from './config.js';
import { Replica } from './replica.js';
import { EngineReplicaStore, type ReplicaStoreLimits } from './replica-store.js';
import { Ring } from './ring.js';
import { TombstoneCollector } from './tombstones.js';

export interface LeaderlessNodeOptions {
  readonly nodeId: NodeId;
  /** Every member's id, this node's included (static membership today). */
  readonly members: readonly NodeId[];
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
  /** Test-only (the simulator's mutation check). */
  readonly mutations?: LeaderlessMutations;
}

export class LeaderlessNode {
  private constructor(
    readonly options: LeaderlessNodeOptions,
    readonly ring: Ring,
    readonly store: EngineReplicaStore,
    readonly replica: Replica,
    readonly link: PeerLink,
    readonly detector: FailureDetector,
    readonly coordinator: Coordinator,
    readonly handoff: HintedHandoff,
    readonly antiEntropy: AntiEntropy,
    readonly ranges: RangeReader,
    readonly tombstones: TombstoneCollector,
  ) {}

  static async open(options: LeaderlessNodeOptions): Promise<LeaderlessNode> {
    const { nodeId, config, clock } = options;
    const store = await EngineReplicaStore.open(options.engine, options.limits, options.where);
    const replica = new Replica({ nodeId, store, conflicts: config.conflicts, wallClockMs: options.wallClockMs });
    const link = new PeerLink(nodeId, replica, options.rpc, options.limits);
    const detector = new FailureDetector(
      { self: nodeId, clock, heartbeatMs: config.heartbeatMs, suspectAfterMs: config.suspectAfterMs, downAfterMs: config.downAfterMs, ping: (to, timeoutMs) => link.ping(to, timeoutMs) },
      options.members,
    );
    const ring = new Ring(options.members, config.vnodesPerNode);
    const coordinator = new Coordinator({ self: nodeId, ring: () => ring, replicas: config.replicas, sloppy: config.sloppy, link, detector, replica, clock, requestTimeoutMs: config.requestTimeoutMs, ...(options.mutations !== undefined ? { mutations: options.mutations } : {}) });
    const handoff = new HintedHandoff({ store, replica, link, detector, clock, logger: options.logger, intervalMs: config.handoffIntervalMs, timeoutMs: config.requestTimeoutMs });
    const antiEntropy = new AntiEntropy({
      self: nodeId,
      store,
      replica,
      link,
      ring: () => ring,
      replicas: config.replicas,
      detector,
      clock,
      logger: options.logger,
      intervalMs: config.antiEntropyIntervalMs,
      timeoutMs: config.requestTimeoutMs,
      ...(options.mutations?.antiEntropySkipsOddLeaves === true ? { skipOddLeaves: true } : {}),
    });
    serveReplica(options.rpc, replica, options.limits, antiEntropy);
    const ranges = new RangeReader({ ring: () => ring, replicas: config.replicas, link, replica, timeoutMs: config.requestTimeoutMs });
    const tombstones = new TombstoneCollector({
      self: nodeId,
      store,
      link,
      detector,
      ring: () => ring,
      replicas: config.replicas,
      clock,
      wallClockMs: options.wallClockMs,
      logger: options.logger,
      graceMs: config.tombstoneGraceMs,
      intervalMs: config.tombstoneIntervalMs,
      timeoutMs: config.requestTimeoutMs,
    });
    return new LeaderlessNode(options, ring, store, replica, link, detector, coordinator, handoff, antiEntropy, ranges, tombstones);
  }

  start(): void {
    this.detector.start();
    this.handoff.start();
    this.antiEntropy.start();
    this.tombstones.start();
  }

  stop(): void {
    this.detector.stop();
    this.handoff.stop();
    this.antiEntropy.stop();
    this.tombstones.stop();
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
    };
  }
}
