/**
 * The cluster under test: member processes (members.ts) on a network the run
 * controls (network.ts), the slots the schedule names (index 0..n-1 → the
 * member id currently in that slot), and what the nemesis and the runner ask
 * of it — who leads, start and stop members, replace one, heal everything.
 *
 * Every member runs with `--test-control` (clock and disk faults on stdin) and
 * the network's own flags; `--test-bug` when the run plants a bug.
 *
 * Leaderless mode (`replication: 'leaderless'`): members run `--replication
 * leaderless --replicas <members>`, so every member owns every key and their
 * /digest must end equal; there is no leader (`leader()` is undefined, and the
 * schedule's leader targets fall back to its first member), and a cluster is
 * ready once every member sees every other `up`.
 */
import { ImpulseClient } from '../../src/client/client.js';
import type { ClusterView } from '../../src/protocol/cluster-view.js';
import { MemberProcesses, type MemberSpec } from './members.js';
import { type ChaosNetwork, type NetworkMode, createChaosNetwork } from './network.js';

export interface ChaosClusterOptions {
  readonly nodes: number;
  /** Default 'raft'. */
  readonly replication?: 'raft' | 'leaderless';
  readonly engine: string;
  readonly network: NetworkMode;
  readonly seed: number;
  /** Where member data lives. */
  readonly root: string;
  /** Slots kept for members that replace removed ones. Default 2. */
  readonly spares?: number;
  /** `--test-bug` value for every member. */
  readonly bugs?: string;
  /** Extra `impulse serve` flags for every member. */
  readonly serveArgs?: readonly string[];
  /** Raft only: `--split-keys` for every member (a sharded cluster: one Raft group per range, besides the meta group). */
  readonly splitKeys?: readonly string[];
}

const VIEW_TIMEOUT_MS = 1500;

export class ChaosCluster {
  /** The member id in each slot (the schedule's indexes). */
  readonly slots: number[];
  private readonly spares: number[];
  private readonly admins = new Map<number, ImpulseClient>();
  clusterId: string | undefined;

  private constructor(
    readonly options: ChaosClusterOptions,
    readonly network: ChaosNetwork,
    readonly processes: MemberProcesses,
  ) {
    this.slots = network.specs.slice(0, options.nodes).map((spec) => spec.id);
    this.spares = network.specs.slice(options.nodes).map((spec) => spec.id);
  }

