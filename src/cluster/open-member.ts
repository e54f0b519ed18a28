/**
 * Builds a cluster member for `impulse serve --node-id ...`: claims the data
 * directory (identity.ts), starts the node runtime (transport, RPC, timer),
 * opens Raft group 1 (bootstrapping the initial voters' state on a first
 * start), and puts the Raft service and the membership admin on top. Once
 * the API listens, call `member.admin.start(clientUrl)`: the member then
 * publishes its client URL into the membership.
 *
 * Data directory of a member:
 *   <data-dir>/member.json             who it is (cluster id, node id, how it bootstrapped)
 *   <data-dir>/raft/1/                 the Raft log of group 1 (segments)
 *   <data-dir>/raft-journal/           the node's log journal: one fsync for every group's saves (src/raft/log-store/journal.ts)
 *   <data-dir>/kv/1/<engine>/          the state machine of group 1 (engine home: LIVE, slots)
 *
 * Shutdown (`service.close()`): new requests are refused; a leader hands
 * leadership to its most caught-up voter first (so the cluster does not wait
 * an election timeout); then the groups stop and make their applied state
 * durable, and the transport closes.
 */
import type { Logger } from 'pino';
import type { KvLimits } from '../kv/command.js';
import { LogJournal } from '../raft/log-store/journal.js';
import type { RaftConfig } from '../raft/raft.js';
import type { EngineChoices } from '../storage/engine-names.js';
import type { NodeId } from '../raft/types.js';
import type { HostPort, SocketFactory } from '../transport/socket-factory.js';
import type { TransportLimits } from '../transport/options.js';
import { type Clock, SystemClock } from '../util/clock.js';
import { type Random, SeededRandom, freshSeed } from '../util/random.js';
import { NodeVfs } from '../vfs/node-vfs.js';
import { type Vfs, joinPath } from '../vfs/vfs.js';
import { ClusterAdmin } from './cluster-admin.js';
import { CommitLatency } from './cluster-metrics.js';
import type { ClusterConfig } from './config.js';
import { claimIdentity } from './identity.js';
import { HostedGroups } from './hosted-groups.js';
import { NodeHost, memberHostOptions } from './node-host.js';
import { RaftGroup } from './raft-group.js';
import { RaftKvService } from './raft-kv-service.js';
import { ShardGroups, shardsView } from './shard-groups.js';
import { RemoteShards } from './remote-shard.js';
import { ShardedKvService } from './sharded-kv-service.js';
import { JoinedKvService } from './joined-kv-service.js';
import { ShardMover } from './shard-mover.js';
import { ShardMergeTrigger } from './shard-merge-trigger.js';
import type { KvService } from '../service/kv-service.js';

/** The group every member runs today (sharding will add more). */
export const DEFAULT_GROUP = 1;
/** How often the meta group's leader looks for replica moves to drive or start, ms. */
const MOVE_ROUND_MS = 1000;
/** Interval of the automatic merge rounds on the meta leader (shard-merge-trigger.ts): the shard leaders report sizes every 5 s. */
const MERGE_ROUND_MS = 5000;
/** Default whole-request time on a member, ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/** Ticks between a member's checks of its led shards' sizes against --shard-split-bytes, or recounts without it (5 s at the default 50 ms tick; at least 1 s). */
const SIZE_CHECK_TICKS = 100;
/** How long `GET /shards` on a member that does not lead the meta group waits for the meta leader's shard reports, ms (then shows them as unknown). */
const SHARD_REPORTS_WAIT_MS = 2000;

export interface MemberOptions {
  readonly cluster: ClusterConfig;
  /** A durable engine from the registry. */
  readonly engine: string;
  /** Engine-specific options (recovery modes, the log) for the state machine's engine (registry.ts). */
  readonly engineChoices?: EngineChoices;
  readonly dataDir: string;
  readonly limits: KvLimits;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly vfs?: Vfs;
  readonly requestTimeoutMs?: number;
  readonly raftOverrides?: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  readonly transportLimits?: Partial<TransportLimits>;
  /** Where peer sockets come from: mutual TLS (TlsSocketFactory) or, by default, plain TCP; the chaos tester's test-only dial override wraps either. */
  readonly socketFactory?: SocketFactory;
  /** See RaftGroupOptions.quiesceAfterTicks (0: groups never quiesce; benchmarks compare). */
  readonly quiesceAfterTicks?: number;
  /** Keys one step of a split's GC deletes (SplitGcOptions.keysPerStep; tests make a GC long). */
  readonly splitGcKeysPerStep?: number;
  /** Most key and value bytes a merge's commit copies in one batch (default MERGE_RIGHT_BYTES_MAX; tests make it small). */
  readonly mergeCopyBytesMax?: number;
  /** False: every group's log fsyncs its own saves, no shared journal (benchmarks compare). Default true. */
  readonly raftLogJournal?: boolean;
  /** False: every group sends its own heartbeats, none coalesced per node pair (NodeHostOptions.coalesceHeartbeats; benchmarks compare). Default true. */
  readonly coalesceHeartbeats?: boolean;
  /** How long a lock of a transaction across shards is seen before it is aborted as abandoned, ms; overrides `--txn-lock-ttl-ms` (tests shorten it below its bound). */
  readonly txnLockTtlMs?: number;
}

