/**
 * `RaftKvService`: the `KvService` (src/service/kv-service.ts) of a cluster
 * member. Writes are replicated through the Raft group and answered once
 * applied (forwarded to the leader when this node follows, raft-requests.ts);
 * reads are linearizable by default (ReadIndex on the leader, the leader's
 * read index on a follower), or `serializable`: the local replica at once,
 * stale by whatever this node has not applied yet — on a partitioned follower
 * without bound in time.
 *
 * Health: `ok` while the group runs and knows a leader; `unavailable` without
 * a leader (an election, or no majority reachable) or when closed; `failed`
 * after a fail-stop (the log or the state machine failed, or an invariant
 * broke: requests are refused until a restart); `removed` once a committed
 * configuration removed this member.
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import { type KvCommand, type KvLimits, encodeCommand, validateCommand } from '../kv/command.js';
import { type ContentDigest, contentDigest } from '../kv/digest.js';
import type { StoredValue } from '../kv/record.js';
import type { KvItem } from '../kv/state-machine.js';
import { type KvService, READ_CONSISTENCIES, type ReadOptions, type ServiceHealth, type ServiceStatus, type WriteOutcome, engineServiceHealth, storageStatus } from '../service/kv-service.js';
import type { RangeOptions } from '../storage/engine.js';
import { CommitLatency, raftFigures } from './cluster-metrics.js';
import type { NodeHost } from './node-host.js';
import type { RaftGroup } from './raft-group.js';
import type { RaftRequests } from './raft-requests.js';

export interface RaftKvServiceOptions {
  readonly host: NodeHost;
  readonly group: RaftGroup;
  readonly requests: RaftRequests;
  readonly latency: CommitLatency;
  readonly clusterId: string;
  readonly engineName: string;
  readonly logger: Logger;
  /** Runs at `close()` after new requests are refused: hand leadership over, stop the host. */
  readonly shutdown: () => Promise<void>;
}

export class RaftKvService implements KvService {
  readonly limits: KvLimits;
  private readonly group: RaftGroup;
  private readonly requests: RaftRequests;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: RaftKvServiceOptions) {
    this.group = options.group;
    this.requests = options.requests;
    this.limits = options.group.machine.machine.limits;
  }

  async get(key: Uint8Array, options?: ReadOptions): Promise<StoredValue | undefined> {
    await this.readPoint(options);
    return this.group.machine.machine.get(key);
  }

  async range(query: RangeOptions, options?: ReadOptions): Promise<KvItem[]> {
    await this.readPoint(options);
    return this.group.machine.machine.range(query);
  }

  async write(command: KvCommand): Promise<WriteOutcome> {
    if (this.closing !== undefined) throw new ImpulseError('IMPULSE_ERR_SHUTTING_DOWN', 'the service is closing and takes no new writes');
    validateCommand(command, this.limits);
    return this.requests.write(encodeCommand(command), command.session !== undefined);
  }

  async status(): Promise<ServiceStatus> {
    const machine = this.group.machine.machine;
    const engine = machine.engine;
    const stats = await machine.stats();
    const driver = this.group.driver.status();
    return {
      mode: 'raft',
      engine: engine.name,
      durable: true,
      sync: 'fsync',
      durability: 'a write is acknowledged once a majority of voters has fsynced it in their Raft logs and the leader has applied it',
      appliedIndex: machine.appliedIndex,
      durableAppliedIndex: machine.durableAppliedIndex,
      keyCount: stats.keyCount ?? null,
      diskBytes: stats.diskBytes ?? null,
      sessions: stats.sessions,
      limits: this.limits,
      storage: storageStatus(engine),
      figures: { ...stats.figures, sessions: stats.sessions, ...raftFigures(this.options.host, this.group, this.requests, this.options.latency) },
      replication: {
        clusterId: this.options.clusterId,
        nodeId: driver.id,
        state: this.group.state,
        ...(this.group.failure !== undefined ? { failure: this.group.failure.message } : {}),
        role: driver.role,
        term: driver.term,
        leader: driver.leader === 0 ? null : driver.leader,
        commitIndex: driver.commit,
        appliedIndex: driver.applied,
        lastIndex: driver.lastIndex,
        snapshotIndex: driver.snapshotIndex,
        voters: this.group.membership.confState.voters,
        learners: this.group.membership.confState.learners,
      },
    };
  }

  health(): ServiceHealth {
    const { state, failure } = this.group;
    if (state === 'failed') return { status: 'failed', reason: `the Raft group failed and stopped (${failure?.message ?? 'unknown cause'}); restart the node after fixing the cause` };
    if (state === 'removed') return { status: 'removed', reason: 'this node was removed from the cluster; stop it and delete its data directory' };
    if (state === 'closed' || this.closing !== undefined) return { status: 'unavailable', reason: 'the node is shutting down' };
    const storage = engineServiceHealth(this.group.machine.machine.engine);
    if (storage.status !== 'ok') return storage;
    if (this.group.leader === 0) return { status: 'unavailable', reason: 'no leader: an election is in progress, or this node cannot reach a majority' };
    return { status: 'ok' };
  }

  digest(): Promise<ContentDigest> {
    return contentDigest(this.group.machine.machine);
  }

  /** Refuses new requests, then shuts the member down (idempotent). */
  close(): Promise<void> {
    this.closing ??= this.options.shutdown();
    return this.closing;
  }

  private async readPoint(options: ReadOptions | undefined): Promise<void> {
    const consistency = options?.consistency ?? 'linearizable';
    if (!READ_CONSISTENCIES.includes(consistency)) throw new ImpulseError('IMPULSE_ERR_QUERY_INVALID', `consistency must be ${READ_CONSISTENCIES.join(' or ')}`);
    if (this.closing !== undefined) throw new ImpulseError('IMPULSE_ERR_SHUTTING_DOWN', 'the service is closing');
    this.requests.requireServing();
    if (consistency === 'linearizable') await this.requests.readBarrier();
  }
}
