/**
 * Membership steps of a shard's Raft group, asked of its leader over the peer
 * transport (RPC channel `shard-conf`, dispatched by group): the replica
 * mover (shard-mover.ts) runs on the meta group's leader, which need not
 * replicate the shard. Every step is idempotent — it answers success when
 * the group's configuration already shows it done — so a mover that crashed
 * or lost its answer simply asks again:
 *
 *   add-learner {id, peerUrl, bounds?, replicaId?}
 *                              node `id` joins as a learner under Raft id `replicaId` (default:
 *                              the node id; src/shard/replica-id.ts) (done if a member already);
 *                              with `bounds` (the shard's range in the asker's map, hex),
 *                              refused as unavailable while the group's own bounds differ:
 *                              a split the map made is not applied yet, and a learner added
 *                              before it would be copied into the new shard's membership
 *   promote {id}               learner `id` becomes a voter (done if a voter);
 *                              refused while it lags (IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED: retry)
 *   remove {id}                node `id` leaves (done if not a member); when `id` is the
 *                              leader itself, it first hands leadership to its most caught-up
 *                              other voter and answers NOT_LEADER naming it (ask there)
 *
 *   transfer {id}              voter `id` becomes the leader (done if it leads; a balancing
 *                              step of the mover, src/shard/leaders.ts)
 *
 * Steps name nodes; the group's configuration holds Raft ids, and each step
 * acts on node `id`'s Raft id there. Every answer is the group's configuration (Raft ids) after the step, `{voters, learners}`.
 * Bodies from peers are untrusted and checked.
 */
import { ImpulseError, isImpulseError } from '../errors.js';
import type { ConfState, NodeId } from '../raft/types.js';
import { type BoundsHex, type Shard, boundsHex, isHexBytes } from '../shard/shard-map.js';
import { nodeOfRaftId } from '../shard/replica-id.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { Clock } from '../util/clock.js';
import { changeConf, transferLeadership } from './group-conf.js';
import type { GroupRpc } from './group-rpc.js';
import type { HostedGroup } from './hosted-groups.js';
import { encodeMemberContext, validateMemberAddresses } from './membership.js';
import { unavailable } from './request-errors.js';

export const SHARD_CONF_CHANNEL = 'shard-conf';

export type ShardConfStep = { readonly op: 'add-learner'; readonly id: NodeId; readonly peerUrl: string; readonly bounds?: BoundsHex; readonly replicaId?: number } | { readonly op: 'promote' | 'remove' | 'transfer'; readonly id: NodeId };

export interface ShardConfTiming {
  readonly clock: Clock;
  /** How long one step may take on the leader, ms (a conf change's apply, a transfer). */
  readonly stepTimeoutMs: number;
  /** Poll interval while a transfer completes, ms (one tick). */
  readonly pollMs: number;
}

/** Serves `shard-conf` for `hosted` (this node's replica of a shard group). */
export function serveShardConf(groupRpc: GroupRpc, hosted: HostedGroup, timing: ShardConfTiming): void {
  groupRpc.serve(SHARD_CONF_CHANNEL, hosted.group.id, (_from, body, reply) => {
    let step: ShardConfStep;
    try {
      step = parseStep(body);
    } catch (error) {
      return reply(error as ImpulseError);
    }
    runStep(hosted, step, timing).then(
      (conf) => reply(null, { voters: conf.voters, learners: conf.learners }),
      (error: unknown) => reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', 'the shard membership step failed on the leader')),
    );
  });
}

