/**
 * Replicated requests of one Raft group, wherever they arrive:
 *
 *   write(bytes):  on the leader, propose and answer once APPLIED; on a
 *                  follower, forward the command to the leader over the peer
 *                  transport (RPC channel `kv-forward`), which proposes it
 *                  and answers the outcome. No HTTP proxying.
 *   readBarrier(): returns once a linearizable read may be served from the
 *                  local state machine. Reads go in batches (one in flight;
 *                  the reads that arrive meanwhile share the next): on the
 *                  leader a batch is one ReadIndex of the driver; on a
 *                  follower, one RPC for the leader's read index
 *                  (`read-index`), then a wait until the local state machine
 *                  applied it (etcd's follower reads).
 *
 * Bounds and deadlines: a request has `requestTimeoutMs` in all; while the
 * group has no leader it waits at most `leaderWaitMs`, then fails with
 * IMPULSE_ERR_UNAVAILABLE (retry after `Retry-After`). An attempt at a leader
 * is abandoned when leadership changes under it. What a failed attempt means
 * (retry, unknown outcome, final answer) is request-errors.ts. Waiting
 * requests are bounded (`waitingMax`), and so are the driver's queues and the
 * RPC calls in flight; beyond a bound the answer is a 503 at once.
 */
import { decodeTxnCommand, isTxnCommandBytes } from '../kv/txn.js';
import type { Logger } from 'pino';
import { ImpulseError, isImpulseError } from '../errors.js';
import type { ApplyResult } from '../kv/apply.js';
import { decodeCommand } from '../kv/command.js';
import type { RaftError } from '../raft/types.js';
import type { WriteOutcome } from '../service/kv-service.js';
import { outcomeOf } from '../service/outcome.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { Clock } from '../util/clock.js';
import { CLUSTER_COMMAND_FORMAT, decodeClusterCommand } from './log-entries.js';
import type { GroupRpc } from './group-rpc.js';
import type { RaftGroup } from './raft-group.js';
import { classifyFailure, isOutcomeOfApplying, outcomeUnknown, unavailable } from './request-errors.js';
import { AppliedWaits, LeaderWatch } from './waits.js';
import { nodeOfRaftId } from '../shard/replica-id.js';

export interface RaftRequestsOptions {
  readonly group: RaftGroup;
  /** For calls to other nodes. */
  readonly rpc: RpcEndpoint;
  /** Where this group's handlers of `kv-forward` and `read-index` are registered. */
  readonly groupRpc: GroupRpc;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The whole time a request may take on this node, ms. */
  readonly requestTimeoutMs: number;
  /** How long a request waits for a leader before IMPULSE_ERR_UNAVAILABLE, ms (at most requestTimeoutMs). */
  readonly leaderWaitMs: number;
  /** Pause between attempts when the leader refused (it may be stale here), ms. */
  readonly retryPauseMs: number;
  /** Requests that may wait at once (for a leader, a leader change, an applied index, a follower read index). */
  readonly waitingMax: number;
  /** A proposal of this node applied after `latencyMs` (commit latency: proposal → applied). */
  readonly onCommitted?: (latencyMs: number) => void;
}

/** Counters for /status and /metrics. */
export interface RequestCounters {
  forwardedWrites: number;
  forwardedWritesServed: number;
  followerReadIndexCalls: number;
  readIndexServed: number;
  retries: number;
  leaderWaitTimeouts: number;
  unknownOutcomes: number;
}

interface ReadWaiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Extra ms the forwarding side waits beyond the leader's own deadline, so the leader's answer wins the race. */
const FORWARD_MARGIN_MS = 250;

export class RaftRequests {
  readonly counters: RequestCounters = { forwardedWrites: 0, forwardedWritesServed: 0, followerReadIndexCalls: 0, readIndexServed: 0, retries: 0, leaderWaitTimeouts: 0, unknownOutcomes: 0 };
  private readonly group: RaftGroup;
  private readonly leaders: LeaderWatch;
  private readonly applied: AppliedWaits;
  private nextReads: ReadWaiter[] = [];
  private readInFlight = false;

