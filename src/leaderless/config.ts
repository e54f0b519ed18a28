/**
 * `--replication leaderless` and its flags, validated before anything starts
 * (IMPULSE_ERR_CONFIG_INVALID, exit status 2):
 *
 *   --replication raft|leaderless   default raft
 *   --replicas N                    owners per key, 1..members (default min(3, members))
 *   --read-quorum R, --write-quorum W   a number, one, quorum or all (default quorum = ⌊N/2⌋+1)
 *   --sloppy-quorum true|false      fallbacks hold hints for owners that are down (default true)
 *   --conflicts siblings|lww        dotted version vectors with siblings (default), or last-writer-wins
 *   --request-timeout-ms MS         whole-request time of a coordinated read or write (default 2000, 100..60000)
 *   --tombstone-grace-seconds S     how long a delete's tombstone is kept at least before it is collected
 *                                   (default 864000 = 10 days, as Cassandra's gc_grace_seconds; 0..31536000)
 *
 * R + W > N is not required (Dynamo lets an operator trade consistency for
 * latency) but the reads that overlap the last write are only guaranteed then;
 * docs/leaderless.md says what each choice gives.
 */
import { ImpulseError } from '../errors.js';
import { configInvalid as invalid, integerValue as integer } from '../util/config-values.js';

/** How concurrent writes end: 'siblings' (dotted version vectors) or 'lww' (highest hybrid timestamp wins). */
export type ConflictMode = 'siblings' | 'lww';
export const CONFLICT_MODES: readonly ConflictMode[] = ['siblings', 'lww'];

export interface LeaderlessConfig {
  /** N: owners per key (`--replicas`, default 3; at most the member count). */
  readonly replicas: number;
  /** Default R and W (`--read-quorum`, `--write-quorum`; default ⌊N/2⌋+1). */
  readonly readQuorum: number;
  readonly writeQuorum: number;
  /** Sloppy quorum with hinted handoff (default true). */
  readonly sloppy: boolean;
  readonly conflicts: ConflictMode;
  readonly vnodesPerNode: number;
  /** Whole-request time of a coordinated read or write, ms (`--request-timeout-ms`, default 2000, in [100, 60000]). */
  readonly requestTimeoutMs: number;
  /** Failure detection (failure-detector.ts): heartbeat period, suspicion and down thresholds, ms (defaults 200, 600, 2000). */
  readonly heartbeatMs: number;
  readonly suspectAfterMs: number;
  readonly downAfterMs: number;
  /** Period of hinted handoff rounds, ms (default 500). */
  readonly handoffIntervalMs: number;
  /** Period of background anti-entropy exchanges, ms (default 60,000; 0: only on demand). */
  readonly antiEntropyIntervalMs: number;
  /** Bounds of one anti-entropy pass (anti-entropy.ts): it starts no new batch after this long, ms, or this many bytes exchanged (defaults 300,000 and 1 GiB). */
  readonly antiEntropyPassTimeMaxMs: number;
  readonly antiEntropyPassBytesMax: number;
  /** How old a tombstone must be before it may be collected, ms (`--tombstone-grace-seconds`; default 10 days). */
  readonly tombstoneGraceMs: number;
  /** Period of tombstone collection rounds, ms (default 10,000; 0: never collected). */
  readonly tombstoneIntervalMs: number;
}

/** Defaults for N = 3; `parseLeaderlessConfig` derives R and W from the N it chose. */
export const DEFAULT_LEADERLESS_CONFIG: LeaderlessConfig = Object.freeze({
  replicas: 3,
  readQuorum: 2,
  writeQuorum: 2,
  sloppy: true,
  conflicts: 'siblings',
  vnodesPerNode: 64,
  requestTimeoutMs: 2000,
  heartbeatMs: 200,
  suspectAfterMs: 600,
  downAfterMs: 2000,
  handoffIntervalMs: 500,
  antiEntropyIntervalMs: 60_000,
  antiEntropyPassTimeMaxMs: 300_000,
  antiEntropyPassBytesMax: 1024 ** 3,
  tombstoneGraceMs: 864_000_000,
  tombstoneIntervalMs: 10_000,
});



