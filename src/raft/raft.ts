/**
 * The Raft core: a pure, deterministic state machine (Raft dissertation,
 * Ongaro 2014), in the etcd/raft `Ready` style.
 *
 * How to drive it (the driver in driver.ts does exactly this; use it):
 *
 *   const node = new RaftNode(config, { storage, applied });
 *   // inputs, from one thread of control:
 *   node.tick();                // every tick interval (election/heartbeat timers count ticks)
 *   node.step(message);         // a validated message from a peer (parseMessage)
 *   node.propose(bytes);        // -> ProposeResult, typed error when not leader
 *   node.readIndex(requestId);  // a linearizable read; answered in Ready.readStates
 *   node.proposeConfChange(c);  node.transferLeadership(id);  node.reportSnapshot(id, ok);  node.compact(index)
 *   // outputs:
 *   if (node.hasReady()) { const ready = node.ready(); ...persist, send, apply (see `Ready`)...; node.advance(ready); }
 *
 * The stable log is read on demand from `RaftStorage` (log.ts); only entries
 * not yet persisted are held in memory. Nothing in here touches a socket,
 * file, timer, clock or Math.random: time is the tick count and randomness
 * comes from the injected `Random`, so the same code runs in production and,
 * replayable from a seed, in the simulator.
 */
import { assert, unreachable } from '../util/assert.js';
import type { Random } from '../util/random.js';
import { RaftLog } from './log.js';
import { addInflight, becomeProbe, becomeReplicate, becomeSnapshot, freeInflightTo, inflightHasRoom, newProgress, type Progress, type ProgressState } from './progress.js';
import { ReadIndexQueue } from './read-index.js';
import type { RaftStorage } from './storage.js';
import {
  entryBytes,
  NO_MUTATIONS,
  NO_NODE,
  RaftError,
  quorumOf,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ProposeResult,
  type RaftMutations,
  type ReadState,
  type Ready,
  type Role,
  type SnapshotMeta,
  type SoftState,
} from './types.js';

export interface RaftConfig {
  readonly id: NodeId;
  /** Base election timeout; each node waits a random [base, 2*base) ticks. >= 2 * heartbeat. */
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** Optimistic pipelining bound: appends in flight to one follower before waiting for acks. >= 1. */
  readonly inflightAppendsMax: number;
  /** Entry payload bytes in flight to one follower before waiting for acks (one append always may go). >= 1. */
  readonly inflightBytesMax: number;
  /** Entries per append message (also the proposal batch size sent at once). >= 1. */
  readonly entriesPerAppendMax: number;
  /** Entry payload bytes per append message (at least one entry goes). >= 1. */
  readonly appendBytesMax: number;
  /** Entries handed out per Ready for application. >= 1. */
  readonly applyBatchMax: number;
  /** Entry payload bytes handed out per Ready for application (at least one entry). >= 1. */
  readonly applyBytesMax: number;
  /** Entry payload bytes handed out per Ready to persist (at least one entry). >= 1. */
  readonly readyEntriesBytesMax: number;
  /** The leader rejects proposals once this many entries are uncommitted. */
  readonly uncommittedEntriesMax: number;
  /** The leader rejects proposals once its uncommitted proposals hold this many payload bytes. */
  readonly uncommittedBytesMax: number;
  /** Pending ReadIndex requests at the leader; more are rejected as overloaded. */
  readonly pendingReadsMax: number;
  /** Pre-vote (§9.6): a partitioned node cannot inflate terms and depose a healthy leader. */
  readonly preVote: boolean;
  /** Check-quorum (§6.2): a leader that has not heard from a majority for an election timeout steps down. */
  readonly checkQuorum: boolean;
  /** A learner may be promoted only when its match index is within this many entries of the leader's commit. */
  readonly learnerCatchUpEntriesMax: number;
  readonly random: Random;
  /** TEST-ONLY deliberate bugs for the simulator's mutation check. Leave unset. */
  readonly mutations?: RaftMutations;
}

/** What a node (re)starts from. */
export interface RaftRestoreState {
  /** The log as persisted (a new, empty log for a fresh node: its snapshot meta carries the bootstrap configuration). */
  readonly storage: RaftStorage;
  /**
   * The state machine's DURABLE applied index (>= storage's snapshot index):
   * application resumes right after it, so nothing is applied twice or skipped.
   */
  readonly applied: number;
  /** Node ids that committed configurations removed (the state machine keeps them): they are told so. */
  readonly removedNodes?: readonly NodeId[];
}

/**
 * Timing and bounds. One tick is the host's choice: the simulator ticks every
 * 10 ms of virtual time; a real node every `--tick-ms` (src/cluster/config.ts:
 * 50 ms, elections after 500–1000 ms of silence, heartbeats every 100 ms).
 */
export const DEFAULT_RAFT_TIMING = {
  electionTimeoutTicks: 10,
  heartbeatIntervalTicks: 2,
  inflightAppendsMax: 4,
  inflightBytesMax: 4 << 20,
  entriesPerAppendMax: 64,
  appendBytesMax: 1 << 20,
  applyBatchMax: 256,
  applyBytesMax: 4 << 20,
  readyEntriesBytesMax: 4 << 20,
  uncommittedEntriesMax: 4096,
  uncommittedBytesMax: 64 << 20,
  pendingReadsMax: 1024,
  preVote: true,
  checkQuorum: true,
  learnerCatchUpEntriesMax: 64,
} as const;

/** The leader's view of one follower, as `status()` shows it. */
export interface ProgressView {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly inflight: number;
  readonly ticksSinceContact: number;
}

export class RaftNode {
  readonly id: NodeId;
  private readonly config: RaftConfig;
  private readonly mutations: RaftMutations;
  private readonly random: Random;
  private readonly log: RaftLog;

  private term: number;
  private vote: NodeId;
  private roleValue: Role = 'follower';
  private leader: NodeId = NO_NODE;
  private conf: ConfState;
  /** Nodes removed by a committed configuration: a message from one is answered with `removed`. */
  private readonly removedNodes: Set<NodeId>;
  private removedSelf = false;

