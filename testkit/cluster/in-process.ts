/**
 * A cluster of real members in ONE process, for tests of the node runtime:
 * every member is `openMember` (src/cluster/open-member.ts) with its own data
 * directory, its own TCP transport on 127.0.0.1 and the real clock, so
 * elections, replication, forwarding and snapshots run exactly as in
 * `impulse serve`, minus the HTTP server and the process boundary (the tests
 * of src/cli/ cover those with real processes).
 *
 *   const cluster = await InProcessCluster.start(3);
 *   const leader = await cluster.waitForLeader();
 *   await cluster.member(2).service.write(...);
 *   await cluster.stop(leader);  await cluster.restart(leader);
 *   await cluster.close();       // every member, then the directories
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { type ClusterConfig, parseClusterConfig } from '../../src/cluster/config.js';
import { type Member, openMember } from '../../src/cluster/open-member.js';
import type { KvLimits } from '../../src/kv/command.js';
import type { RaftConfig } from '../../src/raft/raft.js';
import type { NodeId } from '../../src/raft/types.js';
import { DEFAULT_LIMITS } from '../../src/storage/engine.js';
import { freePorts } from '../process/ports.js';

/**
 * Polls `check` every 25 ms until it holds; throws naming `what` after
 * `timeoutMs` (generous: the machine may be loaded). For in-process cluster
 * tests (real-process tests use testkit/process/eventually.ts, which also
 * treats a throwing check as not yet).
 */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface InProcessOptions {
  readonly engine?: string;
  /** Extra cluster flags (e.g. `{ snapshotEntries: '20' }`). */
  readonly flags?: Readonly<Record<string, string>>;
  readonly raftOverrides?: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  readonly requestTimeoutMs?: number;
  /** Passed to openMember (0: groups never quiesce). */
  readonly quiesceAfterTicks?: number;
  /** See OpenMemberOptions.coalesceHeartbeats (false: each group's heartbeats travel alone; benchmarks compare). */
  readonly coalesceHeartbeats?: boolean;
  /** Passed to openMember: keys one step of a split's GC deletes. */
  readonly splitGcKeysPerStep?: number;
  /** Passed to openMember: the lock TTL of transactions across shards, ms. */
  readonly txnLockTtlMs?: number;
  /** Most bytes a merge copies (MemberOptions.mergeCopyBytesMax; tests make it small). */
  readonly mergeCopyBytesMax?: number;
  /** pino level for the members' logs (default 'silent'; 'warn' when debugging). */
  readonly logLevel?: string;
  /** Member id i advertises http://127.0.0.1:clientPorts[i - 1] (default port 10,000 + id); for tests that serve HTTP on them. */
  readonly clientPorts?: readonly number[];
}

export const TEST_LIMITS: KvLimits = { keyBytesMax: 1024, valueBytesMax: 1 << 20, batchOpsMax: 1000, batchBytesMax: 8 << 20, rangeLimitMax: DEFAULT_LIMITS.rangeLimitMax };

export class InProcessCluster {
  private readonly members = new Map<NodeId, Member | undefined>();
  private readonly configs = new Map<NodeId, ClusterConfig>();
  private readonly logger: Logger;

  private constructor(
    readonly root: string,
    private readonly options: InProcessOptions,
  ) {
    this.logger = pino({ level: options.logLevel ?? 'silent' });
  }