  constructor(private readonly options: RaftRequestsOptions) {
    this.group = options.group;
    this.leaders = new LeaderWatch(options.clock, options.waitingMax);
    this.applied = new AppliedWaits(options.clock, options.waitingMax);
    this.leaders.notify(this.group.leader, this.group.driver.node.currentTerm);
    this.applied.notify(this.group.machine.appliedIndex);
    this.group.listen({
      leaderChanged: (leader, term) => this.leaders.notify(leader, term),
      applied: (index) => this.applied.notify(index),
      stateChanged: () => this.failWaits(),
    });
    options.groupRpc.serve('kv-forward', this.group.id, (from, body, reply) => this.serveForward(body, reply));
    options.groupRpc.serve('read-index', this.group.id, (from, body, reply) => this.serveReadIndex(body, reply));
  }

  /** This replica's node (its Raft id may be of a later generation: src/shard/replica-id.ts). */
  get nodeId(): number {
    return nodeOfRaftId(this.group.driver.id);
  }

  /** Requests waiting right now (for /status). */
  get waiting(): number {
    return this.leaders.waiting + this.applied.waiting + this.nextReads.length;
  }

  /**
   * Replicates the key-value command or cluster command `bytes` (already
   * validated) and resolves with its outcome once applied. `retrySafe`: the command carries a client
   * session, so an attempt of unknown outcome may be repeated.
   */
  async write(bytes: Uint8Array, retrySafe: boolean): Promise<WriteOutcome> {
    const { clock, requestTimeoutMs, leaderWaitMs } = this.options;
    const deadline = clock.now() + requestTimeoutMs;
    // Once an attempt may have applied, no later refusal can say "nothing happened" any more.
    let uncertain: unknown;
    try {
      for (;;) {
        this.requireServing();
        const leader = await this.awaitLeader(deadline);
        const term = this.group.driver.node.currentTerm;
        // With a session, an attempt that may have applied can be repeated: give each one a share of the time.
        const attemptDeadline = retrySafe ? Math.min(deadline, clock.now() + Math.max(1000, leaderWaitMs)) : deadline;
        try {
          if (leader === this.nodeId) return outcomeOf(await this.proposeLocal(bytes, attemptDeadline));
          return await this.forward(leader, term, bytes, attemptDeadline);
        } catch (error) {
          const failure = classifyFailure(error);
          if (failure === 'final') throw error;
          if (failure === 'unknown') uncertain = error;
          if (failure === 'unknown' && !retrySafe) throw error;
          if (clock.now() >= deadline) throw failure === 'unknown' ? error : unavailable(`the write could not reach a leader within ${requestTimeoutMs} ms: ${(error as Error).message}`);
          this.counters.retries++;
          await this.pause(leader, term, deadline);
        }
      }
    } catch (error) {
      if (uncertain !== undefined && !isOutcomeOfApplying(error)) throw this.unknown(uncertain);
      throw error;
    }
  }

  /** Resolves once a linearizable read may be served from the local state machine. */
  async readBarrier(): Promise<void> {
    const { clock, requestTimeoutMs } = this.options;
    const deadline = clock.now() + requestTimeoutMs;
    for (;;) {
      this.requireServing();
      const leader = await this.awaitLeader(deadline);
      const term = this.group.driver.node.currentTerm;
      try {
        await this.nextReadPoint();
        return;
      } catch (error) {
        // A read has no effect: every failure but a final answer may be retried.
        if (classifyFailure(error) === 'final') throw error;
        if (clock.now() >= deadline) throw unavailable(`no linearizable read point within ${requestTimeoutMs} ms: ${(error as Error).message}`);
        this.counters.retries++;
        await this.pause(leader, term, deadline);
      }
    }
  }

