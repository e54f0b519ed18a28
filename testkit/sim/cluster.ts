/**
 * The simulated cluster: nodes that each run the PRODUCT driver
 * (src/raft/driver.ts) on the simulator's seams — a `MemLogStore` whose fsyncs
 * complete after a random delay, the `KvStateMachine` with its own durability,
 * the `SimNetwork`, and virtual time. Crashes, pauses and restarts happen
 * here; what to crash and when is the nemesis's choice (nemesis.ts), and what
 * must hold is the invariants' (invariants.ts).
 */
import { RaftDriver, type RaftDriverLimits, type StopReason } from '../../src/raft/driver.js';
import type { RaftTransport } from '../../src/raft/driver-seams.js';
import { decodeCoalescedHeartbeats, HeartbeatCoalescer, heartbeatsIn, type CoalescedHeartbeatsBody, type GroupHeartbeat } from '../../src/raft/coalesced-heartbeats.js';
import type { RaftConfig } from '../../src/raft/raft.js';
import type { ConfChange, ConfState, Message, NodeId } from '../../src/raft/types.js';
import type { Random } from '../../src/util/random.js';
import type { KvOutput } from '../check/linearizability.js';
import { Invariants, type ViolationKind } from './invariants.js';
import { digestState, encodeCommand, KvStateMachine, type KvCommand, type KvResult, type SimImagePayload } from './kv.js';
import { MemLogStore } from './mem-log-store.js';
import { SimNetwork } from './network.js';
import type { SimWorld } from './world.js';

/** The simulated tick: 10 ms of virtual time (production uses 100 ms; the ratios are what matter). */
export const TICK_MS = 10;
/** Inputs held for a paused node, at most; more are dropped like a full socket buffer. */
const HELD_MAX = 2000;

/** The per-run knobs every node's driver gets. */
export interface RunConfig {
  readonly raft: Omit<RaftConfig, 'id' | 'random'>;
  readonly limits: Partial<RaftDriverLimits>;
  /** The cluster's first configuration (the state machines' starting point). */
  readonly initialConf: ConfState;
}

export interface SimNode {
  readonly id: NodeId;
  /** `removed`: the driver learned it was removed and stopped; the node stays, silent. */
  status: 'up' | 'down' | 'removed';
  /** Bumped on every crash: callbacks of an older incarnation are ignored. */
  incarnation: number;
  pausedUntilMs: number;
  /** Tick-rate multiplier (clock skew): 1 = nominal. */
  clockRate: number;
  readonly store: MemLogStore;
  readonly sm: KvStateMachine;
  driver: RaftDriver<KvResult, SimImagePayload> | null;
  /** Work held while paused (a paused process neither hears nor speaks), run on resume. */
  held: (() => void)[];
  /** Reactive fault: the next fsync completes, then the process dies before sending anything. */
  crashAfterNextSync: boolean;
  /** A tick is held for the end of a pause (a paused process's timer fires late, once). */
  tickHeld: boolean;
  /** This incarnation's coalesced heartbeats (as a real node's host sends them), and its ticks so far. */
  heartbeats: HeartbeatCoalescer | null;
  ticks: number;
}

/** What a client is told. `unknown`: the write may or may not have applied. */
export type ClientReply = { readonly kind: 'ok'; readonly output: KvOutput } | { readonly kind: 'rejected'; readonly leaderHint: NodeId; readonly code: string } | { readonly kind: 'unknown'; readonly code: string };

export type ClientOp = { readonly kind: 'get'; readonly key: string } | { readonly kind: 'write'; readonly command: KvCommand };

/** Reactive faults the nemesis hooks in (the cluster calls them; they decide). */
export interface ClusterHooks {
  newLeader?(node: SimNode): void;
  voteGranted?(node: SimNode): void;
  saveStarted?(node: SimNode): void;
}