export interface Member {
  /** The meta group's RaftKvService, or on a sharded cluster the ShardedKvService over it. */
  readonly service: KvService;
  /** The shard groups this member hosts, kept in step with the meta group's shard map. */
  readonly shards: ShardGroups;
  readonly admin: ClusterAdmin;
  readonly host: NodeHost;
  readonly group: RaftGroup;
  /** Every group this member hosts (group 1 among them); opens and destroys groups at runtime. */
  readonly groups: HostedGroups;
  readonly latency: CommitLatency;
  /** Where the transport listens (the real port when --peer-port was 0). */
  readonly peerAddress: HostPort;
  /** True on the first start on this data directory. */
  readonly isNew: boolean;
}

export async function openMember(options: MemberOptions): Promise<Member> {
  const { cluster, logger } = options;
  const clock = options.clock ?? new SystemClock();
  const random = options.random ?? new SeededRandom(freshSeed());
  const vfs = options.vfs ?? new NodeVfs();
  const { identity, isNew } = await claimIdentity(vfs, options.dataDir, cluster);
  // Replayed before any group's log opens; closed by the host after every group closed.
  const journal = options.raftLogJournal === false ? undefined : await openJournal(vfs, options.dataDir, logger);
  const host = new NodeHost(memberHostOptions(cluster, cluster.initialCluster, { clock, random, logger, transportLimits: options.transportLimits, socketFactory: options.socketFactory, coalesceHeartbeats: options.coalesceHeartbeats }));
  if (journal !== undefined) host.attachJournal(journal);
  try {
    const peerAddress = await host.start();
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const { tickMs, electionTicks } = cluster.timing;
    const latency = new CommitLatency();
    const groups = new HostedGroups({
      host,
      dataDir: options.dataDir,
      engine: options.engine,
      ...(options.engineChoices !== undefined ? { engineChoices: options.engineChoices } : {}),
      limits: options.limits,
      timing: cluster.timing,
      vfs,
      ...(journal !== undefined ? { journal } : {}),
      clock,
      random,
      logger,
      requestTimeoutMs,
      waitingMax: 16_384,
      onCommitted: (latencyMs) => latency.observe(latencyMs),
      ...(options.raftOverrides !== undefined ? { raftOverrides: options.raftOverrides } : {}),
      ...(options.quiesceAfterTicks !== undefined ? { quiesceAfterTicks: options.quiesceAfterTicks } : {}),
    });
    const meta = await groups.open(DEFAULT_GROUP, identity.bootstrap === 'initial' ? identity.initialCluster : undefined);
    const { group, requests } = meta;
    const initialVoters = identity.bootstrap === 'initial' ? [...identity.initialCluster.keys()] : [];
    const shards = new ShardGroups({ groups, meta, nodeId: cluster.nodeId, splitKeys: cluster.splitKeys, initialVoters, clock, retryPauseMs: cluster.timing.heartbeatTicks * tickMs, waitHostedMs: requestTimeoutMs / 2,
      splitBytes: cluster.shardSplitBytes,
      sizeCheckMs: Math.max(1000, SIZE_CHECK_TICKS * tickMs),
      ...(options.splitGcKeysPerStep !== undefined ? { splitGcKeysPerStep: options.splitGcKeysPerStep } : {}),
      ...(options.mergeCopyBytesMax !== undefined ? { mergeCopyBytesMax: options.mergeCopyBytesMax } : {}),
      splitQps: cluster.shardSplitQps,
      splitGcKeysPerSecond: cluster.shardSplitGcRate,
      mergeTimeoutMs: cluster.merges.timeoutMs,
      random: random.fork(),
      logger,
    });
    const electionTimeoutMs = electionTicks * tickMs;
    const mover = new ShardMover({
      host,
      meta,
      groups,
      rpc: host.rpc,
      clock,
      logger: logger.child({ component: 'shard-mover' }),
      movesMax: cluster.moves.movesMax,
      memberDeadAfterMs: cluster.moves.memberDeadAfterMs,
      balanceLeaders: cluster.moves.balanceLeaders,
      balanceBytesMin: cluster.moves.balanceBytesMin,
      suspectAfterMs: 2 * electionTimeoutMs,
      intervalMs: MOVE_ROUND_MS,
      stepTimeoutMs: requestTimeoutMs,
      retryPauseMs: 2 * cluster.timing.heartbeatTicks * tickMs,
      tickMs,
      sizes: shards.sizes,
      load: shards.load,
    });
    const mergeTrigger = new ShardMergeTrigger({
      meta,
      nodeId: cluster.nodeId,
      clock,
      logger: logger.child({ component: 'shard-merges' }),
      mergeBytes: cluster.merges.mergeBytes,
      splitBytes: cluster.shardSplitBytes,
      quietMs: cluster.merges.quietMs,
      intervalMs: MERGE_ROUND_MS,
      reportMaxAgeMs: 3 * MERGE_ROUND_MS,
      reports: () => mover.reports.all(),
      live: (map) => mover.liveMembers(map),
      alignmentsMax: cluster.moves.movesMax,
      merge: (leftId) => shards.merge(leftId),  // mergeCandidates took sizes under --shard-merge-bytes (<= MERGE_RIGHT_BYTES_MAX)
    });
    const admin = new ClusterAdmin({
      host,
      group,
      requests,
      rpc: host.rpc,
      clock,
      logger,
      clusterId: cluster.clusterId,
      tickMs,
      requestTimeoutMs,
      shards: async () => shardsView(cluster.clusterId, cluster.nodeId, shards, meta, await mover.reportsNow(Math.min(requestTimeoutMs, SHARD_REPORTS_WAIT_MS))),
      ...(shards.sharded ? { splitShard: async (key: Buffer) => void (await shards.split(key)), mergeShards: async (leftId: number) => void (await shards.merge(leftId, await mover.reportsNow(Math.min(requestTimeoutMs, SHARD_REPORTS_WAIT_MS)))), cancelMerge: async (leftId: number) => void (await shards.cancelMerge(leftId)) } : {}),
    });
    const metaService = new RaftKvService({
      host,
      group,
      requests,
      latency,
      clusterId: cluster.clusterId,
      engineName: options.engine,
      logger,
      shutdown: async () => {
        admin.close();
        mover.close();
        mergeTrigger.close();
        // Every group this member leads hands over at once (the meta group and the shards).
        const led = host.groupIds().map((id) => host.group(id)!);
        await Promise.all(led.map((each) => handOverLeadership(each, clock, logger, 2 * electionTicks * tickMs)));
        await host.close();
      },
    });
    const remote = new RemoteShards({ rpc: host.rpc, nodeId: cluster.nodeId, clock, requestTimeoutMs, retryPauseMs: cluster.timing.heartbeatTicks * tickMs });
    const txnLockTtlMs = options.txnLockTtlMs ?? cluster.txnLockTtlMs;
    const txnOptions = { clock, lockTtlMs: txnLockTtlMs, sweepIntervalMs: Math.max(100, Math.round(txnLockTtlMs / 5)) };
    const sharded = new ShardedKvService(metaService, shards, remote, () => ({ ...mover.figures(), ...mergeTrigger.figures(), ...shards.figures() }), txnOptions);
    // A joiner learns whether the cluster is sharded from the meta group's snapshot, after it opened.
    const service = shards.sharded ? sharded : identity.bootstrap === 'initial' ? metaService : new JoinedKvService(metaService, sharded, shards);
    host.startTicking();
    mover.start();
    mergeTrigger.start();
    logger.info({ nodeId: cluster.nodeId, clusterId: cluster.clusterId, peer: `${peerAddress.host}:${peerAddress.port}`, advertisePeer: cluster.advertisePeer, firstStart: isNew, bootstrap: identity.bootstrap }, 'cluster member started');
    return { service, shards, admin, host, group, groups, latency, peerAddress, isNew };
  } catch (error) {
    await host.close().catch(() => undefined);
    throw error;
  }
}