async function runStep(hosted: HostedGroup, step: ShardConfStep, timing: ShardConfTiming): Promise<ConfState> {
  const { group, requests } = hosted;
  const notLeader = (): ImpulseError => new ImpulseError('IMPULSE_ERR_RAFT_NOT_LEADER', `node ${nodeOfRaftId(group.driver.id)} does not lead shard group ${group.id}`, group.leader === 0 ? undefined : { details: { leader: group.leader } });
  requests.requireServing();
  if (step.op === 'transfer' && group.leader === step.id) return group.membership.confState; // done (here: this node leads)
  if (!group.leads) throw notLeader();
  // A new leader changes the configuration only once an entry of its term committed (a read point then exists).
  await requests.readBarrier();
  const conf = (): ConfState => group.membership.confState;
  // Steps name nodes; the configuration holds Raft ids (src/shard/replica-id.ts): node `step.id`'s, if it is a member.
  const member = (): number | undefined => [...conf().voters, ...conf().learners].find((id) => nodeOfRaftId(id) === step.id);
  const { clock, stepTimeoutMs, pollMs } = timing;
  switch (step.op) {
    case 'add-learner': {
      const raftId = step.replicaId ?? step.id;
      const present = member();
      if (present === raftId) break;
      if (present !== undefined) throw new ImpulseError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', `node ${step.id} is a member of shard group ${group.id} under Raft id ${present}, not ${raftId}`);
      requireSplitApplied(hosted, step.bounds);
      await changeConf(group, { type: 'add-learner', nodeId: raftId, context: encodeMemberContext({ peerUrl: step.peerUrl, clientUrl: null }) }, clock, stepTimeoutMs);
      break;
    }
    case 'promote': {
      const raftId = member();
      if (raftId !== undefined && conf().voters.includes(raftId)) break;
      if (raftId === undefined) throw new ImpulseError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', `node ${step.id} is not a learner of shard group ${group.id}`);
      const known = group.membership.members.get(raftId);
      const context = known?.peerUrl != null ? encodeMemberContext({ peerUrl: known.peerUrl, clientUrl: known.clientUrl }) : new Uint8Array(0);
      await changeConf(group, { type: 'add-voter', nodeId: raftId, context }, clock, stepTimeoutMs);
      break;
    }
    case 'remove': {
      const raftId = member();
      if (raftId === undefined) break;
      if (raftId === group.driver.id) {
        await transferLeadership(group, mostCaughtUpOtherVoter(hosted), clock, pollMs, stepTimeoutMs);
        throw notLeader();
      }
      await changeConf(group, { type: 'remove-node', nodeId: raftId, context: new Uint8Array(0) }, clock, stepTimeoutMs);
      break;
    }
    case 'transfer': {
      const raftId = member();
      if (raftId === undefined) throw new ImpulseError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', `node ${step.id} is not a voter of shard group ${group.id}`);
      await transferLeadership(group, raftId, clock, pollMs, stepTimeoutMs);
      break;
    }
  }
  return conf();
}

/**
 * Refuses (unavailable: the mover asks again) while the group's own bounds
 * differ from the shard's range in the asker's map: a split of the shard is
 * committed in the map but not applied by the group yet. A conf change
 * proposed now would come before the split command in the log, and the new
 * shard would take the learner into its membership with no move to remove
 * it. Once the bounds match, no later split can come before the move ends
 * (the map refuses a split of a moving shard).
 */
function requireSplitApplied(hosted: HostedGroup, expected: BoundsHex | undefined): void {
  const bounds = hosted.group.machine.bounds;
  if (expected === undefined || bounds === undefined) return; // an older mover, or a group bootstrapped before bounds were kept
  const own = boundsHex(bounds);
  if (own.start === expected.start && own.end === expected.end) return;
  throw unavailable(`shard group ${hosted.group.id} has a split in flight (its bounds are wider than its range in the map); the move waits for it`);
}

function mostCaughtUpOtherVoter(hosted: HostedGroup): NodeId {
  const status = hosted.group.driver.status();
  const others = hosted.group.membership.confState.voters.filter((id) => id !== status.id);
  if (others.length === 0) throw new ImpulseError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', `shard group ${hosted.group.id} has no other voter to hand leadership to`);
  return others.reduce((a, b) => ((status.progress[String(b)]?.match ?? 0) > (status.progress[String(a)]?.match ?? 0) ? b : a));
}

