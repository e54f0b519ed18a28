/**
 * The JSON of `GET /cluster` (and of the membership admin routes' answers),
 * shared by the server and the client: who the members are, who leads, and
 * how far each one is.
 */

/**
 * A member's role as this node sees it. Only the leader tracks the others: on
 * a follower, voters other than the leader show as `follower` whatever they
 * are doing; `unknown` when it cannot tell at all.
 */
export type MemberRole = 'leader' | 'follower' | 'candidate' | 'learner' | 'unknown' | LeaderlessLiveness;

/**
 * A leaderless member's role: what this node's failure detector says of it
 * (heartbeats with suspicion, src/leaderless/failure-detector.ts).
 */
export type LeaderlessLiveness = 'up' | 'suspect' | 'down';

export interface ClusterMemberView {
  readonly id: number;
  /** The URL clients (and forwarding members) use; null until the member published it. */
  readonly clientUrl: string | null;
  /** Where peers reach it ("host:port"); null if its addition carried no valid address. */
  readonly peerUrl: string | null;
  readonly role: MemberRole;
  /** Highest log index known to match the leader's; null unless this node leads. */
  readonly matchIndex: number | null;
  /** Entries behind the leader's last index; null unless this node leads. */
  readonly lag: number | null;
  /** Milliseconds since the leader last heard from it; null unless this node leads (0 for itself). */
  readonly lastContactMs: number | null;
}

/** How the node that answered takes part: `running`, or stopped for good (`failed`, `removed`), or `closed`. */
export type MemberState = 'running' | 'failed' | 'removed' | 'closed';

export interface ClusterView {
  readonly clusterId: string;
  /** The node that answered. */
  readonly nodeId: number;
  readonly state: MemberState;
  /** Why the node is failed or removed; absent while running. */
  readonly reason?: string;
  /** The leader this node knows of, or null while there is none. */
  readonly leader: number | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly members: readonly ClusterMemberView[];
  /** Leaderless mode: the last membership change the answering member drove (absent if none since it started). */
  readonly membershipChange?: MembershipChangeView;
}

/**
 * A leaderless membership change as its claimant reports it. `POST
 * /cluster/members` and `DELETE /cluster/members/{id}` answer once the change
 * is complete or after at most 10 s, whichever comes first: `state: running`
 * then means it goes on in the background; poll `GET /cluster` of the same
 * member until it is `done` or `failed`.
 */
export interface MembershipChangeView {
  /** The epoch the change moves to. */
  readonly epoch: number;
  /** The member ids after the change. */
  readonly members: readonly number[];
  readonly state: 'running' | 'done' | 'failed';
  /** The step under way (or where it ended): pending, settle (one request time), transfer, commit. */
  readonly step: 'pending' | 'settle' | 'transfer' | 'commit';
  /** Milliseconds since the change began. */
  readonly elapsedMs: number;
  /** Why it failed (the error code and message; the member that did not take part, if one). */
  readonly error?: { readonly code: string; readonly message: string; readonly member?: number };
}

/** The body of `POST /cluster/members`. */
export interface AddMemberRequest {
  readonly id: number;
  /** "host:port" where the new member listens for peers (its --advertise-peer). */
  readonly peerUrl: string;
  /** Its client URL (--advertise-client), if known; it publishes it itself once it runs. */
  readonly clientUrl?: string;
}

/** How `DELETE /cluster/members/{id}` removes (`?force=true`: leaderless only, a member that is down for good, docs/leaderless.md). */
export interface RemoveOptions {
  readonly force?: boolean;
}

/** The answer of `POST /cluster/repair` (leaderless mode): one anti-entropy pass of the node that answered with every other member. */
export interface RepairReport {
  readonly nodeId: number;
  readonly exchanges: readonly (
    | {
        readonly peer: number;
        /** Leaves whose hashes differed at the start of the pass, and how many of them it got to. */
        readonly leavesDiffering: number;
        readonly leavesRepaired: number;
        readonly keysPulled: number;
        readonly keysPushed: number;
        /** Bytes this pass received and sent, and its duration. */
        readonly bytes: number;
        readonly elapsedMs: number;
        /** False when the pass stopped at its time or byte bound with differing leaves left (call repair again). */
        readonly complete: boolean;
      }
    | { readonly peer: number; readonly error: string }
  )[];
}
