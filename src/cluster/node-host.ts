/**
 * The node runtime: one `TcpTransport` and one `RpcEndpoint` per process, the
 * Raft groups it hosts (a map group id → `RaftGroup`: group 1, and any number
 * added and removed at runtime), and one timer on the `Clock` that ticks
 * every group that is not quiesced.
 *
 *   const host = new NodeHost({ nodeId, clusterId, listenHost, listenPort, seeds, tickMs, clock, random, logger });
 *   await host.start();                                   // listening for peers
 *   host.addGroup(await RaftGroup.open({ ..., transport: host.raftTransport(1) }));
 *   host.startTicking();
 *   ...
 *   await host.close();                                   // groups, RPC, transport
 *
 * Routing: a message on the `raft` channel goes to the driver of its group
 * (`PeerMessage.group`); a message on an RPC channel (`RPC_CHANNELS`) to the
 * RPC endpoint; anything else is dropped and counted. A snapshot stream goes
 * to its group's driver as an async iterable, and the transport's verdict
 * waits until the driver staged it (or refused it).
 *
 * Quiescence (raft-group.ts): a group whose leader found it quiet stops
 * ticking; the host sends the leader's notice to the group's other members
 * (channel `quiesce`). The host pings every peer node once per heartbeat
 * interval (channel `liveness`, one message per node pair whatever the
 * number of groups) and wakes a quiesced follower group once its leader's
 * node has been silent for an election timeout (node-liveness.ts). A leader
 * quiesces past members whose nodes are silent that long (their replicas
 * need not match: CockroachDB quiesces past dead nodes by liveness the same
 * way), and the host wakes such a group as soon as one of those nodes is
 * heard from again, so the returning replica catches up.
 *
 * Heartbeats (src/raft/coalesced-heartbeats.ts): the heartbeats the groups'
 * ticks produce wait for the heartbeat boundary, where one message per peer
 * node (channel `heartbeats`) carries every group's and stands in for the
 * liveness ping; responses and read rounds go as one message per peer a
 * microtask after the frame or request that produced them. The peer's host
 * steps each into its group as if it had come alone.
 *
 * Address book: the members (and recently removed members) of every group's
 * membership; while no group knows any member yet (a member that joins and
 * has not received its first snapshot), the seeds from `--initial-cluster`.
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { GroupMessage, RaftTransport } from '../raft/driver-seams.js';
import { RAFT_CHANNEL } from '../raft/driver-seams.js';
import { HEARTBEATS_CHANNEL, HeartbeatCoalescer, type GroupHeartbeat } from '../raft/coalesced-heartbeats.js';
import type { LogJournal } from '../raft/log-store/journal.js';
import type { Message, NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { RpcEndpoint } from '../transport/rpc.js';
import type { HostPort, SocketFactory } from '../transport/socket-factory.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import type { TransportLimits } from '../transport/options.js';
import type { PeerMessage } from '../transport/transport.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Random } from '../util/random.js';
import type { ClusterConfig } from './config.js';
import type { ImagePayload } from './image-stream.js';
import { peerAddresses } from './membership.js';
import { GroupRpc } from './group-rpc.js';
import { LIVENESS_CHANNEL, NodeLiveness } from './node-liveness.js';
import type { QuiesceNotice, RaftGroup } from './raft-group.js';
import { nodeOfRaftId } from '../shard/replica-id.js';

/** A leader's quiescence notice to the other members of its group (body: `QuiesceNotice`). */
export const QUIESCE_CHANNEL = 'quiesce';

/** The RPC channels of the cluster runtime: forwarded writes, read indexes for follower reads, membership operations, reads of a shard at one of its replicas, a shard group's membership steps (replica moves), merges and splits' GC asking whether a replica took a shard in or made it, the leaderless peer protocol. */
export const RPC_CHANNELS = ['kv-forward', 'read-index', 'cluster-admin', 'shard-read', 'shard-conf', 'shard-leads', 'shard-reports', 'shard-merge', 'shard-split-gc', 'leaderless'] as const;
const EXPECTED_PEERS_MAX = 16;
export type RpcChannel = (typeof RPC_CHANNELS)[number];