/** Opens the node's log journal, replaying what a crash left in it into the groups' segments. */
async function openJournal(vfs: Vfs, dataDir: string, logger: Logger): Promise<LogJournal> {
  const journal = await LogJournal.open(vfs, joinPath(dataDir, 'raft-journal'), dataDir);
  const { records, skipped, tornBytes } = journal.replay;
  if (records + skipped + tornBytes > 0) logger.info({ records, skipped, tornBytes }, 'raft log journal: replayed the saves of the last run into their segments');
  return journal;
}

/**
 * If this node leads and another voter exists, transfers leadership to the
 * voter with the highest match index and waits (at most `waitMs`) for it to
 * take over, so clients do not wait an election timeout after a planned stop.
 */
async function handOverLeadership(group: RaftGroup, clock: Clock, logger: Logger, waitMs: number): Promise<void> {
  if (!group.leads) return;
  const status = group.driver.status();
  const candidates = group.membership.confState.voters.filter((id) => id !== status.id);
  if (candidates.length === 0) return;
  const best = candidates.reduce((a: NodeId, b: NodeId) => ((status.progress[String(b)]?.match ?? 0) > (status.progress[String(a)]?.match ?? 0) ? b : a));
  group.guard(() => group.driver.transferLeadership(best));
  const deadline = clock.now() + waitMs;
  while (group.leads && clock.now() < deadline) await new Promise<void>((resolve) => clock.setTimer(20, resolve));
  logger.info({ group: group.id, to: best, done: !group.leads }, 'handed leadership over before shutting down');
}

/** `<data-dir>/<engine>` holds a single-node store (its LIVE pointer) that a member must not silently ignore. */
export async function holdsSingleNodeStore(vfs: Vfs, dataDir: string, engine: string): Promise<boolean> {
  return vfs.exists(joinPath(dataDir, engine, 'LIVE'));
}
