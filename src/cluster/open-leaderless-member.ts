/**
 * Builds a leaderless member for `impulse serve --node-id N --initial-cluster
 * ... --replication leaderless`: the same identity file and node runtime
 * (`NodeHost`: one TCP transport and RPC endpoint) as a Raft member, with a
 * `LeaderlessNode` on the RPC channel `leaderless` instead of Raft groups.
 *
 * Data directory:
 *   <data-dir>/member.json               who it is (as for a Raft member)
 *   <data-dir>/leaderless/<engine>/      the replica's engine home (LIVE, slots)
 *
 * Membership: a new cluster's members are the `--initial-cluster`; a member
 * started with `--join` (and the current members' peer addresses) owns
 * nothing until `POST /cluster/members` on a member adds it, and
 * `DELETE /cluster/members/{id}` removes one, each after handing off the data
 * (src/leaderless/membership.ts). The membership is kept in the store.
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import { DirectoryEngineHome } from '../kv/engine-home.js';
import type { KvLimits } from '../kv/command.js';
import type { LeaderlessMutations } from '../leaderless/coordinator.js';
import { LeaderlessKvService } from '../leaderless/leaderless-kv-service.js';
import type { LeaderlessConfig } from '../leaderless/config.js';
import { LeaderlessNode } from '../leaderless/node.js';
import type { ChangeOptions } from '../leaderless/membership-change.js';
import { type MemberAddress, membershipRejected } from '../leaderless/membership.js';
import { EngineReplicaStore } from '../leaderless/replica-store.js';
import type { AddMemberRequest, ClusterView, RemoveOptions, RepairReport } from '../protocol/cluster-view.js';
import type { ShardsView } from '../protocol/shard-view.js';
import type { EngineChoices } from '../storage/engine-names.js';
import { createEngine } from '../storage/registry.js';
import type { HostPort, SocketFactory } from '../transport/socket-factory.js';
import { type Clock, SystemClock, type TimerHandle } from '../util/clock.js';
import { SeededRandom, freshSeed } from '../util/random.js';
import { NodeVfs } from '../vfs/node-vfs.js';
import { type Vfs, joinPath } from '../vfs/vfs.js';
import type { ClusterConfig } from './config.js';
import { claimIdentity } from './identity.js';
import { NodeHost, memberHostOptions } from './node-host.js';

export interface LeaderlessMemberOptions {
  readonly cluster: ClusterConfig;
  readonly leaderless: LeaderlessConfig;
  readonly engine: string;
  readonly dataDir: string;
  readonly limits: KvLimits;
  readonly logger: Logger;
  /** How peer connections are made (mutual TLS with --peer-tls-*); default plain TCP. */
  readonly socketFactory?: SocketFactory;
  /** Engine-specific options (--wal-recovery, --btree-recovery, the engine's log) for the replica's engine (registry.ts). */
  readonly engineChoices?: EngineChoices;
  /** Time for the transport, the failure detector, request deadlines, handoff and anti-entropy; default the system's monotonic clock (the chaos tester's FaultClock under --test-control). */
  readonly clock?: Clock;
  /** The disk: the identity file, the engine home and (lsm, btree) the engine's files; default the real one (a FaultVfs under --test-control). */
  readonly vfs?: Vfs;
  /** TEST-ONLY deliberate bugs (`--test-bug`, src/test-hooks/bugs.ts); never set otherwise. */
  readonly leaderlessMutations?: LeaderlessMutations;
}

export interface LeaderlessMember {
  readonly service: LeaderlessKvService;
  readonly admin: LeaderlessClusterAdmin;
  readonly peerAddress: HostPort;
}

export async function openLeaderlessMember(options: LeaderlessMemberOptions): Promise<LeaderlessMember> {
  const { cluster, logger } = options;
  const vfs = options.vfs ?? new NodeVfs();
  if (await vfs.exists(joinPath(options.dataDir, 'raft'))) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `${options.dataDir} holds a Raft member's data; a leaderless member needs a data directory of its own`);
  }
  const { identity } = await claimIdentity(vfs, options.dataDir, cluster);
  // A joining member's --initial-cluster names the current members (and perhaps itself): it is not one of them until added.
  const members = [...identity.initialCluster.keys()].filter((id) => !(cluster.join && id === cluster.nodeId));
  const clock = options.clock ?? new SystemClock();
  const host = new NodeHost(memberHostOptions(cluster, identity.initialCluster, { clock, random: new SeededRandom(freshSeed()), logger, socketFactory: options.socketFactory }));
  const storeLimits = { keyBytesMax: options.limits.keyBytesMax, valueBytesMax: options.limits.valueBytesMax };
  const home = new DirectoryEngineHome(vfs, joinPath(options.dataDir, 'leaderless', options.engine), (dir) =>
    createEngine(options.engine, { dataDir: dir, sync: 'fsync', limits: { ...EngineReplicaStore.engineLimits(storeLimits), batchOpsMax: Number.MAX_SAFE_INTEGER, batchBytesMax: Number.MAX_SAFE_INTEGER } }, { ...options.engineChoices, ...(options.vfs !== undefined ? { vfs: options.vfs } : {}) }),
  );
  const slot = await home.openLive();
  try {
    const peerAddress = await host.start();
    const onMembers = (list: readonly MemberAddress[]): void => {
      for (const member of list) if (member.id !== cluster.nodeId && member.peerUrl !== '' && identity.initialCluster.get(member.id) !== member.peerUrl) host.expectPeer(member.id, member.peerUrl);
    };
    const node = await LeaderlessNode.open({ nodeId: cluster.nodeId, members, peerUrls: identity.initialCluster, onMembers, engine: slot.engine, limits: storeLimits, rpc: host.rpc, clock, wallClockMs: () => Date.now(), logger, config: options.leaderless, where: home.description, clientUrl: cluster.advertiseClient, ...(options.leaderlessMutations !== undefined ? { mutations: options.leaderlessMutations } : {}) });
    node.start();
    const service = new LeaderlessKvService({
      node,
      limits: options.limits,
      engineName: options.engine,
      clusterId: cluster.clusterId,
      logger,
      shutdown: async () => {
        node.stop();
        await host.close();
        await slot.engine.close();
      },
    });
    logger.info({ nodeId: cluster.nodeId, members, replicas: options.leaderless.replicas, readQuorum: options.leaderless.readQuorum, writeQuorum: options.leaderless.writeQuorum }, 'leaderless member started');
    return { service, admin: new LeaderlessClusterAdmin(node, cluster), peerAddress };
  } catch (error) {
    await host.close().catch(() => undefined);
    await slot.engine.close().catch(() => undefined);
    throw error;
  }
}