export interface NodeHostOptions {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  readonly listenHost: string;
  /** 0 picks a free port (tests). */
  readonly listenPort: number;
  /** Peer addresses to use until a group knows its members (`--initial-cluster`). */
  readonly seeds: ReadonlyMap<NodeId, string>;
  readonly tickMs: number;
  /** The groups' heartbeat interval, ticks: the node-level ping goes this often. */
  readonly heartbeatTicks: number;
  /** The groups' election timeout, ticks: a peer node silent this long wakes the quiesced groups it leads here. */
  readonly electionTicks: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly transportLimits?: Partial<TransportLimits>;
  /** Default: plain TCP. */
  readonly socketFactory?: SocketFactory;
  /** False: every group's heartbeats travel as its own messages, not coalesced per node pair (benchmarks compare). Default true. */
  readonly coalesceHeartbeats?: boolean;
}

/** What a member's host needs besides its cluster flags (`undefined`: the default). */
export interface MemberHostRuntime {
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly transportLimits?: Partial<TransportLimits> | undefined;
  readonly socketFactory?: SocketFactory | undefined;
  readonly coalesceHeartbeats?: boolean | undefined;
}

/** The options of a cluster member's host: identity, peer listener and timing from its cluster flags; `seeds` are the peer addresses to start from. */
export function memberHostOptions(cluster: ClusterConfig, seeds: ReadonlyMap<NodeId, string>, runtime: MemberHostRuntime): NodeHostOptions {
  const { transportLimits, socketFactory, coalesceHeartbeats, ...rest } = runtime;
  return {
    nodeId: cluster.nodeId,
    clusterId: cluster.clusterId,
    listenHost: cluster.peerHost,
    listenPort: cluster.peerPort,
    seeds,
    tickMs: cluster.timing.tickMs,
    heartbeatTicks: cluster.timing.heartbeatTicks,
    electionTicks: cluster.timing.electionTicks,
    ...rest,
    // --snapshot-rate-max, unless the caller's limits say otherwise.
    transportLimits: { snapshotSendBytesPerSecondMax: cluster.snapshotRateMax, ...transportLimits },
    ...(socketFactory !== undefined ? { socketFactory } : {}),
    ...(coalesceHeartbeats !== undefined ? { coalesceHeartbeats } : {}),
  };
}

export class NodeHost {
  readonly transport: TcpTransport;
  readonly rpc: RpcEndpoint;
  /** The per-group handlers of the group RPC channels (`kv-forward`, `read-index`). */
  readonly groupRpc: GroupRpc;
  /** The heartbeats and responses of every hosted group, one message per peer node and run of work (unpacks what peers send whether or not this host coalesces its own). */
  readonly heartbeats: HeartbeatCoalescer;
  private readonly groups = new Map<number, RaftGroup>();
  /** Members being added: in the address book before their addition applies (at most EXPECTED_PEERS_MAX). */
  private readonly expected = new Map<NodeId, string>();
  private readonly logger: Logger;
  private tickTimer: TimerHandle | undefined;
  private readonly liveness: NodeLiveness;
  private peerIds: readonly NodeId[] = [];
  private ticks = 0;
  private closed = false;
  /** The node's log journal (the groups' logs write through it): closed after every group, its figures in /metrics. */
  private journalValue: LogJournal | undefined;
  /** Messages on channels nobody serves, or for groups this node does not host. */
  droppedMessages = 0;
  /** Quiescence notices sent; quiesced groups woken because their leader's node went silent, and led groups woken because a member they quiesced past (down) was heard from again. */
  readonly quiesceCounters = { noticesSent: 0, wokenBySilence: 0, wokenByReturn: 0 };
  /** Groups told their leader's process is gone (`noticeGonePeers`), quiesced or not. */
  leaderGoneHints = 0;

