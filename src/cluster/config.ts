/**
 * Cluster configuration of one `impulse serve` member: who it is, where its
 * peers listen, how it bootstraps, and the Raft timing. Parsed from flags and
 * validated before anything starts, so a bad value stops the program with one
 * sentence (IMPULSE_ERR_CONFIG_INVALID, exit status 2).
 *
 *   --node-id 1 --peer-port 7171 --initial-cluster 1=127.0.0.1:7171,2=127.0.0.1:7172,3=127.0.0.1:7173
 *
 * Without `--node-id` a node runs alone (the single-node service); with it, it
 * is a Raft member. `--initial-cluster` names the voters of a NEW cluster by
 * their peer addresses; a member restarted on its data directory ignores it
 * (its membership is in its data; src/cluster/identity.ts checks that the
 * node id and cluster id still match). `--join` starts a member that an
 * existing cluster adds (`impulse member add`): it has no configuration of its
 * own and waits to be contacted; its `--initial-cluster` then only says where
 * the current members listen (like etcd's `--initial-cluster-state existing`).
 */
import { createHash } from 'node:crypto';
import { configInvalid as invalid, integerValue as integer } from '../util/config-values.js';
import type { NodeId } from '../raft/types.js';
import { MERGE_RIGHT_BYTES_MAX } from '../shard/merges.js';
import { SPLIT_KEY_BYTES_MAX } from '../shard/shard-map.js';
import { DEFAULT_LIMITS, SNAPSHOT_SEND_BYTES_PER_SECOND_MIN } from '../transport/options.js';
import { parseAddress } from '../transport/socket-factory.js';
import { TXN_LOCK_TTL_MS, TXN_LOCK_TTL_MS_MAX, TXN_LOCK_TTL_MS_MIN } from './shard-txn.js';

export interface ClusterConfig {
  readonly nodeId: NodeId;
  /** 64-bit cluster id as 16 hex digits: from the token and the initial cluster, or given with `--cluster-id`. */
  readonly clusterId: string;
  /** Where this member listens for peers. */
  readonly peerHost: string;
  readonly peerPort: number;
  /** The peer address other members dial ("host:port"); defaults to the listen address. */
  readonly advertisePeer: string;
  /** The client URL this member publishes for clients and tools; defaults to http(s)://<host>:<port> of the API. */
  readonly advertiseClient: string;
  /** Whether --advertise-client was given (else, with --port 0, the bound port replaces 0). */
  readonly advertiseClientGiven: boolean;
  /** Initial voters and their peer addresses; with `--join`, the current members' peer addresses (whom to talk to until the membership arrives). */
  readonly initialCluster: ReadonlyMap<NodeId, string>;
  readonly join: boolean;
  /**
   * `--split-keys`: a NEW cluster starts sharded, its key space cut at these
   * keys (UTF-8, ascending after sorting, distinct) into keys + 1 shards, each
   * its own Raft group (docs/sharding.md). Empty: one group holds all the data.
   * Part of the cluster id, like the initial members.
   */
  readonly splitKeys: readonly Buffer[];
  /**
   * `--shard-split-bytes`: the leader of a shard proposes a split at its
   * middle key once the shard's keys and values pass this many bytes
   * (docs/sharding.md "Splits"). 0 (the default): no size-triggered splits.
   */
  readonly shardSplitBytes: number;
  /**
   * `--shard-split-qps`: the leader of a shard splits it where its sampled
   * load halves once its smoothed requests a second stay above this for two
   * check intervals (docs/sharding.md "By load"). 0 (the default): no
   * load-triggered splits.
   */
  readonly shardSplitQps: number;
  /** `--shard-split-gc-rate`: most frozen keys a second a member's split GC deletes, all its led shards together (src/cluster/shard-split-gc.ts). Default 16,384. */
  readonly shardSplitGcRate: number;
  /**
   * `--txn-lock-ttl-ms`: how long a member sees a lock of an undecided
   * transaction across shards before it aborts it as abandoned; a
   * coordinator commits only within half of it (src/cluster/shard-txn.ts).
   * Default 10,000; 100 to 3,600,000.
   */
  readonly txnLockTtlMs: number;
  /** Automatic merges of small neighbours (docs/sharding.md "Merges"). */
  readonly merges: ShardMergesConfig;
  readonly timing: RaftTimingConfig;
  /** Replica moves of a sharded cluster (docs/sharding.md, "Moves"). */
  readonly moves: ShardMovesConfig;
  /**
   * `--snapshot-rate-max`: most bytes a second this member sends in snapshots,
   * all groups and peers together (src/transport/byte-rate.ts). Default 64 MiB.
   */
  readonly snapshotRateMax: number;
}

