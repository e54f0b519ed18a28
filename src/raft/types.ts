/**
 * Data types shared by the Raft core (`raft.ts`), its log (`log.ts`) and the
 * driver that runs it (`driver.ts`, in real nodes and in the simulator).
 *
 * Every value here is plain data: no methods, no I/O. Indexes and terms are
 * positive safe integers; index 0 / term 0 mean "before the first entry".
 * Node ids are positive integers; 0 (`NO_NODE`) means "nobody".
 */
import { ImpulseError } from '../errors.js';

/** A node id. Positive; `NO_NODE` (0) means none / unknown. */
export type NodeId = number;
export const NO_NODE: NodeId = 0;

/**
 * The voting configuration. `voters` decide elections and commitment by
 * majority; `learners` receive the log but never count. Both sorted, disjoint.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/**
 * One membership change; the core allows one uncommitted change at a time.
 * `context` is opaque to the core: the application encodes what the transport
 * needs (the member's address) and gets it back when the entry is applied.
 * Node ids must never be reused after a removal (a removed id is told so).
 */
export interface ConfChange {
  /** `add-voter` adds a new voter or promotes a learner (which must have caught up). */
  readonly type: 'add-learner' | 'add-voter' | 'remove-node';
  readonly nodeId: NodeId;
  readonly context: Uint8Array;
}

/**
 * A log entry. `normal` entries carry opaque application bytes (an empty
 * payload is the leader's no-op). `conf-change` entries carry the change and
 * the whole configuration that results from it; a node uses the newest
 * configuration in its log as soon as the entry is appended (Raft
 * dissertation §4.1), not when it commits.
 */
export type Entry =
  | { readonly kind: 'normal'; readonly index: number; readonly term: number; readonly data: Uint8Array }
  | { readonly kind: 'conf-change'; readonly index: number; readonly term: number; readonly change: ConfChange; readonly confState: ConfState };

/** The state that must be durable before any message that depends on it is sent. */
export interface HardState {
  readonly term: number;
  /** Whom this node voted for in `term`; NO_NODE when it has not voted. */
  readonly vote: NodeId;
  /** Highest index known committed. Persisting it is an optimisation, not a safety need. */
  readonly commit: number;
}

/**
 * A snapshot as the core knows it: only metadata. It covers every entry up to
 * and including `index` (of term `term`), with the configuration in force at
 * `index`. The state machine's image travels outside the core (the driver
 * sends it beside the `snapshot` message); the log store records it as the
 * log's new beginning.
 */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/**
 * Messages between Raft nodes. The transport may lose, duplicate, delay and
 * reorder them; the core tolerates all of that.
 */
export type Message =
  /**
   * `pre-vote` carries the term the sender WOULD campaign in (its term + 1)
   * without changing anybody's term; `vote` is the real RequestVote.
   * `transfer` marks a campaign started by leadership transfer, which
   * receivers honour even while they believe a leader is alive.
   */
  | (MessageBase & { readonly type: 'pre-vote' | 'vote'; readonly lastLogIndex: number; readonly lastLogTerm: number; readonly transfer: boolean })
  | (MessageBase & { readonly type: 'pre-vote-response' | 'vote-response'; readonly granted: boolean })
  | (MessageBase & {
      readonly type: 'append';
      readonly prevLogIndex: number;
      readonly prevLogTerm: number;
      readonly entries: readonly Entry[];
      readonly commit: number;
    })
  /**
   * Success: `index` is the highest index now known to match the leader.
   * Failure: `index` is the rejected `prevLogIndex`, and (`hintIndex`,
   * `hintTerm`) let the leader skip a whole conflicting term at once: the
   * follower's last index at or below `index` whose term is <= the leader's
   * `prevLogTerm` (or its last index when its log is shorter).
   */
  | (MessageBase & { readonly type: 'append-response'; readonly success: boolean; readonly index: number; readonly hintIndex: number; readonly hintTerm: number })
  /** `readSeq` lets the leader confirm leadership for ReadIndex requests issued up to that sequence number. */
  | (MessageBase & { readonly type: 'heartbeat'; readonly commit: number; readonly readSeq: number })
  | (MessageBase & { readonly type: 'heartbeat-response'; readonly readSeq: number })
  /**
   * InstallSnapshot. From the core of a leader it asks the driver to send the
   * state machine's image (the driver replaces `snapshot` by the image's own
   * meta, which is at or after it); into the core of a follower it arrives only
   * after the driver staged that image.
   */
  | (MessageBase & { readonly type: 'snapshot'; readonly snapshot: SnapshotMeta })
  /** Leadership transfer: the receiver campaigns at once, skipping pre-vote. */
  | (MessageBase & { readonly type: 'timeout-now' })
  /**
   * The receiver was removed by a configuration the sender has committed: it
   * must stop campaigning and report it (its host then shuts the group down).
   * Valid at any term.
   */
  | (MessageBase & { readonly type: 'removed' });