  constructor(private readonly options: NodeHostOptions) {
    this.logger = options.logger;
    this.transport = new TcpTransport({
      localId: options.nodeId,
      clusterId: options.clusterId,
      listenHost: options.listenHost,
      listenPort: options.listenPort,
      peers: options.seeds,
      handlers: {
        onMessage: (from, message) => this.onMessage(from, message),
        onSnapshot: (from, header, chunks) => this.onSnapshot(from, header, chunks),
      },
      logger: options.logger,
      clock: options.clock,
      random: options.random.fork(),
      ...(options.transportLimits !== undefined ? { limits: options.transportLimits } : {}),
      ...(options.socketFactory !== undefined ? { socketFactory: options.socketFactory } : {}),
    });
    this.rpc = new RpcEndpoint({ transport: this.transport, clock: options.clock, random: options.random.fork(), logger: options.logger });
    this.groupRpc = new GroupRpc(this.rpc);
    this.liveness = new NodeLiveness(options.electionTicks);
    this.heartbeats = new HeartbeatCoalescer({
      send: (to, body) => this.transport.send(to, { channel: HEARTBEATS_CHANNEL, group: 0, body }),
      // After the tick or the inbound frame that produced them: every group's together, and no timer delays a read's confirmation round.
      defer: queueMicrotask,
      nodeOf: nodeOfRaftId,
    });
  }

  get nodeId(): NodeId {
    return this.options.nodeId;
  }

  /** Listens for peers; resolves with the bound address. */
  start(): Promise<HostPort> {
    return this.transport.start();
  }

  /** The driver's transport for `group`: messages and snapshot streams over the node's one transport. */
  raftTransport(group: number): RaftTransport<ImagePayload> {
    return {
      // Raft ids of shard groups carry their node (src/shard/replica-id.ts).
      send: (to, message: GroupMessage) => {
        if (this.options.coalesceHeartbeats !== false && this.heartbeats.offer(group, message.body as Message)) return;
        this.transport.send(nodeOfRaftId(to), message);
      },
      sendSnapshot: (to, header, payload, done) => {
        const settle = (error: Error | null): void => {
          // Whatever happened, the transport is done with the payload: release the engine snapshot behind it.
          void payload[Symbol.asyncIterator]().return?.();
          const target = this.groups.get(group);
          if (target === undefined) return;
          target.guard(() => done(error));
        };
        this.transport.sendSnapshot(nodeOfRaftId(to), header, payload).then(
          () => settle(null),
          (error: unknown) => settle(error instanceof Error ? error : new Error(String(error))),
        );
      },
    };
  }

  /** Hosts `group` from now on (its id must not be hosted already; refused once the host closed). */
  addGroup(group: RaftGroup): void {
    if (this.closed) throw new ImpulseError('IMPULSE_ERR_SHUTTING_DOWN', `node ${this.options.nodeId} is closing and hosts no new group`);
    if (this.groups.has(group.id)) throw new Error(`node ${this.options.nodeId} hosts raft group ${group.id} already`);
    this.groups.set(group.id, group);
    group.listen({ membershipChanged: () => this.updatePeers() });
    this.updatePeers();
  }

  /**
   * Stops hosting group `id`: its RPC handlers go, it closes (its applied state
   * made durable). Its files stay (`HostedGroups.destroy` removes them). Messages
   * for it are dropped from now on. Resolves false when it was not hosted.
   */
  async removeGroup(id: number): Promise<boolean> {
    const group = this.groups.get(id);
    if (group === undefined) return false;
    this.groups.delete(id);
    this.groupRpc.release(id);
    await group.close();
    this.updatePeers();
    return true;
  }

  group(id: number): RaftGroup | undefined {
    return this.groups.get(id);
  }

  /** The ids of the hosted groups, ascending. */
  groupIds(): number[] {
    return [...this.groups.keys()].sort((a, b) => a - b);
  }

  /** Hosted groups that are quiesced right now. */
  quiescedGroups(): number {
    let count = 0;
    for (const group of this.groups.values()) if (group.quiesced) count++;
    return count;
  }

  /** Starts the one timer that ticks every group every `tickMs`. */
  startTicking(): void {
    const tick = (): void => {
      if (this.closed) return;
      this.tickAll();
      this.tickTimer = this.options.clock.setTimer(this.options.tickMs, tick);
    };
    this.tickTimer = this.options.clock.setTimer(this.options.tickMs, tick);
  }