/** `--shard-split-gc-rate` by default: 16 GC steps of 1,024 keys a second (a 10 GiB half of 1 KiB values in about 11 minutes). */
export const DEFAULT_SHARD_SPLIT_GC_RATE = 16_384;

/** When the meta group's leader merges small neighbouring shards (src/cluster/shard-merge-trigger.ts). */
export interface ShardMergesConfig {
  /** `--shard-merge-bytes`: two neighbours each under this many bytes (and together under half of --shard-split-bytes) merge. 0 (the default): never automatically; at most 64 MiB (MERGE_RIGHT_BYTES_MAX). */
  readonly mergeBytes: number;
  /** `--shard-merge-quiet-ms`: a shard split, merged or moved more recently than this does not merge. Default 600,000 (10 min). */
  readonly quietMs: number;
  /** `--shard-merge-timeout-ms`: the meta leader rolls back a merge in flight longer than this (0: never). Default 60,000 (1 min; a merge takes a few Raft rounds and a local copy of at most 64 MiB). */
  readonly timeoutMs: number;
}

export const DEFAULT_SHARD_MERGES: ShardMergesConfig = { mergeBytes: 0, quietMs: 600_000, timeoutMs: 60_000 };

/** How the meta group's leader moves shard replicas (src/cluster/shard-mover.ts). */
export interface ShardMovesConfig {
  /** `--shard-moves-max`: most replica moves in flight at once, cluster-wide (1–64). Default 2. */
  readonly movesMax: number;
  /** `--member-dead-after-ms`: a member silent this long is dead and its shard replicas are re-replicated on the others. Default 300,000 (5 min, CockroachDB's time until a store is dead). */
  readonly memberDeadAfterMs: number;
  /** `--shard-balance-leaders`: the meta leader hands shard leaderships over so no member leads more than ceil(mean) (src/shard/leaders.ts). Default true. */
  readonly balanceLeaders: boolean;
  /** `--shard-balance-bytes-min`: replicas move for byte balance only when a member is off the mean bytes by 5% and by at least this many bytes (src/shard/byte-balance.ts). Default 64 MiB. */
  readonly balanceBytesMin: number;
}

export const DEFAULT_SHARD_MOVES: ShardMovesConfig = { movesMax: 2, memberDeadAfterMs: 300_000, balanceLeaders: true, balanceBytesMin: 64 * 1024 * 1024 };

export interface RaftTimingConfig {
  /** Milliseconds per Raft tick. Default 50. */
  readonly tickMs: number;
  /** Election timeout in ticks (each member waits a random [T, 2T)). Default 10 (500–1000 ms). */
  readonly electionTicks: number;
  /** Heartbeat interval in ticks. Default 2 (100 ms). */
  readonly heartbeatTicks: number;
  /** Take a snapshot and compact the log once this many entries were applied since the last one. Default 10,000. */
  readonly snapshotEntries: number;
  /** Entries kept behind a snapshot so a slightly slow follower catches up from the log. Default 5,000. */
  readonly snapshotCatchUpEntries: number;
}

/**
 * Why these defaults (docs/cluster.md, "Timing"): the failover target is under
 * a second from the death of a leader to the next acknowledged write, so the
 * election timeout must be well under a second: 50 ms ticks, elections after
 * 500–1000 ms of silence, heartbeats every 100 ms (5–10 per election timeout,
 * so a few lost or late heartbeats on a loaded machine do not start an
 * election). A heartbeat interval must stay above a round trip plus an fsync:
 * a follower whose appends go unacknowledged that long drops back to probing.
 */