function parseStep(body: unknown): ShardConfStep {
  const value = (body ?? {}) as Record<string, unknown>;
  const id = value['id'];
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a shard membership step names a node id');
  switch (value['op']) {
    case 'add-learner': {
      const bounds = parseBounds(value['bounds']);
      const replicaId = value['replicaId'];
      if (replicaId !== undefined && (typeof replicaId !== 'number' || !Number.isSafeInteger(replicaId) || nodeOfRaftId(replicaId) !== id)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a shard membership step\'s replica id is a Raft id of its node');
      return { op: 'add-learner', id, peerUrl: validateMemberAddresses(value['peerUrl'], null).peerUrl, ...(bounds !== undefined ? { bounds } : {}), ...(replicaId !== undefined ? { replicaId } : {}) };
    }
    case 'promote':
    case 'remove':
    case 'transfer':
      return { op: value['op'], id };
    default:
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a shard membership step is add-learner, promote, remove or transfer');
  }
}

function parseBounds(value: unknown): BoundsHex | undefined {
  if (value === undefined) return undefined;
  const { start, end } = (value ?? {}) as { start?: unknown; end?: unknown };
  if (!isHexBytes(start) || !(end === null || isHexBytes(end))) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a shard membership step\'s bounds are a start and an end (or null) in hex');
  return { start, end };
}

/** Where `askShardLeader` sends steps: the peer transport, or this node's own replica (the transport does not deliver to itself). */
export interface ShardConfRoute {
  readonly rpc: RpcEndpoint;
  readonly nodeId: NodeId;
  /** This node's replica of a group, if it hosts one. */
  readonly local: (group: number) => HostedGroup | undefined;
  readonly timing: ShardConfTiming;
  /** Pause after a refused attempt, ms. */
  readonly retryPauseMs: number;
  /** Whether node `id` is heard from lately: silent nodes are asked last (a dead one would cost an RPC timeout). */
  readonly alive: (id: NodeId) => boolean;
}

/**
 * Sends `step` for `shard` to its leader: tries the shard's replicas (and the
 * move's target, which may lead once promoted) in turn, live ones first,
 * following a refusal's leader hint, until one answers or `timeoutMs` passes;
 * one attempt waits at most the step time. Throws the last
 * refusal (every step is safe to ask again; the mover does).
 */
export async function askShardLeader(route: ShardConfRoute, shard: Shard, step: ShardConfStep, timeoutMs: number): Promise<ConfState> {
  const { rpc, nodeId, timing, retryPauseMs } = route;
  const { clock } = timing;
  const members = [...new Set([...shard.replicas, ...(shard.move !== undefined ? [shard.move.to] : [])])];
  const candidates = [...members.filter((id) => route.alive(id)), ...members.filter((id) => !route.alive(id))];
  const deadline = clock.now() + timeoutMs;
  let hint: NodeId | undefined;
  for (let attempt = 0; ; attempt++) {
    const target = hint ?? candidates[attempt % candidates.length]!;
    hint = undefined;
    try {
      if (target === nodeId) {
        const hosted = route.local(shard.id);
        if (hosted === undefined) throw unavailable(`node ${nodeId} does not host shard group ${shard.id}`);
        return await runStep(hosted, step, timing);
      }
      const attemptMs = Math.max(1, Math.round(Math.min(deadline - clock.now(), timing.stepTimeoutMs + retryPauseMs)));
      const answer = (await rpc.callAsync(target, SHARD_CONF_CHANNEL, { g: shard.id, ...step }, attemptMs)) as { voters?: unknown; learners?: unknown } | null;
      const ids = (list: unknown): NodeId[] => (Array.isArray(list) ? list.filter((id): id is number => typeof id === 'number') : []);
      return { voters: ids(answer?.voters), learners: ids(answer?.learners) };
    } catch (error) {
      const leader = isImpulseError(error) ? error.details?.['leader'] : undefined;
      if (typeof leader === 'number' && candidates.includes(leader)) hint = leader;
      if (clock.now() + retryPauseMs >= deadline) throw error;
      await new Promise<void>((resolve) => clock.setTimer(hint !== undefined ? 0 : retryPauseMs, resolve));
    }
  }
}