  static async start(options: ChaosClusterOptions): Promise<ChaosCluster> {
    const network = await createChaosNetwork(options.network, options.nodes + (options.spares ?? 2), options.seed);
    const cluster = new ChaosCluster(options, network, new MemberProcesses(options.root, network.spawner));
    try {
      await Promise.all(cluster.slots.map((id) => cluster.startMember(id)));
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  spec(id: number): MemberSpec {
    const spec = this.network.specs.find((candidate) => candidate.id === id);
    if (spec === undefined) throw new Error(`no member ${id}`);
    return spec;
  }

  url(id: number): string {
    const spec = this.spec(id);
    return `http://${spec.host}:${spec.clientPort}`;
  }

  /** A client for administration and probes (short timeout). */
  admin(id: number): ImpulseClient {
    let client = this.admins.get(id);
    if (client === undefined) {
      client = new ImpulseClient({ endpoint: this.url(id), timeoutMs: VIEW_TIMEOUT_MS, writeRetriesMax: 0, connectionsMax: 4 });
      this.admins.set(id, client);
    }
    return client;
  }

  /** The `impulse serve` flags of member `id` (a new member with `join`). */
  serveArgs(id: number, join = false): string[] {
    const spec = this.spec(id);
    const members = join ? this.slots.filter((other) => other !== id) : this.network.specs.slice(0, this.options.nodes).map((other) => other.id);
    const initial = members.map((other) => `${other}=${this.spec(other).host}:${this.spec(other).peerPort}`).join(',');
    return [
      '--node-id', String(id),
      '--host', spec.host, '--port', String(spec.clientPort),
      // A namespace address is not loopback: the member refuses it without this (the namespaces' network is private to the run).
      ...(spec.host.startsWith('127.') ? [] : ['--insecure-listen']),
      '--peer-port', String(spec.peerPort),
      '--initial-cluster', initial,
      ...(join ? ['--join', '--cluster-id', this.clusterId ?? ''] : []),
      '--data-dir', this.processes.dataDir(id),
      '--engine', this.options.engine,
      ...(this.leaderless ? ['--replication', 'leaderless', '--replicas', String(this.options.nodes)] : []),
      ...(this.sharded ? ['--split-keys', this.options.splitKeys!.join(',')] : []),
      '--log-level', 'info',
      '--test-control',
      ...(this.options.bugs !== undefined ? ['--test-bug', this.options.bugs] : []),
      ...this.network.serveArgs(id),
      ...(this.options.serveArgs ?? []),
    ];
  }

  async startMember(id: number, join = false): Promise<void> {
    await this.processes.start(id, this.serveArgs(id, join));
  }

  /** One acknowledged write through member `id` (a recovery probe): a plain put, or in leaderless mode a blind write. */
  async probeWrite(id: number, key: string, value: string): Promise<void> {
    if (this.leaderless) await this.admin(id).putVersion(key, value);
    else await this.admin(id).put(key, value);
  }

  /** Member `id`'s view, or undefined when it does not answer (down, paused, or too slow). */
  async view(id: number): Promise<ClusterView | undefined> {
    if (!this.processes.isRunning(id) || this.processes.isPaused(id)) return undefined;
    const view = await this.admin(id).cluster().catch(() => undefined);
    if (view !== undefined) this.clusterId ??= view.clusterId;
    return view;
  }

  /** Member `id`'s /health status (ok, unavailable, failed, removed), or undefined when it does not answer. */
  async health(id: number): Promise<string | undefined> {
    if (!this.processes.isRunning(id) || this.processes.isPaused(id)) return undefined;
    try {
      const response = await fetch(`${this.url(id)}/health`, { signal: AbortSignal.timeout(VIEW_TIMEOUT_MS) });
      return ((await response.json()) as { status?: string }).status;
    } catch {
      return undefined;
    }
  }

  get leaderless(): boolean {
    return this.options.replication === 'leaderless';
  }

  get sharded(): boolean {
    return (this.options.splitKeys?.length ?? 0) > 0;
  }

  /**
   * Whom a fault aimed at "the leader" hits: the meta group's leader, or in a
   * sharded cluster the leader of data shard (fault − 1) mod shards, so that
   * successive faults take turns among the shards' leaders. Undefined when
   * there is none.
   */
  async faultLeader(faultId: number): Promise<{ id: number | undefined; note?: string }> {
    if (!this.sharded) return { id: await this.leader() };
    const views = await Promise.all(this.slots.map((id) => (this.processes.isRunning(id) && !this.processes.isPaused(id) ? this.admin(id).shards().catch(() => undefined) : undefined)));
    const shardIds = [...new Set(views.flatMap((view) => view?.shards.map((shard) => shard.id) ?? []))].sort((a, b) => a - b);
    if (shardIds.length === 0) return { id: undefined, note: 'no member answered /shards' };
    const shard = shardIds[(faultId - 1) % shardIds.length]!;
    const leaders = views.map((view) => view?.shards.find((candidate) => candidate.id === shard)?.leader ?? null);
    return { id: majorityOf(leaders, this.slots.length), note: `the leader of shard ${shard}` };
  }

  /** Ready for the workload: a leader (Raft), or every member answering and seeing every other one up (leaderless). */
  async ready(): Promise<boolean> {
    if (!this.leaderless) return (await this.leader()) !== undefined;
    const views = await Promise.all(this.slots.map((id) => this.view(id)));
    return views.every((view) => view !== undefined && view.members.every((member) => member.role === 'up'));
  }

  /** The leader a majority of the slots' members name right now, if any (never, in a leaderless cluster). */
  async leader(): Promise<number | undefined> {
    if (this.leaderless) return undefined;
    const views = await Promise.all(this.slots.map((id) => this.view(id)));
    return majorityOf(views.map((view) => view?.leader ?? null), this.slots.length);
  }

  /** The slot index of member `id`, or undefined. */
  slotOf(id: number | undefined): number | undefined {
    const index = id === undefined ? -1 : this.slots.indexOf(id);
    return index < 0 ? undefined : index;
  }

  /** A spare slot's id for a replacement member, or undefined when all are used. */
  takeSpare(): number | undefined {
    return this.spares.shift();
  }

  replaceSlot(oldId: number, newId: number): void {
    const index = this.slots.indexOf(oldId);
    if (index >= 0) this.slots[index] = newId;
  }

  async close(): Promise<void> {
    await this.processes.killAll();
    for (const client of this.admins.values()) client.close();
    this.admins.clear();
    await this.network.close();
  }
}

/** The leader more than half of `members` name, if any. */
function majorityOf(named: readonly (number | null)[], members: number): number | undefined {
  const votes = new Map<number, number>();
  for (const leader of named) if (leader !== null) votes.set(leader, (votes.get(leader) ?? 0) + 1);
  for (const [leader, count] of votes) if (count > members / 2) return leader;
  return undefined;
}
