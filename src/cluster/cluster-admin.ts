/**
 * Membership and leadership operations of a member, and the cluster as it
 * sees it (`GET /cluster`):
 *
 *   addMember({id, peerUrl, clientUrl?})   a new LEARNER (it gets the log, never votes)
 *   promoteMember(id)                      learner → voter, once it has caught up
 *   removeMember(id)                       voter or learner out; its id is never reused
 *   transferLeader(id)                     hand leadership to voter `id`
 *
 * Any member accepts them: a follower forwards the operation to the leader
 * over the peer transport (RPC channel `cluster-admin`) and answers the
 * leader's view. Changes go one at a time (the core refuses a second while
 * one is uncommitted: IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED, 409, as for a
 * learner that lags, an id that was removed, or removing the leader itself —
 * transfer leadership first). A change is answered once APPLIED on the
 * leader; past the request timeout its outcome is unknown (504).
 *
 * The member also publishes its own client URL (`--advertise-client`) into
 * the membership once it is a member and a leader is known (etcd publishes
 * member attributes the same way), retrying until it is applied.
 */
import type { Logger } from 'pino';
import { ImpulseError, isImpulseError } from '../errors.js';
import type { AddMemberRequest, ClusterMemberView, ClusterView, MemberRole, RemoveOptions } from '../protocol/cluster-view.js';
import type { ShardsView } from '../protocol/shard-view.js';
import type { ConfChange, NodeId } from '../raft/types.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { changeConf, transferLeadership } from './group-conf.js';
import { SPLIT_KEY_BYTES_MAX } from '../shard/shard-map.js';
import { encodeClusterCommand } from './log-entries.js';
import { type MemberContext, encodeMemberContext, validateMemberAddresses } from './membership.js';
import type { NodeHost } from './node-host.js';
import type { RaftGroup } from './raft-group.js';
import type { RaftRequests } from './raft-requests.js';
import { outcomeUnknown, unavailable } from './request-errors.js';

export interface ClusterAdminOptions {
  readonly host: NodeHost;
  readonly group: RaftGroup;
  readonly requests: RaftRequests;
  readonly rpc: RpcEndpoint;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly clusterId: string;
  readonly tickMs: number;
  /** How long an operation may take, ms; a transfer waits at most this long for the new leader. */
  readonly requestTimeoutMs: number;
  /** `GET /shards`: the shard map as this member sees it. */
  readonly shards: () => Promise<ShardsView>;
  /** `POST /shards/split`: splits the shard holding the key there (absent: not a sharded cluster). */
  readonly splitShard?: (key: Buffer) => Promise<void>;
  /** `POST /shards/merge`: merges the shard's right neighbour into it (absent: not a sharded cluster). */
  readonly mergeShards?: (leftId: number) => Promise<void>;
  /** `POST /shards/merge/cancel`: marks the merge into the shard to roll back (absent: not a sharded cluster). */
  readonly cancelMerge?: (leftId: number) => Promise<void>;
}

type AdminOperation =
  | { readonly op: 'add'; readonly id: NodeId; readonly peerUrl: string; readonly clientUrl: string | null }
  | { readonly op: 'promote' | 'remove' | 'transfer'; readonly id: NodeId };

/** How often an unpublished client URL is tried again, ms. */
const PUBLISH_RETRY_MS = 2000;

export class ClusterAdmin {
  private readonly group: RaftGroup;
  /** This member's client URL, published into the membership (known once the API listens: `start`). */
  private advertiseClient: string | undefined;
  private publishing = false;
  private publishTimer: TimerHandle | undefined;
  private closed = false;

  constructor(private readonly options: ClusterAdminOptions) {
    this.group = options.group;
    options.rpc.serve('cluster-admin', (from, body, reply) => {
      let operation: AdminOperation;
      try {
        operation = parseOperation(body);
      } catch (error) {
        return reply(error as ImpulseError);
      }
      if (this.group.leader !== this.group.driver.id) return reply(new ImpulseError('IMPULSE_ERR_RAFT_NOT_LEADER', `node ${this.group.driver.id} is not the leader`));
      this.runAsLeader(operation).then(
        () => reply(null, this.view()),
        (error: unknown) => reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', 'the membership operation failed on the leader')),
      );
    });
    this.group.listen({ membershipChanged: () => this.publishSoon(0), leaderChanged: (leader) => leader !== 0 && this.publishSoon(0) });
  }

  async addMember(request: AddMemberRequest): Promise<ClusterView> {
    const id = nodeIdOf(request?.id);
    const context = validateMemberAddresses(request?.peerUrl, request?.clientUrl);
    return this.run({ op: 'add', id, peerUrl: context.peerUrl, clientUrl: context.clientUrl });
  }

  async promoteMember(id: unknown): Promise<ClusterView> {
    return this.run({ op: 'promote', id: nodeIdOf(id) });
  }