export const DEFAULT_RAFT_TIMING_CONFIG: RaftTimingConfig = Object.freeze({
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 2,
  snapshotEntries: 10_000,
  snapshotCatchUpEntries: 5_000,
});

export const DEFAULT_PEER_PORT = 7171;

export interface ClusterFlags {
  nodeId?: string;
  peerPort?: string;
  peerHost?: string;
  advertisePeer?: string;
  advertiseClient?: string;
  initialCluster?: string;
  clusterToken?: string;
  clusterId?: string;
  join?: boolean;
  tickMs?: string;
  electionTicks?: string;
  heartbeatTicks?: string;
  snapshotEntries?: string;
  snapshotCatchUpEntries?: string;
  splitKeys?: string;
  shardMovesMax?: string;
  memberDeadAfterMs?: string;
  shardSplitBytes?: string;
  shardSplitQps?: string;
  shardSplitGcRate?: string;
  txnLockTtlMs?: string;
  shardBalanceLeaders?: string;
  shardBalanceBytesMin?: string;
  shardMergeBytes?: string;
  shardMergeQuietMs?: string;
  shardMergeTimeoutMs?: string;
  snapshotRateMax?: string;
}

/**
 * Parses the cluster flags; undefined when `--node-id` is absent (a single
 * node). `clientHost`/`clientPort` are the API's listen address and
 * `clientScheme` its protocol (for the default advertised client URL).
 */