/** Errors after which the request certainly had no effect. */
const NO_EFFECT = new Set([
  'IMPULSE_ERR_RAFT_NOT_LEADER',
  'IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS',
  'IMPULSE_ERR_RAFT_OVERLOADED',
  'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED',
  'IMPULSE_ERR_RAFT_READ_ABORTED',
  'IMPULSE_ERR_RAFT_PROPOSAL_SUPERSEDED',
]);

export class SimCluster {
  readonly nodes = new Map<NodeId, SimNode>();
  readonly network: SimNetwork;
  readonly invariants: Invariants;
  hooks: ClusterHooks = {};
  /** Scripted scenarios: rewrites (or drops, with null) each Raft message as it is sent. */
  rewrite: ((from: NodeId, to: NodeId, message: Message) => Message | null) | null = null;
  /** The last snapshot stream delivered (scenarios replay it: a duplicate from the network). */
  lastStream: { readonly to: NodeId; readonly from: NodeId; readonly header: unknown; readonly chunks: readonly Uint8Array[] } | null = null;

  /**
   * `scripted`: no automatic ticks and a lossless network — a scenario script
   * (scenario.ts) ticks nodes and cuts links itself.
   */
  constructor(
    private readonly world: SimWorld,
    private readonly config: RunConfig,
    private readonly violate: (kind: ViolationKind, message: string) => void,
    private readonly scripted = false,
  ) {
    this.network = new SimNetwork(world, scripted);
    this.invariants = new Invariants(config.initialConf, violate);
  }

  // ---------------------------------------------------------------- lifecycle

  /** A node with an empty log: `bootstrapVoters` for the initial members, none for nodes added later. */
  createNode(id: NodeId, bootstrapVoters: readonly NodeId[]): SimNode {
    const world = this.world;
    const node: SimNode = {
      id,
      status: 'down',
      incarnation: 0,
      pausedUntilMs: 0,
      clockRate: 0.99 + world.random.next() * 0.02,
      store: undefined as unknown as MemLogStore,
      sm: new KvStateMachine(this.config.initialConf, (complete) => world.at(0.2 + world.random.next() * 3, complete)),
      driver: null,
      held: [],
      crashAfterNextSync: false,
      tickHeld: false,
      heartbeats: null,
      ticks: 0,
    };
    (node as { store: MemLogStore }).store = new MemLogStore({ voters: bootstrapVoters, learners: [] }, (complete) => this.scheduleFsync(node, complete));
    node.store.onSave = (update) => {
      if (node.driver !== null && update.entries.length > 0) this.invariants.persisted(id, update.entries, (index) => node.driver!.node.termAt(index));
      this.hooks.saveStarted?.(node);
    };
    node.sm.observer = {
      applied: (entries, before) => {
        this.invariants.applied(id, entries, before);
        this.invariants.stateMachine(id, node.sm.state.appliedIndex, digestState(node.sm.state));
      },
      installed: (meta, before) => {
        world.stats.snapshotsInstalled++;
        this.invariants.installed(id, meta, before);
        this.invariants.stateMachine(id, meta.index, digestState(node.sm.state));
      },
    };
    this.nodes.set(id, node);
    this.boot(node);
    return node;
  }

  /** The fsync of one save: a little later, unless the node died first (or is set to die right after it). */
  private scheduleFsync(node: SimNode, complete: () => void): void {
    const incarnation = node.incarnation;
    this.world.at(0.2 + this.world.random.next() * 1.5, () => {
      if (node.incarnation !== incarnation) return;
      if (node.crashAfterNextSync) {
        node.crashAfterNextSync = false;
        node.store.durableNow();
        this.world.trace(`fault crash-new-leader n${node.id} (after fsync, before sending)`);
        this.world.stats.faults['crash-new-leader']++;
        this.crash(node);
        return;
      }
      complete();
    });
  }

