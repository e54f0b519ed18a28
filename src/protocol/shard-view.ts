/**
 * The JSON of `GET /shards`, shared by the server and the client: the shard
 * map as the answering member knows it, with what that member sees of each
 * shard's group.
 */

export interface ShardView {
  /** The shard's Raft group id. */
  readonly id: number;
  /** First key (inclusive), hex; '' from the first key. */
  readonly start: string;
  /** End key (exclusive), hex; null to the last key. */
  readonly end: string | null;
  readonly epoch: number;
  readonly replicas: readonly number[];
  /** A replica move in flight (docs/sharding.md, "Moves"): `from` null adds a replica; absent when none. */
  readonly move?: { readonly from: number | null; readonly to: number };
  /** Nodes that left the shard's group by a move; absent when none. */
  readonly retired?: readonly number[];
  /**
   * The Raft ids of replicas that returned to the shard's group after leaving
   * it (generation × 2³¹ + node, ascending; src/shard/replica-id.ts), as the
   * map keeps them; absent when none (every other replica's Raft id is its
   * node id). `nextGeneration`: the generation the next return takes.
   */
  readonly replicaIds?: readonly number[];
  readonly nextGeneration?: number;
  /** A merge in flight: this shard merges into its left neighbour, shard `mergeInto`. */
  readonly mergeInto?: number;
  /** The merge in flight is being rolled back (`POST /shards/merge/cancel` or `--shard-merge-timeout-ms`); absent when not. */
  readonly mergeAbort?: true;
  /** How long the answering member has seen the merge in flight, ms (it counts from when its map first had it); absent when none. */
  readonly mergeAgeMs?: number;
  /** Replicas aligning for a merge: this shard's replicas are moving onto those of its left neighbour, shard `alignTo`, which it then merges into (docs/sharding.md "Merges"); absent when none. */
  readonly alignTo?: number;
  /** The leader the answering member knows of; null when none, or when it does not replicate the shard. */
  readonly leader: number | null;
  /** Whether the answering member replicates the shard (only then are the figures below known). */
  readonly local: boolean;
  /** The shard's applied index on the answering member (its revisions come from it); null when not local. */
  readonly appliedIndex: number | null;
  /** Keys and bytes on disk of the local replica, when the engine counts them; null otherwise. */
  readonly keyCount: number | null;
  readonly diskBytes: number | null;
  /**
   * The shard's running byte count on the answering member (its keys and
   * values inside its range, an upper bound; docs/sharding.md "Splits"):
   * kept by a member that checks the shard's size (it leads the shard and
   * --shard-split-bytes is set); null otherwise.
   */
  readonly sizeBytes: number | null;
  /**
   * The shard's size as its leader last reported it to the meta group's
   * leader (its running byte count, as `sizeBytes`; docs/sharding.md
   * "Shard reports"): the same on every member that reaches the meta leader;
   * null when no report is known (no leader yet, the count not taken yet,
   * or the meta leader did not answer).
   */
  readonly reportedSizeBytes: number | null;
  /** Requests a second (proposals and read-index reads) at the shard's leader, a moving average over about 10 s (src/cluster/shard-load.ts), as last reported; null when unknown. */
  readonly requestsPerSecond: number | null;
  /** Age of that report when the meta leader answered, ms; null without one. */
  readonly reportAgeMs: number | null;
  /** Proposals made at the answering member since it started (load: writes it led); null when not local. */
  readonly proposals: number | null;
  /** The group is quiesced on the answering member (idle: no ticks, no heartbeats). */
  readonly quiesced: boolean;
}

export interface ShardsView {
  readonly clusterId: string;
  /** The node that answered. */
  readonly nodeId: number;
  /** False for a cluster started without --split-keys: one shard, group 1, holds everything. */
  readonly sharded: boolean;
  /** The meta group's leader whose shard reports fill `reportedSizeBytes` and `requestsPerSecond`; null when none answered. */
  readonly reportsFrom: number | null;
  /** The shard map's version (0 while a sharded cluster has not applied its first map). */
  readonly version: number;
  readonly shards: readonly ShardView[];
}