export function parseClusterConfig(flags: ClusterFlags, clientHost: string, clientPort: number, clientScheme: 'http' | 'https' = 'http'): ClusterConfig | undefined {
  if (flags.nodeId === undefined) {
    const stray = (
      ['peerPort', 'peerHost', 'advertisePeer', 'advertiseClient', 'initialCluster', 'clusterToken', 'clusterId', 'join', 'tickMs', 'electionTicks', 'heartbeatTicks', 'snapshotEntries', 'snapshotCatchUpEntries', 'splitKeys', 'shardSplitBytes', 'shardSplitQps', 'shardSplitGcRate', 'txnLockTtlMs', 'shardMovesMax', 'memberDeadAfterMs', 'shardBalanceLeaders', 'shardBalanceBytesMin', 'shardMergeBytes', 'shardMergeQuietMs', 'shardMergeTimeoutMs', 'snapshotRateMax'] as const
    ).find((name) => flags[name] !== undefined);
    if (stray !== undefined) throw invalid(`--${kebab(stray)} needs --node-id (a cluster member has an id)`);
    return undefined;
  }
  const nodeId = integer('--node-id', flags.nodeId, 1, 2 ** 31 - 1);
  const peerHost = flags.peerHost ?? clientHost;
  const peerPort = integer('--peer-port', flags.peerPort ?? String(DEFAULT_PEER_PORT), 1, 65535);
  const join = flags.join === true;
  const initialCluster = flags.initialCluster === undefined ? new Map<NodeId, string>() : parseInitialCluster(flags.initialCluster);
  if (!join && initialCluster.size === 0) throw invalid('a new cluster member needs --initial-cluster (id=host:port,...), or --join to be added to an existing cluster');
  if (join && initialCluster.size === 0) throw invalid('--join needs --initial-cluster naming the current members\' peer addresses (printed by `impulse member add`)');
  if (!join && !initialCluster.has(nodeId)) throw invalid(`--initial-cluster does not name this member (--node-id ${nodeId})`);
  const advertisePeer = flags.advertisePeer ?? (join ? `${hostForUrl(peerHost)}:${peerPort}` : initialCluster.get(nodeId)!);
  parsePeerAddress('--advertise-peer', advertisePeer);
  const advertiseClient = flags.advertiseClient ?? `${clientScheme}://${hostForUrl(clientHost === '0.0.0.0' || clientHost === '::' ? '127.0.0.1' : clientHost)}:${clientPort}`;
  if (!/^https?:\/\/[^/]+$/.test(advertiseClient)) throw invalid(`--advertise-client must be a URL like http://10.0.0.1:7070; got ${JSON.stringify(advertiseClient)}`);
  const splitKeys = flags.splitKeys === undefined ? [] : parseSplitKeys(flags.splitKeys);
  if (join && splitKeys.length > 0) throw invalid('--split-keys shapes a new cluster; a member that joins takes the shard map from the cluster');
  let clusterId: string;
  if (flags.clusterId !== undefined) {
    if (!/^[0-9a-f]{16}$/.test(flags.clusterId)) throw invalid('--cluster-id must be 16 hex digits (as `impulse member add` prints it)');
    clusterId = flags.clusterId;
  } else {
    if (join) throw invalid('--join needs --cluster-id (printed by `impulse member add`)');
    clusterId = deriveClusterId(flags.clusterToken ?? 'impulse', initialCluster, splitKeys);
  }
  const defaults = DEFAULT_RAFT_TIMING_CONFIG;
  const timing: RaftTimingConfig = {
    tickMs: integer('--tick-ms', flags.tickMs ?? String(defaults.tickMs), 1, 10_000),
    electionTicks: integer('--election-ticks', flags.electionTicks ?? String(defaults.electionTicks), 2, 1000),
    heartbeatTicks: integer('--heartbeat-ticks', flags.heartbeatTicks ?? String(defaults.heartbeatTicks), 1, 500),
    snapshotEntries: integer('--snapshot-entries', flags.snapshotEntries ?? String(defaults.snapshotEntries), 1, 100_000_000),
    snapshotCatchUpEntries: integer('--snapshot-catch-up-entries', flags.snapshotCatchUpEntries ?? String(defaults.snapshotCatchUpEntries), 0, 100_000_000),
  };
  if (timing.electionTicks < 2 * timing.heartbeatTicks) throw invalid('--election-ticks must be at least twice --heartbeat-ticks');
  const shardSplitBytes = integer('--shard-split-bytes', flags.shardSplitBytes ?? '0', 0, 2 ** 48);
  const shardSplitQps = integer('--shard-split-qps', flags.shardSplitQps ?? '0', 0, 10_000_000);
  const shardSplitGcRate = integer('--shard-split-gc-rate', flags.shardSplitGcRate ?? String(DEFAULT_SHARD_SPLIT_GC_RATE), 1, 100_000_000);
  const txnLockTtlMs = integer('--txn-lock-ttl-ms', flags.txnLockTtlMs ?? String(TXN_LOCK_TTL_MS), TXN_LOCK_TTL_MS_MIN, TXN_LOCK_TTL_MS_MAX);
  const merges: ShardMergesConfig = {
    mergeBytes: integer('--shard-merge-bytes', flags.shardMergeBytes ?? String(DEFAULT_SHARD_MERGES.mergeBytes), 0, MERGE_RIGHT_BYTES_MAX),
    quietMs: integer('--shard-merge-quiet-ms', flags.shardMergeQuietMs ?? String(DEFAULT_SHARD_MERGES.quietMs), 0, 86_400_000),
    timeoutMs: integer('--shard-merge-timeout-ms', flags.shardMergeTimeoutMs ?? String(DEFAULT_SHARD_MERGES.timeoutMs), 0, 86_400_000),
  };
  const moves: ShardMovesConfig = {
    movesMax: integer('--shard-moves-max', flags.shardMovesMax ?? String(DEFAULT_SHARD_MOVES.movesMax), 1, 64),
    memberDeadAfterMs: integer('--member-dead-after-ms', flags.memberDeadAfterMs ?? String(DEFAULT_SHARD_MOVES.memberDeadAfterMs), 1000, 86_400_000),
    balanceLeaders: (flags.shardBalanceLeaders ?? String(DEFAULT_SHARD_MOVES.balanceLeaders)) === 'true',
    balanceBytesMin: integer('--shard-balance-bytes-min', flags.shardBalanceBytesMin ?? String(DEFAULT_SHARD_MOVES.balanceBytesMin), 0, 2 ** 48),
  };
  if (flags.shardBalanceLeaders !== undefined && flags.shardBalanceLeaders !== 'true' && flags.shardBalanceLeaders !== 'false') throw invalid('--shard-balance-leaders must be true or false');
  // A member is suspect after two election timeouts of silence (shard-mover.ts); dead must come later.
  if (moves.memberDeadAfterMs <= 2 * timing.electionTicks * timing.tickMs) throw invalid('--member-dead-after-ms must exceed two election timeouts (--election-ticks × --tick-ms × 2)');
  const snapshotRateMax = integer('--snapshot-rate-max', flags.snapshotRateMax ?? String(DEFAULT_LIMITS.snapshotSendBytesPerSecondMax), SNAPSHOT_SEND_BYTES_PER_SECOND_MIN, 2 ** 40);
  return { nodeId, clusterId, peerHost, peerPort, advertisePeer, advertiseClient, advertiseClientGiven: flags.advertiseClient !== undefined, initialCluster, join, splitKeys, shardSplitBytes, shardSplitQps, shardSplitGcRate, txnLockTtlMs, merges, timing, moves, snapshotRateMax };
}

