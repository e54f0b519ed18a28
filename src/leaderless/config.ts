/**
 * `--replication leaderless` and its flags, validated before anything starts
 * (IMPULSE_ERR_CONFIG_INVALID, exit status 2):
 *
 *   --replication raft|leaderless   default raft
 *   --replicas N                    owners per key, 1..members (default min(3, members))
 *   --read-quorum R, --write-quorum W   a number, one, quorum or all (default quorum = ⌊N/2⌋+1)
 *   --sloppy-quorum true|false      fallbacks hold hints for owners that are down (default true)
 *   --conflicts siblings|lww        dotted version vectors with siblings (default), or last-writer-wins
 *
 * R + W > N is not required (Dynamo lets an operator trade consistency for
 * latency) but the reads that overlap the last write are only guaranteed then;
 * docs/leaderless.md says what each choice gives.
 */
import { configInvalid as invalid, integerValue as integer } from '../util/config-values.js';
import { parseQuorum } from './coordinator.js';
import { DEFAULT_LEADERLESS_CONFIG, type LeaderlessConfig } from './node.js';
import { CONFLICT_MODES, type ConflictMode } from './replica.js';

export type ReplicationMode = 'raft' | 'leaderless';

export interface LeaderlessFlags {
  replication?: string;
  replicas?: string;
  readQuorum?: string;
  writeQuorum?: string;
  sloppyQuorum?: string;
  conflicts?: string;
}

/** The leaderless configuration for a cluster of `members` nodes; undefined when --replication is raft (or absent). */
export function parseLeaderlessConfig(flags: LeaderlessFlags, members: number | undefined): LeaderlessConfig | undefined {
  const replication = flags.replication ?? 'raft';
  if (replication !== 'raft' && replication !== 'leaderless') throw invalid(`--replication must be raft or leaderless; got ${JSON.stringify(replication)}`);
  if (replication === 'raft') {
    for (const flag of ['replicas', 'readQuorum', 'writeQuorum', 'sloppyQuorum', 'conflicts'] as const) {
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
  };
}
