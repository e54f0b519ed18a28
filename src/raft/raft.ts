/**
 * The Raft core: a pure, deterministic state machine (Raft dissertation,
 * Ongaro 2014), in the etcd/raft `Ready` style.
 *
 * How to drive it:
 *
 *   const node = new RaftNode(config, restoredState);
 *   // inputs, from one thread of control:
 *   node.tick();                // every tick interval (election/heartbeat timers count ticks)
 *   node.step(message);         // a message from a peer
 *   node.propose(bytes);        // -> ProposeResult, typed error when not leader
 *   node.readIndex(requestId);  // a linearizable read; answered in Ready.readStates
 *   node.proposeConfChange(c);  node.transferLeadership(id);  node.compact(index, data)
 *   // outputs:
 *   if (node.hasReady()) { const ready = node.ready(); ...persist, send, apply (see `Ready`)...; node.advance(ready); }
 *
 * Nothing in here touches a socket, file, timer, clock or Math.random: time is
 * the tick count and randomness comes from the injected `Random`, so the same
 * code runs in production and, replayable from a seed, in the simulator.
 */
import { assert, unreachable } from '../util/assert.js';
import type { Random } from '../util/random.js';
import { RaftLog } from './log.js';
import {
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
  type Snapshot,
  type SoftState,
} from './types.js';

export interface RaftConfig {
  readonly id: NodeId;
  /** Base election timeout; each node waits a random [base, 2*base) ticks. >= 2 * heartbeat. */
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** Optimistic pipelining bound: appends in flight to one follower before waiting for acks. >= 1. */
  readonly inflightAppendsMax: number;
  /** Entries per append message (also the proposal batch size sent at once). >= 1. */
  readonly entriesPerAppendMax: number;
  /** Entries handed out per Ready for application. >= 1. */
  readonly applyBatchMax: number;
  /** The leader rejects proposals once this many entries are uncommitted. */
  readonly uncommittedEntriesMax: number;
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

/** What a node restarts from: its durable state (all empty for a fresh node). */
export interface RaftRestoreState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Persisted entries after the snapshot, ascending and contiguous. */
  readonly entries: readonly Entry[];
  /** Configuration when there is no snapshot: the initial cluster, or empty for a node that will be added. */
  readonly bootstrapConf: ConfState;
}

/** The defaults used by the simulator and a good start for production (one tick = 10-100 ms). */
export const DEFAULT_RAFT_TIMING = {
  electionTimeoutTicks: 10,
  heartbeatIntervalTicks: 2,
  inflightAppendsMax: 4,
  entriesPerAppendMax: 16,
  applyBatchMax: 64,
  uncommittedEntriesMax: 1024,
  pendingReadsMax: 256,
  preVote: true,
  checkQuorum: true,
  learnerCatchUpEntriesMax: 8,
} as const;

type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** The leader's view of one follower's log. */
interface Progress {
  /** Highest index known to match the leader's log. */
  match: number;
  /** Next index to send. */
  next: number;
  state: ProgressState;
  /** probe: one append sent, waiting for its answer (or the next heartbeat) before sending another. */
  probeSent: boolean;
  /** replicate: last index of each append in flight, ascending; length <= inflightAppendsMax. */
  inflight: number[];
  /** snapshot: index of the snapshot sent. */
  pendingSnapshotIndex: number;
  /** Heard from this peer since the last check-quorum round. */
  recentActive: boolean;
  /** Got a successful append answer since the last heartbeat broadcast (detects lost pipelined appends). */
  ackedSinceHeartbeat: boolean;
  /** Highest heartbeat readSeq this peer has answered in the current term. */
  readSeqAcked: number;
}

interface PendingRead {
  readonly requestId: number;
  readonly index: number;
  readonly seq: number;
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
  private readSeq = 0;
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed its first entry of its term. */
  private readsAwaitingTermCommit: number[] = [];
  private commitBroadcastNeeded = false;

  // Output buffers (drained by ready()).
  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  /** The hard state as last handed to the driver to persist. */
  private persistedHardState: HardState;
  private readyOutstanding: Ready | null = null;