  /** (Re)starts a node from its durable log and state machine. */
  boot(node: SimNode): void {
    const world = this.world;
    node.status = 'up';
    node.held = [];
    node.tickHeld = false;
    node.pausedUntilMs = 0;
    const incarnation = node.incarnation;
    const durable = node.store.durableState();
    world.trace(
      `boot n${node.id} inc=${incarnation} term=${durable.hardState.term} vote=${durable.hardState.vote} commit=${durable.hardState.commit} ` +
        `snap=${durable.snapshot.index} entries=${durable.entries.length} applied=${node.sm.state.appliedIndex}`,
    );
    RaftDriver.start<KvResult, SimImagePayload>(
      {
        group: 1,
        raft: { ...this.config.raft, id: node.id, random: world.random.fork() },
        limits: this.config.limits,
        logStore: node.store,
        transport: this.transportFor(node, incarnation),
        stateMachine: node.sm,
        clock: world.clock,
        appliedIndex: node.sm.state.appliedIndex,
        removedNodes: node.sm.state.removed,
        onStop: (reason) => this.stopped(node, incarnation, reason),
      },
      (error, driver) => {
        if (error !== null) return this.violate('core-assertion', `n${node.id} could not start: ${error.message}`);
        if (node.incarnation === incarnation) node.driver = driver!;
      },
    );
    if (!this.scripted) this.scheduleTick(node, incarnation);
  }

  private stopped(node: SimNode, incarnation: number, reason: StopReason): void {
    if (node.incarnation !== incarnation) return;
    if (reason.kind === 'failed') return this.violate('core-assertion', `n${node.id} driver failed: ${reason.error.message}`);
    if (reason.kind !== 'removed') return;
    node.status = 'removed';
    this.world.stats.removedStops++;
    this.world.trace(`n${node.id} learned it was removed and stopped`);
    this.invariants.removedStop(node.id);
  }

  /**
   * Power loss, and a restart after `downMs` (random when not given; never
   * when `restart` is false). `random` picks what unsynced writes survive.
   */
  crash(node: SimNode, downMs?: number, restart = true, random: Random = this.world.random): void {
    const world = this.world;
    if (node.status !== 'up') return;
    world.stats.crashes++;
    if (node.store.unsyncedSaves > 0) world.stats.crashesWithUnsyncedSave++;
    node.status = 'down';
    node.crashAfterNextSync = false;
    node.incarnation++;
    node.driver = null;
    node.held = [];
    node.tickHeld = false;
    node.store.crash(random);
    node.sm.crash(random);
    world.trace(`fault crash n${node.id}`);
    if (!restart) return;
    const incarnation = node.incarnation;
    // Half the restarts are immediate (kill -9 and a supervisor), half after an outage.
    downMs ??= world.random.chance(0.5) ? 1 + world.random.next() * 30 : world.random.between(50, 600);
    world.at(downMs, () => {
      if (node.status === 'down' && node.incarnation === incarnation) this.boot(node);
    });
  }

  pause(node: SimNode, durationMs: number): void {
    node.pausedUntilMs = this.world.nowMs + durationMs;
    const incarnation = node.incarnation;
    this.world.at(durationMs, () => {
      if (node.incarnation === incarnation) this.resume(node);
    });
  }

  resume(node: SimNode): void {
    node.pausedUntilMs = 0;
    const held = node.held;
    node.held = [];
    for (const run of held) run();
  }

  private paused(node: SimNode): boolean {
    return this.world.nowMs < node.pausedUntilMs;
  }

  /** Runs `work` at `node` now, or when it resumes; nothing when it is not running. */
  private atNode(node: SimNode, work: (driver: RaftDriver<KvResult, SimImagePayload>) => void): void {
    if (node.status !== 'up' || node.driver === null) return;
    if (!this.paused(node)) return work(node.driver);
    if (node.held.length >= HELD_MAX) {
      this.world.stats.messagesDropped++;
      return;
    }
    const incarnation = node.incarnation;
    node.held.push(() => {
      if (node.incarnation === incarnation && node.status === 'up' && node.driver !== null) work(node.driver);
    });
  }