  /** One tick: liveness, every awake group, and every heartbeat interval the coalesced heartbeats (or the node-level ping) to each peer. */
  private tickAll(): void {
    this.ticks++;
    this.liveness.tick();
    const heartbeatDue = this.ticks % this.options.heartbeatTicks === 0;
    if (heartbeatDue) this.noticeGonePeers();
    // The groups' heartbeats wait for this interval's boundary: one coalesced message per peer carries them all.
    const notices: [RaftGroup, QuiesceNotice][] = [];
    this.heartbeats.holdWhile(() => this.tickGroups(notices));
    // A quiescing group's last heartbeat goes BEFORE its notice, as it did uncoalesced: arriving after
    // it, the heartbeat would wake the follower the notice quiesced, which would then campaign.
    const sentTo = heartbeatDue || notices.length > 0 ? this.heartbeats.flush() : new Set<NodeId>();
    for (const [group, notice] of notices) this.sendQuiesce(group, notice);
    if (!heartbeatDue) return;
    // A peer that got coalesced heartbeats heard from this node; the others get the node-level ping.
    for (const id of this.peerIds) if (!sentTo.has(id)) this.transport.send(id, { channel: LIVENESS_CHANNEL, group: 0, body: null });
  }

  /** Ticks every awake group (collecting the notices of those that quiesce); wakes quiesced groups whose leader's node went silent or whose down member returned. */
  private tickGroups(notices: [RaftGroup, QuiesceNotice][]): void {
    const down = (id: NodeId): boolean => id !== this.options.nodeId && this.liveness.silent(id);
    for (const group of this.groups.values()) {
      if (group.quiesced) {
        const leader = group.leader;
        if (leader !== this.options.nodeId && (leader === 0 || this.liveness.silent(leader))) {
          this.quiesceCounters.wokenBySilence++;
          group.wake();
        } else if (group.quiescedPast.length > 0 && group.quiescedPast.some((id) => !down(id))) {
          this.quiesceCounters.wokenByReturn++;
          group.wake();
        }
        continue;
      }
      const notice = group.tick(down);
      if (notice !== undefined) notices.push([group, notice]);
    }
  }

  /** A peer whose port refuses our dials and that has gone quiet: the groups it leads here campaign soon (faster failover after a crash). */
  private noticeGonePeers(): void {
    const peers = this.transport.stats().peers;
    for (const id of this.peerIds) {
      if (!this.liveness.dialsFailing(id, peers[String(id)]?.connectFailures ?? 0, this.options.heartbeatTicks)) continue;
      for (const group of this.groups.values()) {
        if (group.leader !== id) continue;
        this.leaderGoneHints++;
        group.wake();
        group.leaderUnreachable(id);
      }
    }
  }

  private sendQuiesce(group: RaftGroup, notice: QuiesceNotice): void {
    const { voters, learners } = group.membership.confState;
    for (const id of new Set([...voters, ...learners].map(nodeOfRaftId))) {
      if (id === this.options.nodeId) continue;
      this.quiesceCounters.noticesSent++;
      this.transport.send(id, { channel: QUIESCE_CHANNEL, group: group.id, body: { term: notice.term, index: notice.index } });
    }
  }

  /** How long node `id` has been silent to this host, ms (by its ticks; never heard from: since this host started ticking). The replica mover's failure detection. */
  silentForMs(id: NodeId): number {
    return id === this.options.nodeId ? 0 : this.liveness.silentTicks(id) * this.options.tickMs;
  }

  /**
   * A member about to be added at `address`: the leader replicates to a new
   * member from the moment it appends the change, before the change applies
   * and the membership names it.
   */
  expectPeer(id: NodeId, address: string): void {
    this.expected.delete(id);
    this.expected.set(id, address);
    while (this.expected.size > EXPECTED_PEERS_MAX) this.expected.delete(this.expected.keys().next().value!);
    this.updatePeers();
  }