export type MessageType = Message['type'];

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** Volatile state, for observation (tests, the simulator, status pages). Never persisted. */
export interface SoftState {
  readonly role: Role;
  readonly leaderId: NodeId;
  readonly term: number;
  /** This node learned that a committed configuration removed it; it no longer campaigns. */
  readonly removed: boolean;
}

/** The answer to one `readIndex(requestId)` call. */
export type ReadState =
  /**
   * Leadership was confirmed after the request arrived: once the local state
   * machine has applied `index`, reading it is linearizable.
   */
  | { readonly requestId: number; readonly ok: true; readonly index: number }
  /** The read cannot be served by this node (lost leadership, overloaded). It had no effect. */
  | { readonly requestId: number; readonly ok: false; readonly error: RaftError };

/**
 * One batch of work for the driver, returned by `RaftNode.ready()`.
 *
 * The driver MUST handle it in this order, then call `advance()`:
 *   1. PERSIST `snapshot` (if any), then `entries` (they replace any stored
 *      entries at the same and higher indexes), then `hardState` (if any),
 *      and make them DURABLE (fsync) — one `RaftLogStore.save` —
 *   2. BEFORE SENDING any of `messages`: a vote, an append acknowledgement
 *      or a leader's append all promise that this state survives a crash.
 *   3. Then APPLY: install `snapshot` in the state machine (its image was
 *      staged before the snapshot message was stepped), then apply
 *      `committedEntries` in order; serve `readStates` once applied has
 *      reached their index.
 *   4. Then call `advance()`. No other input (tick, step, propose, readIndex,
 *      reportSnapshot, compact) may be given between `ready()` and `advance()`.
 * `RaftDriver` (driver.ts) is the one implementation of this loop.
 */