  private scheduleTick(node: SimNode, incarnation: number): void {
    this.world.at(TICK_MS / node.clockRate, () => {
      if (node.status !== 'up' || node.incarnation !== incarnation) return;
      // A paused process's timer fires late, once, when it resumes.
      if (!this.paused(node)) this.atNode(node, (driver) => this.tickDriver(node, driver));
      else if (!node.tickHeld) {
        node.tickHeld = true;
        this.atNode(node, (driver) => {
          node.tickHeld = false;
          this.tickDriver(node, driver);
        });
      }
      this.scheduleTick(node, incarnation);
    });
  }

  /** One tick as a real node's host gives it: the heartbeats it produces wait for the heartbeat boundary, where one coalesced message per peer carries them. */
  private tickDriver(node: SimNode, driver: RaftDriver<KvResult, SimImagePayload>): void {
    const heartbeats = node.heartbeats!;
    heartbeats.holdWhile(() => driver.tick());
    if (++node.ticks % this.config.raft.heartbeatIntervalTicks === 0) heartbeats.flush();
  }

  // ---------------------------------------------------------------- transport

  /** The driver's transport: the simulated network, silent once this incarnation died, held while paused. */
  private transportFor(node: SimNode, incarnation: number): RaftTransport<SimImagePayload> {
    const alive = (): boolean => node.incarnation === incarnation && node.status === 'up';
    // As a real node's host does: heartbeats and responses go out coalesced over the same faulty
    // network, one message per peer at each heartbeat boundary (tickDriver) or run of work (here:
    // the events at one instant of virtual time).
    const heartbeats = new HeartbeatCoalescer({
      send: (to, body) => {
        this.world.stats.coalescedMessages++;
        this.world.stats.coalescedHeartbeats += heartbeatsIn(body);
        this.network.send(node.id, to, () => this.deliverHeartbeats(to, node.id, body));
      },
      defer: (flush) =>
        this.world.at(0, () => {
          if (!alive()) return;
          if (this.paused(node)) node.held.push(flush);
          else flush();
        }),
      nodeOf: (raftId) => raftId,
    });
    node.heartbeats = heartbeats;
    node.ticks = 0;
    return {
      send: (to, message) => {
        if (!alive()) return;
        const sent = message.body as Message;
        const send = (): void => {
          if (!alive()) return;
          if (sent.type === 'vote-response' && sent.granted) this.hooks.voteGranted?.(node);
          const body = this.rewrite === null ? sent : this.rewrite(node.id, to, sent);
          if (body === null) return;
          if (heartbeats.offer(message.group, body)) return;
          this.network.send(node.id, to, () => this.deliver(to, node.id, body));
        };
        if (this.paused(node)) node.held.push(send);
        else send();
      },
      sendSnapshot: (to, header, chunks, done) => {
        if (!alive()) return;
        this.world.stats.snapshotsSent++;
        this.world.trace(`n${node.id} streams a snapshot to n${to} (${chunks.length} chunks)`);
        this.network.stream(
          node.id,
          to,
          chunks.length,
          (answer) => this.deliverSnapshot(to, node.id, header.body, chunks, answer),
          (error) => {
            if (error !== null) this.world.stats.snapshotsFailed++;
            if (alive()) done(error);
          },
        );
      },
    };
  }

  private deliver(to: NodeId, from: NodeId, body: Message): void {
    const node = this.nodes.get(to);
    if (node === undefined) return;
    this.atNode(node, (driver) => {
      this.world.trace(`deliver ${body.type} n${from}->n${to} t${body.term}`);
      const error = driver.receive(from, body);
      if (error !== null) this.violate('core-assertion', `n${to} refused a message from n${from}: ${error.message}`);
    });
  }

