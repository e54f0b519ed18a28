/**
 * The JSON the dashboard reads, as far as it reads it: `GET /cluster`
 * (src/protocol/cluster-view.ts) and `GET /status` (src/api/server.ts and
 * src/service/kv-service.ts, ServiceStatus). The browser code imports nothing
 * from the server's sources (src/layering.test.ts), so the fields it uses are
 * restated here; docs/api.md is the reference.
 */
import type { RequestSample } from '../figures.js';

export interface ClusterMemberJson {
  readonly id: number;
  readonly clientUrl: string | null;
  readonly peerUrl: string | null;
  readonly role: string;
  readonly matchIndex: number | null;
  readonly lag: number | null;
  readonly lastContactMs: number | null;
}

export interface ClusterJson {
  readonly clusterId: string;
  readonly nodeId: number;
  readonly state: string;
  readonly reason?: string;
  readonly leader: number | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly members: readonly ClusterMemberJson[];
}

export interface ReplicationJson {
  readonly nodeId?: number;
  readonly state?: string;
  readonly role?: string;
  readonly term?: number;
  readonly leader?: number | null;
  readonly commitIndex?: number;
  readonly appliedIndex?: number;
  readonly lastIndex?: number;
}

export interface StatusJson {
  readonly version: string;
  readonly mode: string;
  readonly engine: string;
  readonly durable: boolean;
  readonly sync: string;
  readonly appliedIndex: number;
  readonly keyCount: number | null;
  readonly diskBytes: number | null;
  readonly figures: Readonly<Record<string, number>>;
  readonly replication?: ReplicationJson;
  readonly health: { readonly status: string; readonly reason?: string };
  readonly requests?: RequestSample;
  readonly uptimeSeconds: number;
  readonly pid: number;
  readonly dataDir?: string;
}

/** `GET /shards` (src/protocol/shard-view.ts; docs/api.md, "Shards"). */
export interface ShardsJson {
  readonly nodeId: number;
  readonly sharded: boolean;
  readonly version: number;
  readonly shards: readonly {
    readonly id: number;
    /** Hex; '' from the first key. */
    readonly start: string;
    /** Hex; null to the last key. */
    readonly end: string | null;
    readonly epoch: number;
    readonly replicas: readonly number[];
    readonly leader: number | null;
    readonly local: boolean;
    readonly appliedIndex: number | null;
    readonly diskBytes: number | null;
    readonly quiesced?: boolean;
  }[];
}

/** One member as the dashboard shows it. */
export interface MemberState {
  /** The member id; 0 for a single node. */
  readonly id: number;
  readonly clientUrl: string | null;
  /** 'up' when its /status answered this poll; 'down' when it did not; 'unknown' when the page's own node does not answer. */
  readonly reachability: 'up' | 'down' | 'unknown';
  /** Why it is down (the relay's error). */
  readonly problem: string | null;
  /** Its own role (from its /status), else the page node's view of it. */
  readonly role: string;
  readonly term: number | null;
  readonly commitIndex: number | null;
  readonly appliedIndex: number | null;
  /** From the leader's view: entries behind, and ms since the leader heard from it. */
  readonly lag: number | null;
  readonly lastContactMs: number | null;
  readonly status: StatusJson | null;
}

export interface ClusterSnapshot {
  /** 'cluster' for a member, 'single' for a node without --node-id, 'unknown' before the first answer. */
  readonly mode: 'cluster' | 'single' | 'unknown';
  /** Whether the node that serves this page answered this poll, and why not. */
  readonly pageNodeUp: boolean;
  readonly pageNodeProblem: string | null;
  readonly clusterId: string | null;
  /** The node serving the page (its id; 0 for a single node). */
  readonly nodeId: number | null;
  readonly leader: number | null;
  readonly term: number | null;
  readonly members: readonly MemberState[];
  /** The page's node's shard map; null on a single node, or when /shards did not answer. */
  readonly shards: ShardsJson | null;
  /** Date.now() of this snapshot. */
  readonly takenAtMs: number;
}