  private electionElapsed = 0;
  private randomizedElectionTimeout = 0;
  private heartbeatElapsed = 0;
  private votes = new Map<NodeId, boolean>();
  /** The current campaign was started by a leadership transfer. */
  private campaignTransfer = false;

  // Leader-only state.
  private progress = new Map<NodeId, Progress>();
  private transferTarget: NodeId = NO_NODE;
  private transferElapsed = 0;
  private readonly reads = new ReadIndexQueue();
  /** Index and payload bytes of this leader's proposals not yet committed (bounds `uncommittedBytesMax`). */
  private uncommitted: { readonly index: number; readonly bytes: number }[] = [];
  private uncommittedBytes = 0;
  private commitBroadcastNeeded = false;

  // Output buffers (drained by ready()).
  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  /** The hard state as last handed to the driver to persist. */
  private persistedHardState: HardState;
  private readyOutstanding: Ready | null = null;

  /** Counters since this node was created (the driver exports them as metrics). */
  readonly counters = { campaigns: 0 };

  constructor(config: RaftConfig, restore: RaftRestoreState) {
    assert(config.id !== NO_NODE, 'node id must be positive', config.id);
    assert(config.electionTimeoutTicks >= 2 * config.heartbeatIntervalTicks && config.heartbeatIntervalTicks >= 1, 'bad timing', config);
    for (const bound of ['inflightAppendsMax', 'inflightBytesMax', 'entriesPerAppendMax', 'appendBytesMax', 'applyBatchMax', 'applyBytesMax', 'readyEntriesBytesMax'] as const) {
      assert(Number.isSafeInteger(config[bound]) && config[bound] >= 1, 'bad bound', bound, config[bound]);
    }
    this.id = config.id;
    this.config = config;
    this.mutations = config.mutations ?? NO_MUTATIONS;
    this.random = config.random;
    this.log = new RaftLog(restore.storage, restore.applied);
    const hardState = restore.storage.hardState();
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.persistedHardState = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.removedNodes = new Set(restore.removedNodes ?? []);
    this.removedSelf = this.removedNodes.has(this.id);
    this.conf = this.log.confAt(this.log.lastIndex());
    this.becomeFollower(this.term, NO_NODE);
  }

  // ---------------------------------------------------------------- observation

