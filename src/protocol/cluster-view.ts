/**
 * The JSON of `GET /cluster`, shared by the server and the client: who the
 * members are, who leads, and how far each one is.
 */

/** A member's role as this node sees it; `unknown` when it cannot tell (a follower does not track others). */
export type MemberRole = 'leader' | 'follower' | 'candidate' | 'learner' | 'unknown';

export interface ClusterMemberView {
  readonly id: number;
  /** The URL clients (and forwarding members) use; null until the member published it. */
  readonly clientUrl: string | null;
  /** Where peers reach it ("host:port"). */
  readonly peerUrl: string;
  readonly role: MemberRole;
  /** Highest log index known to match the leader's; null unless this node leads. */
  readonly matchIndex: number | null;
  /** Entries behind the leader's last index; null unless this node leads. */
  readonly lag: number | null;
  /** Milliseconds since the leader last heard from it; null unless this node leads (0 for itself). */
  readonly lastContactMs: number | null;
}

export interface ClusterView {
  readonly clusterId: string;
  /** The node that answered. */
  readonly nodeId: number;
  /** The leader this node knows of, or null while there is none. */
  readonly leader: number | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly members: readonly ClusterMemberView[];
}