  /** Refuses requests while the group is not running here (failed, removed, closed). */
  requireServing(): void {
    const refusal = this.servingRefusal();
    if (refusal !== undefined) throw refusal;
  }

  private servingRefusal(): ImpulseError | undefined {
    const { state, failure } = this.group;
    if (state === 'running') return undefined;
    if (state === 'closed') return new ImpulseError('IMPULSE_ERR_SHUTTING_DOWN', 'this node is shutting down');
    const why = state === 'removed' ? 'this node was removed from the cluster' : `this node's Raft group failed (${failure?.message ?? 'unknown cause'}); it must be restarted`;
    return new ImpulseError('IMPULSE_ERR_RAFT_STOPPED', why);
  }

  // ---------------------------------------------------------------- attempts

  /** The leader's id, once one is known (this node's included); IMPULSE_ERR_UNAVAILABLE after `leaderWaitMs` without one. */
  async awaitLeader(deadline: number): Promise<number> {
    const { clock, leaderWaitMs } = this.options;
    if (this.group.leader !== 0) return this.group.leader;
    const leader = await this.leaders.awaitLeader(() => this.group.leader, Math.min(deadline, clock.now() + leaderWaitMs), () => {
      this.counters.leaderWaitTimeouts++;
      return unavailable(`the cluster has no leader (none within ${leaderWaitMs} ms: an election, or no majority reachable from this node)`);
    });
    this.requireServing();
    return leader;
  }

  /** Waits until the leader changes from `leader` in `term`, or a short pause passes (the refusal may come from a stale view). */
  private async pause(leader: number, term: number, deadline: number): Promise<void> {
    const wait = this.leaders.changedFrom(leader, term, Math.min(deadline, this.options.clock.now() + this.options.retryPauseMs), () => new Error('paused'));
    await wait.promise.catch(() => undefined);
  }

  /** Proposes on this node (the leader); settles with the applied result, or fails when leadership changes or time runs out. */
  private proposeLocal(bytes: Uint8Array, deadline: number): Promise<ApplyResult> {
    const { clock } = this.options;
    const started = clock.now();
    const term = this.group.driver.node.currentTerm;
    return this.raceLeadership(term, deadline, 'the write', (settle) => {
      this.group.driver.propose(bytes, (error, result) => {
        if (error === null) this.options.onCommitted?.(clock.now() - started);
        settle(error, result);
      });
    });
  }

  /** ReadIndex on this node (the leader): resolves once the read index is applied here. */
  private readIndexLocal(deadline: number): Promise<void> {
    const term = this.group.driver.node.currentTerm;
    return this.raceLeadership(term, deadline, 'the read', (settle) => this.group.driver.readIndex((error) => settle(error, undefined)));
  }

