/**
 * Data types shared by the Raft core (`raft.ts`), its log (`log.ts`) and the
 * drivers that run it (the simulator in testkit/sim/, later the cluster runtime).
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

/** One membership change; the core allows one uncommitted change at a time. */
export type ConfChange =
  | { readonly type: 'add-learner'; readonly nodeId: NodeId }
  /** Adds a new voter, or promotes an existing learner (which must have caught up). */
  | { readonly type: 'add-voter'; readonly nodeId: NodeId }
  | { readonly type: 'remove-node'; readonly nodeId: NodeId };

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

/** A state-machine snapshot covering every entry up to and including `index`. */
export interface Snapshot {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
  /** Opaque state-machine bytes produced by the application. */
  readonly data: Uint8Array;
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
  | (MessageBase & { readonly type: 'snapshot'; readonly snapshot: Snapshot })
  /** Leadership transfer: the receiver campaigns at once, skipping pre-vote. */
  | (MessageBase & { readonly type: 'timeout-now' });

export type MessageType = Message['type'];

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** Volatile state, for observation (tests, the simulator, status pages). Never persisted. */
export interface SoftState {
  readonly role: Role;
  readonly leaderId: NodeId;
  readonly term: number;
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
 *      and make them DURABLE (fsync) —
 *   2. BEFORE SENDING any of `messages`: a vote, an append acknowledgement
 *      or a leader's append all promise that this state survives a crash.
 *   3. Then APPLY: install `snapshot` in the state machine, then apply
 *      `committedEntries` in order; serve `readStates` once applied has
 *      reached their index.
 *   4. Then call `advance()`. No other input (tick, step, propose, readIndex)
 *      may be given between `ready()` and `advance()`.
 */
export interface Ready {
  readonly softState: SoftState;
  /** Null when unchanged since the last persisted hard state. */
  readonly hardState: HardState | null;
  /** A snapshot received from the leader, to persist and install; null usually. */
  readonly snapshot: Snapshot | null;
  /** Entries to append to stable storage, contiguous, ascending. */
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  /** Entries committed and not yet handed out for application, ascending, contiguous. */
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
  | 'IMPULSE_ERR_RAFT_READ_ABORTED';

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
}

export const NO_MUTATIONS: RaftMutations = {};

/** The majority size for `voterCount` voters. */
export function quorumOf(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}