/** Most split keys of `--split-keys` (the shards a new cluster starts with, minus one). */
export const SPLIT_KEYS_MAX = 255;

/** "k1,k2,...": distinct non-empty UTF-8 keys (at most SPLIT_KEYS_MAX, each at most SPLIT_KEY_BYTES_MAX bytes), sorted. */
export function parseSplitKeys(text: string): Buffer[] {
  const keys = text.split(',').map((key) => Buffer.from(key, 'utf8'));
  if (keys.length > SPLIT_KEYS_MAX) throw invalid(`--split-keys takes at most ${SPLIT_KEYS_MAX} keys`);
  if (keys.some((key) => key.length === 0 || key.length > SPLIT_KEY_BYTES_MAX)) throw invalid(`--split-keys are 1 to ${SPLIT_KEY_BYTES_MAX} bytes each, separated by commas`);
  keys.sort(Buffer.compare);
  if (keys.some((key, index) => index > 0 && key.equals(keys[index - 1]!))) throw invalid('--split-keys names a key twice');
  return keys;
}

/** "1=host:port,2=host:port" → id → address. Ids positive and distinct, addresses valid and distinct. */
export function parseInitialCluster(text: string): Map<NodeId, string> {
  const members = new Map<NodeId, string>();
  const addresses = new Set<string>();
  for (const part of text.split(',')) {
    const match = /^\s*(\d+)\s*=\s*(\S+)\s*$/.exec(part);
    if (match === null) throw invalid(`--initial-cluster entries look like 1=127.0.0.1:7171; got ${JSON.stringify(part)}`);
    const id = integer('--initial-cluster id', match[1]!, 1, 2 ** 31 - 1);
    const address = match[2]!;
    parsePeerAddress('--initial-cluster', address);
    if (members.has(id)) throw invalid(`--initial-cluster names member ${id} twice`);
    if (addresses.has(address)) throw invalid(`--initial-cluster gives address ${address} to two members`);
    members.set(id, address);
    addresses.add(address);
  }
  if (members.size > 9) throw invalid('--initial-cluster names more than 9 voters; start with 3 or 5 and add learners');
  return members;
}

/** Checks "host:port" ("[v6]:port" for IPv6) with the transport's own parser, naming the flag. */
function parsePeerAddress(flag: string, address: string): void {
  try {
    parseAddress(address);
  } catch (error) {
    throw invalid(`${flag}: ${(error as Error).message}`);
  }
}

/**
 * The cluster id: the first 8 bytes of sha256(token, members sorted by id).
 * Members started from the same flags agree on it; a member of another cluster
 * (other token or other initial members) is refused at the transport handshake.
 */
export function deriveClusterId(token: string, initialCluster: ReadonlyMap<NodeId, string>, splitKeys: readonly Uint8Array[] = []): string {
  const members = [...initialCluster.entries()].sort(([a], [b]) => a - b).map(([id, address]) => `${id}=${address}`);
  // Without split keys the id is what it always was; with them, members given other keys refuse each other.
  const shards = splitKeys.length === 0 ? '' : `\nsplit:${splitKeys.map((key) => Buffer.from(key).toString('hex')).join(',')}`;
  return createHash('sha256').update(`${token}\n${members.join(',')}${shards}`).digest('hex').slice(0, 16);
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}