export interface Ready {
  readonly softState: SoftState;
  /** Null when unchanged since the last persisted hard state. */
  readonly hardState: HardState | null;
  /** A snapshot received from the leader (its image is staged), to persist and install; null usually. */
  readonly snapshot: SnapshotMeta | null;
  /** Entries to append to stable storage, contiguous, ascending; bounded by `readyEntriesBytesMax`. */
  readonly entries: readonly Entry[];
  /**
   * True on a leader whose term and vote this Ready leaves unchanged (and no
   * snapshot): the driver may send the messages and apply `committedEntries`
   * (all durable already) before the write of `entries` and `hardState`
   * completes, call `advance` once the write has STARTED, and report its
   * completion later with `persisted(lastIndex, lastTerm)` (Raft dissertation
   * §10.2.1; etcd raft's async storage writes). Writes still complete in
   * order. False: persist first, as the order above says.
   */
  readonly persistAsync: boolean;
  readonly messages: readonly Message[];
  /** Entries committed and not yet handed out for application, ascending, contiguous; bounded by `applyBatchMax` and `applyBytesMax`. */
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

/** Stable codes of the Raft core's expected failures (entries of the catalog in src/errors.ts). */
export type RaftErrorCode =
  /** This node is not the leader; `leaderHint` names the leader it knows of, if any. */
  | 'IMPULSE_ERR_RAFT_NOT_LEADER'
  /** The leader is handing leadership over and accepts no proposals until it is done. */
  | 'IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS'
  /** Too many uncommitted entries or pending reads; retry later. */
  | 'IMPULSE_ERR_RAFT_OVERLOADED'
  /** A membership change is not allowed now (one is pending, the learner lags, the change is invalid). */
  | 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED'
  /** A read could not be confirmed because this node stopped being leader. It had no effect. */
  | 'IMPULSE_ERR_RAFT_READ_ABORTED'
  /** Another entry was committed at the index of this proposal: it will never apply. */
  | 'IMPULSE_ERR_RAFT_PROPOSAL_SUPERSEDED'
  /** This node can no longer learn whether the proposal applied (a snapshot replaced the log under it). */
  | 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN'
  /** The Raft group stopped on this node (removed from the cluster, or its log failed); pending writes have an unknown outcome. */
  | 'IMPULSE_ERR_RAFT_STOPPED'
  /** A message from a peer failed validation; it was dropped. */
  | 'IMPULSE_ERR_RAFT_MESSAGE_INVALID';

/** An expected, typed failure of a Raft request. The request had no effect. */
export class RaftError extends ImpulseError {
  override name = 'RaftError';
  declare readonly code: RaftErrorCode;
  constructor(
    code: RaftErrorCode,
    message: string,
    /** The leader this node knows of (NO_NODE when none): where to retry. */
    readonly leaderHint: NodeId = NO_NODE,
  ) {
    super(code, message, leaderHint === NO_NODE ? undefined : { details: { leader: leaderHint } });
  }
}

/** Payload bytes of an entry (what byte bounds count): the data, or the conf change's context. */
export function entryBytes(entry: Entry): number {
  return entry.kind === 'normal' ? entry.data.length : entry.change.context.length;
}

/** Result of `propose` / `proposeConfChange`: where the entry was appended, or why it was not. */
export type ProposeResult = { readonly ok: true; readonly index: number; readonly term: number } | { readonly ok: false; readonly error: RaftError };

/**
 * Deliberately broken variants of the core, for the simulator's mutation
 * check ONLY (testkit/sim/mutation.test.ts). Each flag re-creates a classic Raft
 * bug so the test can prove the simulator catches it. All default to off;
 * production code must never set them.
 */
export interface RaftMutations {
  /** Grant votes without putting the vote in the hard state to persist. */
  readonly voteNotPersisted?: boolean;
  /** Advance commit by counting replicas for an entry of an older term. */
  readonly commitOlderTermEntries?: boolean;
  /** Leader answers readIndex at once with its commit index, with no heartbeat round. */
  readonly readsWithoutReadIndex?: boolean;
  /** Follower appends without checking the term of the entry at prevLogIndex. */
  readonly appendWithoutConsistencyCheck?: boolean;
  /** A voter grants a second, different vote in a term it already voted in. */
  readonly grantSecondVote?: boolean;
  /** A heartbeat tells a follower to commit up to the leader's commit, past what it is known to hold. */
  readonly heartbeatCommitsPastMatch?: boolean;
  /** Learners are counted as voters when the leader counts replicas for commitment. */
  readonly learnerCountsInQuorum?: boolean;
  /** The vote's up-to-date check compares only the last log index, not the last term. */
  readonly voteIgnoresLogTerm?: boolean;
  /** A follower installs a snapshot older than its commit index, rolling its state machine back. */
  readonly staleSnapshotInstalled?: boolean;
  /**
   * The leader commits an entry once it holds it itself, before a majority
   * does. Not in MUTANT_NAMES: a real-process bug for the chaos tester
   * (`impulse serve --test-bug ack-before-majority`, src/test-hooks/bugs.ts).
   */
  readonly commitOnLeaderAlone?: boolean;
  /**
   * The leader counts its own copy of entries towards commitment as soon as
   * their write starts, not once it is durable. Not in MUTANT_NAMES: the
   * driver test that must catch it is src/raft/driver.test.ts ("the leader
   * counts itself only once its write is durable").
   */
  readonly selfCountedBeforeDurable?: boolean;
}

/** Every mutant, for the mutation check and the simulator's CLI. */
export const MUTANT_NAMES: readonly (keyof RaftMutations)[] = [
  'voteNotPersisted',
  'commitOlderTermEntries',
  'readsWithoutReadIndex',
  'appendWithoutConsistencyCheck',
  'grantSecondVote',
  'heartbeatCommitsPastMatch',
  'learnerCountsInQuorum',
  'voteIgnoresLogTerm',
  'staleSnapshotInstalled',
];

export const NO_MUTATIONS: RaftMutations = {};

/** The majority size for `voterCount` voters. */
export function quorumOf(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}