/** Bounds of `--request-timeout-ms`: below 100 ms a loaded member times out healthy peers; above a minute a client waits too long to learn a quorum is gone. */
export const REQUEST_TIMEOUT_MS_MIN = 100;
export const REQUEST_TIMEOUT_MS_MAX = 60_000;
/** A year: the longest `--tombstone-grace-seconds`. */
export const TOMBSTONE_GRACE_SECONDS_MAX = 31_536_000;

export type ReplicationMode = 'raft' | 'leaderless';

export interface LeaderlessFlags {
  replication?: string;
  replicas?: string;
  readQuorum?: string;
  writeQuorum?: string;
  sloppyQuorum?: string;
  conflicts?: string;
  requestTimeoutMs?: string;
  tombstoneGraceSeconds?: string;
}

/** The leaderless configuration for a cluster of `members` nodes; undefined when --replication is raft (or absent). */
export function parseLeaderlessConfig(flags: LeaderlessFlags, members: number | undefined): LeaderlessConfig | undefined {
  const replication = flags.replication ?? 'raft';
  if (replication !== 'raft' && replication !== 'leaderless') throw invalid(`--replication must be raft or leaderless; got ${JSON.stringify(replication)}`);
  if (replication === 'raft') {
    for (const flag of ['replicas', 'readQuorum', 'writeQuorum', 'sloppyQuorum', 'conflicts', 'requestTimeoutMs', 'tombstoneGraceSeconds'] as const) {
      if (flags[flag] !== undefined) throw invalid(`--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} applies to --replication leaderless only`);
    }
    return undefined;
  }
  if (members === undefined) throw invalid('--replication leaderless needs --node-id and --initial-cluster (it is a cluster mode)');
  const replicas = integer('--replicas', flags.replicas ?? String(Math.min(3, members)), 1, members);
  const quorum = (flag: string, text: string | undefined): number => {
    try {
      return parseQuorum(text ?? 'quorum', replicas, flag);
    } catch (error) {
      throw invalid((error as Error).message);
    }
  };
  const sloppy = flags.sloppyQuorum ?? 'true';
  if (sloppy !== 'true' && sloppy !== 'false') throw invalid('--sloppy-quorum must be true or false');
  const conflicts = flags.conflicts ?? 'siblings';
  if (!(CONFLICT_MODES as readonly string[]).includes(conflicts)) throw invalid(`--conflicts must be ${CONFLICT_MODES.join(' or ')}`);
  return {
    ...DEFAULT_LEADERLESS_CONFIG,
    replicas,
    readQuorum: quorum('--read-quorum', flags.readQuorum),
    writeQuorum: quorum('--write-quorum', flags.writeQuorum),
    sloppy: sloppy === 'true',
    conflicts: conflicts as ConflictMode,
    requestTimeoutMs: integer('--request-timeout-ms', flags.requestTimeoutMs ?? String(DEFAULT_LEADERLESS_CONFIG.requestTimeoutMs), REQUEST_TIMEOUT_MS_MIN, REQUEST_TIMEOUT_MS_MAX),
    tombstoneGraceMs: 1000 * integer('--tombstone-grace-seconds', flags.tombstoneGraceSeconds ?? String(DEFAULT_LEADERLESS_CONFIG.tombstoneGraceMs / 1000), 0, TOMBSTONE_GRACE_SECONDS_MAX),
  };
}

/** Parses an r or w value: an integer in [1, n], `one`, `quorum` (⌊n/2⌋+1) or `all`. IMPULSE_ERR_QUORUM_INVALID otherwise. */
export function parseQuorum(text: string, n: number, name: string): number {
  if (text === 'one') return 1;
  if (text === 'quorum') return Math.floor(n / 2) + 1;
  if (text === 'all') return n;
  if (/^[0-9]{1,3}$/.test(text) && Number(text) >= 1 && Number(text) <= n) return Number(text);
  throw new ImpulseError('IMPULSE_ERR_QUORUM_INVALID', `${name} must be a number from 1 to ${n}, one, quorum or all; got ${JSON.stringify(text.slice(0, 16))}`);
}