  /** `force` is leaderless-only: a Raft majority removes a member that is down with a normal removal. */
  async removeMember(id: unknown, options: RemoveOptions = {}): Promise<ClusterView> {
    if (options.force === true) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'force is for leaderless clusters; a Raft cluster removes a member that is down with a normal removal (a majority commits it)');
    return this.run({ op: 'remove', id: nodeIdOf(id) });
  }

  async transferLeader(id: unknown): Promise<ClusterView> {
    return this.run({ op: 'transfer', id: nodeIdOf(id) });
  }

  /** The cluster as this node sees it (members' progress only on the leader). */
  /** The shard map and this member's view of each shard (`GET /shards`). */
  shards(): Promise<ShardsView> {
    return this.options.shards();
  }

  /**
   * Merges shard `shard`'s right neighbour into it; the view once this
   * member's map has the merge in flight (it finishes on its own).
   * IMPULSE_ERR_CONFIG_INVALID for a shard id that is not an integer >= 2 or
   * a pair that cannot merge (src/shard/merges.ts).
   */
  async mergeShards(shard: unknown): Promise<ShardsView> {
    const { mergeShards } = this.options;
    if (mergeShards === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'this cluster is not sharded (it was started without --split-keys)');
    if (typeof shard !== 'number' || !Number.isSafeInteger(shard) || shard < 2) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a merge names the left shard as {"shard": <id>} (an integer >= 2); its right neighbour merges into it');
    await mergeShards(shard);
    return this.options.shards();
  }

  /**
   * Rolls back the merge into shard `shard` (its right neighbour serves its
   * range again), unless the left shard took it in first (then the merge
   * finishes); the view once this member's map has the rollback mark.
   * IMPULSE_ERR_CONFIG_INVALID for a shard id that is not an integer >= 2 or
   * no merge into it in flight.
   */
  async cancelMerge(shard: unknown): Promise<ShardsView> {
    const { cancelMerge } = this.options;
    if (cancelMerge === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'this cluster is not sharded (it was started without --split-keys)');
    if (typeof shard !== 'number' || !Number.isSafeInteger(shard) || shard < 2) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a merge to cancel names the left shard as {"shard": <id>} (an integer >= 2)');
    await cancelMerge(shard);
    return this.options.shards();
  }

  /** Splits the shard holding `key` at `key`; the view once this member's map has the split. */
  async splitShard(key: Buffer): Promise<ShardsView> {
    const { splitShard } = this.options;
    if (splitShard === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'this cluster is not sharded (it was started without --split-keys)');
    validateSplitKey(key);
    await splitShard(key);
    return this.options.shards();
  }

  view(): ClusterView {
    const status = this.group.driver.status();
    const { confState, members } = this.group.membership;
    const self = status.id;
    const leader = this.group.leader;
    const lead = status.role === 'leader';
    const memberViews = [...members.values()]
      .sort((a, b) => a.id - b.id)
      .map((member): ClusterMemberView => {
        const progress = lead ? status.progress[String(member.id)] : undefined;
        let role: MemberRole = confState.learners.includes(member.id) ? 'learner' : member.id === leader ? 'leader' : 'follower';
        if (member.id === self && (status.role === 'candidate' || status.role === 'pre-candidate')) role = 'candidate';
        return {
          id: member.id,
          clientUrl: member.clientUrl,
          peerUrl: member.peerUrl,
          role,
          matchIndex: progress?.match ?? null,
          lag: progress?.lag ?? null,
          lastContactMs: progress === undefined ? null : member.id === self ? 0 : progress.ticksSinceContact * this.options.tickMs,
        };
      });
    const state = this.group.state;
    return {
      clusterId: this.options.clusterId,
      nodeId: self,
      state,
      ...(this.group.failure !== undefined ? { reason: this.group.failure.message } : state === 'removed' ? { reason: 'this node was removed from the cluster' } : {}),
      leader: leader === 0 ? null : leader,
      term: status.term,
      commitIndex: status.commit,
      appliedIndex: status.applied,
      members: memberViews,
    };
  }

  /** Starts publishing `clientUrl` as this member's client URL (until applied). */
  start(clientUrl: string): void {
    this.advertiseClient = clientUrl;
    this.publishSoon(0);
  }

  close(): void {
    this.closed = true;
    this.publishTimer?.cancel();
  }

  // ---------------------------------------------------------------- routing

  /** Runs `operation` at the leader: here, or forwarded. Answers the view after it applied. */
  private async run(operation: AdminOperation): Promise<ClusterView> {
    const { clock, requestTimeoutMs } = this.options;
    const deadline = clock.now() + requestTimeoutMs;
    this.options.requests.requireServing();
    const leader = await this.options.requests.awaitLeader(deadline);
    if (leader === this.group.driver.id) {
      await this.runAsLeader(operation);
      return this.view();
    }
    const timeoutMs = Math.max(1, Math.round(deadline - clock.now()));
    const answer = await this.options.rpc.callAsync(leader, 'cluster-admin', { g: this.group.id, ...operation }, timeoutMs).catch((error: unknown) => {
      if (isImpulseError(error, 'IMPULSE_ERR_RPC_TIMEOUT')) {
        // A transfer is safe to retry; a membership change whose answer was lost may or may not have applied.
        if (operation.op === 'transfer') throw unavailable(`the leader (node ${leader}) did not confirm the leadership transfer in time; it may still move; retry`);
        throw outcomeUnknown(`the leader (node ${leader}) did not answer the membership change in time`, error);
      }
      throw error;
    });
    return answer as ClusterView;
  }

  private async runAsLeader(operation: AdminOperation): Promise<void> {
    const { id } = operation;
    // A new leader refuses membership changes until it committed an entry of its term; a read
    // point is established exactly then (§6.4), so wait for one instead of refusing the operator.
    if (operation.op !== 'transfer') await this.options.requests.readBarrier();
    const member = this.group.membership.members.get(id);
    switch (operation.op) {
      case 'add':
        this.options.host.expectPeer(id, operation.peerUrl);
        return this.changeConf({ type: 'add-learner', nodeId: id, context: encodeMemberContext(operation) });
      case 'promote': {
        // The core would also add a stranger as a voter at once: only a learner that caught up may become one.
        if (!this.group.membership.confState.learners.includes(id)) throw new ImpulseError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', `node ${id} is not a learner; add it first (POST /cluster/members), then promote it`);
        const context: MemberContext | undefined = member?.peerUrl != null ? { peerUrl: member.peerUrl, clientUrl: member.clientUrl } : undefined;
        return this.changeConf({ type: 'add-voter', nodeId: id, context: context === undefined ? new Uint8Array(0) : encodeMemberContext(context) });
      }
      case 'remove':
        return this.changeConf({ type: 'remove-node', nodeId: id, context: new Uint8Array(0) });
      case 'transfer':
        return this.transfer(id);
    }
  }

  private changeConf(change: ConfChange): Promise<void> {
    return changeConf(this.group, change, this.options.clock, this.options.requestTimeoutMs);
  }

  private transfer(target: NodeId): Promise<void> {
    return transferLeadership(this.group, target, this.options.clock, this.options.tickMs, this.options.requestTimeoutMs);
  }

  // ---------------------------------------------------------------- publishing the client URL

  private publishSoon(delayMs: number): void {
    if (this.closed || this.publishing || !this.needsPublish()) return;
    this.publishTimer?.cancel();
    this.publishTimer = this.options.clock.setTimer(delayMs, () => void this.publish());
  }

  private needsPublish(): boolean {
    const self = this.group.membership.members.get(this.group.driver.id);
    return this.advertiseClient !== undefined && this.group.state === 'running' && self !== undefined && self.clientUrl !== this.advertiseClient;
  }

  private async publish(): Promise<void> {
    const clientUrl = this.advertiseClient;
    if (this.closed || this.publishing || clientUrl === undefined || !this.needsPublish() || this.group.leader === 0) return;
    this.publishing = true;
    try {
      // Retry-safe: publishing the same URL twice changes nothing.
      await this.options.requests.write(encodeClusterCommand({ type: 'publish', nodeId: this.group.driver.id, clientUrl }), true);
      this.options.logger.info({ clientUrl }, 'published this member\'s client URL');
    } catch (error) {
      this.options.logger.debug({ err: error }, 'publishing the client URL failed; will retry');
    } finally {
      this.publishing = false;
      this.publishSoon(PUBLISH_RETRY_MS);
    }
  }
}