  /** Unpacks coalesced heartbeats at `to` and delivers each as the message it was. */
  private deliverHeartbeats(to: NodeId, from: NodeId, body: CoalescedHeartbeatsBody): void {
    let unpacked: GroupHeartbeat[];
    try {
      unpacked = decodeCoalescedHeartbeats(body);
    } catch (error) {
      return this.violate('core-assertion', `n${to} refused coalesced heartbeats from n${from}: ${(error as Error).message}`);
    }
    for (const { group, message } of unpacked) {
      if (group !== 1) return this.violate('core-assertion', `n${to} got a heartbeat of group ${group} from n${from}; the simulator runs group 1 only`);
      this.deliver(to, from, message);
    }
  }

  /** Delivers a snapshot stream at `to` (again, for a duplicate); `answer` accepts or refuses it. */
  deliverSnapshot(to: NodeId, from: NodeId, header: unknown, chunks: readonly Uint8Array[], answer: (error: Error | null) => void): void {
    this.lastStream = { to, from, header, chunks };
    const node = this.nodes.get(to);
    if (node === undefined || node.status !== 'up' || node.driver === null || this.paused(node)) return answer(new Error(`n${to} is not answering`));
    node.driver.receiveSnapshot(from, header, chunks, answer);
  }

  // ---------------------------------------------------------------- requests

  /** A client request at `target`; `reply` runs once, or never (the node died: the client times out). */
  request(target: NodeId, op: ClientOp, reply: (reply: ClientReply) => void): void {
    const node = this.nodes.get(target)!;
    const fail = (error: { code: string; leaderHint?: NodeId }): void => {
      if (NO_EFFECT.has(error.code)) reply({ kind: 'rejected', leaderHint: error.leaderHint ?? 0, code: error.code });
      else reply({ kind: 'unknown', code: error.code });
    };
    if (node.status === 'removed') return fail({ code: 'IMPULSE_ERR_RAFT_STOPPED' });
    this.atNode(node, (driver) => {
      if (op.kind === 'get') {
        driver.readIndex((error) => (error !== null ? fail(error) : reply({ kind: 'ok', output: { kind: 'get', value: node.sm.get(op.key) } })));
        return;
      }
      driver.propose(encodeCommand(op.command), (error, result) => {
        if (error !== null) return fail(error);
        if (result === null || result === undefined) return this.violate('core-assertion', `n${target} answered a write with no result`);
        reply({ kind: 'ok', output: result });
      });
    });
  }

  proposeConfChange(node: SimNode, change: ConfChange): void {
    this.atNode(node, (driver) =>
      driver.proposeConfChange(change, (error) => this.world.trace(`n${node.id} conf-change ${change.type} n${change.nodeId}: ${error === null ? 'applied' : error.code}`)),
    );
  }

  transferLeadership(node: SimNode, target: NodeId): void {
    this.atNode(node, (driver) => driver.transferLeadership(target, (error) => this.world.trace(`n${node.id} transfer to n${target}: ${error === null ? 'started' : error.code}`)));
  }

  // ---------------------------------------------------------------- observation

  liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((node) => node.status === 'up' && node.driver !== null);
  }

  /** Nodes that are part of the cluster as far as clients know (not stopped as removed). */
  members(): NodeId[] {
    return [...this.nodes.values()].filter((node) => node.status !== 'removed').map((node) => node.id);
  }

  currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.liveNodes()) {
      const raft = node.driver!.node;
      if (raft.role === 'leader' && (best === undefined || raft.currentTerm > best.driver!.node.currentTerm)) best = node;
    }
    return best;
  }

  /** After every event: election safety, leader completeness, commit and applied monotonic. */
  checkAfterEvent(): void {
    for (const node of this.liveNodes()) {
      const raft = node.driver!.node;
      this.invariants.progress(node.id, node.incarnation, raft.commitIndex, node.sm.state.appliedIndex);
      if (raft.role !== 'leader') continue;
      if (!this.invariants.leader(node.id, raft.currentTerm, (index) => raft.termAt(index), raft.snapshotIndex)) continue;
      this.world.stats.elections++;
      this.world.trace(`n${node.id} is leader of term ${raft.currentTerm}`);
      this.hooks.newLeader?.(node);
    }
  }
}