  constructor(config: RaftConfig, restore: RaftRestoreState) {
    assert(config.id !== NO_NODE, 'node id must be positive', config.id);
    assert(config.electionTimeoutTicks >= 2 * config.heartbeatIntervalTicks && config.heartbeatIntervalTicks >= 1, 'bad timing', config);
    assert(config.inflightAppendsMax >= 1 && config.entriesPerAppendMax >= 1 && config.applyBatchMax >= 1, 'bad bounds', config);
    this.id = config.id;
    this.config = config;
    this.mutations = config.mutations ?? NO_MUTATIONS;
    this.random = config.random;
    this.log = new RaftLog(restore.snapshot, restore.bootstrapConf, restore.entries, restore.hardState.commit);
    this.term = restore.hardState.term;
    this.vote = restore.hardState.vote;
    this.persistedHardState = { term: this.term, vote: this.vote, commit: this.log.committed };
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
  /** The term of the entry at `index` in this node's log (undefined when compacted or absent). */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }
  entryAt(index: number): Entry | undefined {
    return this.log.entry(index);
  }
  softState(): SoftState {
    return { role: this.roleValue, leaderId: this.leader, term: this.term };
  }
  /** The leader's view of a follower (for tests and status); undefined on non-leaders. */
  progressOf(id: NodeId): { match: number; next: number; state: ProgressState } | undefined {
    const pr = this.progress.get(id);
    return pr === undefined ? undefined : { match: pr.match, next: pr.next, state: pr.state };
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
    const refusal = this.refuseProposal();
    if (refusal !== null) return { ok: false, error: refusal };
    const index = this.log.lastIndex() + 1;
    this.log.appendNew({ kind: 'normal', index, term: this.term, data });
    return { ok: true, index, term: this.term };
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
    const refusal = this.refuseProposal();
    if (refusal !== null) return { ok: false, error: refusal };
    const reject = (why: string): ProposeResult => ({ ok: false, error: new RaftError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', why, this.leader) });
    if (this.log.lastConfIndex() > this.log.committed) return reject('another membership change is not committed yet');
    if (this.log.term(this.log.committed) !== this.term) return reject('the leader has not committed an entry in its term yet');
    const voters = new Set(this.conf.voters);
    const learners = new Set(this.conf.learners);
    const id = change.nodeId;
    assert(id !== NO_NODE, 'conf change for node 0');
    switch (change.type) {
      case 'add-learner':
        if (voters.has(id) || learners.has(id)) return reject(`node ${id} is already a member`);
        learners.add(id);
        break;
      case 'add-voter': {
        if (voters.has(id)) return reject(`node ${id} is already a voter`);
        if (learners.has(id)) {
          const match = this.progress.get(id)?.match ?? 0;
          if (match + this.config.learnerCatchUpEntriesMax < this.log.committed) return reject(`learner ${id} has not caught up (match ${match}, commit ${this.log.committed})`);
          learners.delete(id);
        }
        voters.add(id);
        break;
      }
      case 'remove-node':
        if (id === this.id) return reject('the leader cannot remove itself; transfer leadership first');
        if (!voters.has(id) && !learners.has(id)) return reject(`node ${id} is not a member`);
        voters.delete(id);
        learners.delete(id);
        if (voters.size === 0) return reject('a configuration needs at least one voter');
        break;
      default:
        unreachable(change);
    }
    const confState: ConfState = { voters: [...voters].sort((a, b) => a - b), learners: [...learners].sort((a, b) => a - b) };
    const index = this.log.lastIndex() + 1;
    this.log.appendNew({ kind: 'conf-change', index, term: this.term, change, confState });
    this.applyConf(confState);
    return { ok: true, index, term: this.term };
  }

  /**
   * Requests a linearizable read (§6.4). The answer arrives in a later
   * Ready.readStates: the index to wait for, or a typed error. A non-leader
   * answers NOT_LEADER at once.
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
    if (this.pendingReads.length + this.readsAwaitingTermCommit.length >= this.config.pendingReadsMax) {
      this.readStates.push({ requestId, ok: false, error: new RaftError('IMPULSE_ERR_RAFT_OVERLOADED', 'too many pending reads', this.leader) });
      return;
    }
    // 1. The leader's commit index is only known to be current once it has
    //    committed an entry of its own term (its no-op); until then, wait.
    if (this.log.term(this.log.committed) !== this.term) {
      this.readsAwaitingTermCommit.push(requestId);
      return;
    }
    this.startRead(requestId);
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
   * Records that the application saved a snapshot of its state at `index`
   * (<= applied) and drops the log up to it. Returns the snapshot, which the
   * driver persists before discarding the log prefix from storage.
   */
  compact(index: number, data: Uint8Array): Snapshot {
    this.assertNoReadyOutstanding();
    assert(index > this.log.snapshotIndex && index <= this.log.applied, 'compact index out of range', index, this.log.snapshotIndex, this.log.applied);
    const snapshot: Snapshot = { index, term: this.log.term(index)!, confState: this.log.confAt(index), data };
    this.log.compact(snapshot);
    return snapshot;
  }

  /** Handles one message from a peer. Stale, duplicate and reordered messages are tolerated. */
  step(m: Message): void {
    this.assertNoReadyOutstanding();
    assert(m.to === this.id, 'message for another node', m);
    if (m.term > this.term) {
      if (m.type === 'pre-vote' || m.type === 'vote') {
        // A node that heard from a leader within the minimum election timeout
        // ignores campaigns (§4.2.3): a removed or partitioned server cannot
        // disrupt a healthy leader. Transfers are exempt.
        const inLease = this.config.checkQuorum && this.leader !== NO_NODE && this.electionElapsed < this.config.electionTimeoutTicks;
        if (inLease && !m.transfer) return;
      }
      if (m.type === 'pre-vote') {
        // Never change term for a pre-vote.
      } else if (m.type === 'pre-vote-response' && m.granted) {
        // A granted pre-vote carries the term we would campaign in; we move to it only on a quorum.
      } else {
        const leader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' ? m.from : NO_NODE;
        // Only a leader's message (or a granted vote, below) restarts the election timer (§5.2).
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
      return;
    }

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
        if (this.isVoter() && this.roleValue !== 'leader') this.campaign('candidate', true);
        return;
      default:
        unreachable(m);
    }
  }

  // ---------------------------------------------------------------- outputs

  /** True when ready() would return something to do. */
  hasReady(): boolean {
    this.pumpAppends();
    return (
      this.hardStateToPersist() !== null ||
      this.log.pendingSnapshot !== null ||
      this.log.unstableFrom <= this.log.lastIndex() ||
      this.messages.length > 0 ||
      this.readStates.length > 0 ||
      this.nextCommittedEntries().length > 0
    );
  }

  /** The next batch of work. See `Ready` for the order the driver MUST follow; then call advance(ready). */
  ready(): Ready {
    this.assertNoReadyOutstanding();
    this.pumpAppends();
    const ready: Ready = {
      softState: this.softState(),
      hardState: this.hardStateToPersist(),
      snapshot: this.log.pendingSnapshot,
      entries: this.log.unstableFrom <= this.log.lastIndex() ? this.log.slice(this.log.unstableFrom, this.log.lastIndex() + 1, Number.MAX_SAFE_INTEGER) : [],
      messages: this.messages,
      committedEntries: this.nextCommittedEntries(),
      readStates: this.readStates,
    };
    this.messages = [];
    this.readStates = [];
    this.readyOutstanding = ready;
    return ready;
  }

  /** Acknowledges that `ready` was persisted, sent and applied in the documented order. */
  advance(ready: Ready): void {
    assert(this.readyOutstanding === ready, 'advance() without the matching ready()');
    this.readyOutstanding = null;
    if (ready.hardState !== null) this.persistedHardState = ready.hardState;
    if (ready.snapshot !== null) {
      this.log.pendingSnapshot = null;
      this.log.applied = Math.max(this.log.applied, ready.snapshot.index);
    }
    if (ready.entries.length > 0) {
      const last = ready.entries[ready.entries.length - 1]!;
      // Only the entries handed out are now stable; nothing can have changed the log in between.
      this.log.unstableFrom = Math.max(this.log.unstableFrom, last.index + 1);
      if (this.roleValue === 'leader') {
        // The leader counts itself towards commitment only once its own copy is durable (§10.2.1).
        const self = this.progress.get(this.id)!;
        self.match = Math.max(self.match, this.log.unstableFrom - 1);
        this.maybeCommit();
      }
    }
    if (ready.committedEntries.length > 0) {
      this.log.applied = ready.committedEntries[ready.committedEntries.length - 1]!.index;
    }
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
    for (const id of [...this.conf.voters, ...this.conf.learners]) this.progress.set(id, this.newProgress(id));
    if (!this.progress.has(this.id)) this.progress.set(this.id, this.newProgress(this.id));
    this.readSeq = 0;
    // The no-op (§8): commits the entries of earlier terms and lets ReadIndex trust the commit index.
    this.log.appendNew({ kind: 'normal', index: this.log.lastIndex() + 1, term: this.term, data: new Uint8Array(0) });
  }

  private newProgress(id: NodeId): Progress {
    const self = id === this.id;
    return {
      match: self ? this.log.unstableFrom - 1 : 0,
      next: this.log.lastIndex() + 1,
      state: 'probe',
      probeSent: false,
      inflight: [],
      pendingSnapshotIndex: 0,
      recentActive: self,
      ackedSinceHeartbeat: true,
      readSeqAcked: 0,
    };
  }

  /** Fails everything that only a leader could answer. */
  private abortLeaderState(): void {
    const abort = (requestId: number): void => {
      this.readStates.push({ requestId, ok: false, error: new RaftError('IMPULSE_ERR_RAFT_READ_ABORTED', 'leadership lost before the read was confirmed') });
    };
    for (const read of this.pendingReads) abort(read.requestId);
    for (const requestId of this.readsAwaitingTermCommit) abort(requestId);
    this.pendingReads = [];
    this.readsAwaitingTermCommit = [];
    this.progress.clear();
    this.transferTarget = NO_NODE;
    this.commitBroadcastNeeded = false;
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

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.resetElectionTimer();
      if (this.isVoter()) this.campaign(this.config.preVote ? 'pre-candidate' : 'candidate', false);
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
    if (this.electionElapsed >= this.config.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) {
        let active = 0;
        for (const id of this.conf.voters) if (id === this.id || this.progress.get(id)?.recentActive) active++;
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
        if (active < quorumOf(this.conf.voters.length)) {
          this.becomeFollower(this.term, NO_NODE);
          return;
        }
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

  /**
   * Starts an election. As a pre-candidate it asks whether it WOULD win at
   * term + 1 without changing any term (§9.6); only on a quorum of yes does it
   * become a candidate and increment its term.
   */
  private campaign(kind: 'pre-candidate' | 'candidate', transfer: boolean): void {
    this.abortLeaderState();
    this.votes.clear();
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
    const upToDate = this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    let grant: boolean;
    if (m.type === 'pre-vote') {
      // Would we vote at the proposed term? Only if it is ahead of ours (it is,
      // or the term check above returned) and the candidate's log is current.
      grant = m.term > this.term && upToDate;
    } else {
      const canVote = this.vote === m.from || (this.vote === NO_NODE && this.leader === NO_NODE);
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
    else if (m.entries.some((entry) => entry.kind === 'conf-change')) this.applyConf(this.log.confAt(this.log.lastIndex()));
    // Only what this append proved to match may be committed (§5.3, the min with lastNewIndex).
    this.log.commitTo(Math.min(m.commit, lastNewIndex));
    reply(true, lastNewIndex);
  }

  private handleSnapshot(m: Extract<Message, { type: 'snapshot' }>): void {
    const snapshot = m.snapshot;
    const reply = (index: number): void => {
      this.send({ type: 'append-response', from: this.id, to: m.from, term: this.term, success: true, index, hintIndex: 0, hintTerm: 0 });
    };
    if (snapshot.index <= this.log.committed) return reply(this.log.committed);
    if (this.log.matchTerm(snapshot.index, snapshot.term)) {
      // We hold the snapshot's last entry: keep our log, just learn the commit.
      this.log.commitTo(snapshot.index);
      return reply(snapshot.index);
    }
    this.log.restore(snapshot);
    this.applyConf(snapshot.confState);
    reply(snapshot.index);
  }

  // ---------------------------------------------------------------- leader side

  private refuseProposal(): RaftError | null {
    if (this.roleValue !== 'leader') return new RaftError('IMPULSE_ERR_RAFT_NOT_LEADER', this.leader === NO_NODE ? 'no leader is known' : 'not the leader', this.leader);
    if (this.transferTarget !== NO_NODE) return new RaftError('IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS', `leadership is moving to node ${this.transferTarget}`, this.id);
    if (this.log.lastIndex() - this.log.committed >= this.config.uncommittedEntriesMax) {
      return new RaftError('IMPULSE_ERR_RAFT_OVERLOADED', `${this.config.uncommittedEntriesMax} entries are uncommitted`, this.id);
    }
    return null;
  }

  /** Takes a configuration into use (on append, §4.1) and adjusts the leader's progress table. */
  private applyConf(conf: ConfState): void {
    this.conf = conf;
    if (this.roleValue !== 'leader') return;
    const members = new Set([...conf.voters, ...conf.learners, this.id]);
    for (const id of members) if (!this.progress.has(id)) this.progress.set(id, this.newProgress(id));
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    if (this.transferTarget !== NO_NODE && !conf.voters.includes(this.transferTarget)) this.transferTarget = NO_NODE;
    // Fewer voters may mean a smaller quorum is already reached.
    this.maybeCommit();
  }

  private handleAppendResponse(m: Extract<Message, { type: 'append-response' }>): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (!m.success) {
      this.handleRejection(pr, m);
      return;
    }
    pr.ackedSinceHeartbeat = true;
    if (m.index > pr.match) {
      pr.match = m.index;
      pr.next = Math.max(pr.next, m.index + 1);
      while (pr.inflight.length > 0 && pr.inflight[0]! <= m.index) pr.inflight.shift();
      if (pr.state === 'probe') this.becomeReplicate(pr);
      else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshotIndex) this.becomeReplicate(pr);
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
    this.becomeProbe(pr);
    pr.next = Math.max(pr.match + 1, Math.min(m.index, nextFromHint));
  }

  private becomeProbe(pr: Progress): void {
    pr.state = 'probe';
    pr.next = pr.match + 1;
    pr.probeSent = false;
    pr.inflight = [];
  }

  private becomeReplicate(pr: Progress): void {
    pr.state = 'replicate';
    pr.next = pr.match + 1;
    pr.inflight = [];
    pr.probeSent = false;
  }

  private handleHeartbeatResponse(m: Extract<Message, { type: 'heartbeat-response' }>): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false; // a probe may have been lost; allow another
    if (m.readSeq > pr.readSeqAcked) {
      pr.readSeqAcked = m.readSeq;
      this.releaseConfirmedReads();
    }
  }

  private broadcastHeartbeat(): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      if (!pr.ackedSinceHeartbeat && pr.state !== 'probe' && pr.match < this.log.lastIndex()) {
        // A pipelined append or a snapshot was probably lost: fall back to probing.
        this.becomeProbe(pr);
      }
      pr.ackedSinceHeartbeat = false;
      // Never tell a follower to commit beyond what it is known to hold.
      this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), readSeq: this.readSeq });
    }
  }

  /**
   * Commitment by counting (§5.4.2): the highest index stored on a quorum of
   * voters is committed only if its entry is from the current term; older
   * entries then commit indirectly.
   */
  private maybeCommit(): void {
    if (this.roleValue !== 'leader') return;
    const matches = this.conf.voters.map((id) => this.progress.get(id)?.match ?? 0).sort((a, b) => b - a);
    if (matches.length === 0) return;
    const candidate = matches[quorumOf(matches.length) - 1]!;
    if (candidate <= this.log.committed) return;
    if (this.log.term(candidate) !== this.term && !this.mutations.commitOlderTermEntries) return;
    const firstOfTerm = this.log.term(this.log.committed) !== this.term;
    this.log.commitTo(candidate);
    this.commitBroadcastNeeded = true;
    if (firstOfTerm && this.log.term(candidate) === this.term) {
      // The no-op committed: reads that waited for it can now start.
      const waiting = this.readsAwaitingTermCommit;
      this.readsAwaitingTermCommit = [];
      for (const requestId of waiting) this.startRead(requestId);
    }
  }

  private startRead(requestId: number): void {
    // 2. Record the commit index now, then 3. confirm we are still leader by a
    //    heartbeat round acknowledged by a quorum AFTER this point.
    this.readSeq++;
    this.pendingReads.push({ requestId, index: this.log.committed, seq: this.readSeq });
    if (this.conf.voters.length === 1 && this.conf.voters[0] === this.id) {
      this.releaseConfirmedReads();
      return;
    }
    for (const id of this.progress.keys()) {
      if (id === this.id) continue;
      const pr = this.progress.get(id)!;
      this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), readSeq: this.readSeq });
    }
  }

  private releaseConfirmedReads(): void {
    const quorum = quorumOf(this.conf.voters.length);
    while (this.pendingReads.length > 0) {
      const read = this.pendingReads[0]!;
      let acks = 0;
      for (const id of this.conf.voters) if (id === this.id || (this.progress.get(id)?.readSeqAcked ?? 0) >= read.seq) acks++;
      if (acks < quorum) return;
      this.pendingReads.shift();
      this.readStates.push({ requestId: read.requestId, ok: true, index: read.index });
    }
  }

  /**
   * Generates the append traffic due: new entries to followers that have
   * room in their pipeline (this is where proposals are batched), probes,
   * snapshots for followers behind the compacted log, and empty appends that
   * carry a new commit index.
   */
  private pumpAppends(): void {
    if (this.roleValue !== 'leader') return;
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
    if (pr.state === 'replicate' && pr.inflight.length >= this.config.inflightAppendsMax) return false;
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) {
      // The entries this follower needs were compacted away: send the snapshot.
      const snapshot = this.log.snapshot;
      assert(snapshot !== null && prevLogIndex < this.log.snapshotIndex, 'no term and no snapshot', prevLogIndex, this.log.snapshotIndex);
      pr.state = 'snapshot';
      pr.pendingSnapshotIndex = snapshot.index;
      pr.inflight = [];
      this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot });
      return false;
    }
    const entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.config.entriesPerAppendMax);
    if (entries.length === 0 && !allowEmpty) return false;
    this.send({ type: 'append', from: this.id, to, term: this.term, prevLogIndex, prevLogTerm, entries, commit: this.log.committed });
    if (pr.state === 'probe') {
      pr.probeSent = true;
      return false;
    }
    if (entries.length === 0) return false;
    pr.next = entries[entries.length - 1]!.index + 1;
    pr.inflight.push(pr.next - 1);
    return true;
  }

  // ---------------------------------------------------------------- plumbing

  private send(m: Message): void {
    this.messages.push(m);
  }

  private hardStateToPersist(): HardState | null {
    let vote = this.vote;
    if (this.mutations.voteNotPersisted && vote !== this.id) {
      // MUTANT: the vote for another node never reaches the disk.
      vote = this.persistedHardState.term === this.term ? this.persistedHardState.vote : NO_NODE;
    }
    const persisted = this.persistedHardState;
    if (persisted.term === this.term && persisted.vote === vote && persisted.commit === this.log.committed) return null;
    return { term: this.term, vote, commit: this.log.committed };
  }

  private nextCommittedEntries(): Entry[] {
    if (this.log.pendingSnapshot !== null) return []; // install the snapshot first
    const from = this.log.applied + 1;
    if (from > this.log.committed) return [];
    return this.log.slice(from, this.log.committed + 1, this.config.applyBatchMax);
  }

  private assertNoReadyOutstanding(): void {
    assert(this.readyOutstanding === null, 'input given between ready() and advance()');
  }
}