  /**
   * Starts `start` at this node as the leader of `term` and settles with its
   * outcome; a change of leadership first, or the deadline, fails it as
   * unknown (a write may still apply; a read is simply retried).
   */
  private raceLeadership<T>(term: number, deadline: number, what: string, start: (settle: (error: RaftError | null, value: T | undefined) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const change = this.leaders.changedFrom(this.nodeId, term, deadline, () => outcomeUnknown(`${what} was not applied within its deadline`));
      const settle = (error: Error | null, value?: T): void => {
        if (settled) return;
        settled = true;
        change.cancel();
        if (error === null) resolve(value as T);
        else reject(error);
      };
      change.promise.then(
        () => settle(outcomeUnknown(`leadership changed while ${what} was pending`)),
        (error: Error) => settle(error),
      );
      const called = this.group.guard(() => start((error, value) => settle(error, value)));
      if (!called) settle(new ImpulseError('IMPULSE_ERR_RAFT_STOPPED', 'the Raft group stopped on this node'));
    });
  }

  /** Sends the write to `leader`; the leader proposes it and answers its outcome. */
  private forward(leader: number, term: number, bytes: Uint8Array, deadline: number): Promise<WriteOutcome> {
    const timeoutMs = Math.max(1, Math.round(deadline - this.options.clock.now()));
    this.counters.forwardedWrites++;
    return this.callLeader(leader, term, deadline, 'kv-forward', { g: this.group.id, c: bytes, t: timeoutMs }, timeoutMs + FORWARD_MARGIN_MS).then((response) => {
      const revision = (response as { r?: unknown } | null)?.r;
      if (typeof revision !== 'number' || !Number.isSafeInteger(revision)) throw outcomeUnknown(`node ${leader} answered the forwarded write with something that is not a revision`);
      return { revision };
    });
  }

  /** One RPC to the leader, abandoned (as RPC_TIMEOUT: unknown) when leadership changes first. */
  private callLeader(leader: number, term: number, deadline: number, channel: 'kv-forward' | 'read-index', body: unknown, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const change = this.leaders.changedFrom(leader, term, deadline + FORWARD_MARGIN_MS, () => new Error('expired'));
      const settle = (error: Error | null, value?: unknown): void => {
        if (settled) return;
        settled = true;
        change.cancel();
        if (error === null) resolve(value);
        else reject(error);
      };
      change.promise.then(
        () => settle(new ImpulseError('IMPULSE_ERR_RPC_TIMEOUT', `leadership moved away from node ${leader} while it had the request`)),
        () => undefined, // the RPC's own timeout answers first
      );
      this.options.rpc.call(leader, channel, body, timeoutMs, (error, response) => settle(error, response));
    });
  }

  /**
   * A read point: joins the next batch of reads (one ReadIndex per batch, at
   * the leader: here, or asked for over RPC); resolves once the batch's read
   * index is applied here.
   */
  private nextReadPoint(): Promise<void> {
    if (this.nextReads.length >= this.options.waitingMax) return Promise.reject(new ImpulseError('IMPULSE_ERR_OVERLOADED', `${this.options.waitingMax} reads are waiting for a read index on this node`));
    return new Promise((resolve, reject) => {
      this.nextReads.push({ resolve, reject });
      this.sendReadBatch();
    });
  }

  /**
   * Starts the waiting reads' batch unless one is in flight. The read index
   * must be asked for AFTER a read arrived, so reads arriving while a batch is
   * in flight wait for the next one. On the leader a batch is one driver
   * ReadIndex (itself batched with others into one heartbeat round); on a
   * follower one RPC to the leader, then a wait until this node applied the
   * index the leader named.
   */
  private sendReadBatch(): void {
    if (this.readInFlight || this.nextReads.length === 0) return;
    const batch = this.nextReads;
    this.nextReads = [];
    this.readInFlight = true;
    const { clock, leaderWaitMs } = this.options;
    const deadline = clock.now() + Math.max(1000, leaderWaitMs);
    const leader = this.group.leader;
    let point: Promise<void>;
    if (leader === 0) point = Promise.reject(new ImpulseError('IMPULSE_ERR_RAFT_NOT_LEADER', 'no leader when the read index was to be asked for'));
    else if (leader === this.nodeId) point = this.readIndexLocal(deadline);
    else point = this.remoteReadPoint(leader, deadline);
    point
      .then(
        () => batch.forEach((read) => read.resolve()),
        (error: unknown) => batch.forEach((read) => read.reject(error)),
      )
      .finally(() => {
        this.readInFlight = false;
        this.sendReadBatch();
      });
  }

  // ---------------------------------------------------------------- the leader's side of forwarding

  private serveForward(body: unknown, reply: (error: ImpulseError | null, response?: unknown) => void): void {
    const request = body as { g?: unknown; c?: unknown; t?: unknown } | null;
    const bytes = request?.c;
    if (request?.g !== this.group.id || !(bytes instanceof Uint8Array) || typeof request.t !== 'number' || !(request.t > 0)) {
      return reply(new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', 'a forwarded write is {g: group, c: command bytes, t: timeout ms}'));
    }
    const refusal = this.leaderRefusal();
    if (refusal !== undefined) return reply(refusal);
    // Untrusted bytes from a peer: validated before they enter the log.
    if (bytes[0] === CLUSTER_COMMAND_FORMAT) {
      if (decodeClusterCommand(bytes) === undefined) return reply(new ImpulseError('IMPULSE_ERR_COMMAND_INVALID', 'a forwarded cluster command is malformed'));
    } else {
      try {
        if (isTxnCommandBytes(bytes)) decodeTxnCommand(bytes, this.group.machine.machine.limits);
        else decodeCommand(bytes, this.group.machine.machine.limits);
      } catch (error) {
        return reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_COMMAND_INVALID'));
      }
    }
    this.counters.forwardedWritesServed++;
    const deadline = this.options.clock.now() + Math.min(request.t, this.options.requestTimeoutMs);
    this.proposeLocal(bytes, deadline).then(
      (result) => {
        try {
          reply(null, { r: outcomeOf(result).revision });
        } catch (error) {
          reply(error as ImpulseError); // a failed condition: 412 with its details, at the follower too
        }
      },
      (error: unknown) => reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', 'the forwarded write failed on the leader')),
    );
  }

  /** The leader's read index over RPC, then a wait until it is applied here. */
  private remoteReadPoint(leader: number, deadline: number): Promise<void> {
    const { clock } = this.options;
    this.counters.followerReadIndexCalls++;
    const term = this.group.driver.node.currentTerm;
    return this.callLeader(leader, term, deadline, 'read-index', { g: this.group.id, t: deadline - clock.now() }, deadline - clock.now() + FORWARD_MARGIN_MS).then((response) => {
      const index = (response as { i?: unknown } | null)?.i;
      if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) throw new ImpulseError('IMPULSE_ERR_RPC_TIMEOUT', `node ${leader} answered the read index with something that is not an index`);
      return this.applied.until(index, deadline, () => unavailable(`this node has not applied the leader's read index ${index} in time (it is catching up)`));
    });
  }

  private serveReadIndex(body: unknown, reply: (error: ImpulseError | null, response?: unknown) => void): void {
    const request = body as { g?: unknown; t?: unknown } | null;
    if (request?.g !== this.group.id || typeof request.t !== 'number' || !(request.t > 0)) return reply(new ImpulseError('IMPULSE_ERR_QUERY_INVALID', 'a read-index request is {g: group, t: timeout ms}'));
    const refusal = this.leaderRefusal();
    if (refusal !== undefined) return reply(refusal);
    this.counters.readIndexServed++;
    // Joins this node's own batches of reads: many followers' requests cost one ReadIndex.
    this.nextReadPoint().then(
      () => reply(null, { i: this.group.machine.appliedIndex }),
      (error: unknown) => reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', 'the read index failed on the leader')),
    );
  }

  /** Why this node cannot serve a forwarded request as the leader, or undefined when it can. */
  private leaderRefusal(): ImpulseError | undefined {
    if (this.group.state !== 'running') return unavailable(`the Raft group is ${this.group.state} on node ${this.nodeId}`);
    if (this.group.leader !== this.nodeId) {
      const leader = this.group.leader;
      return new ImpulseError('IMPULSE_ERR_RAFT_NOT_LEADER', `node ${this.nodeId} is not the leader`, leader === 0 ? undefined : { details: { leader } });
    }
    return undefined;
  }

  private unknown(error: unknown): ImpulseError {
    this.counters.unknownOutcomes++;
    return isImpulseError(error, 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN') ? error : outcomeUnknown((error as Error).message, error);
  }

  /** The group stopped: nobody waits for it any more. */
  private failWaits(): void {
    const refusal = this.servingRefusal();
    if (refusal === undefined) return;
    this.leaders.failAll(refusal);
    this.applied.failAll(refusal);
  }
}