  /** Starts `count` members of a new cluster (ids 1..count) and waits for none of them. */
  static async start(count: number, options: InProcessOptions = {}): Promise<InProcessCluster> {
    const cluster = new InProcessCluster(await mkdtemp(join(tmpdir(), 'impulse-cluster-')), options);
    const ports = await freePorts(count);
    const initial = ports.map((port, index) => `${index + 1}=127.0.0.1:${port}`).join(',');
    for (let id = 1; id <= count; id++) {
      cluster.configs.set(id, parseClusterConfig({ nodeId: String(id), peerPort: String(ports[id - 1]), initialCluster: initial, ...options.flags }, '127.0.0.1', options.clientPorts?.[id - 1] ?? 10_000 + id)!);
    }
    try {
      await Promise.all([...cluster.configs.keys()].map((id) => cluster.restart(id)));
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  /** Adds the config of a member that will join (`--join`), without starting it. */
  async prepareJoiner(id: NodeId): Promise<{ peerUrl: string; clientUrl: string }> {
    const [port] = await freePorts(1);
    const first = this.configs.values().next().value!;
    const seeds = [...this.configs.values()].map((config) => `${config.nodeId}=${config.advertisePeer}`).join(',');
    // A joiner takes the shard map from the cluster: --split-keys is for the initial members only.
    const { splitKeys: _initialOnly, ...flags } = this.options.flags ?? {};
    const config = parseClusterConfig({ nodeId: String(id), peerPort: String(port), join: true, clusterId: first.clusterId, initialCluster: seeds, ...flags }, '127.0.0.1', 10_000 + id)!;
    this.configs.set(id, config);
    return { peerUrl: config.advertisePeer, clientUrl: config.advertiseClient };
  }

  dataDir(id: NodeId): string {
    return join(this.root, `node-${id}`);
  }

  member(id: NodeId): Member {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`member ${id} is not running`);
    return member;
  }

  running(): NodeId[] {
    return [...this.members].filter(([, member]) => member !== undefined).map(([id]) => id);
  }

  /** (Re)starts member `id` on its data directory. */
  async restart(id: NodeId): Promise<Member> {
    const cluster = this.configs.get(id);
    if (cluster === undefined) throw new Error(`no member ${id}`);
    const member = await openMember({
      cluster,
      engine: this.options.engine ?? 'lsm',
      dataDir: this.dataDir(id),
      limits: TEST_LIMITS,
      logger: this.logger.child({ node: id }),
      ...(this.options.requestTimeoutMs !== undefined ? { requestTimeoutMs: this.options.requestTimeoutMs } : {}),
      ...(this.options.raftOverrides !== undefined ? { raftOverrides: this.options.raftOverrides } : {}),
      ...(this.options.quiesceAfterTicks !== undefined ? { quiesceAfterTicks: this.options.quiesceAfterTicks } : {}),
      ...(this.options.coalesceHeartbeats !== undefined ? { coalesceHeartbeats: this.options.coalesceHeartbeats } : {}),
      ...(this.options.splitGcKeysPerStep !== undefined ? { splitGcKeysPerStep: this.options.splitGcKeysPerStep } : {}),
      ...(this.options.txnLockTtlMs !== undefined ? { txnLockTtlMs: this.options.txnLockTtlMs } : {}),
      ...(this.options.mergeCopyBytesMax !== undefined ? { mergeCopyBytesMax: this.options.mergeCopyBytesMax } : {}),
    });
    member.admin.start(cluster.advertiseClient);
    this.members.set(id, member);
    return member;
  }

  /** Stops member `id` cleanly (as SIGTERM would). */
  async stop(id: NodeId): Promise<void> {
    const member = this.members.get(id);
    this.members.set(id, undefined);
    await member?.service.close();
  }

  /**
   * Stops member `id` the way the others see a kill -9: its transport and groups
   * close without handing leadership over (its files are closed cleanly, so
   * this is not a power-loss test).
   */
  async crash(id: NodeId): Promise<void> {
    const member = this.members.get(id);
    this.members.set(id, undefined);
    member?.admin.close();
    await member?.host.close();
  }

  /** The leader all running members agree on, once they do (polling every 20 ms). */
  async waitForLeader(timeoutMs = 10_000, among: readonly NodeId[] = this.running()): Promise<NodeId> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leaders = new Set(among.map((id) => this.member(id).group.leader));
      const [leader] = [...leaders];
      if (leaders.size === 1 && leader !== undefined && leader !== 0 && among.includes(leader)) return leader;
      if (Date.now() > deadline) throw new Error(`no agreed leader within ${timeoutMs} ms: ${among.map((id) => `${id}→${this.member(id).group.leader}`).join(' ')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Waits until every running member has applied at least `index`. */
  async waitForApplied(index: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.running().some((id) => this.member(id).group.machine.appliedIndex < index)) {
      if (Date.now() > deadline) throw new Error(`not every member applied ${index} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    for (const id of this.running()) await this.stop(id).catch(() => undefined);
    await rm(this.root, { recursive: true, force: true });
  }
}