  /** Points the transport at the members of every group (call after a membership change). */
  updatePeers(): void {
    if (this.closed) return;
    const book = new Map<NodeId, string>();
    let known = false;
    for (const group of this.groups.values()) {
      const membership = group.membership;
      if (membership.members.size > 0) known = true;
      for (const [id, address] of peerAddresses(membership)) book.set(nodeOfRaftId(id), address);
    }
    if (!known) for (const [id, address] of this.options.seeds) book.set(id, address);
    for (const [id, address] of this.expected) {
      if (book.has(id)) this.expected.delete(id);
      else book.set(id, address);
    }
    this.peerIds = [...book.keys()].filter((id) => id !== this.options.nodeId);
    this.liveness.retain(new Set(this.peerIds));
    try {
      this.transport.setPeers(book);
    } catch (error) {
      // A malformed address in the replicated membership: keep the old book, say so.
      this.logger.error({ err: error }, 'the membership holds a peer address the transport refuses; the address book is unchanged');
    }
  }

  /** The groups' logs write through `journal` (opened by the caller): `close` closes it after every group. Once, before any group opens. */
  attachJournal(journal: LogJournal): void {
    assert(this.journalValue === undefined && this.groups.size === 0, 'a node host takes one journal, before its groups');
    this.journalValue = journal;
  }

  get journal(): LogJournal | undefined {
    return this.journalValue;
  }

  /** Stops ticking, closes every group (durably), then the journal, the RPC endpoint and the transport. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tickTimer?.cancel();
    this.rpc.close();
    for (const group of this.groups.values()) {
      await group.close().catch((error: unknown) => this.logger.error({ err: error, group: group.id }, 'closing a raft group failed'));
    }
    await this.journalValue?.close().catch((error: unknown) => this.logger.error({ err: error }, 'closing the raft log journal failed'));
    await this.transport.close();
  }

  private onMessage(from: NodeId, message: PeerMessage): void {
    this.liveness.heard(from);
    if (message.channel === LIVENESS_CHANNEL) return;
    if (message.channel === QUIESCE_CHANNEL) return this.onQuiesce(from, message);
    if (message.channel === HEARTBEATS_CHANNEL) return this.onHeartbeats(from, message);
    if (message.channel === RAFT_CHANNEL) {
      const group = this.groups.get(message.group);
      if (group === undefined) return this.drop(from, message.channel, message.group);
      return group.receive(from, message.body);
    }
    if ((RPC_CHANNELS as readonly string[]).includes(message.channel)) return this.rpc.onMessage(from, message);
    this.drop(from, message.channel, message.group);
  }

  /** A peer's coalesced heartbeats: each group's heartbeat or response is stepped into that group as if it had come alone. */
  private onHeartbeats(from: NodeId, message: PeerMessage): void {
    let unpacked: GroupHeartbeat[];
    try {
      unpacked = this.heartbeats.receive(message.body);
    } catch (error) {
      this.droppedMessages++;
      this.logger.warn({ peer: from, err: error }, 'malformed coalesced heartbeats from a peer; dropped whole');
      return;
    }
    for (const { group, message: heartbeat } of unpacked) {
      const target = this.groups.get(group);
      if (target === undefined) this.drop(from, RAFT_CHANNEL, group);
      else target.receive(from, heartbeat);
    }
  }

  private onQuiesce(from: NodeId, message: PeerMessage): void {
    const group = this.groups.get(message.group);
    const notice = message.body as { term?: unknown; index?: unknown } | null;
    if (group === undefined || !Number.isSafeInteger(notice?.term) || !Number.isSafeInteger(notice?.index)) return this.drop(from, message.channel, message.group);
    group.receiveQuiesce(from, { term: notice!.term as number, index: notice!.index as number });
  }

  private onSnapshot(from: NodeId, header: PeerMessage, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const group = header.channel === RAFT_CHANNEL ? this.groups.get(header.group) : undefined;
    if (group === undefined) {
      this.drop(from, header.channel, header.group);
      return Promise.reject(new Error(`no raft group ${header.group} on node ${this.options.nodeId}`));
    }
    this.liveness.heard(from);
    return group.receiveSnapshot(from, header.body, chunks);
  }

  private drop(from: NodeId, channel: string, group: number): void {
    this.droppedMessages++;
    this.logger.debug({ peer: from, channel, group }, 'message for no channel or group of this node; dropped');
  }
}