/** Longest a membership call waits for its change before answering `running` (the change goes on), ms. */
const CHANGE_ANSWER_MS = 10_000;

/** `/cluster` of a leaderless member: the members with what this node's failure detector says of them; join and leave; `repair`. */
export class LeaderlessClusterAdmin {
  /** `answerWithinMs`: how long a membership call waits for its change before answering `running` (tests shorten it). */
  constructor(
    private readonly node: LeaderlessNode,
    private readonly cluster: Pick<ClusterConfig, 'clusterId' | 'nodeId' | 'advertiseClient'>,
    private readonly answerWithinMs = CHANGE_ANSWER_MS,
  ) {}

  view(): ClusterView {
    const { detector } = this.node;
    return {
      clusterId: this.cluster.clusterId,
      nodeId: this.cluster.nodeId,
      state: 'running',
      leader: null,
      term: 0,
      commitIndex: 0,
      appliedIndex: 0,
      members: this.node.membership.everyone().map(({ id, peerUrl }) => ({
        id,
        // Other members' client URLs come from their heartbeat answers (membership-gossip.ts): null until one arrived.
        clientUrl: id === this.cluster.nodeId ? this.cluster.advertiseClient : (this.node.gossip.clientUrl(id) ?? null),
        peerUrl: peerUrl === '' ? null : peerUrl,
        role: detector.liveness(id),
        matchIndex: null,
        lag: null,
        lastContactMs: Math.round(detector.silentMs(id)),
      })),
      ...(this.node.changes.progress() !== undefined ? { membershipChange: this.node.changes.progress()! } : {}),
    };
  }

  /** Adds a member started with --join: its ranges are streamed to it before it counts (membership.ts). Answers within `answerWithinMs` (`change`). */
  async addMember(request: AddMemberRequest): Promise<ClusterView> {
    const { members } = this.node.membership.view;
    const { id, peerUrl } = (request ?? {}) as unknown as Record<string, unknown>;
    if (members.some((member) => member.id === id)) throw membershipRejected(`${String(id)} is a member already`);
    return this.change([...members, { id, peerUrl } as MemberAddress]);
  }

  promoteMember(): Promise<ClusterView> {
    return Promise.reject(unsupported());
  }

  /**
   * Removes a member after its data went to the new owners; it may be stopped
   * once this resolves. `force`: the member is down for good — removed
   * without its steps, its ranges filled from the surviving replicas
   * (membership-change.ts).
   */
  async removeMember(id: unknown, options: RemoveOptions = {}): Promise<ClusterView> {
    const { members } = this.node.membership.view;
    const remaining = members.filter((member) => String(member.id) !== String(id));
    if (remaining.length === members.length) throw membershipRejected(`${String(id).slice(0, 32)} is not a member`);
    return this.change(remaining, options.force === true ? { force: true } : {});
  }

  /**
   * Starts a change to `members` and answers once it is complete, or failed,
   * or `answerWithinMs` passed — then with `membershipChange.state: running`,
   * the change going on in the background (its transfer step may take
   * minutes on a large store; an HTTP call should not hang that long). Its
   * end is logged and shown in `/cluster`.
   */
  private async change(members: readonly MemberAddress[], options: ChangeOptions = {}): Promise<ClusterView> {
    const { clock, logger } = this.node.options;
    const running = this.node.changeMembership(members, options);
    let timer: TimerHandle | undefined;
    const waited = new Promise<void>((resolve) => (timer = clock.setTimer(this.answerWithinMs, resolve)));
    try {
      await Promise.race([running, waited]);
    } finally {
      timer?.cancel();
    }
    running.then(
      () => logger.info({ change: this.node.changes.progress() }, 'membership change complete'),
      (error: unknown) => logger.warn({ change: this.node.changes.progress(), err: error }, 'membership change failed'),
    );
    return this.view();
  }

  transferLeader(): Promise<ClusterView> {
    return Promise.reject(unsupported());
  }

  /** Leaderless mode places keys on a ring, not in shards: `/shards` is not offered. */
  shards(): Promise<ShardsView> {
    return Promise.reject(new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'a leaderless cluster has no shards: keys are placed on a consistent-hash ring (see /cluster and docs/leaderless.md)'));
  }

  /** `impulse repair`: anti-entropy with every other member, until each exchange finds nothing more. */
  async repair(): Promise<RepairReport> {
    return { nodeId: this.cluster.nodeId, exchanges: await this.node.antiEntropy.repairAll() };
  }
}

function unsupported(): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_LEADERLESS_UNSUPPORTED', 'a leaderless cluster has no leader and no learners: members are added (POST /cluster/members) and removed (DELETE /cluster/members/{id}) directly');
}