  get role(): Role {
    return this.roleValue;
  }
  get currentTerm(): number {
    return this.term;
  }
  get leaderId(): NodeId {
    return this.leader;
  }
  get commitIndex(): number {
    return this.log.committed;
  }
  get appliedIndex(): number {
    return this.log.applied;
  }
  get lastIndex(): number {
    return this.log.lastIndex();
  }
  get snapshotIndex(): number {
    return this.log.snapshotIndex;
  }
  get confState(): ConfState {
    return this.conf;
  }
  /** The voter leadership is being handed to (NO_NODE when no transfer runs); a leader's transfer ends when it steps down or after an election timeout. */
  get transferee(): NodeId {
    return this.transferTarget;
  }
  /** True once this node learned that a committed configuration removed it. */
  get removed(): boolean {
    return this.removedSelf;
  }
  /** ReadIndex confirmation rounds started (each is one heartbeat per follower). */
  get readRounds(): number {
    return this.reads.roundsStarted;
  }
  /** The term of the entry at `index` in this node's log (undefined when compacted or absent). */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }
  softState(): SoftState {
    return { role: this.roleValue, leaderId: this.leader, term: this.term, removed: this.removedSelf };
  }
  /** The leader's view of a follower (for tests and status); undefined on non-leaders. */
  progressOf(id: NodeId): ProgressView | undefined {
    const pr = this.progress.get(id);
    if (pr === undefined) return undefined;
    return { match: pr.match, next: pr.next, state: pr.state, inflight: pr.inflight.length, ticksSinceContact: pr.ticksSinceContact };
  }
  /** Every member the leader tracks (itself included); empty on non-leaders. */
  progressIds(): NodeId[] {
    return [...this.progress.keys()].sort((a, b) => a - b);
  }

  /**
   * Nothing is left to do in this group but heartbeats: every entry is
   * committed and applied here, and on a leader every tracked member matches
   * the last index, no transfer runs and no read waits. The host may then
   * stop ticking the group (quiesce it) until a message or a request comes;
   * Raft's safety never depends on ticks, only its liveness does.
   */
  get settled(): boolean {
    return this.settledPast(() => false);
  }

  /**
   * `settled`, except that on a leader a member `down(id)` says is down
   * need not match (CockroachDB quiesces past dead nodes): its host wakes the
   * group when that member returns. Only liveness work is skipped; a
   * quorum still matches (everything is committed).
   */
  settledPast(down: (id: NodeId) => boolean): boolean {
    const last = this.log.lastIndex();
    if (this.log.committed !== last || this.log.applied !== last || this.removedSelf) return false;
    if (this.roleValue === 'follower') return this.leader !== NO_NODE;
    if (this.roleValue !== 'leader') return false;
    if (this.transferTarget !== NO_NODE || this.reads.size > 0 || this.uncommitted.length > 0) return false;
    for (const [id, pr] of this.progress) if (pr.match !== last && (id === this.id || !down(id))) return false;
    return true;
  }

  /**
   * The host resumes ticking after a quiescence: a fresh check-quorum round
   * and election timer, so the time the group spent without ticks (and so
   * without heartbeats to count) does not depose a leader nor start an
   * election at the first tick.
   */
  resumeTicking(): void {
    this.assertNoReadyOutstanding();
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    if (this.roleValue === 'leader') for (const pr of this.progress.values()) pr.recentActive = true;
  }

  /**
   * A hint from the host: the process of node `id` is gone (it refuses
   * connections and has been silent). When `id` is this follower's leader,
   * the leader is forgotten — its lease no longer makes this node ignore
   * campaigns — and the election timer is moved on so the node campaigns
   * soon instead of after a whole election timeout: the voters other than
   * `id`, in id order, campaign `2 × heartbeat` ticks apart (the first at the
   * next tick), so two of them rarely collide. Safety never depends on it; a
   * wrong hint costs at most a pre-vote round (the leader's next heartbeat
   * restores it, and pre-vote needs a quorum that lost the leader too).
   */
  leaderUnreachable(id: NodeId): void {
    this.assertNoReadyOutstanding();
    if (this.roleValue !== 'follower' || id === NO_NODE || this.leader !== id || !this.isVoter() || this.removedSelf) return;
    this.leader = NO_NODE;
    const rank = this.conf.voters.filter((voter) => voter !== id).sort((a, b) => a - b).indexOf(this.id);
    const waitTicks = 1 + rank * 2 * this.config.heartbeatIntervalTicks;
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - waitTicks);
  }

  // ---------------------------------------------------------------- inputs

  /** Advances logical time by one tick. */
  tick(): void {
    this.assertNoReadyOutstanding();
    if (this.roleValue === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /** Proposes one application command. Appended to the leader's log, replicated in batches at the next ready(). */
  propose(data: Uint8Array): ProposeResult {
    this.assertNoReadyOutstanding();
    const refusal = this.refuseProposal(data.length);
    if (refusal !== null) return { ok: false, error: refusal };
    return this.appendProposal({ kind: 'normal', index: this.log.lastIndex() + 1, term: this.term, data });
  }

  /**
   * Proposes a membership change, one server at a time (§4.1). Rejected while
   * another change is uncommitted, before this leader committed an entry of its
   * term (the fix for the single-server-change bug in §4.1 errata), when a learner
   * being promoted has not caught up, or when it would remove the leader itself
   * (transfer leadership first).
   */
  proposeConfChange(change: ConfChange): ProposeResult {
    this.assertNoReadyOutstanding();
    const refusal = this.refuseProposal(change.context.length);
    if (refusal !== null) return { ok: false, error: refusal };
    assert(change.nodeId !== NO_NODE, 'conf change for node 0');
    const next = this.nextConf(change);
    if (typeof next === 'string') return { ok: false, error: new RaftError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', next, this.leader) };
    const result = this.appendProposal({ kind: 'conf-change', index: this.log.lastIndex() + 1, term: this.term, change, confState: next });
    this.applyConf(next);
    return result;
  }

  /** The configuration `change` leads to, or why it is refused now. */
  private nextConf(change: ConfChange): ConfState | string {
    // Refusals that waiting cannot change come first, so a caller is not told to retry something that never succeeds.
    const voters = new Set(this.conf.voters);
    const learners = new Set(this.conf.learners);
    const id = change.nodeId;
    if (this.removedNodes.has(id)) return `node ${id} was removed; node ids are never reused`;
    switch (change.type) {
      case 'add-learner':
        if (voters.has(id) || learners.has(id)) return `node ${id} is already a member`;
        learners.add(id);
        break;
      case 'add-voter': {
        if (voters.has(id)) return `node ${id} is already a voter`;
        if (learners.has(id)) {
          const match = this.progress.get(id)?.match ?? 0;
          // A learner that never acknowledged anything (match 0: not even the snapshot it joins with) has not caught up, however short the log.
          if (match === 0 || match + this.config.learnerCatchUpEntriesMax < this.log.committed) return `learner ${id} has not caught up (match ${match}, commit ${this.log.committed})`;
          learners.delete(id);
        }
        voters.add(id);
        break;
      }
      case 'remove-node':
        if (id === this.id) return 'the leader cannot remove itself; transfer leadership first';
        if (!voters.has(id) && !learners.has(id)) return `node ${id} is not a member`;
        voters.delete(id);
        learners.delete(id);
        if (voters.size === 0) return 'a configuration needs at least one voter';
        break;
      default:
        unreachable(change.type);
    }
    if (this.log.lastConfIndex() > this.log.committed) return 'another membership change is not committed yet';
    if (this.log.term(this.log.committed) !== this.term) return 'the leader has not committed an entry in its term yet';
    return { voters: [...voters].sort((a, b) => a - b), learners: [...learners].sort((a, b) => a - b) };
  }

  private appendProposal(entry: Entry): ProposeResult {
    this.log.appendNew(entry);
    const bytes = entryBytes(entry);
    this.uncommitted.push({ index: entry.index, bytes });
    this.uncommittedBytes += bytes;
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Requests a linearizable read (§6.4). The answer arrives in a later
   * Ready.readStates: the index to wait for, or a typed error. A non-leader
   * answers NOT_LEADER at once. Reads are confirmed in batches (read-index.ts).
   */
  readIndex(requestId: number): void {
    this.assertNoReadyOutstanding();
    if (this.roleValue !== 'leader') {
      this.readStates.push({ requestId, ok: false, error: new RaftError('IMPULSE_ERR_RAFT_NOT_LEADER', 'not the leader', this.leader) });
      return;
    }
    if (this.mutations.readsWithoutReadIndex) {
      // MUTANT: trusts that it is still the leader.
      this.readStates.push({ requestId, ok: true, index: this.log.committed });
      return;
    }
    if (this.reads.size >= this.config.pendingReadsMax) {
      this.readStates.push({ requestId, ok: false, error: new RaftError('IMPULSE_ERR_RAFT_OVERLOADED', `${this.config.pendingReadsMax} reads are pending`, this.leader) });
      return;
    }
    // The leader's commit index is only known to be current once it has
    // committed an entry of its own term (its no-op); until then, wait.
    if (this.log.term(this.log.committed) !== this.term) this.reads.awaitTermCommit(requestId);
    else this.reads.enqueue(requestId);
  }

  /** Starts handing leadership to `target` (§3.10). Proposals are refused until it completes or times out. */
  transferLeadership(target: NodeId): RaftError | null {
    this.assertNoReadyOutstanding();
    if (this.roleValue !== 'leader') return new RaftError('IMPULSE_ERR_RAFT_NOT_LEADER', 'not the leader', this.leader);
    if (target === this.id) return null;
    if (!this.conf.voters.includes(target)) return new RaftError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', `node ${target} is not a voter`, this.leader);
    if (this.transferTarget !== NO_NODE) return new RaftError('IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS', 'a transfer is in progress', this.leader);
    this.transferTarget = target;
    this.transferElapsed = 0;
    const pr = this.progress.get(target)!;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeout-now', from: this.id, to: target, term: this.term });
    // Otherwise the append pump catches it up and the answer handler sends timeout-now.
    return null;
  }

  /**
   * The driver reports how the transfer of a snapshot to `to` ended (etcd's
   * ReportSnapshot). Until then the follower stays in the snapshot state and
   * gets no other snapshot. On success the leader probes right after the
   * snapshot; on failure it probes again once the follower answers a
   * heartbeat, which sends a new snapshot if still needed.
   */
  reportSnapshot(to: NodeId, ok: boolean): void {
    this.assertNoReadyOutstanding();
    const pr = this.progress.get(to);
    if (this.roleValue !== 'leader' || pr === undefined || pr.state !== 'snapshot') return;
    const snapshotIndex = pr.pendingSnapshotIndex;
    becomeProbe(pr);
    if (ok) pr.next = Math.max(pr.match + 1, snapshotIndex + 1);
    else pr.probeSent = true; // back off until a heartbeat answer
  }

  /**
   * The snapshot meta for compacting the log up to `index`: the state machine
   * has made its state at `index` durable (index <= applied, and persisted).
   * The driver then calls `RaftLogStore.compact(meta)`.
   */
  compact(index: number): SnapshotMeta {
    this.assertNoReadyOutstanding();
    return this.log.compactionMeta(index);
  }

  /** Handles one message from a peer. Stale, duplicate and reordered messages are tolerated. */
  step(m: Message): void {
    this.assertNoReadyOutstanding();
    assert(m.to === this.id, 'message for another node', m.type, m.from, m.to);
    if (m.type === 'removed') {
      this.markRemoved();
      return;
    }
    if (this.removedNodes.has(m.from)) {
      // A node a committed configuration removed still talks to us: tell it, and ignore the message.
      this.send({ type: 'removed', from: this.id, to: m.from, term: this.term });
      return;
    }
    if (!this.stepTerm(m)) return;
    this.stepMessage(m);
  }

  /** Reconciles terms (§5.1); false when the message is stale or must be ignored. */
  private stepTerm(m: Message): boolean {
    const campaign = m.type === 'pre-vote' || m.type === 'vote';
    if (campaign && !this.conf.voters.includes(m.from)) {
      // Only voters of our configuration may make us change term or vote: a removed
      // node that never learned it cannot disrupt the cluster, even with pre-vote and
      // check-quorum off. (A voter our log does not know yet can win with the others.)
      return false;
    }
    if (m.term > this.term) {
      if (campaign) {
        // A node that heard from a leader within the minimum election timeout
        // ignores campaigns (§4.2.3): a partitioned server cannot disrupt a
        // healthy leader. Transfers are exempt.
        const inLease = this.config.checkQuorum && this.leader !== NO_NODE && this.electionElapsed < this.config.electionTimeoutTicks;
        if (inLease && !m.transfer) return false;
      }
      if (m.type === 'pre-vote') {
        // Never change term for a pre-vote.
      } else if (m.type === 'pre-vote-response' && m.granted) {
        // A granted pre-vote carries the term we would campaign in; we move to it only on a quorum.
      } else {
        const leader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' ? m.from : NO_NODE;
        // Only a leader's message (or a granted vote) restarts the election timer (§5.2).
        // A campaign by a node with a stale log must not: two such nodes campaigning in turn
        // would otherwise keep every up-to-date node from ever timing out (a livelock the
        // simulator found without pre-vote).
        this.becomeFollower(m.term, leader, leader !== NO_NODE);
      }
    } else if (m.term < this.term) {
      if (m.type === 'append' || m.type === 'heartbeat') {
        // A stale leader (partitioned, or paused): tell it about the new term so it steps down.
        // With check-quorum and pre-vote it may otherwise never learn of it.
        this.send({ type: 'append-response', from: this.id, to: m.from, term: this.term, success: false, index: 0, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === 'pre-vote') {
        this.send({ type: 'pre-vote-response', from: this.id, to: m.from, term: this.term, granted: false });
      }
      return false;
    }
    return true;
  }

  private stepMessage(m: Exclude<Message, { type: 'removed' }>): void {
    switch (m.type) {
      case 'pre-vote':
      case 'vote':
        this.handleVoteRequest(m);
        return;
      case 'pre-vote-response':
      case 'vote-response':
        this.handleVoteResponse(m);
        return;
      case 'append':
        this.whenFollowerOfSender(m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.whenFollowerOfSender(m.from);
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        this.send({ type: 'heartbeat-response', from: this.id, to: m.from, term: this.term, readSeq: m.readSeq });
        return;
      case 'snapshot':
        this.whenFollowerOfSender(m.from);
        this.handleSnapshot(m);
        return;
      case 'append-response':
        if (this.roleValue === 'leader') this.handleAppendResponse(m);
        return;
      case 'heartbeat-response':
        if (this.roleValue === 'leader') this.handleHeartbeatResponse(m);
        return;
      case 'timeout-now':
        // Only voters campaign; the transfer flag lets it skip pre-vote and leases.
        if (this.isVoter() && this.roleValue !== 'leader' && !this.removedSelf) this.campaign('candidate', true);
        return;
      default:
        unreachable(m);
    }
  }

  // ---------------------------------------------------------------- outputs

  /** True when ready() would return something to do. */
  hasReady(): boolean {
    this.flushLeaderWork();
    return (
      this.hardStateToPersist(this.log.handedIndex()) !== null ||
      this.log.pendingSnapshot !== null ||
      this.log.hasUnstableEntries() ||
      this.messages.length > 0 ||
      this.readStates.length > 0 ||
      this.nextCommittedEntries(this.log.stableIndex()).length > 0
    );
  }

  /** The next batch of work. See `Ready` for the order the driver MUST follow; then call advance(ready). */
  ready(): Ready {
    this.assertNoReadyOutstanding();
    this.flushLeaderWork();
    const entries = this.log.unstableEntries(this.config.readyEntriesBytesMax);
    // The hard state's commit index never passes the entries written with it or before it.
    const persistedBy = entries.length > 0 ? entries[entries.length - 1]!.index : this.log.handedIndex();
    const hardState = this.hardStateToPersist(persistedBy);
    const snapshot = this.log.pendingSnapshot;
    // A leader whose term and vote stay as they are appends asynchronously (§10.2.1): it may send
    // and apply before its own write completes, so only entries already durable may apply.
    const persistAsync = this.roleValue === 'leader' && snapshot === null && (hardState === null || (hardState.term === this.persistedHardState.term && hardState.vote === this.persistedHardState.vote));
    const committedEntries = this.nextCommittedEntries(persistAsync ? this.log.stableIndex() : entries.length > 0 ? persistedBy : this.log.stableIndex());
    for (const entry of committedEntries) if (entry.kind === 'conf-change' && entry.change.type === 'remove-node') this.noteRemoved(entry.change.nodeId);
    const ready: Ready = {
      softState: this.softState(),
      hardState,
      snapshot,
      persistAsync,
      entries,
      messages: this.messages,
      committedEntries,
      readStates: this.readStates,
    };
    this.messages = [];
    this.readStates = [];
    this.readyOutstanding = ready;
    return ready;
  }

  /**
   * Acknowledges that `ready` was handled in the documented order: persisted
   * (or, when `ready.persistAsync`, its write started — `persisted` reports
   * its completion), sent and applied.
   */
  advance(ready: Ready): void {
    assert(this.readyOutstanding === ready, 'advance() without the matching ready()');
    this.readyOutstanding = null;
    if (ready.hardState !== null) this.persistedHardState = ready.hardState;
    if (ready.snapshot !== null) {
      this.log.snapshotStable();
      this.log.applied = ready.snapshot.index;
    }
    if (ready.entries.length > 0) {
      const last = ready.entries[ready.entries.length - 1]!;
      this.log.persisting(last.index);
      // MUTANT selfCountedBeforeDurable: the leader counts its own copy as soon as the write starts.
      if (!ready.persistAsync || this.mutations.selfCountedBeforeDurable === true) this.persisted(last.index, last.term);
    }
    if (ready.committedEntries.length > 0) {
      this.log.applied = ready.committedEntries[ready.committedEntries.length - 1]!.index;
    }
  }

  /**
   * The write of the entries up to `index` (the entry there has `term`)
   * completed: they are durable. For a `persistAsync` Ready the driver calls
   * this when its write completes (between Readys, like any input; writes
   * complete in order); `advance` calls it for the others.
   */
  persisted(index: number, term: number): void {
    this.assertNoReadyOutstanding();
    this.log.stableTo(index, term);
    if (this.roleValue !== 'leader') return;
    // The leader counts itself towards commitment only once its own copy is durable (§10.2.1).
    const self = this.progress.get(this.id)!;
    if (this.log.stableIndex() <= self.match) return;
    self.match = this.log.stableIndex();
    this.maybeCommit();
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, leader: NodeId, restartElectionTimer = true): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    const wasLeader = this.roleValue === 'leader';
    this.abortLeaderState();
    this.roleValue = 'follower';
    this.leader = leader;
    // A deposed leader's electionElapsed counted check-quorum rounds, not silence: restart it.
    if (restartElectionTimer || wasLeader) this.resetElectionTimer();
  }

  private becomeLeader(): void {
    assert(this.roleValue === 'candidate', 'only a candidate becomes leader', this.roleValue);
    this.roleValue = 'leader';
    this.leader = this.id;
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.progress.clear();
    const next = this.log.lastIndex() + 1;
    for (const id of [...this.conf.voters, ...this.conf.learners, this.id]) {
      if (!this.progress.has(id)) this.progress.set(id, newProgress(id === this.id ? this.log.stableIndex() : 0, next, id === this.id));
    }
    // The no-op (§8): commits the entries of earlier terms and lets ReadIndex trust the commit index.
    this.appendProposal({ kind: 'normal', index: next, term: this.term, data: new Uint8Array(0) });
  }

  /** Fails everything that only a leader could answer. */
  private abortLeaderState(): void {
    for (const requestId of this.reads.drain()) {
      this.readStates.push({ requestId, ok: false, error: new RaftError('IMPULSE_ERR_RAFT_READ_ABORTED', 'leadership lost before the read was confirmed') });
    }
    this.progress.clear();
    this.transferTarget = NO_NODE;
    this.commitBroadcastNeeded = false;
    this.uncommitted = [];
    this.uncommittedBytes = 0;
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const base = this.config.electionTimeoutTicks;
    this.randomizedElectionTimeout = base + this.random.int(base);
  }

  private isVoter(): boolean {
    return this.conf.voters.includes(this.id);
  }

  /** A committed configuration removed `id`. */
  private noteRemoved(id: NodeId): void {
    this.removedNodes.add(id);
    if (id === this.id) this.markRemoved();
    else if (this.roleValue === 'leader') this.send({ type: 'removed', from: this.id, to: id, term: this.term });
  }

  /** This node was removed: it never campaigns again; the driver reports it so the host stops the group. */
  private markRemoved(): void {
    this.removedSelf = true;
    if (this.roleValue !== 'follower') this.becomeFollower(this.term, NO_NODE);
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.resetElectionTimer();
      if (this.isVoter() && !this.removedSelf) this.campaign(this.config.preVote ? 'pre-candidate' : 'candidate', false);
      return;
    }
    if ((this.roleValue === 'candidate' || this.roleValue === 'pre-candidate') && this.electionElapsed % this.config.heartbeatIntervalTicks === 0) {
      // Servers retry RPCs that got no answer in time (§5.1): a lost vote request must not cost a whole election.
      this.requestVotes(this.roleValue === 'pre-candidate' ? 'pre-vote' : 'vote', this.campaignTransfer, true);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const [id, pr] of this.progress) if (id !== this.id) pr.ticksSinceContact++;
    if (this.electionElapsed >= this.config.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, NO_NODE);
        return;
      }
    }
    if (this.transferTarget !== NO_NODE && ++this.transferElapsed >= this.config.electionTimeoutTicks) {
      this.transferTarget = NO_NODE; // the target did not win in time; accept proposals again
    }
    if (this.heartbeatElapsed >= this.config.heartbeatIntervalTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  /** Check-quorum round: did a quorum of voters answer since the last one? Resets the marks. */
  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.conf.voters) if (id === this.id || this.progress.get(id)?.recentActive) active++;
    for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
    return active >= quorumOf(this.conf.voters.length);
  }

  /**
   * Starts an election. As a pre-candidate it asks whether it WOULD win at
   * term + 1 without changing any term (§9.6); only on a quorum of yes does it
   * become a candidate and increment its term.
   */
  private campaign(kind: 'pre-candidate' | 'candidate', transfer: boolean): void {
    this.abortLeaderState();
    this.votes.clear();
    this.counters.campaigns++;
    if (kind === 'pre-candidate') {
      // Keep term and vote unchanged: a pre-vote changes nothing durable.
      this.roleValue = 'pre-candidate';
    } else {
      this.roleValue = 'candidate';
      this.term += 1;
      this.vote = this.id;
    }
    this.leader = NO_NODE;
    this.resetElectionTimer();
    this.votes.set(this.id, true);
    this.campaignTransfer = transfer;
    if (this.tallyVotes() === 'won') return this.winCampaign();
    this.requestVotes(kind === 'pre-candidate' ? 'pre-vote' : 'vote', transfer, false);
  }

  /** Sends (pre-)vote requests to every other voter, or only to those that have not answered yet. */
  private requestVotes(type: 'pre-vote' | 'vote', transfer: boolean, onlyUnanswered: boolean): void {
    const campaignTerm = type === 'pre-vote' ? this.term + 1 : this.term;
    for (const id of this.conf.voters) {
      if (id === this.id || (onlyUnanswered && this.votes.has(id))) continue;
      this.send({ type, from: this.id, to: id, term: campaignTerm, lastLogIndex: this.log.lastIndex(), lastLogTerm: this.log.lastTerm(), transfer });
    }
  }

  private winCampaign(): void {
    if (this.roleValue === 'pre-candidate') this.campaign('candidate', false);
    else this.becomeLeader();
  }

  private tallyVotes(): 'won' | 'lost' | 'pending' {
    let granted = 0;
    let rejected = 0;
    for (const id of this.conf.voters) {
      const vote = this.votes.get(id);
      if (vote === true) granted++;
      else if (vote === false) rejected++;
    }
    const quorum = quorumOf(this.conf.voters.length);
    if (granted >= quorum) return 'won';
    if (rejected > this.conf.voters.length - quorum) return 'lost';
    return 'pending';
  }

  private handleVoteRequest(m: Extract<Message, { type: 'pre-vote' | 'vote' }>): void {
    const upToDate = this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm, this.mutations.voteIgnoresLogTerm === true);
    let grant: boolean;
    if (m.type === 'pre-vote') {
      // Would we vote at the proposed term? Only if it is ahead of ours (it is,
      // or the term check above returned) and the candidate's log is current.
      grant = m.term > this.term && upToDate;
    } else {
      const canVote = this.vote === m.from || (this.vote === NO_NODE && this.leader === NO_NODE) || this.mutations.grantSecondVote === true;
      grant = canVote && upToDate;
      if (grant) {
        this.vote = m.from;
        // Granting a vote defers our own campaign (§5.2).
        this.resetElectionTimer();
      }
    }
    this.send({ type: m.type === 'pre-vote' ? 'pre-vote-response' : 'vote-response', from: this.id, to: m.from, term: grant ? m.term : this.term, granted: grant });
  }

  private handleVoteResponse(m: Extract<Message, { type: 'pre-vote-response' | 'vote-response' }>): void {
    const expected = m.type === 'pre-vote-response' ? 'pre-candidate' : 'candidate';
    if (this.roleValue !== expected) return;
    const campaignTerm = expected === 'pre-candidate' ? this.term + 1 : this.term;
    if (m.granted && m.term !== campaignTerm) return; // an answer to an older campaign
    this.votes.set(m.from, m.granted);
    const outcome = this.tallyVotes();
    if (outcome === 'won') this.winCampaign();
    else if (outcome === 'lost') this.becomeFollower(this.term, NO_NODE);
  }

  /** Any message from the leader of our term makes (or keeps) us its follower. */
  private whenFollowerOfSender(from: NodeId): void {
    if (this.roleValue !== 'follower') this.becomeFollower(this.term, from);
    assert(this.leader === NO_NODE || this.leader === from, 'two leaders in one term seen by a follower', this.term, this.leader, from);
    this.leader = from;
    this.electionElapsed = 0;
  }

  // ---------------------------------------------------------------- follower side

  private handleAppend(m: Extract<Message, { type: 'append' }>): void {
    const reply = (success: boolean, index: number, hintIndex = 0, hintTerm = 0): void => {
      this.send({ type: 'append-response', from: this.id, to: m.from, term: this.term, success, index, hintIndex, hintTerm });
    };
    if (m.prevLogIndex < this.log.committed) {
      // Everything up to our commit index is already known to match; answer with it.
      reply(true, this.log.committed);
      return;
    }
    const consistent = this.mutations.appendWithoutConsistencyCheck
      ? m.prevLogIndex <= this.log.lastIndex() // MUTANT: only checks that there is no gap
      : this.log.matchTerm(m.prevLogIndex, m.prevLogTerm);
    if (!consistent) {
      // Fast back-off hint: skip every entry of a term the leader cannot have at this position.
      const hintIndex = this.log.findConflictByTerm(m.prevLogIndex, m.prevLogTerm);
      reply(false, m.prevLogIndex, hintIndex, this.log.term(hintIndex) ?? 0);
      return;
    }
    const lastNewIndex = m.prevLogIndex + m.entries.length;
    if (this.log.merge(m.entries)) this.applyConf(this.log.confAt(this.log.lastIndex()));
    // Only what this append proved to match may be committed (§5.3, the min with lastNewIndex).
    this.log.commitTo(Math.min(m.commit, lastNewIndex));
    reply(true, lastNewIndex);
  }

  /** A snapshot whose image the driver has staged. */
  private handleSnapshot(m: Extract<Message, { type: 'snapshot' }>): void {
    const snapshot = m.snapshot;
    const reply = (index: number): void => {
      this.send({ type: 'append-response', from: this.id, to: m.from, term: this.term, success: true, index, hintIndex: 0, hintTerm: 0 });
    };
    const stale = snapshot.index <= this.log.committed;
    if (stale && !this.mutations.staleSnapshotInstalled) return reply(this.log.committed);
    if (!stale && this.log.matchTerm(snapshot.index, snapshot.term)) {
      // We hold the snapshot's last entry: keep our log, just learn the commit.
      this.log.commitTo(snapshot.index);
      return reply(snapshot.index);
    }
    this.log.restore(snapshot, stale); // (stale only for the MUTANT: rolls the state machine back)
    this.applyConf(snapshot.confState);
    reply(snapshot.index);
  }

  // ---------------------------------------------------------------- leader side

  private refuseProposal(bytes: number): RaftError | null {
    if (this.roleValue !== 'leader') return new RaftError('IMPULSE_ERR_RAFT_NOT_LEADER', this.leader === NO_NODE ? 'no leader is known' : 'not the leader', this.leader);
    if (this.transferTarget !== NO_NODE) return new RaftError('IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS', `leadership is moving to node ${this.transferTarget}`, this.id);
    if (this.log.lastIndex() - this.log.committed >= this.config.uncommittedEntriesMax) {
      return new RaftError('IMPULSE_ERR_RAFT_OVERLOADED', `${this.config.uncommittedEntriesMax} entries are uncommitted`, this.id);
    }
    // One proposal always fits when nothing is uncommitted, however large: it must be able to make progress.
    if (this.uncommitted.length > 0 && this.uncommittedBytes + bytes > this.config.uncommittedBytesMax) {
      return new RaftError('IMPULSE_ERR_RAFT_OVERLOADED', `${this.uncommittedBytes} bytes of proposals are uncommitted`, this.id);
    }
    return null;
  }

  /** Takes a configuration into use (on append, §4.1) and adjusts the leader's progress table. */
  private applyConf(conf: ConfState): void {
    this.conf = conf;
    if (this.roleValue !== 'leader') return;
    const members = new Set([...conf.voters, ...conf.learners, this.id]);
    const next = this.log.lastIndex() + 1;
    for (const id of members) if (!this.progress.has(id)) this.progress.set(id, newProgress(0, next, false));
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    if (this.transferTarget !== NO_NODE && !conf.voters.includes(this.transferTarget)) this.transferTarget = NO_NODE;
    // Fewer voters may mean a smaller quorum is already reached.
    this.maybeCommit();
  }

  private handleAppendResponse(m: Extract<Message, { type: 'append-response' }>): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.ticksSinceContact = 0;
    if (!m.success) {
      this.handleRejection(pr, m);
      return;
    }
    pr.ackedSinceHeartbeat = true;
    if (m.index > pr.match) {
      pr.match = m.index;
      pr.next = Math.max(pr.next, m.index + 1);
      freeInflightTo(pr, m.index);
      if (pr.state === 'probe') becomeReplicate(pr);
      else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshotIndex) becomeReplicate(pr);
      this.maybeCommit();
    } else if (pr.state === 'probe') {
      pr.probeSent = false;
    }
    if (m.from === this.transferTarget && pr.match === this.log.lastIndex()) {
      this.send({ type: 'timeout-now', from: this.id, to: m.from, term: this.term });
    }
  }

  private handleRejection(pr: Progress, m: Extract<Message, { type: 'append-response' }>): void {
    if (pr.state === 'replicate') {
      if (m.index <= pr.match) return; // stale answer to an append already superseded
    } else if (pr.state === 'probe') {
      if (m.index !== pr.next - 1) return; // answer to an older probe
    } else {
      return; // waiting for a snapshot; answers to old appends are stale
    }
    // Fast back-off: jump past the follower's whole conflicting term (§5.3 optimisation).
    const nextFromHint = this.log.findConflictByTerm(m.hintIndex, m.hintTerm) + 1;
    becomeProbe(pr);
    pr.next = Math.max(pr.match + 1, Math.min(m.index, nextFromHint));
  }

  private handleHeartbeatResponse(m: Extract<Message, { type: 'heartbeat-response' }>): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.ticksSinceContact = 0;
    pr.probeSent = false; // a probe may have been lost; allow another
    if (m.readSeq > pr.readSeqAcked) {
      pr.readSeqAcked = m.readSeq;
      this.releaseConfirmedReads();
    }
  }

  private broadcastHeartbeat(): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      if (pr.state === 'replicate' && !pr.ackedSinceHeartbeat && pr.match < this.log.lastIndex()) {
        // A pipelined append was probably lost: fall back to probing. (A follower in the
        // snapshot state stays there until the driver reports the transfer's outcome.)
        becomeProbe(pr);
      }
      pr.ackedSinceHeartbeat = false;
      this.sendHeartbeat(id, pr);
    }
  }

  private sendHeartbeat(to: NodeId, pr: Progress): void {
    // Never tell a follower to commit beyond what it is known to hold.
    const commit = this.mutations.heartbeatCommitsPastMatch ? this.log.committed : Math.min(pr.match, this.log.committed);
    this.send({ type: 'heartbeat', from: this.id, to, term: this.term, commit, readSeq: this.reads.readSeq });
  }

  /**
   * Commitment by counting (§5.4.2): the highest index stored on a quorum of
   * voters is committed only if its entry is from the current term; older
   * entries then commit indirectly.
   */
  private maybeCommit(): void {
    if (this.roleValue !== 'leader') return;
    const counted = this.mutations.learnerCountsInQuorum ? [...this.conf.voters, ...this.conf.learners] : this.conf.voters;
    const matches = counted.map((id) => this.progress.get(id)?.match ?? 0).sort((a, b) => b - a);
    if (this.conf.voters.length === 0) return;
    const candidate = this.mutations.commitOnLeaderAlone ? (this.progress.get(this.id)?.match ?? 0) : matches[quorumOf(this.conf.voters.length) - 1]!;
    if (candidate <= this.log.committed) return;
    if (this.log.term(candidate) !== this.term && !this.mutations.commitOlderTermEntries) return;
    const firstOfTerm = this.log.term(this.log.committed) !== this.term;
    this.log.commitTo(candidate);
    this.commitBroadcastNeeded = true;
    while (this.uncommitted.length > 0 && this.uncommitted[0]!.index <= candidate) this.uncommittedBytes -= this.uncommitted.shift()!.bytes;
    // The no-op committed: reads that waited for it can now join a round.
    if (firstOfTerm && this.log.term(candidate) === this.term) this.reads.termCommitted();
  }

  private releaseConfirmedReads(): void {
    const acked = (seq: number): number => this.conf.voters.filter((id) => id === this.id || (this.progress.get(id)?.readSeqAcked ?? 0) >= seq).length;
    for (const read of this.reads.confirmed(quorumOf(this.conf.voters.length), acked)) {
      this.readStates.push({ requestId: read.requestId, ok: true, index: read.index });
    }
  }

  /** Leader work due before a Ready: appends, and one read-confirmation round for every read queued. */
  private flushLeaderWork(): void {
    if (this.roleValue !== 'leader') return;
    this.pumpAppends();
    if (!this.reads.hasQueued) return;
    this.reads.startRound(this.log.committed);
    for (const [id, pr] of this.progress) if (id !== this.id) this.sendHeartbeat(id, pr);
    this.releaseConfirmedReads(); // a single voter confirms alone
  }

  /**
   * Generates the append traffic due: new entries to followers that have
   * room in their pipeline (this is where proposals are batched), probes,
   * snapshots for followers behind the compacted log, and empty appends that
   * carry a new commit index.
   */
  private pumpAppends(): void {
    const broadcastCommit = this.commitBroadcastNeeded;
    this.commitBroadcastNeeded = false;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      let sent = false;
      // A probe goes out even without entries to send when the follower is not known to match:
      // its answer tells the leader where the follower's log ends (new members start this way).
      const probeNeeded = pr.state === 'probe' && pr.match < this.log.lastIndex();
      while (this.sendAppend(id, pr, (broadcastCommit || probeNeeded) && !sent)) sent = true;
    }
  }

  /** Sends at most one append or snapshot to `to`; returns true when something was sent and more may follow. */
  private sendAppend(to: NodeId, pr: Progress, allowEmpty: boolean): boolean {
    if (pr.state === 'snapshot') return false;
    if (pr.state === 'probe' && pr.probeSent) return false;
    if (pr.state === 'replicate' && !inflightHasRoom(pr, this.config.inflightAppendsMax, this.config.inflightBytesMax)) return false;
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) {
      // The entries this follower needs were compacted away: ask the driver to send the state machine's image.
      const snapshot = this.log.snapshotMeta();
      assert(prevLogIndex < snapshot.index, 'no term and no snapshot', prevLogIndex, snapshot.index);
      becomeSnapshot(pr, snapshot.index);
      this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot });
      return false;
    }
    const entries = pr.next > this.log.lastIndex() ? [] : this.log.slice(pr.next, this.log.lastIndex() + 1, this.config.entriesPerAppendMax, this.config.appendBytesMax);
    if (entries.length === 0 && !allowEmpty) return false;
    this.send({ type: 'append', from: this.id, to, term: this.term, prevLogIndex, prevLogTerm, entries, commit: this.log.committed });
    if (pr.state === 'probe') {
      pr.probeSent = true;
      return false;
    }
    if (entries.length === 0) return false;
    pr.next = entries[entries.length - 1]!.index + 1;
    addInflight(pr, pr.next - 1, entries.reduce((sum, entry) => sum + entryBytes(entry), 0));
    return true;
  }

  // ---------------------------------------------------------------- plumbing

  private send(m: Message): void {
    this.messages.push(m);
  }

  /**
   * The hard state to persist with entries up to `persistedBy`. Its commit
   * index never passes them: a restart must not find a commit index beyond
   * its log (a follower may know a commit index ahead of what it persisted).
   */
  private hardStateToPersist(persistedBy: number): HardState | null {
    const commit = Math.min(this.log.committed, persistedBy);
    let vote = this.vote;
    if (this.mutations.voteNotPersisted && vote !== this.id) {
      // MUTANT: the vote for another node never reaches the disk.
      vote = this.persistedHardState.term === this.term ? this.persistedHardState.vote : NO_NODE;
    }
    const persisted = this.persistedHardState;
    if (persisted.term === this.term && persisted.vote === vote && persisted.commit === commit) return null;
    return { term: this.term, vote, commit };
  }

  /** Committed entries not yet handed out, up to `persistedBy` (they must be durable before they apply). */
  private nextCommittedEntries(persistedBy: number): Entry[] {
    if (this.log.pendingSnapshot !== null) return []; // install the snapshot first
    const from = this.log.applied + 1;
    const to = Math.min(this.log.committed, persistedBy);
    if (from > to) return [];
    return this.log.slice(from, to + 1, this.config.applyBatchMax, this.config.applyBytesMax);
  }

  private assertNoReadyOutstanding(): void {
    assert(this.readyOutstanding === null, 'input given between ready() and advance()');
  }
}