function nodeIdOf(value: unknown): NodeId {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= 2 ** 31 - 1) return value;
  if (typeof value === 'string' && /^[1-9][0-9]{0,9}$/.test(value) && Number(value) <= 2 ** 31 - 1) return Number(value);
  throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `a member id is an integer from 1 to 2^31-1; got ${JSON.stringify(value)}`);
}

/** A forwarded operation from a peer (untrusted): validated like one from the API. */
function parseOperation(body: unknown): AdminOperation {
  const value = (body ?? {}) as Record<string, unknown>;
  const id = nodeIdOf(value['id']);
  switch (value['op']) {
    case 'add': {
      const context = validateMemberAddresses(value['peerUrl'], value['clientUrl']);
      return { op: 'add', id, peerUrl: context.peerUrl, clientUrl: context.clientUrl };
    }
    case 'promote':
    case 'remove':
    case 'transfer':
      return { op: value['op'], id };
    default:
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a membership operation is add, promote, remove or transfer');
  }
}

/** A split key: 1 to SPLIT_KEY_BYTES_MAX bytes (as `--split-keys`). */
function validateSplitKey(key: Buffer): void {
  if (key.length === 0 || key.length > SPLIT_KEY_BYTES_MAX) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `a split key is 1 to ${SPLIT_KEY_BYTES_MAX} bytes, got ${key.length}`);
}
